package clio

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/singleflight"

	"github.com/matterline/matterline/lookup"
)

// errInternal marks a recovered panic.
var errInternal = errors.New("clio: internal error")

// maxFamily bounds the contacts on one number whose matters are fetched.
const maxFamily = 5

// ServiceOptions configures NewService; zero values mean the config defaults.
type ServiceOptions struct {
	// Client is the Clio client; nil makes every lookup unconfigured.
	Client *Client
	// Storage holds the cache; nil disables caching.
	Storage          *Storage
	Match            MatchMode
	MatterStatus     []MatterStatus
	MatterPolicy     MatterPolicy
	StaffPreference  []StaffField
	DefaultCountry   string
	CacheTTL         time.Duration
	NegativeTTL      time.Duration
	LookupTimeout    time.Duration
	MaxPages         int
	BreakerFailures  int
	BreakerCooldown  time.Duration
	RateLimitReserve int
	// Index is the local phone index (clio.index): asked first, and taught
	// every caller Clio finds. With an index, matching is always MatchFull.
	Index  *Index
	Logger *slog.Logger
	Now    func() time.Time
}

// Service is the caller lookup. It is safe for concurrent use.
type Service struct {
	o   ServiceOptions
	log *slog.Logger
	now func() time.Time
	br  *breaker
	sf  singleflight.Group

	mu         sync.Mutex
	retryUntil time.Time
	lastErr    string
	lastErrAt  time.Time

	stats struct {
		lookups, cacheHits, stale, requests, rateLimited, errors atomic.Uint64
	}
}

// NewService returns a lookup Service.
func NewService(o ServiceOptions) *Service {
	if o.Match == MatchUnknown || o.Index != nil {
		o.Match = MatchFull
	}
	if len(o.MatterStatus) == 0 {
		o.MatterStatus = []MatterStatus{MatterOpen}
	}
	if o.MatterPolicy == PolicyUnknown {
		o.MatterPolicy = PolicyRecent
	}
	if len(o.StaffPreference) == 0 {
		o.StaffPreference = []StaffField{StaffResponsibleStaff, StaffResponsibleAttorney}
	}
	o.MatterStatus = slices.Clone(o.MatterStatus)
	o.StaffPreference = slices.Clone(o.StaffPreference)
	if o.DefaultCountry == "" {
		o.DefaultCountry = "US"
	}
	if o.CacheTTL <= 0 {
		o.CacheTTL = 15 * time.Minute
	}
	if o.NegativeTTL <= 0 {
		o.NegativeTTL = 2 * time.Minute
	}
	if o.LookupTimeout <= 0 {
		o.LookupTimeout = 5 * time.Second
	}
	if o.MaxPages <= 0 {
		o.MaxPages = 10
	}
	if o.BreakerFailures <= 0 {
		o.BreakerFailures = 5
	}
	if o.BreakerCooldown <= 0 {
		o.BreakerCooldown = 30 * time.Second
	}
	s := &Service{o: o, log: o.Logger, now: o.Now}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	s.br = &breaker{threshold: o.BreakerFailures, cooldown: o.BreakerCooldown}
	return s
}

// LookupOptions change one lookup.
type LookupOptions struct {
	// NoCache skips reading the cache (the fresh result is still stored).
	NoCache bool
}

// Lookup finds the caller in Clio; see LookupWith.
func (s *Service) Lookup(ctx context.Context, callerID string) lookup.Result {
	return s.LookupWith(ctx, callerID, LookupOptions{})
}

// LookupWith finds the caller in Clio. It never panics and never waits out a rate
// limit: failures come back as StatusError with a reason, or as a stale cached
// result marked Cached with a "stale_" reason.
func (s *Service) LookupWith(ctx context.Context, callerID string, o LookupOptions) lookup.Result {
	start := s.now()
	s.stats.lookups.Add(1)
	r := s.lookup(ctx, callerID, o)
	s.log.LogAttrs(ctx, slog.LevelInfo, "clio lookup",
		slog.String("number", MaskNumber(r.Number)), slog.String("status", r.Status.String()),
		slog.String("reason", r.Reason), slog.Bool("cached", r.Cached),
		slog.Int64("contact_id", contactID(r)), slog.Int64("matter_id", matterID(r)),
		slog.Int64("staff_id", staffID(r)), slog.Duration("took", s.now().Sub(start)))
	return r
}

func (s *Service) lookup(ctx context.Context, callerID string, o LookupOptions) lookup.Result {
	num, prob := NormalizeCallerID(callerID, s.o.DefaultCountry)
	if prob != NumberOK {
		return lookup.Result{Status: lookup.StatusNotFound, Reason: prob.String()}
	}
	if s.o.Client == nil {
		return lookup.Result{Status: lookup.StatusUnconfigured, Number: num, Reason: ReasonUnconfigured}
	}
	if r, ok := s.o.Index.Lookup(num); ok {
		return r
	}
	var stale *cacheEntry
	if s.o.Storage != nil && !o.NoCache {
		ce, ok, err := s.o.Storage.cacheGet(ctx, num)
		if err != nil {
			s.log.Warn("clio cache read failed", "err", err)
		}
		if ok {
			if s.now().Before(ce.Expires) {
				s.stats.cacheHits.Add(1)
				ce.Result.Cached, ce.Result.Source = true, lookup.SourceCache
				return ce.Result
			}
			stale = &ce
		}
	}
	now := s.now()
	if reason := s.gate(now, stale != nil); reason != "" {
		return s.fallback(num, stale, reason)
	}
	ch := s.sf.DoChan(num, func() (v any, err error) {
		// A panic in a DoChan flight would crash the process: turn it into an error.
		defer func() {
			if p := recover(); p != nil {
				s.log.Error("clio lookup panic", "panic", fmt.Sprint(p))
				v, err = lookup.Result{}, fmt.Errorf("%w: %v", errInternal, p)
			}
		}()
		// The flight outlives any one caller's context; LookupTimeout bounds it.
		fctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.o.LookupTimeout)
		defer cancel()
		return s.fetch(fctx, num)
	})
	select {
	case res := <-ch:
		if errors.Is(res.Err, ErrNotConnected) {
			return lookup.Result{Status: lookup.StatusUnconfigured, Number: num, Reason: ReasonNotConnected}
		}
		if res.Err != nil {
			return s.fallback(num, stale, classify(res.Err))
		}
		r := cloneResult(res.Val.(lookup.Result))
		r.Source = lookup.SourceClio
		return r
	case <-ctx.Done():
		reason := ReasonCanceled
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			reason = ReasonTimeout
		}
		return s.fallback(num, stale, reason)
	}
}

// gate decides, before any request, whether Clio may be called: not while a 429's
// Retry-After runs or the circuit is open, and not when the rate-limit budget is at
// the reserve and a stale result can be served instead.
func (s *Service) gate(now time.Time, haveStale bool) string {
	s.mu.Lock()
	until := s.retryUntil
	s.mu.Unlock()
	if now.Before(until) {
		return ReasonRateLimited
	}
	if !s.br.allow(now) {
		return ReasonCircuitOpen
	}
	if haveStale {
		if rt := s.o.Client.Rate(); rt.Known && now.Before(rt.Reset) && rt.Remaining <= s.o.RateLimitReserve {
			return ReasonRateReserve
		}
	}
	return ""
}

// fallback serves the stale cached result when there is one, else an error result.
func (s *Service) fallback(num string, stale *cacheEntry, reason string) lookup.Result {
	if stale != nil {
		s.stats.stale.Add(1)
		r := cloneResult(stale.Result)
		r.Cached, r.Source = true, lookup.SourceCache
		r.Reason = stalePrefix + reason
		return r
	}
	s.stats.errors.Add(1)
	return lookup.Result{Status: lookup.StatusError, Number: num, Reason: reason, Source: lookup.SourceClio}
}

// fetch asks Clio (contacts, then matters) and records the outcome: breaker,
// rate-limit pause, cache, saved state.
func (s *Service) fetch(ctx context.Context, num string) (lookup.Result, error) {
	r, err := s.resolve(ctx, num)
	now := s.now()
	if errors.Is(err, ErrNotConnected) {
		return lookup.Result{}, err // an app without a connection yet: not a Clio failure
	}
	if err != nil {
		var rl *RateLimitError
		if errors.As(err, &rl) {
			s.stats.rateLimited.Add(1)
			wait := rl.RetryAfter
			if wait <= 0 {
				wait = time.Minute
			}
			s.mu.Lock()
			s.retryUntil = now.Add(wait)
			s.mu.Unlock()
		} else if s.br.failure(now) {
			s.log.Warn("clio circuit opened", "cooldown", s.o.BreakerCooldown, "err", err)
		}
		s.mu.Lock()
		s.lastErr, s.lastErrAt = classify(err)+": "+truncate(err.Error(), 200), now
		s.mu.Unlock()
		s.log.Warn("clio lookup failed", "number", MaskNumber(num), "reason", classify(err), "err", err)
		s.saveState(ctx, false)
		return lookup.Result{}, err
	}
	s.br.success()
	if s.o.Storage != nil {
		ttl := s.o.CacheTTL
		if r.Status == lookup.StatusNotFound {
			ttl = s.o.NegativeTTL
		}
		if r.Reason != ReasonNoMatchTrunc {
			wctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
			if err := s.o.Storage.cachePut(wctx, num, cacheEntry{Result: r, Fetched: now, Expires: now.Add(ttl)}); err != nil {
				s.log.Warn("clio cache write failed", "err", err)
			}
			cancel()
		}
	}
	s.saveState(ctx, true)
	return r, nil
}

// saveState stores what `clio status` shows (possibly from another process):
// the last error, the last success, the rate-limit headers and Retry-After.
func (s *Service) saveState(ctx context.Context, ok bool) {
	if s.o.Storage == nil {
		return
	}
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 2*time.Second)
	defer cancel()
	old, err := s.o.Storage.LoadState(ctx)
	if err != nil {
		s.log.Warn("clio state read failed", "err", err)
	}
	s.mu.Lock()
	st := State{LastError: s.lastErr, LastErrorAt: s.lastErrAt, RetryUntil: s.retryUntil, Rate: s.o.Client.Rate(), LastOKAt: old.LastOKAt}
	s.mu.Unlock()
	if st.LastError == "" { // this process has not failed yet: keep another's last error
		st.LastError, st.LastErrorAt = old.LastError, old.LastErrorAt
	}
	if ok {
		st.LastOKAt = s.now()
	}
	if err := s.o.Storage.SaveState(ctx, st); err != nil {
		s.log.Warn("clio state write failed", "err", err)
	}
}

// resolve runs the lookup against Clio.
func (s *Service) resolve(ctx context.Context, num string) (lookup.Result, error) {
	contacts, truncated, err := s.searchContacts(ctx, last4(num))
	if err != nil {
		return lookup.Result{}, err
	}
	matches := s.matchContacts(contacts, num)
	if len(matches) == 0 {
		res := decide(num, nil)
		if truncated {
			res.Reason = ReasonNoMatchTrunc
		}
		return res, nil
	}
	if len(matches) > maxFamily {
		return decide(num, make([]candidate, len(matches))), nil
	}
	rules := s.rules()
	picks := make([]candidate, 0, len(matches))
	matters := make(map[int64][]Matter, len(matches))
	for _, c := range matches {
		ms, err := s.mattersOf(ctx, c.ID)
		if err != nil {
			return lookup.Result{}, err
		}
		m, staff := rules.pick(ms)
		picks = append(picks, candidate{c, m, staff})
		matters[c.ID] = ms
	}
	s.o.Index.Learn(ctx, matches, matters)
	return decide(num, picks), nil
}

// searchContacts queries contacts by the last four digits (no type filter:
// companies can be clients) and follows meta.paging.next for at most MaxPages
// pages. truncated reports that more pages were left.
func (s *Service) searchContacts(ctx context.Context, q string) ([]Contact, bool, error) {
	s.stats.requests.Add(1)
	all, resp, err := s.o.Client.Contacts.List(ctx, ContactListOptions{Query: q, ListOptions: ListOptions{Limit: 200}})
	if err != nil {
		return nil, false, err
	}
	for page := 1; resp.NextPage != ""; page++ {
		if page >= s.o.MaxPages {
			return all, true, nil
		}
		var more []Contact
		s.stats.requests.Add(1)
		more, resp, err = s.o.Client.Contacts.ListNext(ctx, resp.NextPage)
		if err != nil {
			return nil, false, err
		}
		all = append(all, more...)
	}
	return all, false, nil
}

// matchContacts keeps the contacts with a stored number equal to num (or with
// the same last four digits under MatchLast4), deduplicated, in id order.
func (s *Service) matchContacts(cs []Contact, num string) []Contact {
	var out []Contact
	seen := map[int64]bool{}
	for _, c := range cs {
		if seen[c.ID] {
			continue
		}
		for _, p := range c.PhoneNumbers {
			n, prob := NormalizeStored(p.Number, s.o.DefaultCountry)
			if prob != NumberOK {
				continue
			}
			if n == num || (s.o.Match == MatchLast4 && last4(n) == last4(num)) {
				seen[c.ID] = true
				out = append(out, c)
				break
			}
		}
	}
	slices.SortFunc(out, func(a, b Contact) int { return cmpInt(a.ID, b.ID) })
	return out
}

// mattersOf returns the contact's matters with a status that counts (as Clio
// returned them; the pick filters again).
func (s *Service) mattersOf(ctx context.Context, contactID int64) ([]Matter, error) {
	s.stats.requests.Add(1)
	ms, resp, err := s.o.Client.Matters.List(ctx, MatterListOptions{ClientID: contactID, Status: s.o.MatterStatus,
		ListOptions: ListOptions{Limit: 200}})
	if err != nil {
		return nil, err
	}
	for page := 1; resp.NextPage != "" && page < s.o.MaxPages; page++ {
		var more []Matter
		s.stats.requests.Add(1)
		if more, resp, err = s.o.Client.Matters.ListNext(ctx, resp.NextPage); err != nil {
			return nil, err
		}
		ms = append(ms, more...)
	}
	return ms, nil
}

func (s *Service) rules() matterRules {
	return matterRules{status: s.o.MatterStatus, policy: s.o.MatterPolicy, prefs: s.o.StaffPreference}
}

// classify maps an error to a short reason.
func classify(err error) string {
	var rl *RateLimitError
	var ae *APIError
	var ne net.Error
	switch {
	case errors.As(err, &rl):
		return ReasonRateLimited
	case errors.Is(err, ErrUnauthorized), errors.Is(err, ErrNotConnected):
		return ReasonAuthNeeded
	case errors.Is(err, context.DeadlineExceeded), errors.As(err, &ne) && ne.Timeout():
		return ReasonTimeout
	case errors.Is(err, context.Canceled):
		return ReasonCanceled
	case errors.Is(err, ErrBadResponse):
		return ReasonBadResponse
	case errors.Is(err, errInternal):
		return ReasonInternal
	case errors.As(err, &ae):
		switch {
		case ae.Status >= 500:
			return ReasonServerError
		case ae.Status == 403:
			return ReasonForbidden
		}
		return ReasonAPIError
	}
	return ReasonNetwork
}

// Stats are the lookup counters (for metrics) and the current Clio state.
type Stats struct {
	Lookups      uint64
	CacheHits    uint64
	StaleServed  uint64
	Requests     uint64
	RateLimited  uint64
	Errors       uint64
	BreakerOpens uint64
	Breaker      BreakerState
	Rate         Rate
	RetryUntil   time.Time
	LastError    string
	LastErrorAt  time.Time
}

// Index returns the local phone index the Service asks first, or nil.
func (s *Service) Index() *Index { return s.o.Index }

// Stats returns a snapshot of the counters.
func (s *Service) Stats() Stats {
	st := Stats{
		Lookups: s.stats.lookups.Load(), CacheHits: s.stats.cacheHits.Load(), StaleServed: s.stats.stale.Load(),
		Requests: s.stats.requests.Load(), RateLimited: s.stats.rateLimited.Load(), Errors: s.stats.errors.Load(),
		Breaker: s.br.state(s.now()),
	}
	s.br.mu.Lock()
	st.BreakerOpens = s.br.opened
	s.br.mu.Unlock()
	if s.o.Client != nil {
		st.Rate = s.o.Client.Rate()
	}
	s.mu.Lock()
	st.RetryUntil, st.LastError, st.LastErrorAt = s.retryUntil, s.lastErr, s.lastErrAt
	s.mu.Unlock()
	return st
}

func cloneResult(r lookup.Result) lookup.Result {
	if r.Contact != nil {
		c := *r.Contact
		r.Contact = &c
	}
	if r.Matter != nil {
		m := *r.Matter
		r.Matter = &m
	}
	if r.Staff != nil {
		st := *r.Staff
		r.Staff = &st
	}
	return r
}

func cmpInt(a, b int64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

func contactID(r lookup.Result) int64 {
	if r.Contact != nil {
		return r.Contact.ID
	}
	return 0
}

func matterID(r lookup.Result) int64 {
	if r.Matter != nil {
		return r.Matter.ID
	}
	return 0
}

func staffID(r lookup.Result) int64 {
	if r.Staff != nil {
		return r.Staff.ID
	}
	return 0
}

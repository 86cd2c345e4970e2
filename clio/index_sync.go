package clio

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"strconv"
	"time"
)

// Field lists of the index: what a sync page and a webhook delivery carry.
const (
	IndexContactFields = "id,name,type,updated_at,phone_numbers{number,name}"
	IndexMatterFields  = MatterFields + ",client{id}"
	// indexPageLimit is Clio's largest page (CLIO-API.md "Paging").
	indexPageLimit = 200
	// pollOverlap re-reads changes around the last watermark (clock skew, a
	// change committed while the previous poll ran).
	pollOverlap = 2 * time.Minute
)

// SyncProgress is reported after every stored page.
type SyncProgress struct {
	Phase    SyncPhase
	Contacts int
	Matters  int
	// Total is meta.records of the phase's last page (0: not sent).
	Total   int
	Resumed bool
}

// SyncOptions change one Sync.
type SyncOptions struct {
	// Progress, when set, is called after every stored page.
	Progress func(SyncProgress)
	// MaxWait bounds one wait for a rate-limit window (default 2 minutes).
	MaxWait time.Duration
}

// SyncResult sums up a full pass.
type SyncResult struct {
	Gen      int64         `json:"generation"`
	Resumed  bool          `json:"resumed"`
	Contacts int           `json:"contacts"`
	Matters  int           `json:"matters"`
	Numbers  int           `json:"numbers"`
	Removed  int           `json:"removed"`
	Requests int           `json:"requests"`
	Took     time.Duration `json:"-"`
}

// Sync runs a full pass (CLIO-API.md §9 "Initial build"): every contact with its
// phone numbers, then every matter whose status counts, each with cursor paging
// (limit=200, order=id(asc), meta.paging.next followed verbatim, one request at
// a time). Each page is stored with the cursor in one transaction, so a pass cut
// off (error, Ctrl-C, crash) resumes from its cursor on the next Sync. At the
// end, rows the pass did not see are deleted (contacts deleted in Clio) and
// lookups are answered from the index. A 429 is waited out (up to MaxWait), and
// the pass leaves the last clio.rate_limit_reserve requests of a window to calls.
func (ix *Index) Sync(ctx context.Context, o SyncOptions) (SyncResult, error) {
	if ix.o.Client == nil {
		return SyncResult{}, ErrNotConnected
	}
	if o.MaxWait <= 0 {
		o.MaxWait = 2 * time.Minute
	}
	ix.syncMu.Lock()
	defer ix.syncMu.Unlock()
	start := ix.now()
	st, err := ix.st.loadSyncState(ctx)
	if err != nil {
		return SyncResult{}, err
	}
	res := SyncResult{Resumed: st.Phase != PhaseIdle}
	if !res.Resumed {
		st.Gen = max(st.Gen, st.CompleteGen) + 1
		st.Phase, st.Next = PhaseContacts, ix.contactsURL(time.Time{})
		st.Contacts, st.Matters, st.Requests = 0, 0, 0
		st.StartedAt = start
		if err := putState(ctx, ix.st.db, syncStateKey, &st); err != nil {
			return res, err
		}
	}
	ix.mu.Lock()
	ix.gen = st.Gen
	ix.mu.Unlock()
	res.Gen = st.Gen
	ix.log.Info("clio index sync", "generation", st.Gen, "resumed", res.Resumed, "phase", st.Phase, "contacts", st.Contacts)
	restarted := false
	for st.Phase != PhaseIdle {
		var total int
		var next string
		var err error
		var n int
		switch st.Phase {
		case PhaseContacts:
			var cs []Contact
			cs, next, total, err = fetchPage[Contact](ctx, ix, st.Next, o.MaxWait)
			if err == nil {
				n = len(cs)
				st.Contacts += n
				st.Requests++
				ix.advance(&st, next)
				err = ix.apply(ctx, cs, nil, &st)
			}
		case PhaseMatters:
			var ms []Matter
			ms, next, total, err = fetchPage[Matter](ctx, ix, st.Next, o.MaxWait)
			if err == nil {
				n = len(ms)
				st.Matters += n
				st.Requests++
				ix.advance(&st, next)
				err = ix.apply(ctx, nil, ms, &st)
			}
		default:
			err = fmt.Errorf("clio index: unknown sync phase %q", st.Phase)
		}
		if err != nil {
			var ae *APIError
			if res.Resumed && !restarted && errors.As(err, &ae) && ae.Status >= 400 && ae.Status < 500 && ae.Status != 401 && ae.Status != 403 {
				// The stored cursor is no longer accepted: start the pass over.
				ix.log.Warn("clio index: stored cursor refused, starting the pass again", "err", err)
				restarted = true
				st.Phase, st.Next, st.Contacts, st.Matters = PhaseContacts, ix.contactsURL(time.Time{}), 0, 0
				continue
			}
			return res, fmt.Errorf("clio index sync (%s, after %d contacts, %d matters): %w", st.Phase, st.Contacts, st.Matters, err)
		}
		if o.Progress != nil {
			o.Progress(SyncProgress{Phase: st.Phase, Contacts: st.Contacts, Matters: st.Matters, Total: total, Resumed: res.Resumed})
		}
	}
	// Complete: drop what the pass did not see, and answer from the index.
	st.CompleteGen, st.CompletedAt = st.Gen, ix.now()
	if st.PolledAt.IsZero() || st.PolledAt.After(st.StartedAt) {
		st.PolledAt = st.StartedAt
	}
	contacts, matters, err := ix.st.prune(ctx, st.Gen, &st)
	if err != nil {
		return res, err
	}
	ix.mu.Lock()
	ix.removeLocked(contacts, matters)
	ix.ready = true
	ix.mu.Unlock()
	stats := ix.Stats()
	res.Contacts, res.Matters, res.Numbers = st.Contacts, st.Matters, stats.Numbers
	res.Removed, res.Requests, res.Took = len(contacts)+len(matters), st.Requests, ix.now().Sub(start)
	ix.log.Info("clio index synced", "generation", st.Gen, "contacts", res.Contacts, "matters", res.Matters,
		"numbers", res.Numbers, "removed", res.Removed, "requests", res.Requests, "took", res.Took)
	return res, nil
}

// advance moves the cursor to next, or to the next phase after the last page.
func (ix *Index) advance(st *IndexSyncState, next string) {
	switch {
	case next != "":
		st.Next = next
	case st.Phase == PhaseContacts:
		st.Phase, st.Next = PhaseMatters, ix.mattersURL(time.Time{})
	default:
		st.Phase, st.Next = PhaseIdle, ""
	}
}

func (ix *Index) contactsURL(since time.Time) string {
	q := url.Values{"fields": {IndexContactFields}, "limit": {strconv.Itoa(indexPageLimit)}, "order": {"id(asc)"}}
	if !since.IsZero() {
		q.Set("updated_since", since.UTC().Format(time.RFC3339))
	}
	return ix.o.Client.apiURL("contacts.json", q)
}

// mattersURL lists the matters whose status counts (a full pass) or, with
// since, every matter changed since then (a closed matter must leave the index).
func (ix *Index) mattersURL(since time.Time) string {
	q := url.Values{"fields": {IndexMatterFields}, "limit": {strconv.Itoa(indexPageLimit)}, "order": {"id(asc)"}}
	if since.IsZero() {
		ss := ""
		for i, s := range ix.o.MatterStatus {
			if i > 0 {
				ss += ","
			}
			ss += string(s)
		}
		q.Set("status", ss)
	} else {
		q.Set("updated_since", since.UTC().Format(time.RFC3339))
	}
	return ix.o.Client.apiURL("matters.json", q)
}

// backgroundWait is how long a sync should wait before its next request: the
// shared Budget's answer when there is one (it sees the lookups', write-back's
// and the index's responses, 429s included), else the client's last rate state
// against RateLimitReserve.
func (ix *Index) backgroundWait() time.Duration {
	if b := ix.o.Budget; b != nil {
		if ok, wait := b.Allow(); !ok {
			return wait
		}
		return 0
	}
	if rt := ix.o.Client.Rate(); rt.Known && rt.Remaining <= ix.o.RateLimitReserve {
		return rt.Reset.Sub(ix.now())
	}
	return 0
}

// fetchPage gets one page at u (same origin only), waiting out a 429 and
// keeping the rate-limit reserve.
func fetchPage[T any](ctx context.Context, ix *Index, u string, maxWait time.Duration) ([]T, string, int, error) {
	c := ix.o.Client
	if !c.sameOrigin(u) {
		return nil, "", 0, fmt.Errorf("clio: %w: cursor url on another host", ErrBadResponse)
	}
	for attempt := 0; ; attempt++ {
		if wait := ix.backgroundWait(); wait > 0 {
			if err := sleepCtx(ctx, min(wait, maxWait)); err != nil {
				return nil, "", 0, err
			}
		}
		var b listBody[T]
		resp, err := c.get(ctx, u, &b)
		var rl *RateLimitError
		if errors.As(err, &rl) && attempt < 5 {
			wait := rl.RetryAfter
			if wait <= 0 {
				wait = 10 * time.Second
			}
			ix.log.Info("clio index: rate limited, waiting", "retry_after", wait)
			if err := sleepCtx(ctx, min(wait, maxWait)); err != nil {
				return nil, "", 0, err
			}
			continue
		}
		if err != nil {
			return nil, "", 0, err
		}
		total := 0
		if b.Meta.Records != nil {
			total = *b.Meta.Records
		}
		return b.Data, resp.NextPage, total, nil
	}
}

func sleepCtx(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// PollResult sums up a Poll.
type PollResult struct {
	Contacts int `json:"contacts"`
	Matters  int `json:"matters"`
	Requests int `json:"requests"`
}

// Poll is the safety net for missed webhook deliveries: it reads the contacts
// and matters changed since the last watermark (updated_since, with a small
// overlap) and stores them. Deletions are not visible this way: the next full
// pass removes them. It needs a completed full pass (ErrIndexNotBuilt).
func (ix *Index) Poll(ctx context.Context) (PollResult, error) {
	var res PollResult
	if ix.o.Client == nil {
		return res, ErrNotConnected
	}
	ix.syncMu.Lock()
	defer ix.syncMu.Unlock()
	st, err := ix.st.loadSyncState(ctx)
	if err != nil {
		return res, err
	}
	if st.CompleteGen == 0 {
		return res, ErrIndexNotBuilt
	}
	start := ix.now()
	since := st.PolledAt.Add(-pollOverlap)
	for u := ix.contactsURL(since); u != ""; {
		cs, next, _, err := fetchPage[Contact](ctx, ix, u, time.Minute)
		if err != nil {
			return res, fmt.Errorf("clio index poll: %w", err)
		}
		res.Requests++
		res.Contacts += len(cs)
		if err := ix.apply(ctx, cs, nil, nil); err != nil {
			return res, err
		}
		u = next
	}
	for u := ix.mattersURL(since); u != ""; {
		ms, next, _, err := fetchPage[Matter](ctx, ix, u, time.Minute)
		if err != nil {
			return res, fmt.Errorf("clio index poll: %w", err)
		}
		res.Requests++
		res.Matters += len(ms)
		if err := ix.apply(ctx, nil, ms, nil); err != nil {
			return res, err
		}
		u = next
	}
	// Re-read: a full pass may have run between (it cannot: syncMu), but keep
	// the other fields as stored.
	st, err = ix.st.loadSyncState(ctx)
	if err != nil {
		return res, err
	}
	st.PolledAt = start
	if err := putState(ctx, ix.st.db, syncStateKey, &st); err != nil {
		return res, err
	}
	if res.Contacts+res.Matters > 0 {
		ix.log.Info("clio index poll", "contacts", res.Contacts, "matters", res.Matters)
	}
	return res, nil
}

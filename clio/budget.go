package clio

import (
	"net/http"
	"strconv"
	"sync"
	"time"
)

// DefaultBackgroundReserve is the X-RateLimit-Remaining a Budget keeps for
// lookups when BudgetOptions.Reserve is zero: five lookups of two requests.
const DefaultBackgroundReserve = 10

// Budget is the one rate budget (per access token) that caller lookups and
// background work such as write-back share. Lookups always win: they never ask
// the Budget and keep their own gate (Service); background work asks Allow
// before every request and sends only while the last seen X-RateLimit-Remaining
// is above the reserve kept for lookups and no Retry-After window runs.
//
// The Budget sees every Clio response, the lookups' and its own, by wrapping
// the transport of the HTTP client both use (Transport): a 429 answered to a
// lookup pauses background work too. It is safe for concurrent use.
type Budget struct {
	reserve int
	now     func() time.Time

	mu         sync.Mutex
	rate       Rate
	retryUntil time.Time
}

// BudgetOptions configure NewBudget; zero values mean defaults.
type BudgetOptions struct {
	// Reserve is the remaining requests background work leaves to lookups
	// (default DefaultBackgroundReserve).
	Reserve int
	Now     func() time.Time
}

// NewBudget returns an empty budget: everything is allowed until a response
// says otherwise.
func NewBudget(o BudgetOptions) *Budget {
	b := &Budget{reserve: o.Reserve, now: o.Now}
	if b.reserve <= 0 {
		b.reserve = DefaultBackgroundReserve
	}
	if b.now == nil {
		b.now = time.Now
	}
	return b
}

// Transport returns next (http.DefaultTransport when nil) observed by the
// budget: the X-RateLimit-* headers of every response become the last known
// rate, and a 429's Retry-After (or X-RateLimit-Reset) a pause.
func (b *Budget) Transport(next http.RoundTripper) http.RoundTripper {
	if next == nil {
		next = http.DefaultTransport
	}
	return budgetTransport{b: b, next: next}
}

type budgetTransport struct {
	b    *Budget
	next http.RoundTripper
}

func (t budgetTransport) RoundTrip(r *http.Request) (*http.Response, error) {
	res, err := t.next.RoundTrip(r)
	if err == nil {
		t.b.observe(res)
	}
	return res, err
}

func (b *Budget) observe(res *http.Response) {
	now := b.now()
	h := res.Header
	rem, err := strconv.Atoi(h.Get("X-RateLimit-Remaining"))
	b.mu.Lock()
	defer b.mu.Unlock()
	if err == nil {
		r := Rate{Known: true, Remaining: rem, At: now}
		r.Limit, _ = strconv.Atoi(h.Get("X-RateLimit-Limit"))
		if reset, err := strconv.ParseInt(h.Get("X-RateLimit-Reset"), 10, 64); err == nil {
			r.Reset = time.Unix(reset, 0)
		}
		b.rate = r
	}
	if res.StatusCode == http.StatusTooManyRequests {
		wait := parseRetryAfter(h.Get("Retry-After"))
		if wait <= 0 && !b.rate.Reset.IsZero() {
			wait = b.rate.Reset.Sub(now)
		}
		if until := now.Add(max(wait, time.Second)); until.After(b.retryUntil) {
			b.retryUntil = until
		}
	}
}

// NoteRetryAfter records a pause until until (a 429 seen elsewhere). A later
// end never shortens an earlier one.
func (b *Budget) NoteRetryAfter(until time.Time) {
	b.mu.Lock()
	if until.After(b.retryUntil) {
		b.retryUntil = until
	}
	b.mu.Unlock()
}

// RetryUntil is the end of the current Retry-After window (zero: none seen).
func (b *Budget) RetryUntil() time.Time {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.retryUntil
}

// Rate is the last rate-limit state seen.
func (b *Budget) Rate() Rate {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.rate
}

// Allow reports whether background work may send one request now; when not,
// wait is how long until asking again is worth it (the end of the Retry-After
// window or of the rate-limit window).
func (b *Budget) Allow() (ok bool, wait time.Duration) {
	now := b.now()
	b.mu.Lock()
	until, rt := b.retryUntil, b.rate
	b.mu.Unlock()
	if now.Before(until) {
		return false, until.Sub(now)
	}
	if !rt.Known || rt.Remaining > b.reserve {
		return true, 0
	}
	reset := rt.Reset
	if reset.IsZero() {
		reset = rt.At.Add(time.Minute) // no X-RateLimit-Reset: assume Clio's 60 s window
	}
	if now.Before(reset) {
		return false, max(reset.Sub(now), 100*time.Millisecond)
	}
	return true, 0
}

// Reserve is the remaining requests kept for lookups.
func (b *Budget) Reserve() int { return b.reserve }

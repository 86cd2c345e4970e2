// Package cliotest is a fake Clio Manage API v4: an http.Handler that follows
// the facts of shared/CLIO-API.md (OAuth authorize/token/deauthorize, bearer
// checks with the OAuth-style 401 body, `fields` with one nesting level and
// InvalidFields errors, contacts `query` as a case-insensitive substring search,
// `type`, `client_id` and lowercase `status` filters, cursor paging with absolute
// `next` URLs, users/who_am_i for the token's user, per-token fixed-window rate
// limits with the three X-RateLimit headers on every API response (401 included)
// and 429 + Retry-After) plus switches to make it slow, failing, garbled,
// oversized, down, or rotating refresh tokens.
//
// It is a deliberate feature, not only a test helper: `matterline demo` runs it
// in-process as a sandbox Clio seeded with configs/demo/clio.json. Tests use
// NewServer, which starts it on a loopback httptest.Server.
package cliotest

import (
	"crypto/rand"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
)

// Faults are switches that make the fake misbehave like a real Clio can.
type Faults struct {
	// Latency delays every API and token response.
	Latency time.Duration
	// Fail500 answers every API request with 500; FailNext answers the next N with 500.
	Fail500  bool
	FailNext int
	// Garbage answers API requests with truncated JSON and status 200.
	Garbage bool
	// Oversized answers API requests with a valid-looking 200 body of OversizeBytes
	// (default 5 MiB).
	Oversized     bool
	OversizeBytes int
	// Down closes every connection without a response.
	Down bool
	// Unauthorized answers the next N API requests with 401 invalid_token.
	Unauthorized int
	// RotateRefreshTokens makes a refresh grant return a new refresh token (and
	// invalidate the old one); by default the response has no refresh_token.
	RotateRefreshTokens bool
	// DeclineAuthorize makes the authorize page deny access.
	DeclineAuthorize bool
}

// Options configure a Fake; zero values mean defaults.
type Options struct {
	// RateLimit is the requests per token per window (default 50, Clio's peak).
	RateLimit int
	// RateWindow is the fixed window (default 60 s).
	RateWindow time.Duration
	// TokenLifetime is the expires_in of issued access tokens (default 30 days).
	TokenLifetime time.Duration
	// APIVersion is echoed when a request has no X-API-VERSION (default 4.0.10).
	APIVersion string
	// Now is the clock (default time.Now).
	Now func() time.Time
}

// Fake is the fake Clio. Create it with New; it is an http.Handler.
type Fake struct {
	opt Options
	fx  *Fixture

	mu       sync.Mutex
	faults   Faults
	access   map[string]tokenInfo // access token -> info
	refresh  map[string]bool      // valid refresh tokens
	codes    map[string]codeInfo
	windows  map[string]*window // per token
	total    int
	perPath  map[string]int
	lastReq  map[string]*http.Request
	users    map[int64]*User
	contacts []*Contact
	writes   *writeStore // write-back resources (writeback.go), made on first use

	// dataMu guards the records against the change helpers of webhooks.go:
	// requests read under RLock.
	dataMu sync.RWMutex
	hooks  *hookState
}

type tokenInfo struct {
	expires time.Time // zero = never (static)
	refresh string
}

type codeInfo struct {
	clientID, redirect string
	expires            time.Time
}

type window struct {
	start time.Time
	used  int
}

// New returns a fake serving fx. The fixture is not modified.
func New(fx *Fixture, o Options) *Fake {
	if o.RateLimit <= 0 {
		o.RateLimit = 50
	}
	if o.RateWindow <= 0 {
		o.RateWindow = time.Minute
	}
	if o.TokenLifetime <= 0 {
		o.TokenLifetime = 30 * 24 * time.Hour
	}
	if o.APIVersion == "" {
		o.APIVersion = "4.0.10"
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	// A private copy: the change helpers must not write into the caller's fixture.
	cp := *fx
	cp.Contacts, cp.Matters, cp.Users = slices.Clone(fx.Contacts), slices.Clone(fx.Matters), slices.Clone(fx.Users)
	fx = &cp
	f := &Fake{
		opt: o, fx: fx,
		access: map[string]tokenInfo{}, refresh: map[string]bool{}, codes: map[string]codeInfo{},
		windows: map[string]*window{}, perPath: map[string]int{}, lastReq: map[string]*http.Request{},
		users: map[int64]*User{},
	}
	for _, t := range fx.Tokens {
		f.access[t] = tokenInfo{}
	}
	for i := range fx.Users {
		f.users[fx.Users[i].ID] = &fx.Users[i]
	}
	for i := range fx.Contacts {
		f.contacts = append(f.contacts, &fx.Contacts[i])
	}
	return f
}

// SetFaults replaces the fault switches.
func (f *Fake) SetFaults(x Faults) {
	f.mu.Lock()
	f.faults = x
	f.mu.Unlock()
}

// Faults returns the current switches.
func (f *Fake) Faults() Faults {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.faults
}

// UpdateFaults changes the switches under the lock.
func (f *Fake) UpdateFaults(fn func(*Faults)) {
	f.mu.Lock()
	fn(&f.faults)
	f.mu.Unlock()
}

// AddToken accepts tok as a static access token.
func (f *Fake) AddToken(tok string) {
	f.mu.Lock()
	f.access[tok] = tokenInfo{}
	f.mu.Unlock()
}

// ExpireAccessTokens invalidates every access token (refresh tokens stay valid):
// the next API request gets 401 invalid_token.
func (f *Fake) ExpireAccessTokens() {
	f.mu.Lock()
	f.access = map[string]tokenInfo{}
	f.mu.Unlock()
}

// RefreshTokens returns the currently valid refresh tokens (for tests).
func (f *Fake) RefreshTokens() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []string
	for t := range f.refresh {
		out = append(out, t)
	}
	return out
}

// Requests returns the number of requests served (all paths).
func (f *Fake) Requests() int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.total
}

// RequestsTo returns the requests to path, with or without .json
// ("/api/v4/contacts" counts both forms).
func (f *Fake) RequestsTo(path string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.perPath[canonPath(path)]
}

// LastRequest returns the last request to path (with or without .json), or nil.
func (f *Fake) LastRequest(path string) *http.Request {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.lastReq[canonPath(path)]
}

// ResetCounts zeroes the request counters.
func (f *Fake) ResetCounts() {
	f.mu.Lock()
	f.total = 0
	f.perPath = map[string]int{}
	f.lastReq = map[string]*http.Request{}
	f.mu.Unlock()
}

func canonPath(p string) string { return strings.TrimSuffix(strings.TrimRight(p, "/"), ".json") }

func randomToken(prefix string) string {
	b := make([]byte, 16)
	_, _ = rand.Read(b)
	return prefix + hex.EncodeToString(b)
}

// ServeHTTP routes OAuth and API requests.
func (f *Fake) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p := canonPath(r.URL.Path)
	f.mu.Lock()
	f.total++
	f.perPath[p]++
	f.lastReq[p] = r.Clone(r.Context())
	faults := f.faults
	f.mu.Unlock()

	if faults.Down {
		if hj, ok := w.(http.Hijacker); ok {
			if c, _, err := hj.Hijack(); err == nil {
				c.Close()
				return
			}
		}
		w.WriteHeader(http.StatusServiceUnavailable)
		return
	}
	if faults.Latency > 0 {
		t := time.NewTimer(faults.Latency)
		select {
		case <-t.C:
		case <-r.Context().Done():
			t.Stop()
			return
		}
	}
	switch p {
	case "/oauth/authorize":
		f.authorize(w, r)
	case "/oauth/token":
		f.token(w, r)
	case "/oauth/deauthorize":
		f.deauthorize(w, r)
	default:
		if uuid, ok := strings.CutPrefix(p, UploadPrefix); ok {
			f.upload(w, r, uuid)
			return
		}
		if strings.HasPrefix(p, "/api/v4/") {
			f.api(w, r, strings.TrimPrefix(p, "/api/v4/"))
			return
		}
		writeAPIError(w, http.StatusNotFound, "NotFound", "no such path")
	}
}

// Server is a Fake on a loopback httptest.Server.
type Server struct {
	*Fake
	*httptest.Server
}

// NewServer starts a fake seeded with fx on loopback; it is closed at the end of
// the test. A nil fx gives an empty fixture with the token "test-token".
func NewServer(t testing.TB, fx *Fixture, o ...Options) *Server {
	t.Helper()
	if fx == nil {
		fx = &Fixture{Tokens: []string{"test-token"}}
	}
	var opt Options
	if len(o) > 0 {
		opt = o[0]
	}
	f := New(fx, opt)
	s := &Server{Fake: f, Server: httptest.NewServer(f)}
	t.Cleanup(s.Server.Close)
	return s
}

// Start runs a fake outside tests (the demo). Close the returned server when done.
func Start(fx *Fixture, o Options) *Server {
	f := New(fx, o)
	return &Server{Fake: f, Server: httptest.NewServer(f)}
}

// Package httpapi is matterline's HTTP control and admin API: health and
// metrics for operators, the live calls an external voice agent reads and
// transfers, the transfer rules admins edit, call records, messages, a
// server-sent event stream of call events, the run-time SIP trace switch,
// pprof, and the Clio connect pages.
//
// Routes use net/http's method and wildcard patterns (Go 1.22). Every request
// passes three gates, in this order:
//
//  1. Host (DNS rebinding): the Host header must be a loopback name or address
//     (localhost, 127.0.0.0/8, [::1]) with the port the request arrived on, the
//     address the request arrived on, or a name in Options.AllowedHosts; any
//     other answers 421 misdirected_request before authentication, so a web
//     page that rebinds its own name to 127.0.0.1 never reaches a route.
//  2. Token and scope (RFC 6750 §2.1 "Authorization: Bearer TOKEN"): the admin
//     token (Options.Token) may use every route; the agent token
//     (Options.AgentToken) may read calls (GET /v1/calls, GET /v1/calls/{id}),
//     follow GET /v1/events and POST /v1/calls/{id}/transfer with an intent,
//     a rule intent only when the rule exists. No or a wrong token answers 401
//     with a WWW-Authenticate challenge (§3, error="invalid_token" for a wrong
//     one); a valid token of too small a scope 403 (insufficient_scope).
//     Tokens are compared in constant time. Without a token, a loopback client
//     may use /metrics always, and read-only routes only when no token is
//     configured at all; state-changing routes (POST, PUT, PATCH, DELETE, the
//     Clio connect start page) never open without a token unless
//     Options.LoopbackOpen is set, which treats loopback clients as admin.
//     /debug/pprof/ needs the admin token itself, always. /healthz is open.
//  3. Unsafe cross-origin browser requests are refused
//     (net/http.CrossOriginProtection).
//
// CheckListen refuses to serve beyond loopback without a token. The Clio
// connect pages: GET /oauth/clio/start needs the admin token (header, or
// ?token= for a browser) and issues a one-time state; GET
// /oauth/clio/callback carries no token (Clio's redirect cannot) and the
// Options.ClioConnect handler accepts only a state that start issued.
//
// Errors are JSON objects {"error": CODE, "message": TEXT} where CODE is stable
// (unauthorized, forbidden, misdirected_request, not_found,
// method_not_allowed, bad_request, conflict, unprocessable, too_large,
// unsupported_media_type, not_implemented, internal); request bodies are capped (Options.MaxBodyBytes,
// 413 too_large beyond it).
//
// The routes are listed in one table (routeTable) and described by an OpenAPI
// 3.1 document served at GET /v1/openapi.json (agent or admin token, like the
// other read routes); a test checks that the two agree. Rule objects, PUT as
// a full replace and PATCH as a JSON merge patch (RFC 7396) are described in
// rules.go.
//
// GET /v1/events streams events.Event values as server-sent events (WHATWG HTML
// Living Standard, "Server-sent events"): "id:" is the event sequence number,
// "event:" its type, "data:" the event as one line of JSON; a comment line is
// sent as a heartbeat every Options.Heartbeat so proxies keep the stream open.
//
// The package owns no calls, rules or records: it consumes small interfaces
// (Calls, Rules, CDR, Messages, Events, Health, SIPTrace) that the server wires
// to the SIP core, the routing store and the event bus.
package httpapi

import (
	"context"
	"encoding/json"
	"log/slog"
	"net/http"
	"net/http/pprof"
	"sync"
	"time"

	"github.com/matterline/matterline/events"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// Calls is the SIP core's live call registry as the API needs it.
type Calls interface {
	// List returns the calls in progress.
	List(ctx context.Context) ([]Call, error)
	// Get returns one call, or an error wrapping ErrCallNotFound.
	Get(ctx context.Context, id string) (Call, error)
	// Transfer routes intent for the call and, when the decision is a
	// transfer, starts it and returns without waiting for its outcome (that
	// arrives as a transfer_result event). ctx is the HTTP request's: the
	// transfer itself must not be tied to it. Errors: ErrCallNotFound, and
	// ErrCallState when the call cannot be transferred now (not answered yet,
	// already transferring or ending).
	Transfer(ctx context.Context, id string, intent routing.Intent) (routing.Decision, error)
	// Hangup starts ending the call (BYE). Errors: ErrCallNotFound, ErrCallState.
	Hangup(ctx context.Context, id string) error
}

// Rules is the transfer rule store. Rules travel as JSON objects whose schema
// the routing package owns (the same fields as `matterline rules show --json`).
// Validation failures are *ValidationError (or wrap one).
type Rules interface {
	List(ctx context.Context) ([]json.RawMessage, error)
	// Get returns a rule or an error wrapping ErrRuleNotFound.
	Get(ctx context.Context, name string) (json.RawMessage, error)
	// Create stores a new rule and returns it as stored; ErrRuleExists when the
	// name is taken.
	Create(ctx context.Context, rule json.RawMessage) (json.RawMessage, error)
	// Put creates or replaces the rule called name and returns it as stored.
	Put(ctx context.Context, name string, rule json.RawMessage) (json.RawMessage, error)
	// Delete removes a rule; ErrRuleNotFound when there is none.
	Delete(ctx context.Context, name string) error
}

// CDR lists call records.
type CDR interface {
	// List returns up to limit records of calls started at or after since
	// (zero: no bound), newest first.
	List(ctx context.Context, since time.Time, limit int) ([]CallRecord, error)
}

// Messages lists the voice messages callers left.
type Messages interface {
	// List returns up to limit messages recorded at or after since (zero: no
	// bound), newest first.
	List(ctx context.Context, since time.Time, limit int) ([]Message, error)
}

// Events is the call event bus; *events.Bus implements it.
type Events interface {
	Subscribe(buffer int) *events.Subscription
}

// Health reports whether the server is draining before it stops.
type Health interface {
	Draining() bool
}

// SIPTrace is the run-time switch of the SIP message trace.
type SIPTrace interface {
	Set(enabled bool)
	Enabled() bool
}

// Call is a call in progress as the API shows it.
type Call struct {
	ID string
	// Caller is the caller's number (E.164 when it could be normalized).
	Caller string
	// Called is the number or URI the caller dialled.
	Called string
	// State is the SIP core's call state name ("ringing", "answered",
	// "transferring", ...).
	State   string
	Started time.Time
	// Lookup is what the caller lookup found so far (Status unknown while it runs).
	Lookup lookup.Result
	// Decision is the last routing decision on the call, if any.
	Decision *routing.Decision
}

// MarshalJSON renders the call with the lookup in the DESIGN.md contract shape:
// {"id", "caller", "called", "state", "started", "lookup": {"status",
// "contact": {"id", "name"}, "matter": {"id", "display_number"},
// "responsible_staff": {"id", "name"}, "reason"}, "decision": {...}}.
func (c Call) MarshalJSON() ([]byte, error) {
	type lookupJSON struct {
		lookup.Contract
		Reason string `json:"reason,omitempty"`
	}
	v := struct {
		ID       string        `json:"id"`
		Caller   string        `json:"caller"`
		Called   string        `json:"called,omitempty"`
		State    string        `json:"state"`
		Started  time.Time     `json:"started"`
		Lookup   lookupJSON    `json:"lookup"`
		Decision *decisionJSON `json:"decision,omitempty"`
	}{
		ID: c.ID, Caller: c.Caller, Called: c.Called, State: c.State, Started: c.Started,
		Lookup: lookupJSON{Contract: c.Lookup.Contract(), Reason: c.Lookup.Reason},
	}
	if c.Lookup.Status == lookup.StatusUnknown {
		v.Lookup.Status = "pending"
	}
	if c.Decision != nil {
		d := toDecisionJSON(*c.Decision)
		v.Decision = &d
	}
	return json.Marshal(v)
}

// CallRecord is one call's record as stored by package records (the same JSON as
// `matterline calls --json`).
type CallRecord = records.CallRecord

// Message is a recorded voice message as stored by package records (the same JSON
// as `matterline messages list --json`).
type Message = records.Message

// decisionJSON is the DESIGN.md decision object.
type decisionJSON struct {
	Action      routing.Action   `json:"action"`
	Rule        string           `json:"rule"`
	Mode        routing.Mode     `json:"mode"`
	Destination string           `json:"destination"`
	CallerID    routing.CallerID `json:"caller_id"`
	Reason      routing.Reason   `json:"reason"`
}

func toDecisionJSON(d routing.Decision) decisionJSON {
	return decisionJSON{Action: d.Action, Rule: d.Rule, Mode: d.Mode, Destination: d.Destination,
		CallerID: d.CallerID, Reason: d.Reason}
}

// Defaults of Options.
const (
	DefaultMaxBodyBytes = 64 << 10
	DefaultHeartbeat    = 15 * time.Second
)

// Options configures New. Zero values mean defaults; a nil interface makes its
// routes answer 501 not_implemented (nil Health: always ready).
type Options struct {
	// Token is the admin bearer token: every route.
	Token string
	// AgentToken is the voice agent's bearer token: read calls, follow
	// events, request transfers (to existing rules only, never a destination).
	AgentToken string
	// AllowedHosts are Host header names ("name" for any port, "name:port")
	// accepted besides loopback names and the address a request arrived on.
	AllowedHosts []string
	// Listen is http.listen, the address matched against Host when a request
	// carries no local address (handlers called directly, as in tests).
	Listen string
	// LoopbackOpen lets loopback clients (with a loopback Host) use every
	// route but pprof without a token. Dangerous; off by default.
	LoopbackOpen bool

	Calls    Calls
	Rules    Rules
	CDR      CDR
	Messages Messages
	Events   Events
	Health   Health
	SIPTrace SIPTrace

	// Metrics serves GET /metrics (for example metrics.Metrics.Handler()).
	Metrics http.Handler
	// ClioConnect serves GET /oauth/clio/start (behind the admin token) and
	// GET /oauth/clio/callback (no token: it must accept only a state that
	// start issued, once).
	ClioConnect http.Handler
	// ClioWebhook receives Clio's webhook deliveries at POST /webhooks/clio
	// (no token: it checks X-Hook-Signature itself).
	ClioWebhook http.Handler

	// Logger receives internal errors (default slog.Default()).
	Logger *slog.Logger
	// MaxBodyBytes caps request bodies (default DefaultMaxBodyBytes).
	MaxBodyBytes int64
	// Heartbeat is the interval of SSE heartbeat comments (default DefaultHeartbeat).
	Heartbeat time.Duration
	// Now is the clock for relative ?since= values (default time.Now).
	Now func() time.Time
	// Zone is the firm's time zone (firm.time_zone), in which ?since= values
	// without an offset ("2026-11-24 10:00") are read; nil means UTC.
	Zone *time.Location
}

// Server is the API handler. Create it with New; it implements http.Handler.
type Server struct {
	opts    Options
	handler http.Handler

	admin, agent tokenHash
	allowed      []hostName

	closing   chan struct{}
	closeOnce sync.Once
}

// New returns the API handler for opts.
func New(opts Options) *Server {
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.MaxBodyBytes <= 0 {
		opts.MaxBodyBytes = DefaultMaxBodyBytes
	}
	if opts.Heartbeat <= 0 {
		opts.Heartbeat = DefaultHeartbeat
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	s := &Server{opts: opts, closing: make(chan struct{}), admin: hashToken(opts.Token),
		agent: hashToken(opts.AgentToken), allowed: parseAllowedHosts(opts.AllowedHosts)}
	s.handler = s.hostGuard(s.routes())
	return s
}

// ServeHTTP implements http.Handler.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.handler.ServeHTTP(w, r) }

// Close ends the open event streams, so that http.Server.Shutdown does not wait
// for them (register it with http.Server.RegisterOnShutdown). Other routes keep
// working. It is idempotent.
func (s *Server) Close() { s.closeOnce.Do(func() { close(s.closing) }) }

// Paths of the Clio connect pages (the same as package clio's StartPath and
// CallbackPath).
const (
	ClioStartPath    = "/oauth/clio/start"
	ClioCallbackPath = "/oauth/clio/callback"
)

// endpoint is one method of a route with what it requires.
type endpoint struct {
	h     http.Handler
	guard guard
	// acts: a GET that changes state (the Clio connect start page), so it is
	// not read-only.
	acts bool
}

// route is one path (a net/http pattern without the method; a trailing "/"
// serves the subtree) with its endpoints by method.
type route struct {
	path    string
	methods map[string]endpoint
}

// methodOrder is the order of methods in Allow headers.
var methodOrder = []string{"GET", "POST", "PUT", "PATCH", "DELETE"}

// routeTable is every route the API serves. The OpenAPI document
// (openapi.json) describes exactly these; a test holds the two together.
func (s *Server) routeTable() []route {
	ep := func(a access) func(http.HandlerFunc) endpoint {
		return func(h http.HandlerFunc) endpoint { return endpoint{h: h, guard: guard{access: a}} }
	}
	open, local, agent, admin := ep(accessOpen), ep(accessLocal), ep(accessAgent), ep(accessAdmin)
	return []route{
		{"/healthz", map[string]endpoint{"GET": open(s.healthz)}},
		{"/metrics", map[string]endpoint{"GET": local(s.metrics)}},
		{"/v1/openapi.json", map[string]endpoint{"GET": agent(s.openAPI)}},
		{"/v1/calls", map[string]endpoint{"GET": agent(s.listCalls)}},
		{"/v1/calls/{id}", map[string]endpoint{"GET": agent(s.getCall)}},
		{"/v1/calls/{id}/transfer", map[string]endpoint{"POST": agent(s.transfer)}},
		{"/v1/calls/{id}/hangup", map[string]endpoint{"POST": admin(s.hangup)}},
		{"/v1/rules", map[string]endpoint{"GET": admin(s.listRules), "POST": admin(s.createRule)}},
		{"/v1/rules/{name}", map[string]endpoint{"GET": admin(s.getRule), "PUT": admin(s.putRule),
			"PATCH": admin(s.patchRule), "DELETE": admin(s.deleteRule)}},
		{"/v1/cdr", map[string]endpoint{"GET": admin(s.listCDR)}},
		{"/v1/messages", map[string]endpoint{"GET": admin(s.listMessages)}},
		{"/v1/events", map[string]endpoint{"GET": agent(s.events)}},
		{"/v1/debug/siptrace", map[string]endpoint{"GET": admin(s.getSIPTrace), "POST": admin(s.setSIPTrace)}},
		// Starting the Clio connection changes which Clio account matterline
		// reads: admin only. It is a GET a browser opens, so the token may
		// also come as ?token=.
		{ClioStartPath, map[string]endpoint{"GET": {h: http.HandlerFunc(s.clioConnect), guard: guard{access: accessAdmin, queryToken: true}, acts: true}}},
		{ClioCallbackPath, map[string]endpoint{"GET": open(s.clioConnect)}},
		{ClioWebhookPath, map[string]endpoint{"POST": open(s.clioWebhook)}},
		// pprof's symbol page also takes POST.
		{"/debug/pprof/", map[string]endpoint{"GET": {h: pprofHandler(), guard: guard{access: accessDebug}},
			"POST": {h: pprofHandler(), guard: guard{access: accessDebug}}}},
	}
}

func (s *Server) routes() http.Handler {
	csrf := http.NewCrossOriginProtection()
	csrf.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeError(w, http.StatusForbidden, "forbidden", "cross-origin request refused")
	}))
	guarded := func(g guard, h http.Handler) http.Handler {
		if g.access == accessOpen {
			return h
		}
		return s.protect(g, csrf.Handler(h))
	}

	mux := http.NewServeMux()
	for _, rt := range s.routeTable() {
		var allow []string
		least := guard{access: accessDebug}
		for _, m := range methodOrder {
			ep, ok := rt.methods[m]
			if !ok {
				continue
			}
			allow = append(allow, m)
			if m == "GET" {
				allow = append(allow, "HEAD")
			}
			if ep.guard.access < least.access {
				least.access = ep.guard.access
			}
			least.queryToken = least.queryToken || ep.guard.queryToken
			g := ep.guard
			g.readOnly = m == "GET" && !ep.acts
			mux.Handle(m+" "+rt.path, guarded(g, ep.h))
		}
		// The same path without a method catches the other methods: a JSON 405
		// instead of the mux's plain-text one, behind the route's least guard
		// (read-only: it changes nothing).
		least.readOnly = true
		mux.Handle(rt.path, guarded(least, methodNotAllowed(allow)))
	}
	mux.Handle("/v1/", guarded(guard{access: accessAgent, readOnly: true}, http.HandlerFunc(notFound)))
	mux.HandleFunc("/", notFound)
	return mux
}

// clioConnect passes the Clio connect pages to Options.ClioConnect.
func (s *Server) clioConnect(w http.ResponseWriter, r *http.Request) {
	if s.opts.ClioConnect == nil {
		notImplemented(w, "clio connection")
		return
	}
	s.opts.ClioConnect.ServeHTTP(w, r)
}

// pprofHandler serves net/http/pprof under /debug/pprof/ without the package's
// registration on http.DefaultServeMux mattering.
func pprofHandler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	return mux
}

func (s *Server) healthz(w http.ResponseWriter, r *http.Request) {
	if s.opts.Health != nil && s.opts.Health.Draining() {
		writeJSON(w, http.StatusServiceUnavailable, map[string]string{"status": "draining"})
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
}

func (s *Server) metrics(w http.ResponseWriter, r *http.Request) {
	if s.opts.Metrics == nil {
		writeError(w, http.StatusNotImplemented, "not_implemented", "metrics are not enabled")
		return
	}
	s.opts.Metrics.ServeHTTP(w, r)
}

func (s *Server) getSIPTrace(w http.ResponseWriter, r *http.Request) {
	if s.opts.SIPTrace == nil {
		notImplemented(w, "sip trace")
		return
	}
	writeJSON(w, http.StatusOK, map[string]bool{"enabled": s.opts.SIPTrace.Enabled()})
}

func (s *Server) setSIPTrace(w http.ResponseWriter, r *http.Request) {
	if s.opts.SIPTrace == nil {
		notImplemented(w, "sip trace")
		return
	}
	var req struct {
		Enabled *bool `json:"enabled"`
	}
	if !s.decode(w, r, &req) {
		return
	}
	if req.Enabled == nil {
		writeError(w, http.StatusBadRequest, "bad_request", `body must be {"enabled": true|false}`)
		return
	}
	s.opts.SIPTrace.Set(*req.Enabled)
	s.opts.Logger.Info("httpapi: sip trace switched", "enabled", *req.Enabled)
	writeJSON(w, http.StatusOK, map[string]bool{"enabled": s.opts.SIPTrace.Enabled()})
}

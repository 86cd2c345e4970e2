package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/events"
	"github.com/matterline/matterline/routing"
)

const testToken = "s3cret-token-for-tests"

type env struct {
	srv    *Server
	calls  *fakeCalls
	rules  *fakeRules
	cdr    *fakeCDR
	health *fakeHealth
	trace  *fakeTrace
	bus    *events.Bus
	clio   []string // paths the Clio connect handler served
}

// testListen is the listen address the unit tests' requests arrive on.
const testListen = "127.0.0.1:8080"

func newEnv(t *testing.T, token string) *env {
	t.Helper()
	return newEnvWith(t, func(o *Options) { o.Token = token })
}

// newEnvWith builds the test server; configure changes the options last.
func newEnvWith(t *testing.T, configure func(*Options)) *env {
	t.Helper()
	e := &env{calls: newFakeCalls(), rules: newFakeRules(), cdr: &fakeCDR{}, health: &fakeHealth{},
		trace: &fakeTrace{}, bus: events.NewBus()}
	opts := Options{
		Calls: e.calls, Rules: e.rules, CDR: e.cdr, Messages: fakeMessages{}, Events: e.bus,
		Health: e.health, SIPTrace: e.trace, Listen: testListen,
		Metrics: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			io.WriteString(w, "matterline_active_calls 1\n")
		}),
		ClioConnect: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			e.clio = append(e.clio, r.URL.Path)
			io.WriteString(w, "connect")
		}),
		Logger:    slog.New(slog.DiscardHandler),
		Heartbeat: 50 * time.Millisecond,
		Now:       func() time.Time { return t0 },
	}
	if configure != nil {
		configure(&opts)
	}
	e.srv = New(opts)
	t.Cleanup(func() { e.srv.Close(); e.bus.Close() })
	return e
}

type result struct {
	code int
	hdr  http.Header
	body string
}

func (r result) json(t *testing.T) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(r.body), &m); err != nil {
		t.Fatalf("body %q is not a JSON object: %v", r.body, err)
	}
	return m
}

func (e *env) do(t *testing.T, method, path, body, token string) result {
	t.Helper()
	var rd io.Reader
	if body != "" {
		rd = strings.NewReader(body)
	}
	req := localRequest(method, path, rd)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	return e.serve(req)
}

func (e *env) serve(req *http.Request) result {
	rec := httptest.NewRecorder()
	e.srv.ServeHTTP(rec, req)
	return result{rec.Code, rec.Header(), rec.Body.String()}
}

// localRequest is a request from a loopback client to testListen.
func localRequest(method, path string, body io.Reader) *http.Request {
	req := httptest.NewRequest(method, path, body)
	req.Host = testListen
	req.RemoteAddr = "127.0.0.1:40000"
	return req
}

// routeCases covers every route; status is with the admin token. open: no
// token needed; agent: the agent token may use it; write: the route changes
// state.
var routeCases = []struct {
	name, method, path, body string
	status                   int
	open                     bool
	agent                    bool
	write                    bool
}{
	{"healthz", "GET", "/healthz", "", 200, true, true, false},
	{"healthz head", "HEAD", "/healthz", "", 200, true, true, false},
	{"metrics", "GET", "/metrics", "", 200, true, true, false}, // open to loopback clients
	{"list calls", "GET", "/v1/calls", "", 200, false, true, false},
	{"get call", "GET", "/v1/calls/c1", "", 200, false, true, false},
	{"transfer", "POST", "/v1/calls/c1/transfer", `{"target":"responsible"}`, 202, false, true, true},
	{"hangup", "POST", "/v1/calls/c1/hangup", "", 202, false, false, true},
	{"list rules", "GET", "/v1/rules", "", 200, false, false, false},
	{"get rule", "GET", "/v1/rules/felix", "", 200, false, false, false},
	{"create rule", "POST", "/v1/rules", `{"name":"ada","to":"+13125550102"}`, 201, false, false, true},
	{"put rule", "PUT", "/v1/rules/felix", `{"name":"felix","to":"+13125550109"}`, 200, false, false, true},
	{"patch rule", "PATCH", "/v1/rules/felix", `{"to":"+13125550109"}`, 200, false, false, true},
	{"openapi", "GET", "/v1/openapi.json", "", 200, false, true, false},
	{"delete rule", "DELETE", "/v1/rules/felix", "", 204, false, false, true},
	{"cdr", "GET", "/v1/cdr?since=24h&limit=5", "", 200, false, false, false},
	{"messages", "GET", "/v1/messages", "", 200, false, false, false},
	{"siptrace get", "GET", "/v1/debug/siptrace", "", 200, false, false, false},
	{"siptrace set", "POST", "/v1/debug/siptrace", `{"enabled":true}`, 200, false, false, true},
	{"unknown v1", "GET", "/v1/nope", "", 404, false, true, false},
	{"clio start", "GET", "/oauth/clio/start", "", 200, false, false, true},
	{"clio callback", "GET", "/oauth/clio/callback?state=x&code=y", "", 200, true, true, false},
	{"unknown", "GET", "/nope", "", 404, true, true, false},
}

func TestRoutesWithToken(t *testing.T) {
	for _, c := range routeCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, testToken)
			r := e.do(t, c.method, c.path, c.body, testToken)
			if r.code != c.status {
				t.Fatalf("status %d, want %d: %s", r.code, c.status, r.body)
			}
			if ct := r.hdr.Get("Content-Type"); r.code != 204 && c.name != "metrics" && !strings.HasPrefix(c.name, "clio") && c.method != "HEAD" &&
				!strings.HasPrefix(ct, "application/json") {
				t.Errorf("Content-Type %q", ct)
			}
		})
	}
}

func TestRoutesWithoutToken(t *testing.T) {
	for _, c := range routeCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, testToken)
			r := e.do(t, c.method, c.path, c.body, "")
			if c.open {
				if r.code != c.status {
					t.Fatalf("open route: status %d, want %d", r.code, c.status)
				}
				return
			}
			if r.code != 401 || r.json(t)["error"] != "unauthorized" {
				t.Fatalf("status %d body %s, want 401 unauthorized", r.code, r.body)
			}
			if got := r.hdr.Get("WWW-Authenticate"); got != `Bearer realm="matterline"` {
				t.Errorf("WWW-Authenticate = %q", got)
			}
			// A wrong token gets invalid_token.
			r = e.do(t, c.method, c.path, c.body, "wrong-token")
			if r.code != 401 || !strings.Contains(r.hdr.Get("WWW-Authenticate"), `error="invalid_token"`) {
				t.Fatalf("wrong token: %d %q", r.code, r.hdr.Get("WWW-Authenticate"))
			}
			// Nothing happened.
			if len(e.calls.intents) != 0 || len(e.calls.hungUp) != 0 || e.trace.Enabled() || len(e.rules.rules) != 1 {
				t.Fatal("an unauthenticated request had an effect")
			}
		})
	}
}

// With no token configured, a loopback client may read but never change
// anything (http.loopback_open is off).
func TestRoutesNoTokenConfigured(t *testing.T) {
	for _, c := range routeCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, "")
			r := e.do(t, c.method, c.path, c.body, "")
			if !c.write {
				if r.code != c.status {
					t.Fatalf("status %d, want %d: %s", r.code, c.status, r.body)
				}
				return
			}
			if r.code != 401 || r.json(t)["error"] != "unauthorized" {
				t.Fatalf("state-changing route without a token: %d %s, want 401", r.code, r.body)
			}
			if len(e.calls.intents) != 0 || len(e.calls.hungUp) != 0 || e.trace.Enabled() || len(e.rules.rules) != 1 || len(e.clio) != 0 {
				t.Fatal("a request without a token had an effect")
			}
		})
	}
}

// http.loopback_open: every route from loopback without a token, as before.
func TestRoutesLoopbackOpen(t *testing.T) {
	for _, c := range routeCases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnvWith(t, func(o *Options) { o.LoopbackOpen = true })
			if r := e.do(t, c.method, c.path, c.body, ""); r.code != c.status {
				t.Fatalf("status %d, want %d: %s", r.code, c.status, r.body)
			}
		})
	}
	// Only for loopback clients.
	e := newEnvWith(t, func(o *Options) { o.LoopbackOpen = true })
	req := localRequest("POST", "/v1/rules", strings.NewReader(`{"name":"ada","to":"+13125550102"}`))
	req.RemoteAddr = "192.0.2.7:40000"
	if r := e.serve(req); r.code != 401 || len(e.rules.rules) != 1 {
		t.Fatalf("loopback_open from a remote client: %d %s", r.code, r.body)
	}
}

func TestAuthHeaderForms(t *testing.T) {
	e := newEnv(t, testToken)
	for hdr, want := range map[string]int{
		"Bearer " + testToken:        200,
		"bearer " + testToken:        200, // the scheme is case-insensitive
		"Bearer  " + testToken + " ": 200,
		"Basic " + testToken:         401,
		testToken:                    401,
		"Bearer " + testToken + "x":  401,
		"Bearer":                     401,
	} {
		req := localRequest("GET", "/v1/calls", nil)
		req.Header.Set("Authorization", hdr)
		if r := e.serve(req); r.code != want {
			t.Errorf("Authorization %q: %d, want %d", hdr, r.code, want)
		}
	}
}

func TestHealthzDraining(t *testing.T) {
	e := newEnv(t, testToken)
	if r := e.do(t, "GET", "/healthz", "", ""); r.code != 200 || r.json(t)["status"] != "ok" {
		t.Fatalf("ready: %d %s", r.code, r.body)
	}
	e.health.set(true)
	if r := e.do(t, "GET", "/healthz", "", ""); r.code != 503 || r.json(t)["status"] != "draining" {
		t.Fatalf("draining: %d %s", r.code, r.body)
	}
}

func TestGetCallShowsLookup(t *testing.T) {
	e := newEnv(t, testToken)
	r := e.do(t, "GET", "/v1/calls/c1", "", testToken)
	want := `{"id":"c1","caller":"+12175552171","called":"+13125550100","state":"answered","started":"2026-11-24T16:00:00Z",` +
		`"lookup":{"status":"found","contact":{"id":1001,"name":"Ada Quist"},"matter":{"id":2001,"display_number":"00101-Quist"},` +
		`"responsible_staff":{"id":501,"name":"Felix Dubinsky"}}}`
	if strings.TrimSpace(r.body) != want {
		t.Fatalf("body\n%s\nwant\n%s", r.body, want)
	}
	r = e.do(t, "GET", "/v1/calls/ringing", "", testToken)
	lk := r.json(t)["lookup"].(map[string]any)
	if lk["status"] != "pending" || lk["contact"] != nil {
		t.Fatalf("pending lookup = %v", lk)
	}
	r = e.do(t, "GET", "/v1/calls/zz", "", testToken)
	if r.code != 404 || r.json(t)["error"] != "not_found" {
		t.Fatalf("unknown call: %d %s", r.code, r.body)
	}
	r = e.do(t, "GET", "/v1/calls", "", testToken)
	if calls := r.json(t)["calls"].([]any); len(calls) != 2 {
		t.Fatalf("list = %s", r.body)
	}
}

func TestTransfer(t *testing.T) {
	cases := []struct {
		name, path, body string
		status           int
		code             string
		intent           routing.Intent
	}{
		{"responsible", "/v1/calls/c1/transfer", `{"target":"responsible"}`, 202, "", routing.Intent{Kind: routing.IntentResponsible}},
		{"rule", "/v1/calls/c1/transfer", `{"rule":"felix"}`, 202, "", routing.Intent{Kind: routing.IntentRule, Arg: "felix"}},
		{"staff", "/v1/calls/c1/transfer", `{"staff":" Felix "}`, 202, "", routing.Intent{Kind: routing.IntentStaff, Arg: "Felix"}},
		{"target rule form", "/v1/calls/c1/transfer", `{"target":"rule:felix"}`, 202, "", routing.Intent{Kind: routing.IntentRule, Arg: "felix"}},
		{"outside hours", "/v1/calls/c1/transfer", `{"rule":"closed"}`, 422, "unprocessable", routing.Intent{Kind: routing.IntentRule, Arg: "closed"}},
		{"no rule", "/v1/calls/c1/transfer", `{"staff":"Nobody"}`, 422, "unprocessable", routing.Intent{Kind: routing.IntentStaff, Arg: "Nobody"}},
		{"not answered", "/v1/calls/ringing/transfer", `{"target":"responsible"}`, 409, "conflict", routing.Intent{Kind: routing.IntentResponsible}},
		{"unknown call", "/v1/calls/zz/transfer", `{"target":"responsible"}`, 404, "not_found", routing.Intent{Kind: routing.IntentResponsible}},
		{"internal", "/v1/calls/c1/transfer", `{"rule":"broken"}`, 500, "internal", routing.Intent{Kind: routing.IntentRule, Arg: "broken"}},
		{"two fields", "/v1/calls/c1/transfer", `{"target":"responsible","rule":"felix"}`, 400, "bad_request", routing.Intent{}},
		{"none", "/v1/calls/c1/transfer", `{}`, 400, "bad_request", routing.Intent{}},
		{"bad target", "/v1/calls/c1/transfer", `{"target":"+19005551234"}`, 400, "bad_request", routing.Intent{}},
		{"destination field", "/v1/calls/c1/transfer", `{"destination":"+19005551234"}`, 400, "bad_request", routing.Intent{}},
		{"not json", "/v1/calls/c1/transfer", `target=responsible`, 400, "bad_request", routing.Intent{}},
		{"trailing", "/v1/calls/c1/transfer", `{"target":"responsible"}{}`, 400, "bad_request", routing.Intent{}},
		{"empty", "/v1/calls/c1/transfer", ``, 400, "bad_request", routing.Intent{}},
		{"too large", "/v1/calls/c1/transfer", `{"target":"` + strings.Repeat("a", 70<<10) + `"}`, 413, "too_large", routing.Intent{}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t, testToken)
			r := e.do(t, "POST", c.path, c.body, testToken)
			if r.code != c.status {
				t.Fatalf("status %d, want %d: %s", r.code, c.status, r.body)
			}
			m := r.json(t)
			if c.code != "" && m["error"] != c.code {
				t.Fatalf("error %v, want %s: %s", m["error"], c.code, r.body)
			}
			if c.intent.Kind == routing.IntentUnknown {
				if len(e.calls.intents) != 0 {
					t.Fatal("a bad request reached the call")
				}
				return
			}
			if len(e.calls.intents) != 1 || e.calls.intents[0] != c.intent {
				t.Fatalf("intents = %+v, want %+v", e.calls.intents, c.intent)
			}
			switch c.status {
			case 202:
				want := map[string]any{"action": "transfer", "rule": "felix", "mode": "warm",
					"destination": "+13125550101", "caller_id": "caller", "reason": "matched"}
				for k, v := range want {
					if m[k] != v {
						t.Errorf("%s = %v, want %v", k, m[k], v)
					}
				}
			case 422:
				d := m["decision"].(map[string]any)
				if m["reason"] == "" || m["reason"] != d["reason"] || d["action"] == "transfer" {
					t.Errorf("422 body %s", r.body)
				}
			case 500:
				if strings.Contains(r.body, "matterline.db") {
					t.Errorf("internal error text leaked: %s", r.body)
				}
			}
		})
	}
}

func TestHangup(t *testing.T) {
	e := newEnv(t, testToken)
	if r := e.do(t, "POST", "/v1/calls/c1/hangup", "", testToken); r.code != 202 || len(e.calls.hungUp) != 1 {
		t.Fatalf("hangup: %d %s %v", r.code, r.body, e.calls.hungUp)
	}
	if r := e.do(t, "POST", "/v1/calls/zz/hangup", "", testToken); r.code != 404 {
		t.Fatalf("unknown call: %d", r.code)
	}
	if r := e.do(t, "GET", "/v1/calls/c1/hangup", "", testToken); r.code != 405 || r.hdr.Get("Allow") != "POST" ||
		r.json(t)["error"] != "method_not_allowed" {
		t.Fatalf("GET hangup: %d %q %s", r.code, r.hdr.Get("Allow"), r.body)
	}
}

func TestRulesCRUD(t *testing.T) {
	e := newEnv(t, testToken)
	r := e.do(t, "POST", "/v1/rules", `{"name":"ada","to":"+13125550102"}`, testToken)
	if r.code != 201 || r.hdr.Get("Location") != "/v1/rules/ada" {
		t.Fatalf("create: %d %q %s", r.code, r.hdr.Get("Location"), r.body)
	}
	if r = e.do(t, "POST", "/v1/rules", `{"name":"ada","to":"+13125550102"}`, testToken); r.code != 409 || r.json(t)["error"] != "conflict" {
		t.Fatalf("duplicate: %d %s", r.code, r.body)
	}
	r = e.do(t, "POST", "/v1/rules", `{"name":"bad"}`, testToken)
	if m := r.json(t); r.code != 422 || m["error"] != "unprocessable" || m["field"] != "to" {
		t.Fatalf("invalid: %d %s", r.code, r.body)
	}
	for _, body := range []string{`[1,2]`, `"x"`, `{"name":`, ``} {
		if r = e.do(t, "POST", "/v1/rules", body, testToken); r.code != 400 {
			t.Errorf("body %q: %d", body, r.code)
		}
	}
	r = e.do(t, "GET", "/v1/rules", "", testToken)
	var list struct{ Rules []map[string]any }
	if err := json.Unmarshal([]byte(r.body), &list); err != nil || len(list.Rules) != 2 || list.Rules[0]["name"] != "ada" {
		t.Fatalf("list: %s", r.body)
	}
	if r = e.do(t, "GET", "/v1/rules/ada", "", testToken); r.code != 200 || r.json(t)["to"] != "+13125550102" {
		t.Fatalf("get: %d %s", r.code, r.body)
	}
	if r = e.do(t, "PUT", "/v1/rules/ada", `{"name":"other","to":"+1"}`, testToken); r.code != 400 || r.json(t)["field"] != "name" {
		t.Fatalf("put mismatch: %d %s", r.code, r.body)
	}
	if r = e.do(t, "PUT", "/v1/rules/ada", `{"to":"+13125550103"}`, testToken); r.code != 200 {
		t.Fatalf("put: %d %s", r.code, r.body)
	}
	if r = e.do(t, "DELETE", "/v1/rules/ada", "", testToken); r.code != 204 || r.body != "" {
		t.Fatalf("delete: %d %q", r.code, r.body)
	}
	if r = e.do(t, "GET", "/v1/rules/ada", "", testToken); r.code != 404 || r.json(t)["error"] != "not_found" {
		t.Fatalf("get deleted: %d %s", r.code, r.body)
	}
	if r = e.do(t, "DELETE", "/v1/rules/ada", "", testToken); r.code != 404 {
		t.Fatalf("delete again: %d", r.code)
	}
	if r = e.do(t, "POST", "/v1/rules/felix", `{}`, testToken); r.code != 405 || r.hdr.Get("Allow") != "GET, HEAD, PUT, PATCH, DELETE" {
		t.Fatalf("post to a rule: %d %q", r.code, r.hdr.Get("Allow"))
	}
	big := `{"name":"x","to":"` + strings.Repeat("1", 70<<10) + `"}`
	if r = e.do(t, "PUT", "/v1/rules/x", big, testToken); r.code != 413 || r.json(t)["error"] != "too_large" {
		t.Fatalf("big put: %d %s", r.code, r.body)
	}
}

func TestCDRAndMessages(t *testing.T) {
	e := newEnv(t, testToken)
	r := e.do(t, "GET", "/v1/cdr?since=24h&limit=5", "", testToken)
	if r.code != 200 || !e.cdr.gotSince.Equal(t0.Add(-24*time.Hour)) || e.cdr.gotLimit != 5 {
		t.Fatalf("cdr: %d since=%v limit=%d", r.code, e.cdr.gotSince, e.cdr.gotLimit)
	}
	recs := r.json(t)["records"].([]any)
	rec := recs[0].(map[string]any)
	if rec["lookup_status"] != "found" || rec["mode"] != "cold" || rec["outcome"] != "referred" || rec["matter_id"] != float64(101) || rec["sip_call_id"] != "sip-c0" {
		t.Fatalf("record = %v", rec)
	}
	r = e.do(t, "GET", "/v1/cdr?since=2026-11-20T00:00:00Z", "", testToken)
	if r.code != 200 || !e.cdr.gotSince.Equal(time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)) || e.cdr.gotLimit != DefaultListLimit {
		t.Fatalf("cdr rfc3339: %d %v %d", r.code, e.cdr.gotSince, e.cdr.gotLimit)
	}
	for _, q := range []string{"limit=0", "limit=5000", "limit=x", "since=yesterday", "since=-1h"} {
		if r = e.do(t, "GET", "/v1/cdr?"+q, "", testToken); r.code != 400 || r.json(t)["error"] != "bad_request" {
			t.Errorf("%s: %d %s", q, r.code, r.body)
		}
	}
	r = e.do(t, "GET", "/v1/messages", "", testToken)
	if strings.TrimSpace(r.body) != `{"messages":[]}` {
		t.Fatalf("messages: %s", r.body)
	}
}

// ?since= takes every form of timeflag.Parse; local forms are read in
// Options.Zone (the firm's zone).
func TestSinceForms(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	e := newEnvWith(t, func(o *Options) { o.Token = testToken; o.Zone = chicago })
	for _, tt := range []struct {
		q    string
		want time.Time
	}{
		{"2026-11-24+10:00", time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)},
		{"2026-11-24", time.Date(2026, 11, 24, 6, 0, 0, 0, time.UTC)},
		{"2026-11-24T10:00:00Z", time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)},
		{"90m", t0.Add(-90 * time.Minute)},
		{"7d", t0.Add(-7 * 24 * time.Hour)},
		{"2w", t0.Add(-14 * 24 * time.Hour)},
	} {
		r := e.do(t, "GET", "/v1/cdr?since="+tt.q, "", testToken)
		if r.code != 200 || !e.cdr.gotSince.Equal(tt.want) {
			t.Errorf("since=%s: %d %s since=%v, want %v", tt.q, r.code, r.body, e.cdr.gotSince, tt.want)
		}
	}
	r := e.do(t, "GET", "/v1/messages?since=2026-02-30", "", testToken)
	if m := r.json(t); r.code != 400 || !strings.Contains(m["message"].(string), "2026-11-24 10:00") {
		t.Errorf("bad since: %d %s", r.code, r.body)
	}
}

func TestSIPTrace(t *testing.T) {
	e := newEnv(t, testToken)
	if r := e.do(t, "POST", "/v1/debug/siptrace", `{"enabled":true}`, testToken); r.code != 200 || r.json(t)["enabled"] != true || !e.trace.Enabled() {
		t.Fatalf("enable: %d %s", r.code, r.body)
	}
	if r := e.do(t, "GET", "/v1/debug/siptrace", "", testToken); r.json(t)["enabled"] != true {
		t.Fatalf("get: %s", r.body)
	}
	if r := e.do(t, "POST", "/v1/debug/siptrace", `{"enabled":false}`, testToken); r.code != 200 || e.trace.Enabled() {
		t.Fatalf("disable: %d %s", r.code, r.body)
	}
	for _, body := range []string{`{}`, `{"enabled":"yes"}`, `{"on":true}`} {
		if r := e.do(t, "POST", "/v1/debug/siptrace", body, testToken); r.code != 400 {
			t.Errorf("%s: %d", body, r.code)
		}
	}
}

func TestMethodNotAllowedOpenRoutes(t *testing.T) {
	e := newEnv(t, testToken)
	r := e.do(t, "POST", "/healthz", "", "")
	if r.code != 405 || r.hdr.Get("Allow") != "GET, HEAD" || r.json(t)["error"] != "method_not_allowed" {
		t.Fatalf("%d %q %s", r.code, r.hdr.Get("Allow"), r.body)
	}
}

func TestCrossOriginRefused(t *testing.T) {
	// loopback_open without a token: a web page must still not drive it.
	e := newEnvWith(t, func(o *Options) { o.LoopbackOpen = true })
	req := localRequest("POST", "/v1/calls/c1/hangup", nil)
	req.Header.Set("Sec-Fetch-Site", "cross-site")
	if r := e.serve(req); r.code != 403 || !strings.Contains(r.body, `"forbidden"`) || len(e.calls.hungUp) != 0 {
		t.Fatalf("%d %s", r.code, r.body)
	}
}

func TestNilInterfaces(t *testing.T) {
	s := New(Options{Logger: slog.New(slog.DiscardHandler), Listen: testListen, LoopbackOpen: true})
	defer s.Close()
	for _, c := range routeCases {
		if strings.HasPrefix(c.name, "unknown") {
			continue
		}
		req := localRequest(c.method, c.path, strings.NewReader(c.body))
		rec := httptest.NewRecorder()
		s.ServeHTTP(rec, req)
		want := 501
		if strings.HasPrefix(c.name, "healthz") || c.name == "openapi" {
			want = 200
		}
		if rec.Code != want {
			t.Errorf("%s: %d, want %d", c.name, rec.Code, want)
		}
	}
}

func TestCheckListen(t *testing.T) {
	for _, c := range []struct {
		addr, token string
		ok          bool
	}{
		{"127.0.0.1:8080", "", true},
		{"[::1]:8080", "", true},
		{"localhost:8080", "", true},
		{"127.0.0.2:8080", "", true},
		{"0.0.0.0:8080", "", false},
		{":8080", "", false},
		{"192.168.1.10:8080", "", false},
		{"[::]:8080", "", false},
		{"matterline.firm.example:8080", "", false},
		{"0.0.0.0:8080", "short", false},
		{"0.0.0.0:8080", testToken, true},
		{"no-port", "", false},
	} {
		err := CheckListen(c.addr, c.token)
		if (err == nil) != c.ok {
			t.Errorf("CheckListen(%q, %q) = %v", c.addr, c.token, err)
		}
		if err != nil && c.addr != "no-port" && !errors.Is(err, ErrInsecureListen) {
			t.Errorf("CheckListen(%q) error does not wrap ErrInsecureListen: %v", c.addr, err)
		}
	}
}

func TestValidationErrorText(t *testing.T) {
	if got := (&ValidationError{Field: "to", Message: "required"}).Error(); got != "invalid to: required" {
		t.Fatal(got)
	}
	var buf bytes.Buffer
	_ = json.NewEncoder(&buf).Encode(errorBody{Error: "x", Message: "y"})
	if strings.TrimSpace(buf.String()) != `{"error":"x","message":"y"}` {
		t.Fatal(buf.String())
	}
}

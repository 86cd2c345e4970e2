package httpapi

import (
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/matterline/matterline/routing"
)

const agentToken = "agent-token-for-tests-0123"

// The toll-fraud attacks of the security issue (item 3), performed against
// the API. "Nothing changed" means no rule was created or replaced, no call was
// transferred or hung up, the SIP trace is off and Clio was not touched.
func (e *env) unchanged(t *testing.T) {
	t.Helper()
	if len(e.calls.intents) != 0 || len(e.calls.hungUp) != 0 || e.trace.Enabled() || len(e.rules.rules) != 1 || len(e.clio) != 0 {
		t.Fatalf("the request had an effect: intents %v, hung up %v, rules %d, clio %v",
			e.calls.intents, e.calls.hungUp, len(e.rules.rules), e.clio)
	}
}

// (a) DNS rebinding: a web page at attacker.example rebinds its name to
// 127.0.0.1 and posts to the API; the browser sends Host: attacker.example.
// The Host check runs before authentication, so not even loopback_open or a
// token (which the page does not have, but a misconfigured proxy might add)
// lets it through.
func TestAttackDNSRebindingGets421(t *testing.T) {
	for name, configure := range map[string]func(*Options){
		"no token":      func(o *Options) {},
		"loopback open": func(o *Options) { o.LoopbackOpen = true },
		"admin token":   func(o *Options) { o.Token = testToken },
	} {
		t.Run(name, func(t *testing.T) {
			e := newEnvWith(t, configure)
			for _, c := range []struct{ method, path, body string }{
				{"POST", "/v1/rules", `{"name":"premium","to":"+19005550100"}`},
				{"POST", "/v1/calls/c1/transfer", `{"rule":"felix"}`},
				{"GET", "/v1/calls", ""},
				{"GET", "/oauth/clio/start", ""},
				{"GET", "/healthz", ""},
			} {
				for _, host := range []string{"attacker.example", "attacker.example:8080", "localhost.attacker.example:8080", "127.0.0.1.nip.io:8080"} {
					req := localRequest(c.method, c.path, strings.NewReader(c.body))
					req.Host = host
					req.Header.Set("Content-Type", "application/json")
					req.Header.Set("Authorization", "Bearer "+testToken)
					r := e.serve(req)
					if r.code != http.StatusMisdirectedRequest || r.json(t)["error"] != "misdirected_request" {
						t.Fatalf("%s %s Host %s: %d %s, want 421", c.method, c.path, host, r.code, r.body)
					}
				}
			}
			e.unchanged(t)
		})
	}
}

// The same on a real loopback listener: the Host check uses the address the
// connection arrived on.
func TestAttackDNSRebindingListener(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.LoopbackOpen = true; o.Listen = "" })
	ts := httptest.NewServer(e.srv)
	defer ts.Close()
	post := func(host string) int {
		req, _ := http.NewRequest("POST", ts.URL+"/v1/rules", strings.NewReader(`{"name":"premium","to":"+19005550100"}`))
		req.Host = host
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		io.Copy(io.Discard, res.Body)
		res.Body.Close()
		return res.StatusCode
	}
	if code := post("evil.example"); code != http.StatusMisdirectedRequest {
		t.Fatalf("Host evil.example: %d, want 421", code)
	}
	e.unchanged(t)
	// A loopback name with another port is not this server either.
	if code := post("localhost:1"); code != http.StatusMisdirectedRequest {
		t.Fatalf("Host localhost:1: %d, want 421", code)
	}
	// The listener's own address and localhost with its port are.
	port := ts.URL[strings.LastIndex(ts.URL, ":")+1:]
	if code := post("localhost:" + port); code != http.StatusCreated {
		t.Fatalf("Host localhost:%s: %d, want 201 (loopback_open)", port, code)
	}
}

func TestHostAllowList(t *testing.T) {
	e := newEnvWith(t, func(o *Options) {
		o.Token = testToken
		o.AllowedHosts = []string{"matterline.firm.example", "PBX.firm.example:8443", "10.1.2.3"}
	})
	for host, want := range map[string]int{
		"127.0.0.1:8080":                 200,
		"127.0.0.2:8080":                 200, // all of 127.0.0.0/8
		"localhost:8080":                 200,
		"LOCALHOST.:8080":                200,
		"[::1]:8080":                     200,
		"127.0.0.1":                      421, // port 80 implied, listening on 8080
		"127.0.0.1:9999":                 421,
		"matterline.firm.example":        200, // a name without a port: any port
		"Matterline.Firm.Example:443":    200,
		"pbx.firm.example:8443":          200,
		"pbx.firm.example:8080":          421,
		"10.1.2.3:8080":                  200,
		"10.1.2.4:8080":                  421,
		"evil.example":                   421,
		"":                               421,
		"matterline.firm.example.evil.x": 421,
	} {
		req := localRequest("GET", "/v1/calls", nil)
		req.Host = host
		req.Header.Set("Authorization", "Bearer "+testToken)
		if r := e.serve(req); r.code != want {
			t.Errorf("Host %q: %d, want %d (%s)", host, r.code, want, r.body)
		}
	}
}

// (b) No token configured, loopback: state-changing routes are closed by
// default (the premium-number rule and the transfer to it).
func TestAttackNoTokenClosedByDefault(t *testing.T) {
	e := newEnv(t, "")
	if r := e.do(t, "POST", "/v1/rules", `{"name":"premium","to":"+19005550100"}`, ""); r.code != 401 {
		t.Fatalf("POST /v1/rules: %d %s, want 401", r.code, r.body)
	}
	if r := e.do(t, "POST", "/v1/calls/c1/transfer", `{"rule":"felix"}`, ""); r.code != 401 {
		t.Fatalf("POST transfer: %d %s, want 401", r.code, r.body)
	}
	if r := e.do(t, "GET", "/oauth/clio/start", "", ""); r.code != 401 {
		t.Fatalf("GET /oauth/clio/start: %d %s, want 401", r.code, r.body)
	}
	if r := e.do(t, "GET", "/debug/pprof/", "", ""); r.code != 401 {
		t.Fatalf("GET /debug/pprof/: %d, want 401", r.code)
	}
	e.unchanged(t)
	// Reads stay open to loopback clients while no token is configured...
	if r := e.do(t, "GET", "/v1/calls", "", ""); r.code != 200 {
		t.Fatalf("GET /v1/calls: %d", r.code)
	}
	// ...but not to others, nor through a proxy name of http.allowed_hosts.
	req := localRequest("GET", "/v1/calls", nil)
	req.RemoteAddr = "192.0.2.7:40000"
	if r := e.serve(req); r.code != 401 {
		t.Fatalf("GET /v1/calls from a remote client: %d, want 401", r.code)
	}
	p := newEnvWith(t, func(o *Options) { o.AllowedHosts = []string{"matterline.firm.example"} })
	req = localRequest("GET", "/v1/calls", nil)
	req.Host = "matterline.firm.example"
	if r := p.serve(req); r.code != 401 {
		t.Fatalf("GET /v1/calls through a local proxy: %d, want 401", r.code)
	}
	// Once any token is configured, reads need one too.
	a := newEnvWith(t, func(o *Options) { o.AgentToken = agentToken })
	if r := a.do(t, "GET", "/v1/calls", "", ""); r.code != 401 {
		t.Fatalf("GET /v1/calls with an agent token configured: %d, want 401", r.code)
	}
}

// (c) The agent token: read calls and events, transfer to existing rules;
// nothing an admin does.
func TestAttackAgentScope(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.Token = testToken; o.AgentToken = agentToken })
	for _, c := range routeCases {
		if c.open {
			continue
		}
		t.Run(c.name, func(t *testing.T) {
			r := e.do(t, c.method, c.path, c.body, agentToken)
			if c.agent {
				if r.code == 401 || r.code == 403 {
					t.Fatalf("agent refused: %d %s", r.code, r.body)
				}
				return
			}
			if r.code != 403 || r.json(t)["error"] != "forbidden" ||
				!strings.Contains(r.hdr.Get("WWW-Authenticate"), "insufficient_scope") {
				t.Fatalf("agent on an admin route: %d %q %s, want 403", r.code, r.hdr.Get("WWW-Authenticate"), r.body)
			}
		})
	}
	if r := e.do(t, "GET", "/debug/pprof/", "", agentToken); r.code != 403 {
		t.Fatalf("pprof with the agent token: %d, want 403", r.code)
	}
	if len(e.rules.rules) != 1 || len(e.calls.hungUp) != 0 || e.trace.Enabled() || len(e.clio) != 0 {
		t.Fatal("an agent request changed an admin resource")
	}

	e.calls.intents = nil
	// Transfers to an existing rule (by either form) reach the transfer code.
	for _, body := range []string{`{"rule":"felix"}`, `{"target":"rule:felix"}`, `{"target":"responsible"}`} {
		if r := e.do(t, "POST", "/v1/calls/c1/transfer", body, agentToken); r.code != 202 {
			t.Fatalf("agent transfer %s: %d %s, want 202", body, r.code, r.body)
		}
	}
	want := []routing.Intent{{Kind: routing.IntentRule, Arg: "felix"}, {Kind: routing.IntentRule, Arg: "felix"}, {Kind: routing.IntentResponsible}}
	if len(e.calls.intents) != 3 || e.calls.intents[0] != want[0] || e.calls.intents[1] != want[1] || e.calls.intents[2] != want[2] {
		t.Fatalf("intents %v, want %v", e.calls.intents, want)
	}
	// A destination, or a rule that does not exist, never reaches it.
	e.calls.intents = nil
	for body, code := range map[string]int{
		`{"rule":"premium"}`:                      404,
		`{"rule":"+19005550100"}`:                 404,
		`{"target":"rule:+19005550100"}`:          404,
		`{"target":"+19005550100"}`:               400,
		`{"target":"sip:+19005550100@evil"}`:      400,
		`{"destination":"+19005550100"}`:          400,
		`{"to":"+19005550100"}`:                   400,
		`{"rule":"felix","to":"+19005550100"}`:    400,
		`{"rule":"felix","target":"responsible"}`: 400,
	} {
		r := e.do(t, "POST", "/v1/calls/c1/transfer", body, agentToken)
		if r.code != code {
			t.Errorf("agent transfer %s: %d %s, want %d", body, r.code, r.body, code)
		}
	}
	if len(e.calls.intents) != 0 {
		t.Fatalf("a refused agent transfer reached the call: %v", e.calls.intents)
	}
	// The admin token may do both.
	if r := e.do(t, "GET", "/debug/pprof/", "", testToken); r.code != 200 {
		t.Fatalf("pprof with the admin token: %d", r.code)
	}
}

// (d) The Clio connect start page needs the admin token (header or ?token=);
// the callback carries none and is left to the handler's one-time state check
// (cmd/matterline tests it with the real handler).
func TestAttackClioStartNeedsAdmin(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.Token = testToken; o.AgentToken = agentToken })
	if r := e.do(t, "GET", "/oauth/clio/start", "", ""); r.code != 401 {
		t.Fatalf("start without a token: %d, want 401", r.code)
	}
	if r := e.do(t, "GET", "/oauth/clio/start?token=wrong-token", "", ""); r.code != 401 {
		t.Fatalf("start with a wrong ?token=: %d, want 401", r.code)
	}
	if r := e.do(t, "GET", "/oauth/clio/start?token="+agentToken, "", ""); r.code != 403 {
		t.Fatalf("start with the agent token: %d, want 403", r.code)
	}
	e.unchanged(t)
	if r := e.do(t, "GET", "/oauth/clio/start?token="+testToken, "", ""); r.code != 200 {
		t.Fatalf("start with ?token=admin: %d", r.code)
	}
	if r := e.do(t, "GET", "/oauth/clio/start", "", testToken); r.code != 200 {
		t.Fatalf("start with the admin bearer token: %d", r.code)
	}
	// ?token= is for the start page only.
	if r := e.do(t, "GET", "/v1/calls?token="+testToken, "", ""); r.code != 401 {
		t.Fatalf("/v1 with ?token=: %d, want 401", r.code)
	}
	if r := e.do(t, "GET", "/oauth/clio/callback?state=s&code=c", "", ""); r.code != 200 {
		t.Fatalf("callback: %d (handled by ClioConnect)", r.code)
	}
	if strings.Join(e.clio, " ") != "/oauth/clio/start /oauth/clio/start /oauth/clio/callback" {
		t.Fatalf("clio handler saw %v", e.clio)
	}
}

// (e) A wrong token is refused, for either scope; the comparison is
// constant-time (crypto/subtle over SHA-256 digests, see tokenHash).
func TestAttackWrongToken(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.Token = testToken; o.AgentToken = agentToken; o.LoopbackOpen = true })
	for _, tok := range []string{"wrong", testToken + "x", testToken[:len(testToken)-1], agentToken + " x", strings.ToUpper(testToken)} {
		r := e.do(t, "POST", "/v1/rules", `{"name":"premium","to":"+19005550100"}`, tok)
		if r.code != 401 || !strings.Contains(r.hdr.Get("WWW-Authenticate"), "invalid_token") {
			t.Fatalf("token %q: %d %q, want 401 invalid_token (loopback_open never overrides a wrong token)", tok, r.code, r.hdr.Get("WWW-Authenticate"))
		}
	}
	e.unchanged(t)
}

// /metrics: loopback clients without a token, others with any token.
func TestMetricsAccess(t *testing.T) {
	e := newEnvWith(t, func(o *Options) { o.Token = testToken; o.AgentToken = agentToken })
	if r := e.do(t, "GET", "/metrics", "", ""); r.code != 200 {
		t.Fatalf("loopback: %d", r.code)
	}
	for tok, want := range map[string]int{"": 401, agentToken: 200, testToken: 200, "wrong": 401} {
		req := localRequest("GET", "/metrics", nil)
		req.RemoteAddr = "192.0.2.7:40000"
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		if r := e.serve(req); r.code != want {
			t.Errorf("remote scraper with %q: %d, want %d", tok, r.code, want)
		}
	}
}

func TestScopeOfComparesBothTokens(t *testing.T) {
	s := New(Options{Token: testToken, AgentToken: agentToken})
	defer s.Close()
	for tok, want := range map[string]scope{testToken: scopeAdmin, agentToken: scopeAgent, "": scopeNone, "x": scopeNone} {
		if got := s.scopeOf(tok); got != want {
			t.Errorf("scopeOf(%q) = %v, want %v", tok, got, want)
		}
	}
	// No agent token configured: an empty presented token matches nothing.
	s2 := New(Options{Token: testToken})
	defer s2.Close()
	if got := s2.scopeOf(""); got != scopeNone {
		t.Fatalf("empty token matched %v", got)
	}
}

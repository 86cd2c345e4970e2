package sip

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// RuleForDestination makes the test router a DestinationMatcher, as cmd's is.
func (r ruleRouter) RuleForDestination(_ context.Context, n string) (string, bool) {
	return r.set.RuleByDestination(n)
}

// agentPeer is a voice agent on a phone.Callee: it answers, and its NOTIFYs are
// collected from the phone's events.
type agentPeer struct {
	callee *phone.Callee
	mu     sync.Mutex
	frags  []string
}

func newAgentPeer(t *testing.T, reject int) *agentPeer {
	t.Helper()
	a := &agentPeer{}
	c, err := phone.NewCallee(phone.CalleeConfig{Name: "agent", Number: "agent", Reject: reject,
		Logger: testLogger(t), OnEvent: func(ev phone.Event) {
			if ev.Kind == phone.EventNotify {
				a.mu.Lock()
				a.frags = append(a.frags, ev.Detail)
				a.mu.Unlock()
			}
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	a.callee = c
	return a
}

func (a *agentPeer) uri() string { return "sip:agent@" + a.callee.Addr().String() }

func (a *agentPeer) notifies() []string {
	a.mu.Lock()
	defer a.mu.Unlock()
	return append([]string(nil), a.frags...)
}

// agentRules: felix (warm, Felix Dubinsky's rule, open) to callee and a rule
// "tax desk" to a number.
func agentRules(t *testing.T, callee *phone.UA) *routing.RuleSet {
	t.Helper()
	set, err := routing.NewRuleSet([]routing.Rule{{
		Name: "felix", StaffID: 501, StaffName: "Felix Dubinsky", Destination: calleeURI(callee, "101"),
		Mode: routing.ModeWarm, CallerID: routing.CallerIDCaller, RingTimeout: 3 * time.Second,
		Unavailable: routing.Unavailable{Kind: routing.UnavailableMenu}, Enabled: true,
	}, {
		Name: "tax desk", Destination: "+12175550177", Mode: routing.ModeCold, CallerID: routing.CallerIDCaller,
		RingTimeout: 3 * time.Second, Unavailable: routing.Unavailable{Kind: routing.UnavailableMenu}, Enabled: true,
	}}, nil, routing.Firm{TimeZone: "UTC"})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func agentConfig(uri string, mode AgentMode) Config {
	cfg := transferConfig()
	cfg.AgentURI, cfg.AgentMode = uri, mode
	cfg.AgentAnswerTimeout = 2 * time.Second
	return cfg
}

func newCallerPhone(t *testing.T) *phone.Caller {
	t.Helper()
	c, err := phone.NewCaller(phone.CallerConfig{Name: "caller", From: testCaller, Logger: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// hears checks that to hears from's tone.
func hears(t *testing.T, what string, from, to *phone.Call, hz float64) {
	t.Helper()
	if err := from.StartVoice(hz); err != nil {
		t.Fatal(err)
	}
	defer from.StopVoice()
	if _, err := to.Listen(ctxT(t, 5*time.Second), phone.Sound{Tones: []float64{hz}, For: 300 * time.Millisecond}); err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// agent.mode first: the agent gets the lookup as headers, the caller and the
// agent hear each other, a REFER to a number that is no rule's destination is
// refused (403) and the caller stays; a REFER to rule-felix moves the caller to
// Felix's phone (warm), the agent hears 100 then 200 in NOTIFYs and gets BYE,
// and the record shows the agent's part.
func TestAgentFirstHeadersAudioAndRefer(t *testing.T) {
	t.Parallel()
	attorney := newCallee(t, phone.AnswerOptions{})
	agent := newAgentPeer(t, 0)
	cdr := &memCDR{}
	e := newEnv(t, agentConfig(agent.uri(), AgentModeFirst), WithRouter(ruleRouter{agentRules(t, attorney)}),
		WithLookup(quistLookup()), WithCallRecords(cdr))
	caller := newCallerPhone(t)
	cc, err := caller.Dial(ctxT(t, 10*time.Second), "sip:100@"+e.udp, phone.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := agent.callee.Next(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	snap := e.onlyCall()
	want := map[string]string{
		"X-Matterline-Call-Id": snap.ID, "X-Matterline-Lookup": "found",
		"X-Matterline-Contact-Id": "42", "X-Matterline-Contact-Name": "Ada Quist",
		"X-Matterline-Matter-Id": "7", "X-Matterline-Matter": "00101-Quist",
		"X-Matterline-Staff-Id": "501", "X-Matterline-Staff": "Felix Dubinsky",
		"X-Matterline-Open": "true",
	}
	for k, v := range want {
		if got := ac.Header(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if ac.Info().From != testCaller {
		t.Errorf("agent sees From %q, want the caller", ac.Info().From)
	}
	e.waitState(cc.ID(), StateAgent)
	hears(t, "agent hears the caller", cc, ac, 700)
	hears(t, "caller hears the agent", ac, cc, 1100)

	// A number that is no rule's destination, a URI of another host, a rule
	// that does not exist: 403, the caller stays with the agent.
	for _, target := range []string{
		"sip:+12175550999@" + e.udp,
		"sip:rule-felix@203.0.113.9",
		"sip:rule-nonexistent@" + e.udp,
		"tel:+12175550999",
	} {
		res, err := ac.Refer(ctxT(t, 5*time.Second), target)
		if err != nil {
			t.Fatal(err)
		}
		if res.StatusCode != 403 {
			t.Errorf("REFER %s: %d, want 403", target, res.StatusCode)
		}
	}
	if s := e.onlyCall(); s.State != StateAgent {
		t.Fatalf("after refused REFERs the call is %s, want agent", s.State)
	}
	hears(t, "still with the agent", ac, cc, 900)

	res, err := ac.Refer(ctxT(t, 5*time.Second), "sip:rule-felix@"+e.udp)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != 202 {
		t.Fatalf("REFER rule-felix: %d, want 202", res.StatusCode)
	}
	in, err := attorney.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(cc.ID(), StateBridged)
	select {
	case <-ac.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("the agent leg was not released")
	}
	eventually(t, 5*time.Second, "notifies 100 then 200", func() bool {
		n := agent.notifies()
		return len(n) == 2 && strings.Contains(n[0], "SIP/2.0 100") && strings.Contains(n[1], "SIP/2.0 200")
	})
	eventually(t, 5*time.Second, "one outbound leg", func() bool { return e.srv.legs.count() == 1 })
	if in.Invite.From().Address.User != testCaller {
		t.Errorf("attorney sees %q", in.Invite.From().Address.User)
	}
	if err := cc.Hangup(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	rec := cdr.wait(t, cc.ID())
	if !rec.Agent || rec.AgentTransfer != "rule:felix" || rec.AgentMS < 500 || rec.Outcome != records.OutcomeBridged ||
		rec.Rule != "felix" {
		t.Errorf("record = %+v", rec)
	}
	e.waitIdle()
}

// The agent busy or unreachable: the caller gets the menu (the greeting).
func TestAgentUnavailableGoesToMenu(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name string
		uri  func(t *testing.T) string
	}{
		{"busy", func(t *testing.T) string { return newAgentPeer(t, 486).uri() }},
		{"unreachable", func(t *testing.T) string { return "sip:agent@127.0.0.1:9" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			router := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
			cdr := &memCDR{}
			e := newEnv(t, agentConfig(tc.uri(t), AgentModeFirst), WithRouter(router), WithLookup(quistLookup()),
				WithCallRecords(cdr))
			c := e.answered(phone.InviteOptions{From: testCaller})
			eventually(t, 8*time.Second, "greeting", func() bool {
				for _, p := range promptSequence(c.RTP.Packets()) {
					if p == "greeting" {
						return true
					}
				}
				return false
			})
			if s := e.onlyCall(); s.State != StateInMenu {
				t.Errorf("state %s, want in_menu", s.State)
			}
			if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if rec := cdr.wait(t, c.CallID); !rec.Agent || rec.AgentMS != 0 {
				t.Errorf("record = %+v", rec)
			}
			e.waitIdle()
		})
	}
}

// agent.mode fallback: a caller who never presses a key exhausts the menu and
// goes to the agent instead of goodbye.
func TestAgentFallbackAfterMenuFailures(t *testing.T) {
	t.Parallel()
	agent := newAgentPeer(t, 0)
	cfg := agentConfig(agent.uri(), AgentModeFallback)
	cfg.MenuTimeout = 300 * time.Millisecond
	cfg.MenuAttempts = 2
	router := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
	e := newEnv(t, cfg, WithRouter(router), WithLookup(&fakeLookup{result: lookup.Result{Status: lookup.StatusNotFound}}))
	c := e.answered(phone.InviteOptions{From: testCaller})
	ac, err := agent.callee.Next(ctxT(t, 15*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if got := ac.Header("X-Matterline-Lookup"); got != "not_found" {
		t.Errorf("lookup header %q", got)
	}
	if got := ac.Header("X-Matterline-Contact-Name"); got != "" {
		t.Errorf("contact name %q for an unknown caller", got)
	}
	if got := ac.Header("X-Matterline-Open"); got != "false" {
		t.Errorf("open %q", got)
	}
	e.waitState(c.CallID, StateAgent)
	// The agent hangs up: the call ends.
	if err := ac.Hangup(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

// The HTTP API's transfer works while the caller is with the agent.
func TestAgentAPITransfer(t *testing.T) {
	t.Parallel()
	attorney := newCallee(t, phone.AnswerOptions{})
	agent := newAgentPeer(t, 0)
	e := newEnv(t, agentConfig(agent.uri(), AgentModeFirst), WithRouter(ruleRouter{agentRules(t, attorney)}),
		WithLookup(quistLookup()))
	c := e.answered(phone.InviteOptions{From: testCaller})
	ac, err := agent.callee.Next(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateAgent)
	dec, err := e.srv.Transfer(ctxT(t, 5*time.Second), e.onlyCall().ID, routing.Intent{Kind: routing.IntentResponsible})
	if err != nil || dec.Rule != "felix" {
		t.Fatalf("transfer: %+v %v", dec, err)
	}
	if _, err := attorney.Next(ctxT(t, 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-ac.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("agent leg not released")
	}
	e.waitState(c.CallID, StateBridged)
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

func TestAgentValue(t *testing.T) {
	for in, want := range map[string]string{
		"Ada Quist":              "Ada Quist",
		"Ada\r\nX-Evil: 1":       "Ada X-Evil: 1",
		"  a \t b  ":             "a b",
		"bad \xff utf8":          "bad utf8",
		strings.Repeat("é", 100): strings.Repeat("é", 64),
	} {
		if got := agentValue(in); got != want {
			t.Errorf("agentValue(%q) = %q, want %q", in, got, want)
		}
	}
}

// A REFER with the agent leg's Call-ID and tags from a stranger (127.0.0.2:
// neither a trusted source nor the agent) is refused 403 by the in-dialog source
// check; the caller stays with the agent.
func TestAgentReferFromStrangerRefused(t *testing.T) {
	attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer attacker.Close()
	attorney := newCallee(t, phone.AnswerOptions{})
	agent := newAgentPeer(t, 0)
	cfg := agentConfig(agent.uri(), AgentModeFirst)
	cfg.TrustedSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e := newEnv(t, cfg, WithRouter(ruleRouter{agentRules(t, attorney)}), WithLookup(quistLookup()))
	c := e.answered(phone.InviteOptions{From: testCaller})
	ac, err := agent.callee.Next(ctxT(t, 10*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateAgent)
	leg := e.srv.legs.get(ac.ID())
	if leg == nil {
		t.Fatal("no agent leg")
	}
	srv, err := net.ResolveUDPAddr("udp", e.udp)
	if err != nil {
		t.Fatal(err)
	}
	me := attacker.LocalAddr().String()
	msg := "REFER sip:matterline@" + e.udp + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + me + ";branch=z9hG4bKreferevil\r\n" +
		"From: <" + leg.dlg.remote.String() + ">;tag=" + leg.dlg.remoteTag + "\r\n" +
		"To: <" + leg.dlg.local.String() + ">;tag=" + leg.dlg.localTag + "\r\n" +
		"Call-ID: " + ac.ID() + "\r\n" +
		"CSeq: 900 REFER\r\n" +
		"Contact: <sip:evil@" + me + ">\r\n" +
		"Refer-To: <sip:rule-felix@" + e.udp + ">\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := attacker.WriteToUDP([]byte(msg), srv); err != nil {
		t.Fatal(err)
	}
	_ = attacker.SetReadDeadline(time.Now().Add(3 * time.Second))
	buf := make([]byte, 4096)
	n, _, err := attacker.ReadFromUDP(buf)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	if got := string(buf[:n]); !strings.HasPrefix(got, "SIP/2.0 403") {
		t.Fatalf("REFER from a stranger: %q, want 403", strings.SplitN(got, "\r\n", 2)[0])
	}
	if s := e.onlyCall(); s.State != StateAgent || len(s.Intents) != 0 {
		t.Fatalf("call after the attack: %+v", s)
	}
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

package main

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
)

// TestE2EAgentFirst: with agent.mode first the sandbox caller goes straight to
// the voice agent, whose INVITE carries the lookup; a REFER to a number that is
// no rule's destination gets 403, a REFER to rule-felix (cold) hands the caller
// to Felix's number with a REFER on the caller's leg; the agent hears 100 and
// 200 in NOTIFYs and gets BYE, and the record shows the agent's part.
func TestE2EAgentFirst(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var frags []string
	agent, err := phone.NewCallee(phone.CalleeConfig{Name: "agent", Number: "agent", OnEvent: func(ev phone.Event) {
		if ev.Kind == phone.EventNotify {
			mu.Lock()
			frags = append(frags, ev.Detail)
			mu.Unlock()
		}
	}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = agent.Close() })
	s := startE2E(t, e2eOptions{token: e2eToken, outboundProxy: "sip:127.0.0.1:5999", shortPrompts: true,
		configure: func(c *config.Config) {
			c.Agent = config.Agent{URI: "sip:agent@" + agent.Addr().String(), Mode: "first"}
		}})
	s.addRule(felixRule("cold"))

	var evs eventLog
	caller := newE2ECaller(t, e2eCaller, e2eCallerName, true, evs.add)
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	call, err := caller.Dial(ctx, s.target, phone.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	ac, err := agent.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{
		"X-Matterline-Lookup": "found", "X-Matterline-Contact-Id": "1001",
		"X-Matterline-Contact-Name": e2eCallerName, "X-Matterline-Matter": "00101-Quist",
		"X-Matterline-Staff": "Felix Dubinsky", "X-Matterline-Staff-Id": "501", "X-Matterline-Open": "true",
	} {
		if got := ac.Header(k); got != v {
			t.Errorf("%s = %q, want %q", k, got, v)
		}
	}
	if ac.Header("X-Matterline-Call-Id") == "" {
		t.Error("no X-Matterline-Call-Id")
	}
	// The caller hears the agent.
	if err := ac.StartVoice(1000); err != nil {
		t.Fatal(err)
	}
	if _, err := call.Listen(ctx, phone.Sound{Tones: []float64{1000}, For: 300 * time.Millisecond}); err != nil {
		t.Fatalf("caller does not hear the agent: %v", err)
	}
	ac.StopVoice()

	res, err := ac.Refer(ctx, "sip:+12175550999@"+s.sipUDP)
	if err != nil || res.StatusCode != 403 {
		t.Fatalf("REFER to a number of no rule: %v %v, want 403", res, err)
	}
	res, err = ac.Refer(ctx, "sip:rule-felix@"+s.sipUDP)
	if err != nil || res.StatusCode != 202 {
		t.Fatalf("REFER rule-felix: %v %v, want 202", res, err)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the caller was not handed over (no BYE after the REFER)")
	}
	select {
	case <-ac.Done():
	case <-ctx.Done():
		t.Fatal("the agent leg was not released")
	}
	waitFor(t, "notifies 100 and 200", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(frags) == 2 && strings.Contains(frags[0], "SIP/2.0 100") && strings.Contains(frags[1], "SIP/2.0 200")
	})
	rec := s.record(call.ID())
	if !rec.Agent || rec.AgentTransfer != "rule:felix" || rec.Outcome != records.OutcomeReferred || rec.Rule != "felix" {
		t.Errorf("record = %+v", rec)
	}
	s.waitIdle()
}

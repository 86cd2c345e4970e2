package sip

import (
	"slices"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/routing"
)

func TestMenuDTMFRFC4733ReachesRouter(t *testing.T) {
	r := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
	e := newEnv(t, defaultTestConfig(), WithRouter(r))
	c := e.answered(phone.InviteOptions{From: "+12175552171"})
	if !c.RTP.WaitPackets(5, 5*time.Second) {
		t.Fatal("no greeting")
	}
	if err := c.SendDTMF('1'); err != nil {
		t.Fatal(err)
	}
	in, info := r.wait(t, 5*time.Second)
	if in.Kind != routing.IntentResponsible {
		t.Fatalf("intent = %v, want responsible", in)
	}
	if info.Caller != "+12175552171" || info.SIPCallID != c.CallID || info.ID == "" {
		t.Errorf("call info = %+v", info)
	}
	// Unserved: nobody_available, then the menu again.
	eventually(t, 5*time.Second, "nobody_available then greeting", func() bool {
		seq := promptSequence(c.RTP.Packets())
		i := slices.Index(seq, media.PromptNobody)
		return i > 0 && i+1 < len(seq) && seq[i+1] == media.PromptGreeting
	})
	snap := e.onlyCall()
	if len(snap.Intents) != 1 || snap.Intents[0].Kind != routing.IntentResponsible {
		t.Errorf("registry intents = %v", snap.Intents)
	}
	if snap.State != StateInMenu {
		t.Errorf("state = %v, want in_menu", snap.State)
	}
}

func TestMenuDTMFInfoReachesRouter(t *testing.T) {
	r := newFakeRouter(routing.Decision{Action: routing.ActionUnavailable, Reason: routing.ReasonOutsideHours})
	e := newEnv(t, defaultTestConfig(), WithRouter(r))
	c := e.answered(phone.InviteOptions{})
	res, err := c.InfoDTMF(ctxT(t, 5*time.Second), '0')
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("info: %v %v", res, err)
	}
	in, _ := r.wait(t, 5*time.Second)
	if in.Kind != routing.IntentOperator {
		t.Fatalf("intent = %v, want operator", in)
	}
	eventually(t, 5*time.Second, "outside_hours prompt", func() bool {
		return slices.Contains(promptSequence(c.RTP.Packets()), media.PromptOutsideHours)
	})
}

func TestMenuUnmappedDigitPlaysInvalidThenMenu(t *testing.T) {
	r := newFakeRouter(routing.Decision{Action: routing.ActionNone})
	e := newEnv(t, defaultTestConfig(), WithRouter(r))
	c := e.answered(phone.InviteOptions{})
	if !c.RTP.WaitPackets(10, 5*time.Second) {
		t.Fatal("no greeting")
	}
	if err := c.SendDTMF('5'); err != nil { // during the greeting: barge-in
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "greeting, invalid, greeting", func() bool {
		seq := promptSequence(c.RTP.Packets())
		return len(seq) >= 3 && seq[0] == media.PromptGreeting && seq[1] == media.PromptInvalid && seq[2] == media.PromptGreeting
	})
	// The greeting was interrupted: fewer packets than its 75 before "invalid".
	n := 0
	for _, p := range c.RTP.Packets() {
		if promptOf(p.Payload) != media.PromptGreeting {
			break
		}
		n++
	}
	if n >= 75 {
		t.Errorf("greeting played %d packets before invalid: no barge-in", n)
	}
	if len(r.intents) != 0 {
		t.Errorf("router saw %v for an unmapped digit", r.intents)
	}
}

func TestMenuThreeFailuresSayGoodbyeAndBye(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.MenuTimeout = 300 * time.Millisecond
	e := newEnv(t, cfg)
	c := e.answered(phone.InviteOptions{})
	// One unmapped digit, then two silences.
	if !c.RTP.WaitPackets(5, 5*time.Second) {
		t.Fatal("no greeting")
	}
	if err := c.SendDTMF('9'); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctxT(t, 15*time.Second)); err != nil {
		t.Fatal(err)
	}
	seq := promptSequence(c.RTP.Packets())
	if len(seq) == 0 || seq[len(seq)-1] != media.PromptGoodbye {
		t.Errorf("prompts %v do not end with goodbye", seq)
	}
	e.waitIdle()
}

func TestLookupInRegistryBeforeFirstDigit(t *testing.T) {
	found := lookup.Result{Status: lookup.StatusFound, Number: "+12175552171",
		Contact: &lookup.Contact{ID: 42, Name: "Ada Quist"}, Matter: &lookup.Matter{ID: 7, DisplayNumber: "00101-Quist"},
		Staff: &lookup.Staff{ID: 501, Name: "Felix Dubinsky"}}
	lk := &fakeLookup{delay: 1500 * time.Millisecond, result: found}
	r := newFakeRouter(routing.Decision{Action: routing.ActionNone})
	cfg := defaultTestConfig()
	cfg.AnswerWait = 100 * time.Millisecond
	e := newEnv(t, cfg, WithRouter(r), WithLookup(lk))
	start := time.Now()
	c := e.answered(phone.InviteOptions{From: "+12175552171"})
	if time.Since(start) > 1200*time.Millisecond {
		t.Fatalf("answer waited %s for the lookup, AnswerWait is 100ms", time.Since(start))
	}
	if snap := e.onlyCall(); snap.LookupDone {
		t.Fatal("lookup done before answer; the test needs a slow lookup")
	}
	if err := c.SendDTMF('1'); err != nil { // pressed before the lookup finished
		t.Fatal(err)
	}
	_, info := r.wait(t, 5*time.Second)
	if !info.LookupDone || info.Lookup.Status != lookup.StatusFound || info.Lookup.Staff.ID != 501 {
		t.Fatalf("router saw lookup %+v done=%v, want found", info.Lookup, info.LookupDone)
	}
	snap := e.onlyCall()
	if !snap.LookupDone || snap.Lookup.Contact.ID != 42 {
		t.Errorf("registry lookup = %+v", snap.Lookup)
	}
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if len(lk.asked) != 1 || lk.asked[0] != "+12175552171" {
		t.Errorf("lookup asked %v", lk.asked)
	}
}

// A transfer to a number without an outbound proxy cannot be dialled: unserved.
func TestTransferNumberWithoutOutboundProxyPlaysNobody(t *testing.T) {
	r := newFakeRouter(routing.Decision{Action: routing.ActionTransfer, Mode: routing.ModeCold, Destination: "+15551234", Reason: routing.ReasonMatched})
	e := newEnv(t, defaultTestConfig(), WithRouter(r))
	c := e.answered(phone.InviteOptions{})
	if err := c.SendDTMF('1'); err != nil {
		t.Fatal(err)
	}
	r.wait(t, 5*time.Second)
	eventually(t, 5*time.Second, "nobody_available", func() bool {
		return slices.Contains(promptSequence(c.RTP.Packets()), media.PromptNobody)
	})
}

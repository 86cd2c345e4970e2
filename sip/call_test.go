package sip

import (
	"context"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/phone"
)

func TestCallAnsweredGreetingRTP(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{From: "+12175552171"})

	if !c.RTP.WaitPackets(55, 5*time.Second) {
		t.Fatalf("got %d rtp packets, want >= 55 (1.1 s of greeting)", c.RTP.Count())
	}
	pkts := c.RTP.Packets()
	if !pkts[0].Marker {
		t.Error("first packet has no marker bit")
	}
	for i, p := range pkts[:55] {
		if p.PayloadType != 0 {
			t.Fatalf("packet %d: payload type %d, want 0 (PCMU)", i, p.PayloadType)
		}
		if len(p.Payload) != 160 {
			t.Fatalf("packet %d: %d payload bytes, want 160", i, len(p.Payload))
		}
		if promptOf(p.Payload) != "greeting" {
			t.Fatalf("packet %d is not greeting audio", i)
		}
		if i == 0 {
			continue
		}
		prev := pkts[i-1]
		if p.SSRC != prev.SSRC || p.Seq != prev.Seq+1 || p.Timestamp != prev.Timestamp+160 {
			t.Fatalf("packet %d: ssrc/seq/ts %d/%d/%d after %d/%d/%d", i, p.SSRC, p.Seq, p.Timestamp, prev.SSRC, prev.Seq, prev.Timestamp)
		}
		if p.Marker {
			t.Fatalf("packet %d has a marker bit inside the prompt", i)
		}
	}

	snap := e.onlyCall()
	if snap.State != StateInMenu || snap.Caller != "+12175552171" || snap.Callee != "100" || snap.SIPCallID != c.CallID {
		t.Errorf("snapshot = %+v", snap)
	}
	if !snap.LookupDone || snap.Lookup.Status != lookup.StatusUnconfigured {
		t.Errorf("lookup = %+v done=%v, want unconfigured", snap.Lookup, snap.LookupDone)
	}

	res, err := c.Bye(ctxT(t, 5*time.Second))
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("bye: %v %v", res, err)
	}
	e.waitIdle()
}

func TestListenersShareThePort(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	if e.udp == "" || e.udp != e.tcp {
		t.Fatalf("udp %q and tcp %q listeners differ", e.udp, e.tcp)
	}
	if err := e.srv.Start(context.Background()); err == nil {
		t.Error("second Start succeeded")
	}
}

func TestWithheldCallerSkipsLookup(t *testing.T) {
	lk := &fakeLookup{result: lookup.Result{Status: lookup.StatusFound}}
	e := newEnv(t, defaultTestConfig(), WithLookup(lk))
	e.answered(phone.InviteOptions{From: "anonymous"})
	snap := e.onlyCall()
	if snap.Caller != "" || snap.Lookup.Status != lookup.StatusNotFound || snap.Lookup.Reason != "withheld" {
		t.Errorf("snapshot = %+v", snap)
	}
	lk.mu.Lock()
	defer lk.mu.Unlock()
	if len(lk.asked) != 0 {
		t.Errorf("lookup asked %v for a withheld caller", lk.asked)
	}
}

func TestHangupWhileRinging(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.AnswerWait = 10 * time.Second
	e := newEnv(t, cfg, WithLookup(&fakeLookup{delay: 10 * time.Second}))
	ctx := ctxT(t, 15*time.Second)
	c, err := e.phone.Invite(ctx, phone.InviteOptions{Target: e.target("udp")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 5*time.Second, "ringing", func() bool { return e.srv.Registry().Count() == 1 && e.ports.InUse() == 1 })
	e.srv.HangupAll(ctx)
	res, err := c.WaitFinal(ctx)
	if err != nil || res.StatusCode != 480 {
		t.Fatalf("final = %v %v, want 480", res, err)
	}
	e.waitIdle()
}

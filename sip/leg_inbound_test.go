package sip

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
)

func TestCancelWhileRinging(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.AnswerWait = 10 * time.Second
	lk := &fakeLookup{delay: 10 * time.Second, result: lookup.Result{Status: lookup.StatusNotFound}}
	e := newEnv(t, cfg, WithLookup(lk))
	ctx := ctxT(t, 15*time.Second)
	c, err := e.phone.Invite(ctx, phone.InviteOptions{Target: e.target("udp")})
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	eventually(t, 5*time.Second, "100 Trying", func() bool {
		for _, r := range c.Responses() {
			if r.StatusCode == 100 {
				return true
			}
		}
		return false
	})
	eventually(t, 5*time.Second, "ringing call with a port", func() bool {
		l := e.srv.Registry().List()
		return len(l) == 1 && l[0].State == StateRinging && e.ports.InUse() == 1
	})
	res, err := c.Cancel(ctx)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("cancel: %v %v", res, err)
	}
	final, err := c.WaitFinal(ctx)
	if err != nil || final.StatusCode != 487 {
		t.Fatalf("final = %v %v, want 487", final, err)
	}
	e.waitIdle()
}

func TestUntrustedSourceGets403(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.TrustedSources = []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	e := newEnv(t, cfg)
	_, res := e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 403 {
		t.Fatalf("invite from 127.0.0.1: %d, want 403", res.StatusCode)
	}
	if res := options(t, e, e.phone); res.StatusCode != 403 {
		t.Fatalf("options: %d, want 403", res.StatusCode)
	}
	if e.srv.Registry().Count() != 0 || e.ports.InUse() != 0 {
		t.Fatal("untrusted invite left state behind")
	}
}

func TestOfferWithoutCommonCodecGets488(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	for name, o := range map[string]phone.InviteOptions{
		"g729 only": {Offer: phone.OfferOptions{Formats: []string{"18 G729/8000"}}},
		"broken":    {SDP: []byte("this is not sdp")},
	} {
		t.Run(name, func(t *testing.T) {
			_, res := e.call(e.phone, o)
			if res.StatusCode != 488 {
				t.Fatalf("got %d, want 488", res.StatusCode)
			}
			if res.GetHeader("Warning") == nil {
				t.Error("488 without Warning")
			}
		})
	}
	e.waitIdle()
}

func TestOverCapacityGets503(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.MaxCalls = 1
	e := newEnv(t, cfg)
	e.answered(phone.InviteOptions{})
	_, res := e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 503 {
		t.Fatalf("second call: %d, want 503", res.StatusCode)
	}
	if res.GetHeader("Retry-After") == nil {
		t.Error("503 without Retry-After")
	}
	if e.srv.Registry().Count() != 1 {
		t.Errorf("registry count %d, want 1", e.srv.Registry().Count())
	}
}

func TestRTPInactivityEndsCallWithBye(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.RTPInactivity = time.Second
	e := newEnv(t, cfg)
	c := e.answered(phone.InviteOptions{}) // the phone sends no RTP
	if err := c.WaitBye(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

func options(t *testing.T, e *testEnv, p *phone.UA) *gosip.Response {
	t.Helper()
	log := testLogger(t)
	ua, err := sipgo.NewUA(sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(gosip.WithTransactionLayerLogger(log)),
		sipgo.WithUserAgentTransportLayerOptions(gosip.WithTransportLayerLogger(log)))
	if err != nil {
		t.Fatal(err)
	}
	defer ua.Close()
	cl, err := sipgo.NewClient(ua, sipgo.WithClientHostname("127.0.0.1"), sipgo.WithClientLogger(log))
	if err != nil {
		t.Fatal(err)
	}
	var u gosip.Uri
	if err := gosip.ParseUri("sip:100@"+e.udp, &u); err != nil {
		t.Fatal(err)
	}
	req := gosip.NewRequest(gosip.OPTIONS, u)
	res, err := cl.Do(ctxT(t, 5*time.Second), req)
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func TestOptionsAnswered(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	res := options(t, e, e.phone)
	if res.StatusCode != 200 {
		t.Fatalf("options: %d", res.StatusCode)
	}
	for h, want := range map[string]string{"Allow": "INVITE", "Accept": "application/dtmf-relay", "Supported": "timer"} {
		if v := res.GetHeader(h); v == nil || !strings.Contains(v.Value(), want) {
			t.Errorf("%s = %v, want it to contain %s", h, v, want)
		}
	}
	// In dialog too.
	c := e.answered(phone.InviteOptions{})
	r, err := c.Request(ctxT(t, 5*time.Second), gosip.OPTIONS, "", nil)
	if err != nil || r.StatusCode != 200 || r.GetHeader("Allow") == nil {
		t.Fatalf("in-dialog options: %v %v", r, err)
	}
}

func TestInDialogRequests(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{})
	ctx := ctxT(t, 10*time.Second)
	for _, m := range []gosip.RequestMethod{gosip.MESSAGE, gosip.SUBSCRIBE, gosip.REFER, gosip.PRACK} {
		r, err := c.Request(ctx, m, "", nil)
		if err != nil || r.StatusCode != 405 || r.GetHeader("Allow") == nil {
			t.Errorf("%s: %v %v, want 405 with Allow", m, r, err)
		}
	}
	r, err := c.Info(ctx, "text/plain", []byte("hello"))
	if err != nil || r.StatusCode != 415 {
		t.Errorf("info text/plain: %v %v, want 415", r, err)
	}
	r, err = c.Info(ctx, "", nil)
	if err != nil || r.StatusCode != 200 {
		t.Errorf("empty info: %v %v, want 200", r, err)
	}
	r, err = c.Request(ctx, gosip.UPDATE, "", nil)
	if err != nil || r.StatusCode != 200 {
		t.Errorf("update: %v %v, want 200", r, err)
	}
	if r, err := c.Bye(ctx); err != nil || r.StatusCode != 200 {
		t.Fatalf("bye: %v %v", r, err)
	}
	// The dialog is gone now.
	r, err = c.Bye(ctx)
	if err != nil || r.StatusCode != 481 {
		t.Errorf("second bye: %v %v, want 481", r, err)
	}
	r, err = c.InfoDTMF(ctx, '1')
	if err != nil || r.StatusCode != 481 {
		t.Errorf("info after bye: %v %v, want 481", r, err)
	}
	e.waitIdle()
}

func TestExternalIPInContactAndSDP(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.ExternalIP = netip.MustParseAddr("192.0.2.10")
	e := newEnv(t, cfg)
	c := e.answered(phone.InviteOptions{Proxy: e.udp})
	res := c.Final()
	if ct := res.Contact(); ct == nil || ct.Address.Host != "192.0.2.10" {
		t.Errorf("contact = %v, want host 192.0.2.10", ct)
	}
	d, err := media.ParseSDP(res.Body())
	if err != nil {
		t.Fatal(err)
	}
	if d.Addr.Addr() != cfg.ExternalIP {
		t.Errorf("sdp address %v, want %v", d.Addr, cfg.ExternalIP)
	}
	if !strings.Contains(string(res.Body()), "o=") || !strings.Contains(string(res.Body()), "192.0.2.10") {
		t.Errorf("sdp: %s", res.Body())
	}
	// Our BYE: from the listening socket, Via and Contact on the advertised address.
	if err := e.srv.Hangup(ctxT(t, 10*time.Second), e.onlyCall().ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	var bye *gosip.Request
	for _, r := range c.Requests() {
		if r.Method == gosip.BYE {
			bye = r
		}
	}
	if bye.Source() != e.udp {
		t.Errorf("bye came from %s, want the listener %s", bye.Source(), e.udp)
	}
	if v := bye.Via(); v == nil || v.Host != "192.0.2.10" {
		t.Errorf("bye via = %v", v)
	}
	if ct := bye.Contact(); ct == nil || ct.Address.Host != "192.0.2.10" {
		t.Errorf("bye contact = %v", ct)
	}
}

func TestNoAckEndsCallWithBye(t *testing.T) {
	e := newEnv(t, defaultTestConfig(), func(s *Server) { s.ackWait = 2500 * time.Millisecond })
	c, res := e.call(e.phone, phone.InviteOptions{NoAutoAck: true})
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	if err := c.WaitBye(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	// T1 = 500ms: copies at about 0.5 s and 1.5 s.
	if n := c.Retransmissions(1); n < 1 {
		t.Errorf("200 retransmitted %d times without an ack", n)
	}
	e.waitIdle()
}

func TestUnsupportedRequireGets420(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	_, res := e.call(e.phone, phone.InviteOptions{Headers: []gosip.Header{gosip.NewHeader("Require", "100rel")}})
	if res.StatusCode != 420 {
		t.Fatalf("got %d, want 420", res.StatusCode)
	}
	if h := res.GetHeader("Unsupported"); h == nil || h.Value() != "100rel" {
		t.Errorf("Unsupported = %v", h)
	}
}

func TestTCPCallAndHangup(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	p := e.newPhone("tcp")
	c, res := e.call(p, phone.InviteOptions{Target: e.target("tcp")})
	if res.StatusCode != 200 {
		t.Fatalf("invite over tcp: %d", res.StatusCode)
	}
	if !c.RTP.WaitPackets(10, 5*time.Second) {
		t.Fatal("no rtp")
	}
	id := e.onlyCall().ID
	eventually(t, 5*time.Second, "in_menu", func() bool { s, _ := e.srv.Registry().Get(id); return s.State == StateInMenu })
	if err := e.srv.Hangup(ctxT(t, 10*time.Second), id); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
	if err := e.srv.Hangup(ctxT(t, time.Second), id); err == nil {
		t.Error("hangup of an ended call: no error")
	}
}

func TestDrainRejectsNewCallsAndHangsUp(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		e.srv.Drain(ctxT(t, 10*time.Second), time.Second)
	}()
	eventually(t, 2*time.Second, "draining", e.srv.draining.Load)
	_, res := e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 503 {
		t.Errorf("invite while draining: %d, want 503", res.StatusCode)
	}
	if err := c.WaitBye(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	<-done
	e.waitIdle()
}

func TestCloseHangsUpAndIsIdempotent(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{})
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if e.ports.InUse() != 0 || e.srv.Registry().Count() != 0 {
		t.Error("close left calls or ports")
	}
	if err := e.srv.Close(); err != nil {
		t.Fatal(err)
	}
}

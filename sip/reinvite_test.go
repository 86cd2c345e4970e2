package sip

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
)

func answerDirection(t *testing.T, res *gosip.Response) media.Direction {
	t.Helper()
	d, err := media.ParseSDP(res.Body())
	if err != nil {
		t.Fatalf("answer sdp: %v\n%s", err, res.Body())
	}
	return d.Direction
}

func TestReinviteHoldAndResume(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{})
	ctx := ctxT(t, 20*time.Second)
	id := e.onlyCall().ID
	eventually(t, 5*time.Second, "in_menu", func() bool { s, _ := e.srv.Registry().Get(id); return s.State == StateInMenu })

	steps := []struct {
		name  string
		offer phone.OfferOptions
		want  media.Direction
		state CallState
	}{
		{"sendonly hold", phone.OfferOptions{Direction: media.DirSendOnly, Version: 2}, media.DirRecvOnly, StateHeld},
		{"resume", phone.OfferOptions{Direction: media.DirSendRecv, Version: 3}, media.DirSendRecv, StateInMenu},
		{"inactive hold", phone.OfferOptions{Direction: media.DirInactive, Version: 4}, media.DirInactive, StateHeld},
		{"resume again", phone.OfferOptions{Version: 5}, media.DirSendRecv, StateInMenu},
		{"rfc 2543 hold", phone.OfferOptions{Addr: netip.MustParseAddrPort("0.0.0.0:" + portOf(c.RTP.Addr())), NoDirection: true, Version: 6}, media.DirInactive, StateHeld},
		{"resume from 2543", phone.OfferOptions{Version: 7}, media.DirSendRecv, StateInMenu},
	}
	for _, st := range steps {
		res, err := c.Reinvite(ctx, phone.Offer(c.RTP.Addr(), st.offer), 0)
		if err != nil || res.StatusCode != 200 {
			t.Fatalf("%s: %v %v", st.name, res, err)
		}
		if got := answerDirection(t, res); got != st.want {
			t.Errorf("%s: answer direction %v, want %v", st.name, got, st.want)
		}
		if s, _ := e.srv.Registry().Get(id); s.State != st.state {
			t.Errorf("%s: state %v, want %v", st.name, s.State, st.state)
		}
	}
}

func portOf(ap netip.AddrPort) string {
	return strings.TrimPrefix(ap.String(), ap.Addr().String()+":")
}

func TestReinviteMovesMedia(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{})
	if !c.RTP.WaitPackets(5, 5*time.Second) {
		t.Fatal("no rtp at the first address")
	}
	moved, err := e.phone.NewRTPPeer()
	if err != nil {
		t.Fatal(err)
	}
	defer moved.Close()
	moved.SetRemote(c.RTP.Remote())
	res, err := c.Reinvite(ctxT(t, 5*time.Second), phone.Offer(moved.Addr(), phone.OfferOptions{Version: 2}), 0)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-invite: %v %v", res, err)
	}
	// Some audio from the new socket re-latches symmetric RTP there too.
	if err := moved.SendSilence(0, 3); err != nil {
		t.Fatal(err)
	}
	if !moved.WaitPackets(10, 5*time.Second) {
		t.Fatalf("new address got %d packets", moved.Count())
	}
}

func TestReinvite200RetransmittedUntilAck(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{})
	time.Sleep(100 * time.Millisecond) // let the first ACK land
	res, err := c.Reinvite(ctxT(t, 10*time.Second), phone.Offer(c.RTP.Addr(), phone.OfferOptions{Version: 2}), 1800*time.Millisecond)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("re-invite: %v %v", res, err)
	}
	seq := res.CSeq().SeqNo
	if n := c.Retransmissions(seq); n < 1 {
		t.Errorf("2xx retransmitted %d times before the delayed ACK, want >= 1", n)
	}
	// Acked: the call goes on, no BYE.
	select {
	case <-c.ByeReceived():
		t.Fatal("call ended after the delayed ack")
	case <-time.After(300 * time.Millisecond):
	}
	if e.srv.Registry().Count() != 1 {
		t.Fatal("call gone")
	}
}

func TestReinviteRejectsNewCodec(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	c := e.answered(phone.InviteOptions{}) // PCMU chosen
	res, err := c.Reinvite(ctxT(t, 5*time.Second), phone.Offer(c.RTP.Addr(),
		phone.OfferOptions{Formats: []string{"18 G729/8000"}, Version: 2}), -1)
	if err != nil || res.StatusCode != 488 {
		t.Fatalf("re-invite g729: %v %v, want 488", res, err)
	}
	if e.srv.Registry().Count() != 1 {
		t.Fatal("a rejected re-invite ended the call")
	}
}

func TestSessionTimers(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	_, res := e.call(e.phone, phone.InviteOptions{Headers: []gosip.Header{
		gosip.NewHeader("Supported", "timer"), gosip.NewHeader("Session-Expires", "60")}})
	if res.StatusCode != 422 {
		t.Fatalf("session-expires 60: %d, want 422", res.StatusCode)
	}
	if h := res.GetHeader("Min-SE"); h == nil || h.Value() != "90" {
		t.Errorf("Min-SE = %v", h)
	}

	c, res := e.call(e.phone, phone.InviteOptions{Headers: []gosip.Header{
		gosip.NewHeader("Supported", "timer"), gosip.NewHeader("Session-Expires", "120;refresher=uac")}})
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	if h := res.GetHeader("Session-Expires"); h == nil || h.Value() != "120;refresher=uac" {
		t.Errorf("Session-Expires = %v", h)
	}
	if h := res.GetHeader("Require"); h == nil || h.Value() != "timer" {
		t.Errorf("Require = %v", h)
	}
	// Refresh by UPDATE and by re-INVITE without SDP.
	r, err := c.Request(ctxT(t, 5*time.Second), gosip.UPDATE, "", nil,
		gosip.NewHeader("Supported", "timer"), gosip.NewHeader("Session-Expires", "120;refresher=uac"))
	if err != nil || r.StatusCode != 200 || r.GetHeader("Session-Expires") == nil {
		t.Fatalf("update refresh: %v %v", r, err)
	}
	r, err = c.Reinvite(ctxT(t, 5*time.Second), nil, 0, gosip.NewHeader("Supported", "timer"))
	if err != nil || r.StatusCode != 200 || len(r.Body()) == 0 {
		t.Fatalf("re-invite refresh: %v %v", r, err)
	}

	// No refresh: the session expires and we send BYE (RFC 4028 §10). The interval
	// is shortened behind the call's back to keep the test fast.
	e2 := newEnv(t, defaultTestConfig())
	c2, res := e2.call(e2.phone, phone.InviteOptions{Headers: []gosip.Header{gosip.NewHeader("Supported", "timer")}})
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	eventually(t, 5*time.Second, "in menu", func() bool { l := e2.srv.Registry().List(); return len(l) == 1 && l[0].State == StateInMenu })
	cl := e2.srv.reg.call(e2.onlyCall().ID)
	cl.post(callFunc(func() {
		cl.interval = 1500 * time.Millisecond
		cl.armExpiry()
	}))
	if err := c2.WaitBye(ctxT(t, 10*time.Second)); err != nil {
		t.Fatal(err)
	}
	e2.waitIdle()

	// Without timer support: no session timer headers.
	_, res = e.call(e.phone, phone.InviteOptions{})
	if res.GetHeader("Session-Expires") != nil || res.GetHeader("Require") != nil {
		t.Errorf("session timer headers without Supported: timer")
	}
}

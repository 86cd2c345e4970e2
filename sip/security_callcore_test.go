package sip

import (
	"net"
	"net/netip"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/routing"
)

// Digest credentials go only where they belong: a destination that is not
// reached through the outbound proxy and challenges with an unconfigured realm
// (or any challenge of a realm other than the configured one) gets no answer,
// so a rule pointing at a hostile host cannot harvest the trunk password.
func TestOutboundAuthNotSentElsewhere(t *testing.T) {
	sippPath(t)
	for name, realm := range map[string]string{
		"no realm, not via the outbound proxy": "",
		"another realm":                        "pbx.firm.example",
	} {
		t.Run(name, func(t *testing.T) {
			t.Parallel()
			r := sippCallee(t, "uas_auth_401.xml", func(cfg *Config, _ *routing.Rule) {
				setOutboundAuth(t, cfg, "matterline", "s3cret", realm)
			}, nil)
			if r.waitBridged(3 * time.Second) {
				t.Error("bridged although the challenge must not be answered")
			}
			r.hangUp(t)
			_ = sippDone(t, r.p, 15*time.Second) // sipp waits for a second INVITE in vain
			msgs := r.p.messages()
			if n := len(requests(msgs, false, "INVITE")); n != 1 {
				t.Errorf("matterline sent %d INVITEs, want 1 (no answer to the challenge)\n%s", n, dumpMsgs(msgs))
			}
			for _, m := range msgs {
				if strings.Contains(m.Raw, "Authorization:") || strings.Contains(m.Raw, "s3cret") {
					t.Errorf("credentials left matterline:\n%s", m.Raw)
				}
			}
			r.e.waitIdle()
		})
	}
}

// A forged 2xx from another address (127.0.0.2 plays the attacker) naming the
// Call-ID of a leg that just ended must not make matterline send ACK or BYE to
// the Contact the attacker chose; neither may one for a Call-ID it never used.
func TestForgedStrayAnswerIgnored(t *testing.T) {
	sippPath(t)
	attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer attacker.Close()
	r := sippCallee(t, "uas_lost_ack.xml", nil, nil)
	if !r.waitBridged(8 * time.Second) {
		t.Fatal("not bridged")
	}
	r.hangUp(t)
	_ = sippDone(t, r.p, 15*time.Second)
	invites := requests(r.p.messages(), false, "INVITE")
	if len(invites) == 0 {
		t.Fatal("no outbound INVITE")
	}
	legCallID := invites[0].Header("Call-ID")
	r.e.waitIdle()

	me := attacker.LocalAddr().(*net.UDPAddr)
	srv, err := net.ResolveUDPAddr("udp", strings.TrimPrefix(r.e.udp, "udp://"))
	if err != nil {
		t.Fatal(err)
	}
	for _, callID := range []string{legCallID, "never-used-call-id"} {
		forged := "SIP/2.0 200 OK\r\n" +
			"Via: SIP/2.0/UDP " + srv.String() + ";branch=z9hG4bKforged" + strconv.Itoa(len(callID)) + "\r\n" +
			"From: <sip:matterline@127.0.0.1>;tag=whatever\r\n" +
			"To: <sip:101@127.0.0.1>;tag=evil\r\n" +
			"Call-ID: " + callID + "\r\n" +
			"CSeq: 1 INVITE\r\n" +
			"Contact: <sip:victim@" + me.String() + ">\r\n" +
			"Content-Length: 0\r\n\r\n"
		if _, err := attacker.WriteToUDP([]byte(forged), srv); err != nil {
			t.Fatal(err)
		}
	}
	_ = attacker.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 4096)
	if n, _, err := attacker.ReadFromUDP(buf); err == nil {
		t.Fatalf("matterline answered a forged 2xx:\n%s", buf[:n])
	}
}

// RFC 3515 §2.4.6: a NOTIFY belongs to the REFER whose CSeq its Event id names
// (no id: the dialog's first REFER).
func TestEventIDMatches(t *testing.T) {
	for params, want := range map[string]bool{
		"":             true,
		"id=7":         true,
		" id = 7 ":     true,
		"id=8":         false,
		"x=1;id=7":     true,
		"x=1;id=70":    false,
		"id=7;retry=1": true,
	} {
		if got := eventIDMatches(params, 7); got != want {
			t.Errorf("eventIDMatches(%q, 7) = %v, want %v", params, got, want)
		}
	}
}

// In-dialog requests from a stranger (127.0.0.2: neither a trusted source nor
// the dialog's peer) with a live call's Call-ID and both tags are refused with
// 403: no hangup, no digit, no media move. The caller's own requests still work.
func TestInDialogRequestsFromStrangerRefused(t *testing.T) {
	attacker, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer attacker.Close()
	cfg := defaultTestConfig()
	cfg.TrustedSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	e := newEnv(t, cfg)
	c, res := e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 200 {
		t.Fatalf("invite: %d", res.StatusCode)
	}
	eventually(t, 5*time.Second, "in menu", func() bool {
		l := e.srv.Registry().List()
		return len(l) == 1 && l[0].State == StateInMenu
	})
	fromTag, _ := res.From().Params.Get("tag")
	toTag, _ := res.To().Params.Get("tag")
	srv, err := net.ResolveUDPAddr("udp", e.udp)
	if err != nil {
		t.Fatal(err)
	}
	me := attacker.LocalAddr().String()
	send := func(method, extra, body string) string {
		t.Helper()
		msg := method + " sip:matterline@" + e.udp + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + me + ";branch=z9hG4bK" + method + "evil\r\n" +
			"From: " + res.From().Value() + "\r\n" +
			"To: " + res.To().Value() + "\r\n" +
			"Call-ID: " + c.CallID + "\r\n" +
			"CSeq: 900 " + method + "\r\n" +
			"Contact: <sip:evil@" + me + ">\r\n" + extra +
			"Content-Length: " + strconv.Itoa(len(body)) + "\r\n\r\n" + body
		if _, err := attacker.WriteToUDP([]byte(msg), srv); err != nil {
			t.Fatal(err)
		}
		_ = attacker.SetReadDeadline(time.Now().Add(3 * time.Second))
		buf := make([]byte, 4096)
		n, _, err := attacker.ReadFromUDP(buf)
		if err != nil {
			t.Fatalf("%s: no answer: %v", method, err)
		}
		return string(buf[:n])
	}
	if fromTag == "" || toTag == "" {
		t.Fatal("no dialog tags")
	}
	evilSDP := "v=0\r\no=evil 1 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=sendrecv\r\n"
	for _, r := range []struct{ method, extra, body string }{
		{"INFO", "Content-Type: application/dtmf-relay\r\n", "Signal=1\r\nDuration=160\r\n"},
		{"INVITE", "Content-Type: application/sdp\r\n", evilSDP},
		{"BYE", "", ""},
	} {
		if got := send(r.method, r.extra, r.body); !strings.HasPrefix(got, "SIP/2.0 403") {
			t.Errorf("%s from a stranger: %q, want 403", r.method, strings.SplitN(got, "\r\n", 2)[0])
		}
	}
	l := e.srv.Registry().List()
	if len(l) != 1 || l[0].State != StateInMenu || len(l[0].Intents) != 0 {
		t.Fatalf("call after the attack: %+v", l)
	}
	if r, err := c.Bye(ctxT(t, 5*time.Second)); err != nil || r.StatusCode != 200 {
		t.Fatalf("the caller's own BYE: %v %v", r, err)
	}
	e.waitIdle()
}

// floodInvite is INVITE number i of a flood from me (host:port) to target: a
// fresh Call-ID, never ACKed.
func floodInvite(i int, target, me string) string {
	const sdp = "v=0\r\no=f 1 1 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 9 RTP/AVP 0\r\n"
	id := "flood-" + strconv.Itoa(i)
	return "INVITE sip:100@" + target + " SIP/2.0\r\nVia: SIP/2.0/UDP " + me + ";branch=z9hG4bK" + id + "\r\n" +
		"From: <sip:+12175550199@pbx>;tag=" + id + "\r\nTo: <sip:100@x>\r\nCall-ID: " + id + "\r\n" +
		"CSeq: 1 INVITE\r\nContact: <sip:flood@" + me + ">\r\nContent-Type: application/sdp\r\n" +
		"Content-Length: " + strconv.Itoa(len(sdp)) + "\r\n\r\n" + sdp
}

// floodInvites sends n INVITEs with distinct Call-IDs from conn that never ACK,
// and counts the 200s and 503s that come back within wait.
func floodInvites(t *testing.T, conn *net.UDPConn, target string, n int, wait time.Duration) (ok, busy int) {
	t.Helper()
	srv, err := net.ResolveUDPAddr("udp", target)
	if err != nil {
		t.Fatal(err)
	}
	me := conn.LocalAddr().String()
	for i := 0; i < n; i++ {
		if _, err := conn.WriteToUDP([]byte(floodInvite(i, target, me)), srv); err != nil {
			t.Fatal(err)
		}
	}
	buf := make([]byte, 8192)
	seen := map[string]bool{}
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		_ = conn.SetReadDeadline(deadline)
		m, _, err := conn.ReadFromUDP(buf)
		if err != nil {
			break
		}
		msg := string(buf[:m])
		status, _, _ := strings.Cut(msg, "\r\n")
		_, rest, _ := strings.Cut(msg, "Call-ID: ")
		id, _, _ := strings.Cut(rest, "\r\n")
		if seen[id] {
			continue // a retransmitted 200
		}
		switch {
		case strings.HasPrefix(status, "SIP/2.0 200"):
			seen[id] = true
			ok++
		case strings.HasPrefix(status, "SIP/2.0 503"):
			seen[id] = true
			busy++
		}
	}
	return ok, busy
}

// 500 INVITEs that never ACK from one trusted source (127.0.0.2) at once: the
// source's call rate admits a burst only, the rest get 503, and a caller from
// another address is still answered at once.
func TestInviteFloodFromTrustedSourceLimited(t *testing.T) {
	flood, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer flood.Close()
	cfg := defaultTestConfig()
	cfg.MaxCalls = 40
	cfg.InviteRate, cfg.InviteBurst = 5, 10
	e := newEnv(t, cfg)
	ok, busy := floodInvites(t, flood, e.udp, 500, 2*time.Second)
	if ok > 10+5*3 || busy == 0 {
		t.Errorf("flood: %d answered, %d refused with 503; want at most %d answered, the rest refused", ok, busy, 10+5*3)
	}
	start := time.Now()
	_, res := e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 200 {
		t.Fatalf("a legit caller got %d during the flood", res.StatusCode)
	}
	t.Logf("flood: %d answered, %d refused; legit call answered in %s", ok, busy, time.Since(start).Round(time.Millisecond))
	e.srv.HangupAll(ctxT(t, 10*time.Second))
	e.waitIdle()
}

// When the INVITEs that never ACK do fill MaxCalls (a generous call rate), a new
// caller ends the oldest unacknowledged ones after unackedGrace instead of
// waiting 64*T1 for their slots.
func TestUnackedCallsMakeRoomAtTheLimit(t *testing.T) {
	flood, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer flood.Close()
	cfg := defaultTestConfig()
	cfg.MaxCalls = 5
	cfg.InviteRate, cfg.InviteBurst = 1000, 1000
	e := newEnv(t, cfg)
	if ok, _ := floodInvites(t, flood, e.udp, 5, 2*time.Second); ok != 5 {
		t.Fatalf("%d of 5 answered", ok)
	}
	_, res := e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 503 {
		t.Fatalf("at the limit before the grace: %d, want 503", res.StatusCode)
	}
	time.Sleep(unackedGrace + 500*time.Millisecond)
	start := time.Now()
	_, res = e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 200 {
		t.Fatalf("after the grace: %d, want 200 (unacknowledged calls ended)", res.StatusCode)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("answered after %s", d)
	}
	e.srv.HangupAll(ctxT(t, 10*time.Second))
	e.waitIdle()
}

// A trusted source within a generous call rate floods INVITEs that never ACK:
// once half the slots are taken it may hold only minUnackedPerSource answered
// calls awaiting their ACK, so the other half stays free and another caller is
// answered at once, not after unackedGrace.
func TestUnackedCallsPerSourceBounded(t *testing.T) {
	flood, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		t.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	defer flood.Close()
	cfg := defaultTestConfig()
	cfg.MaxCalls = 40
	cfg.InviteRate, cfg.InviteBurst = 1000, 1000
	e := newEnv(t, cfg)
	ok, busy := floodInvites(t, flood, e.udp, 200, 2*time.Second)
	if ok > cfg.MaxCalls/2 || busy == 0 {
		t.Errorf("flood: %d answered, %d refused; want at most %d answered (half the slots), the rest refused", ok, busy, cfg.MaxCalls/2)
	}
	for i := range 3 {
		c, res := e.call(e.phone, phone.InviteOptions{})
		if res.StatusCode != 200 {
			t.Fatalf("legit call %d during the flood: %d", i, res.StatusCode)
		}
		if r, err := c.Bye(ctxT(t, 5*time.Second)); err != nil || r.StatusCode != 200 {
			t.Fatalf("BYE: %v %v", r, err)
		}
	}
	e.srv.HangupAll(ctxT(t, 10*time.Second))
	e.waitIdle()
}

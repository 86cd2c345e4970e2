package sip

import (
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

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

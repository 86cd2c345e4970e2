package sip

import (
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

func freshKey(t *testing.T) ([30]byte, string) {
	t.Helper()
	var k [30]byte
	if _, err := rand.Read(k[:]); err != nil {
		t.Fatal(err)
	}
	return k, base64.StdEncoding.EncodeToString(k[:])
}

// Under media.srtp "require" a plain offer gets 488 through the SIP layer, an
// RTP/SAVP offer is answered in kind and the caller hears the greeting over SRTP.
func TestSRTPRequire(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.SRTP = media.SRTPRequire
	e := newEnv(t, cfg)

	_, res := e.call(e.phone, phone.InviteOptions{})
	if res.StatusCode != 488 {
		t.Fatalf("plain offer: %d %s, want 488", res.StatusCode, res.Reason)
	}

	key, b64 := freshKey(t)
	c := e.answered(phone.InviteOptions{Offer: phone.OfferOptions{Crypto: []string{
		"1 AES_256_CM_HMAC_SHA1_80 inline:" + b64 + b64[:16], // not ours: skipped
		"2 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^31",
	}}})
	ans := c.Answer()
	if ans.Proto != "RTP/SAVP" || len(ans.Crypto) != 1 || ans.Crypto[0].Tag != 2 || ans.Crypto[0].Suite != media.SuiteAES128SHA1_80 {
		t.Fatalf("answer %q %+v", ans.Proto, ans.Crypto)
	}
	if ans.Crypto[0].Key == key {
		t.Fatal("the answer reuses the caller's key")
	}
	if err := c.RTP.SetSRTP(media.SRTPKeys{Suite: media.SuiteAES128SHA1_80, Local: key, Remote: ans.Crypto[0].Key}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 5*time.Second, "greeting heard over srtp", func() bool {
		for _, p := range promptSequence(c.RTP.Packets()) {
			if p == media.PromptGreeting {
				return true
			}
		}
		return false
	})
}

// Under "off" an RTP/SAVP offer gets 488; under "offer" it is answered in kind and
// a plain offer in plain RTP.
func TestSRTPOffAndOffer(t *testing.T) {
	_, b64 := freshKey(t)
	savp := phone.InviteOptions{Offer: phone.OfferOptions{Crypto: []string{"1 AES_CM_128_HMAC_SHA1_32 inline:" + b64}}}

	cfg := defaultTestConfig()
	cfg.SRTP = media.SRTPOff
	e := newEnv(t, cfg)
	if _, res := e.call(e.phone, savp); res.StatusCode != 488 {
		t.Fatalf("srtp off, savp offer: %d %s, want 488", res.StatusCode, res.Reason)
	}

	cfg.SRTP = media.SRTPOffer
	e = newEnv(t, cfg)
	c := e.answered(savp)
	if a := c.Answer(); a.Proto != "RTP/SAVP" || len(a.Crypto) != 1 || a.Crypto[0].Suite != media.SuiteAES128SHA1_32 {
		t.Errorf("srtp offer, savp offer answered %q %+v", a.Proto, a.Crypto)
	}
	c2 := e.answered(phone.InviteOptions{})
	if a := c2.Answer(); a.Proto != "RTP/AVP" || len(a.Crypto) != 0 {
		t.Errorf("srtp offer, plain offer answered %q %+v", a.Proto, a.Crypto)
	}
}

// The per-destination hook: which dial targets get an RTP/SAVP offer under "offer".
func TestWantsSRTP(t *testing.T) {
	uri := func(s string) gosip.Uri {
		var u gosip.Uri
		if err := gosip.ParseUri(s, &u); err != nil {
			t.Fatal(err)
		}
		return u
	}
	for _, tc := range []struct {
		t    transferTarget
		want bool
	}{
		{transferTarget{uri: uri("sip:100@192.0.2.1"), tport: "UDP"}, false},
		{transferTarget{uri: uri("sip:100@192.0.2.1;transport=tcp"), tport: "TCP"}, false},
		{transferTarget{uri: uri("sips:agent@example.com"), tport: "UDP"}, true},
		{transferTarget{uri: uri("sip:agent@example.com;transport=tls"), tport: "UDP"}, true},
		{transferTarget{uri: uri("sip:agent@example.com"), tport: "TLS"}, true},
		{transferTarget{uri: uri("sip:agent@example.com"), tport: "UDP", requireSRTP: true}, true},
	} {
		if got := tc.t.wantsSRTP(); got != tc.want {
			t.Errorf("%s (%s, require %v): %v", tc.t.uri.String(), tc.t.tport, tc.t.requireSRTP, got)
		}
	}
	s := &Server{cfg: Config{SRTP: media.SRTPOffer}}
	if got := s.srtpToward(transferTarget{uri: uri("sips:a@b"), tport: "TLS"}); got != (legSRTP{policy: media.SRTPOffer, offer: true}) {
		t.Errorf("srtpToward %+v", got)
	}
}

// A re-INVITE with a new key rekeys the caller's side and keeps ours (the answer
// carries the same key and matterline's stream still decrypts); a plain re-offer
// under "require" gets 488 and the call goes on.
func TestSRTPReinviteRekey(t *testing.T) {
	cfg := defaultTestConfig()
	cfg.SRTP = media.SRTPRequire
	e := newEnv(t, cfg)
	key, b64 := freshKey(t)
	c := e.answered(phone.InviteOptions{Offer: phone.OfferOptions{Crypto: []string{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64}}})
	ours := c.Answer().Crypto[0].Key
	if err := c.RTP.SetSRTP(media.SRTPKeys{Suite: media.SuiteAES128SHA1_80, Local: key, Remote: ours}); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 10*time.Second)

	key2, b64two := freshKey(t)
	res, err := c.Reinvite(ctx, phone.Offer(c.RTP.Addr(), phone.OfferOptions{Version: 2,
		Crypto: []string{"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64two}}), 0)
	if err != nil || res.StatusCode != 200 {
		t.Fatalf("rekey re-INVITE: %v %v", res, err)
	}
	d, err := media.ParseSDP(res.Body())
	if err != nil || d.Proto != "RTP/SAVP" || len(d.Crypto) != 1 || d.Crypto[0].Key != ours {
		t.Fatalf("answer to the rekey: %v %q %+v", err, d.Proto, d.Crypto)
	}
	if err := c.RTP.SetSRTP(media.SRTPKeys{Suite: media.SuiteAES128SHA1_80, Local: key2, Remote: ours}); err != nil {
		t.Fatal(err)
	}
	n := c.RTP.Count()
	if !c.RTP.WaitPackets(n+10, 5*time.Second) {
		t.Fatal("no media after the rekey")
	}
	if f := c.RTP.SRTPFailures(); f != 0 {
		t.Errorf("%d packets from matterline failed authentication", f)
	}

	res, err = c.Reinvite(ctx, phone.Offer(c.RTP.Addr(), phone.OfferOptions{Version: 3}), 0)
	if err != nil || res.StatusCode != 488 {
		t.Fatalf("plain re-INVITE under require: %v %v", res, err)
	}
	n = c.RTP.Count()
	if !c.RTP.WaitPackets(n+10, 5*time.Second) || c.RTP.SRTPFailures() != 0 {
		t.Errorf("media after the refused downgrade: %d failures", c.RTP.SRTPFailures())
	}
}

// A rule's srtp setting decides the outbound offer toward its destination, under
// media.srtp "offer": on offers RTP/SAVP with a key (and a plain answer fails the
// transfer: the callee here answers plain RTP), default and off offer RTP/AVP.
func TestRuleSRTPDecidesTheOffer(t *testing.T) {
	for _, tc := range []struct {
		name   string
		toggle routing.Toggle
		savp   bool
	}{
		{"on", routing.ToggleOn, true},
		{"default", routing.ToggleDefault, false},
		{"off", routing.ToggleOff, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			callee := newCallee(t, phone.AnswerOptions{})
			rule := warmRule("felix", calleeURI(callee, "101"), "")
			rule.SRTP = tc.toggle
			cdr := &memCDR{}
			cfg := transferConfig()
			cfg.SRTP = media.SRTPOffer
			e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
			c := e.dialTransfer(e.phone, phone.InviteOptions{})
			in, err := callee.Next(ctxT(t, 8*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			body := string(in.Invite.Body())
			savp := strings.Contains(body, " RTP/SAVP ") && strings.Contains(body, "a=crypto:")
			if savp != tc.savp {
				t.Fatalf("offer toward the destination: SAVP %v, want %v:\n%s", savp, tc.savp, body)
			}
			if tc.savp {
				// The callee answered plain RTP to a required SRTP offer: the
				// transfer fails, the unavailable handling (hangup) runs.
				if err := c.WaitBye(ctxT(t, 10*time.Second)); err != nil {
					t.Fatal(err)
				}
				if rec := cdr.wait(t, c.CallID); rec.Outcome == records.OutcomeBridged {
					t.Errorf("bridged with a destination that refused SRTP: %+v", rec)
				}
			} else {
				e.waitState(c.CallID, StateBridged)
				if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
					t.Fatal(err)
				}
			}
			e.waitIdle()
		})
	}
}

package sip

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

func coldRule(dest string) *routing.Rule {
	return &routing.Rule{Name: "felix", Destination: dest, Mode: routing.ModeCold,
		CallerID: routing.CallerIDCaller, Enabled: true,
		Unavailable: routing.Unavailable{Kind: routing.UnavailableHangup}}
}

func warmRule(name, dest, accept string) *routing.Rule {
	return &routing.Rule{Name: name, Destination: dest, Mode: routing.ModeWarm,
		CallerID: routing.CallerIDCaller, AcceptDigit: accept, RingTimeout: 2 * time.Second, Enabled: true,
		Whisper:     "Call from {caller_name}, matter {matter}",
		Unavailable: routing.Unavailable{Kind: routing.UnavailableHangup}}
}

func TestColdTransferReferSuccess(t *testing.T) {
	t.Parallel()
	cfg := transferConfig()
	cfg.OutboundProxy = "sip:127.0.0.1:5070"
	cdr := &memCDR{}
	rule := coldRule("+15551234567")
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	pbx := e.newReferPBX(202, "SIP/2.0 100 Trying", "SIP/2.0 200 OK")
	c := pbx.dial(e)

	var refer *gosip.Request
	select {
	case refer = <-pbx.refers:
	case <-time.After(5 * time.Second):
		t.Fatal("no refer")
	}
	if got, want := headerValue(refer, "Refer-To"), "<sip:+15551234567@127.0.0.1:5070>"; got != want {
		t.Errorf("Refer-To = %q, want %q", got, want)
	}
	by := headerValue(refer, "Referred-By")
	if u, _ := userOf(by); u != testService {
		t.Errorf("Referred-By = %q, want the service number", by)
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
	if bye == nil || bye.CSeq().SeqNo <= refer.CSeq().SeqNo {
		t.Errorf("bye cseq not above the refer's %d", refer.CSeq().SeqNo)
	}
	rec := cdr.wait(t, c.CallID)
	if rec.Outcome != records.OutcomeReferred || rec.EndReason != records.EndTransferred ||
		rec.Mode != routing.ModeCold || rec.Rule != "felix" || rec.Destination != "+15551234567" {
		t.Errorf("record = %+v", rec)
	}
	if len(rec.Intents) != 1 || rec.Intents[0] != "responsible" || rec.Answer.IsZero() {
		t.Errorf("record intents/answer = %v %v", rec.Intents, rec.Answer)
	}
	e.waitIdle()
}

func TestColdTransferTelReferURI(t *testing.T) {
	t.Parallel()
	cfg := transferConfig()
	cfg.OutboundProxy = "sip:127.0.0.1:5070"
	cfg.ReferURI = ReferURITel
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(coldRule("+15551234567")))))
	pbx := e.newReferPBX(202, "SIP/2.0 200 OK")
	c := pbx.dial(e)
	refer := <-pbx.refers
	if got := headerValue(refer, "Refer-To"); got != "<tel:+15551234567>" {
		t.Errorf("Refer-To = %q", got)
	}
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
}

// coldFallback runs a cold transfer whose REFER fails as the PBX says and checks
// that the bridged fallback reaches the callee with audio both ways.
func coldFallback(t *testing.T, status int, sipfrags ...string) {
	t.Parallel()
	callee := newCallee(t, phone.AnswerOptions{})
	cfg := transferConfig()
	cdr := &memCDR{}
	rule := coldRule(calleeURI(callee, "101"))
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	pbx := e.newReferPBX(status, sipfrags...)
	c := pbx.dial(e)
	select {
	case <-pbx.refers:
	case <-time.After(5 * time.Second):
		t.Fatal("no refer")
	}
	in, err := callee.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !in.WaitAcked(5 * time.Second) {
		t.Fatal("callee got no ack")
	}
	e.waitState(c.CallID, StateBridged)
	checkBridgeAudio(t, c, 0, in)
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.Bye:
	case <-time.After(5 * time.Second):
		t.Fatal("callee got no bye after the caller hung up")
	}
	rec := cdr.wait(t, c.CallID)
	if rec.Outcome != records.OutcomeBridged || rec.EndReason != records.EndCallerBye || rec.Mode != routing.ModeCold {
		t.Errorf("record = %+v", rec)
	}
	e.waitIdle()
}

func TestColdReferRejected405FallsBackToBridge(t *testing.T) { coldFallback(t, 405) }

func TestColdReferSipfrag503FallsBackToBridge(t *testing.T) {
	coldFallback(t, 202, "SIP/2.0 100 Trying", "SIP/2.0 503 Service Unavailable")
}

// 202 and then no NOTIFY: the REFER times out (Config.ReferTimeout) and falls back.
func TestColdReferTimeoutFallsBackToBridge(t *testing.T) { coldFallback(t, 202) }

func TestColdReferFallbackNoneRunsUnavailable(t *testing.T) {
	t.Parallel()
	cfg := transferConfig()
	cfg.OutboundProxy = "sip:127.0.0.1:5070"
	cfg.TransferFallback = FallbackNone
	cdr := &memCDR{}
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(coldRule("+15551234567")))), WithCallRecords(cdr))
	pbx := e.newReferPBX(501)
	c := pbx.dial(e)
	// Unavailable handling "hangup": goodbye and BYE.
	if err := c.WaitBye(ctxT(t, 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(promptSequence(c.RTP.Packets()), media.PromptGoodbye) {
		t.Error("no goodbye")
	}
	rec := cdr.wait(t, c.CallID)
	if rec.Outcome != records.OutcomeFailed || rec.EndReason != records.EndOurBye {
		t.Errorf("record = %+v", rec)
	}
}

func TestWarmTransferAcceptAndBridge(t *testing.T) {
	for _, tc := range []struct {
		name           string
		callerFormats  []string
		callerPT       uint8
		calleeCodec    media.Codec
		acceptWithInfo bool
	}{
		{"pcmu-pcmu-rfc4733", nil, 0, media.PCMU, false},
		{"pcmu-pcma-info", []string{"0 PCMU/8000", "101 telephone-event/8000"}, 0, media.PCMA, true},
		{"pcma-pcmu", []string{"8 PCMA/8000", "101 telephone-event/8000"}, 8, media.PCMU, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			callee := newCallee(t, phone.AnswerOptions{Codec: tc.calleeCodec, RingFor: 200 * time.Millisecond})
			cdr := &memCDR{}
			rule := warmRule("felix", calleeURI(callee, "101"), "1")
			e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
			c := e.dialTransfer(e.phone, phone.InviteOptions{Offer: phone.OfferOptions{Formats: tc.callerFormats}})
			in, err := callee.Next(ctxT(t, 8*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if !in.WaitAcked(5 * time.Second) {
				t.Fatal("no ack")
			}
			// The caller hears ringback while the callee rings and hears the whisper.
			time.Sleep(300 * time.Millisecond)
			if tc.acceptWithInfo {
				res, err := in.InfoDTMF(ctxT(t, 5*time.Second), '1')
				if err != nil || res.StatusCode != 200 {
					t.Fatalf("info: %v %v", res, err)
				}
			} else if err := in.SendDTMF('1'); err != nil {
				t.Fatal(err)
			}
			e.waitState(c.CallID, StateBridged)
			checkBridgeAudio(t, c, tc.callerPT, in)
			// The callee hangs up: the caller gets BYE.
			if _, err := in.HangUp(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			rec := cdr.wait(t, c.CallID)
			if rec.Outcome != records.OutcomeBridged || rec.EndReason != records.EndCalleeBye ||
				rec.Mode != routing.ModeWarm || rec.Rule != "felix" {
				t.Errorf("record = %+v", rec)
			}
			e.waitIdle()
		})
	}
}

func TestWarmTransferDeclined(t *testing.T) {
	for _, tc := range []struct {
		name  string
		digit rune // 0: none (accept timeout)
	}{{"wrong-digit", '2'}, {"timeout", 0}} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			callee := newCallee(t, phone.AnswerOptions{})
			cdr := &memCDR{}
			rule := warmRule("felix", calleeURI(callee, "101"), "1")
			e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
			c := e.dialTransfer(e.phone, phone.InviteOptions{})
			in, err := callee.Next(ctxT(t, 8*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			if !in.WaitAcked(5 * time.Second) {
				t.Fatal("no ack")
			}
			if tc.digit != 0 {
				if err := in.SendDTMF(tc.digit); err != nil {
					t.Fatal(err)
				}
			}
			select {
			case <-in.Bye:
			case <-time.After(6 * time.Second):
				t.Fatal("declined callee got no bye")
			}
			// Unavailable handling hangup: goodbye, then BYE to the caller.
			if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			rec := cdr.wait(t, c.CallID)
			if rec.Outcome != records.OutcomeDeclined || rec.EndReason != records.EndOurBye {
				t.Errorf("record = %+v", rec)
			}
			e.waitIdle()
		})
	}
}

func TestWarmBusyFallsBackToNextRule(t *testing.T) {
	t.Parallel()
	busy := newCallee(t, phone.AnswerOptions{Status: 486})
	para := newCallee(t, phone.AnswerOptions{})
	cdr := &memCDR{}
	felix := warmRule("felix", calleeURI(busy, "101"), "")
	felix.Unavailable = routing.Unavailable{Kind: routing.UnavailableRule, Rule: "paralegal"}
	paralegal := warmRule("paralegal", calleeURI(para, "102"), "")
	r := newFakeRouter(transferDecision(felix))
	r.fallbacks = map[string]routing.Decision{"felix": transferDecision(paralegal)}
	e := newEnv(t, transferConfig(), WithRouter(r), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	if _, err := busy.Next(ctxT(t, 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	in, err := para.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateBridged)
	checkBridgeAudio(t, c, 0, in)
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	rec := cdr.wait(t, c.CallID)
	if rec.Outcome != records.OutcomeBridged || rec.Rule != "paralegal" {
		t.Errorf("record = %+v", rec)
	}
	e.waitIdle()
}

func TestWarmBusyOutcome(t *testing.T) {
	t.Parallel()
	busy := newCallee(t, phone.AnswerOptions{Status: 486})
	cdr := &memCDR{}
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(warmRule("felix", calleeURI(busy, "101"), "")))), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	if err := c.WaitBye(ctxT(t, 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if rec := cdr.wait(t, c.CallID); rec.Outcome != records.OutcomeBusy {
		t.Errorf("record = %+v", rec)
	}
}

func TestCallerHangsUpWhileCalleeRings(t *testing.T) {
	t.Parallel()
	callee := newCallee(t, phone.AnswerOptions{NoAnswer: true})
	cdr := &memCDR{}
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(warmRule("felix", calleeURI(callee, "101"), "")))), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	in, err := callee.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	time.Sleep(200 * time.Millisecond) // ringing (180 in)
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	select {
	case <-in.Cancelled:
	case <-time.After(5 * time.Second):
		t.Fatal("callee got no cancel")
	}
	rec := cdr.wait(t, c.CallID)
	if rec.Outcome != records.OutcomeAbandoned || rec.EndReason != records.EndCallerBye {
		t.Errorf("record = %+v", rec)
	}
	e.waitIdle()
}

func TestWarmCallerIDHeaders(t *testing.T) {
	for _, tc := range []struct {
		name          string
		choice        routing.CallerID
		wantFrom      string
		wantDiversion string
	}{
		{"caller", routing.CallerIDCaller, testCaller, testService},
		{"service", routing.CallerIDService, testService, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			callee := newCallee(t, phone.AnswerOptions{Status: 603})
			cdr := &memCDR{}
			rule := warmRule("felix", "+15551234567", "")
			rule.CallerID = tc.choice
			cfg := transferConfig()
			cfg.OutboundProxy = "sip:" + callee.Addr().String()
			e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
			c := e.dialTransfer(e.phone, phone.InviteOptions{})
			in, err := callee.Next(ctxT(t, 8*time.Second))
			if err != nil {
				t.Fatal(err)
			}
			inv := in.Invite
			if inv.Recipient.User != "+15551234567" || inv.Recipient.Host != "127.0.0.1" {
				t.Errorf("request uri = %s, want the number at the proxy", inv.Recipient.String())
			}
			if inv.From().Address.User != tc.wantFrom {
				t.Errorf("From = %s, want %s", inv.From().Value(), tc.wantFrom)
			}
			if u, _ := userOf(headerValue(inv, "P-Asserted-Identity")); u != tc.wantFrom {
				t.Errorf("P-Asserted-Identity = %q", headerValue(inv, "P-Asserted-Identity"))
			}
			div := headerValue(inv, "Diversion")
			if u, _ := userOf(div); u != tc.wantDiversion {
				t.Errorf("Diversion = %q, want user %q", div, tc.wantDiversion)
			}
			if err := c.WaitBye(ctxT(t, 8*time.Second)); err != nil {
				t.Fatal(err)
			}
			if rec := cdr.wait(t, c.CallID); rec.Outcome != records.OutcomeDeclined {
				t.Errorf("record = %+v", rec)
			}
		})
	}
}

func TestRedirectModeAnswers302(t *testing.T) {
	t.Parallel()
	cfg := transferConfig()
	cfg.Mode = ModeRedirect
	cfg.OutboundProxy = "sip:127.0.0.1:5070"
	cdr := &memCDR{}
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(coldRule("+15551234567")))), WithCallRecords(cdr))
	c, res := e.call(e.phone, phone.InviteOptions{From: testCaller})
	if res.StatusCode != 302 {
		t.Fatalf("got %d, want 302", res.StatusCode)
	}
	if ct := res.Contact(); ct == nil || ct.Address.String() != "sip:+15551234567@127.0.0.1:5070" {
		t.Errorf("Contact = %v", res.Contact())
	}
	rec := cdr.wait(t, c.CallID)
	if rec.Outcome != records.OutcomeRedirected || rec.Rule != "felix" || rec.EndReason != records.EndRejected {
		t.Errorf("record = %+v", rec)
	}
	// Without a transfer decision the call is answered as usual.
	r2 := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNotFound})
	e2 := newEnv(t, cfg, WithRouter(r2))
	if _, res := e2.call(e2.phone, phone.InviteOptions{}); res.StatusCode != 200 {
		t.Fatalf("got %d, want 200", res.StatusCode)
	}
}

func TestServerTransferAPI(t *testing.T) {
	t.Parallel()
	callee := newCallee(t, phone.AnswerOptions{})
	r := newFakeRouter(transferDecision(warmRule("felix", calleeURI(callee, "101"), "")))
	e := newEnv(t, transferConfig(), WithRouter(r))
	if _, err := e.srv.Transfer(context.Background(), "nope", routing.Intent{Kind: routing.IntentResponsible}); !errors.Is(err, ErrCallNotFound) {
		t.Errorf("unknown call: %v", err)
	}
	c := e.answered(phone.InviteOptions{From: testCaller})
	id := e.onlyCall().ID
	dec, err := e.srv.Transfer(context.Background(), id, routing.Intent{Kind: routing.IntentRule, Arg: "felix"})
	if err != nil || dec.Action != routing.ActionTransfer || dec.Rule != "felix" {
		t.Fatalf("transfer: %+v %v", dec, err)
	}
	if _, err := callee.Next(ctxT(t, 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateBridged)
	if _, err := e.srv.Transfer(context.Background(), id, routing.Intent{Kind: routing.IntentOperator}); !errors.Is(err, ErrCallState) {
		t.Errorf("bridged call: %v, want ErrCallState", err)
	}
	if snap := e.onlyCall(); len(snap.Intents) != 1 || snap.Intents[0].Kind != routing.IntentRule {
		t.Errorf("intents = %v", snap.Intents)
	}
}

func TestParseSipfrag(t *testing.T) {
	for _, tc := range []struct {
		ct, body string
		want     int
		err      bool
	}{
		{"message/sipfrag", "SIP/2.0 200 OK\r\n", 200, false},
		{"message/sipfrag;version=2.0", "SIP/2.0 100 Trying", 100, false},
		{"", "SIP/2.0 503 Service Unavailable\r\nContent-Length: 0\r\n", 503, false},
		{"message/sipfrag", "INVITE sip:x SIP/2.0", 0, true},
		{"message/sipfrag", "SIP/2.0 99 Bad", 0, true},
		{"text/plain", "SIP/2.0 200 OK", 0, true},
		{"message/sipfrag", "", 0, true},
	} {
		got, err := sipfragStatus(tc.ct, []byte(tc.body))
		if (err != nil) != tc.err || got != tc.want {
			t.Errorf("sipfragStatus(%q, %q) = %d, %v", tc.ct, tc.body, got, err)
		}
	}
}

func TestReferToAndTargets(t *testing.T) {
	s := &Server{cfg: Config{OutboundProxy: "sip:10.0.0.1:5070;transport=tcp", ReferURI: ReferURISIP}}
	for _, tc := range []struct{ dest, want string }{
		{"+15551234567", "sip:+15551234567@10.0.0.1:5070"},
		{"101", "sip:101@10.0.0.1:5070"},
		{"sip:felix@pbx.example.com", "sip:felix@pbx.example.com"},
	} {
		got, err := s.referTo(tc.dest)
		if err != nil || got != tc.want {
			t.Errorf("referTo(%q) = %q, %v; want %q", tc.dest, got, err, tc.want)
		}
	}
	if tgt, err := s.targetFor("+15551234567"); err != nil || tgt.dest != "10.0.0.1:5070" || tgt.tport != "TCP" {
		t.Errorf("target = %+v, %v", tgt, err)
	}
	if _, err := s.referTo("sip:<bad>"); !errors.Is(err, ErrBadDestination) {
		t.Errorf("bad destination: %v", err)
	}
	s.cfg.OutboundProxy = ""
	if _, err := s.referTo("+15551234567"); !errors.Is(err, ErrNoOutboundProxy) {
		t.Errorf("no proxy: %v", err)
	}
	for _, bad := range []string{"sip:", "::::"} {
		if _, err := parseProxy(bad); err == nil {
			t.Errorf("parseProxy(%q) accepted", bad)
		}
	}
	_ = fmt.Sprint()
}

// Hold re-INVITEs are reflected to the other leg (RFC 3264 §8.4).
func TestWarmHoldReflected(t *testing.T) {
	t.Parallel()
	callee := newCallee(t, phone.AnswerOptions{})
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(warmRule("felix", calleeURI(callee, "101"), "")))))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	in, err := callee.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateBridged)

	// The caller holds: the callee gets a re-INVITE with a=sendonly.
	hold := phone.Offer(c.RTP.Addr(), phone.OfferOptions{Direction: media.DirSendOnly, Version: 2})
	if res, err := c.Reinvite(ctxT(t, 5*time.Second), hold, 0); err != nil || res.StatusCode != 200 {
		t.Fatalf("hold: %v %v", res, err)
	}
	// Reflected, and our re-INVITE complete (its ACK sent): a re-INVITE from the
	// callee before that would be glare (491, RFC 3261 §14.1).
	eventually(t, 5*time.Second, "hold reflected to the callee and acked", func() bool {
		var seq uint32
		for _, r := range in.Requests() {
			if r.IsInvite() && strings.Contains(string(r.Body()), "a=sendonly") {
				seq = r.CSeq().SeqNo
			}
			if seq != 0 && r.IsAck() && r.CSeq().SeqNo == seq {
				return true
			}
		}
		return false
	})

	// The callee holds: the caller gets a re-INVITE with a=sendonly.
	calleeHold := phone.Offer(in.RTP.Addr(), phone.OfferOptions{Formats: []string{"0 PCMU/8000"}, Direction: media.DirSendOnly, Version: 2})
	if res, err := in.Request(ctxT(t, 5*time.Second), gosip.INVITE, "application/sdp", calleeHold); err != nil || res.StatusCode != 200 {
		t.Fatalf("callee hold: %v %v", res, err)
	}
	// The caller still holds too: both holding is inactive (RFC 6337 §5.3).
	eventually(t, 5*time.Second, "hold reflected to the caller", func() bool {
		for _, r := range c.Requests() {
			if r.IsInvite() && strings.Contains(string(r.Body()), "a=inactive") {
				return true
			}
		}
		return false
	})
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

// The rule's message before the transfer plays first (its audio file here), and
// the unavailable handling "menu" returns the caller to the menu.
func TestMessageBeforeTransferAndMenuHandling(t *testing.T) {
	t.Parallel()
	busy := newCallee(t, phone.AnswerOptions{Status: 486})
	wav := filepath.Join(t.TempDir(), "msg.wav")
	writeWAV(t, wav, 27000, 300*time.Millisecond)
	rule := warmRule("felix", calleeURI(busy, "101"), "")
	rule.MessageAudio = wav
	rule.Unavailable = routing.Unavailable{Kind: routing.UnavailableMenu}
	cdr := &memCDR{}
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	eventually(t, 8*time.Second, "message, then nobody_available and the menu", func() bool {
		pkts := c.RTP.Packets()
		msg := slices.IndexFunc(pkts, func(p phone.RTPPacket) bool {
			return len(p.Payload) > 0 && p.Payload[0] == media.EncodeUlaw(27000)
		})
		seq := promptSequence(pkts)
		i := slices.Index(seq, media.PromptNobody)
		return msg >= 0 && i > 0 && i+1 < len(seq) && seq[i+1] == media.PromptGreeting
	})
	if s := e.onlyCall(); s.State != StateInMenu {
		t.Errorf("state = %s, want in_menu", s.State)
	}
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	if rec := cdr.wait(t, c.CallID); rec.Outcome != records.OutcomeBusy || rec.EndReason != records.EndCallerBye {
		t.Errorf("record = %+v", rec)
	}
}

// A warm transfer dials the destination as soon as the digit arrives: the
// INVITE goes out while the rule's message still plays to the caller, and the
// whisper waits for both the answer and the message's end.
func TestWarmDialsWhileTheMessagePlays(t *testing.T) {
	t.Parallel()
	const msgLen = 2 * time.Second
	callee := newCallee(t, phone.AnswerOptions{})
	wav := filepath.Join(t.TempDir(), "msg.wav")
	writeWAV(t, wav, 27000, msgLen)
	rule := warmRule("felix", calleeURI(callee, "101"), "1")
	rule.MessageAudio = wav
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	digit := time.Now()
	in, err := callee.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	// Before: the whole message first (1.97 s here). Half of it is a bound
	// no scheduler hiccup reaches, yet one the old order cannot meet.
	if d := time.Since(digit); d >= msgLen/2 {
		t.Fatalf("the destination's INVITE came %s after the digit: after the %s message, not while it played", d, msgLen)
	}
	msgByte := media.EncodeUlaw(27000)
	isMsg := func(p phone.RTPPacket) bool { return len(p.Payload) > 0 && p.Payload[0] == msgByte }
	// The INVITE may beat the first message packet; the message plays all
	// the same.
	eventually(t, 3*time.Second, "the rule's message playing", func() bool { return slices.ContainsFunc(c.RTP.Packets(), isMsg) })
	if !in.WaitAcked(5 * time.Second) {
		t.Fatal("no ack")
	}
	// The callee answered at once; the whisper starts once the message ended.
	if !in.RTP.WaitPackets(5, 8*time.Second) {
		t.Fatal("the callee heard no whisper")
	}
	pkts := c.RTP.Packets()
	var lastMsg time.Time
	for _, p := range pkts {
		if isMsg(p) {
			lastMsg = p.At
		}
	}
	first := in.RTP.Packets()[0].At
	if first.Before(lastMsg.Add(-60 * time.Millisecond)) {
		t.Errorf("the whisper started %s before the caller's message ended", lastMsg.Sub(first))
	}
	if err := in.SendDTMF('1'); err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateBridged)
	checkBridgeAudio(t, c, 0, in)
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

package sip

// sipp interop scenarios of the call core (RFC 3261, 3264, 6337): hold and
// resume with and without SDP, late offer, multi-stream offers, REFER answered
// 481, and the outbound leg's forked and retransmitted 2xx, 401/407 challenges,
// early media and CANCEL timing. Run alone with
//
//	go test -run 'TestSipp' -v ./sip/
//
// Each test needs sipp (Debian sip-tester): skipped without it unless CI=true.
// Every assertion is made on the messages sipp logged (-message_file) or on the
// RTP a Go endpoint received, never on sipp's exit status alone.

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

func noRuleRouter() *fakeRouter {
	return newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
}

// menuLoopConfig keeps the greeting coming back (1 s of silence after each
// greeting, many attempts) so there is always audio from matterline to look for.
func menuLoopConfig() Config {
	cfg := defaultTestConfig()
	cfg.MenuTimeout = time.Second
	cfg.MenuAttempts = 30
	return cfg
}

// inviteOKs returns the 200 OKs sipp received for its INVITEs, one per CSeq, in
// CSeq order, failing unless there is exactly one for each of seqs.
func inviteOKs(t *testing.T, p *sippProc, msgs []sippMsg, seqs ...uint32) []sippMsg {
	t.Helper()
	var out []sippMsg
	for _, seq := range seqs {
		finals := filterMsgs(responsesTo(msgs, false, "INVITE", seq, 0), func(m sippMsg) bool { return m.Status >= 200 })
		if len(finals) == 0 {
			t.Fatalf("no final response to INVITE CSeq %d\nmessages:\n%s\n%s", seq, dumpMsgs(msgs), p.diag())
		}
		if finals[0].Status != 200 {
			t.Fatalf("INVITE CSeq %d answered %d, want 200\n%s\nmessages:\n%s", seq, finals[0].Status, finals[0].Raw, dumpMsgs(msgs))
		}
		out = append(out, finals[0])
	}
	return out
}

func mustSDP(t *testing.T, m sippMsg, what string) sdpDesc {
	t.Helper()
	d, err := parseSDP(m.Body)
	if err != nil {
		t.Fatalf("%s: %v\n%s", what, err, m.Raw)
	}
	if len(d.Media) == 0 {
		t.Fatalf("%s: no m= line\n%s", what, m.Raw)
	}
	return d
}

func sentRequest(t *testing.T, msgs []sippMsg, method string, seq uint32) sippMsg {
	t.Helper()
	for _, m := range requests(msgs, true, method) {
		if n, _ := m.CSeq(); n == seq {
			return m
		}
	}
	t.Fatalf("sipp sent no %s with CSeq %d\n%s", method, seq, dumpMsgs(msgs))
	return sippMsg{}
}

// sippDone waits for sipp and reports a failed run (after the message checks,
// which say more).
func sippDone(t *testing.T, p *sippProc, d time.Duration) error {
	t.Helper()
	err := p.wait(d)
	if err != nil {
		t.Logf("sipp exited with %v", err)
	}
	return err
}

// 1. Hold and resume with SDP offers: answers recvonly then sendrecv, o= version
// +1 per change (RFC 3264 §8, §8.4).
func TestSippHoldResumeSDP(t *testing.T) {
	e := newEnv(t, defaultTestConfig(), WithRouter(noRuleRouter()))
	p := startSipp(t, sippOpts{scenario: "uac_hold_resume_sdp.xml", remote: e.udp})
	sippErr := sippDone(t, p, 30*time.Second)
	msgs := p.messages()
	oks := inviteOKs(t, p, msgs, 1, 2, 3)
	d1, d2, d3 := mustSDP(t, oks[0], "initial answer"), mustSDP(t, oks[1], "hold answer"), mustSDP(t, oks[2], "resume answer")
	if got := d1.Direction(0); got != "sendrecv" {
		t.Errorf("initial answer direction %q, want sendrecv", got)
	}
	if got := d2.ExplicitDirection(0); got != "recvonly" {
		t.Errorf("answer to a=sendonly says %q, want a=recvonly (RFC 3264 §6.1)\n%s", got, oks[1].Body)
	}
	if got := d3.Direction(0); got != "sendrecv" {
		t.Errorf("answer to the resume says %q, want sendrecv\n%s", got, oks[2].Body)
	}
	if d2.SessID != d1.SessID || d3.SessID != d1.SessID || d2.OriginUser != d1.OriginUser {
		t.Errorf("o= session changed: %q/%q, %q/%q, %q/%q", d1.OriginUser, d1.SessID, d2.OriginUser, d2.SessID, d3.OriginUser, d3.SessID)
	}
	if d2.Version != d1.Version+1 || d3.Version != d2.Version+1 {
		t.Errorf("o= versions %d, %d, %d: want +1 per changed answer (RFC 3264 §8)", d1.Version, d2.Version, d3.Version)
	}
	for i, d := range []sdpDesc{d1, d2, d3} {
		if len(d.Media) != 1 || d.Media[0].Port == 0 || !d.Media[0].HasCodec("PCMU") {
			t.Errorf("answer %d: media %+v, want one audio line with PCMU", i+1, d.Media)
		}
	}
	if len(responsesTo(msgs, false, "BYE", 4, 200)) != 1 {
		t.Errorf("BYE not answered 200\n%s", dumpMsgs(msgs))
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, p.diag())
	}
	e.waitIdle()
}

// 2. Hold, then resume with an offerless re-INVITE: matterline's 200 is a full
// offer (sendrecv, PCMU, PCMA, telephone-event), the answer comes in the ACK and
// audio from matterline reaches the caller again.
func TestSippHoldResumeNoSDP(t *testing.T) {
	e := newEnv(t, menuLoopConfig(), WithRouter(noRuleRouter()))
	rtp := newRTPEndpoint(t)
	rtp.sendPCMU(media.EncodeUlaw(-3000)) // the caller talks all along (sendonly while holding)
	p := startSipp(t, sippOpts{scenario: "uac_hold_resume_nosdp.xml", remote: e.udp,
		keys: map[string]string{"rtp_port": strconv.Itoa(rtp.port())}})
	sippErr := sippDone(t, p, 30*time.Second)
	msgs := p.messages()
	oks := inviteOKs(t, p, msgs, 1, 2, 3)
	d1, d2 := mustSDP(t, oks[0], "initial answer"), mustSDP(t, oks[1], "hold answer")
	if got := d2.ExplicitDirection(0); got != "recvonly" {
		t.Errorf("answer to a=sendonly says %q, want a=recvonly", got)
	}
	if strings.TrimSpace(oks[2].Body) == "" {
		t.Fatalf("200 to an offerless re-INVITE has no SDP offer (RFC 3261 §14.2)\n%s", oks[2].Raw)
	}
	offer := mustSDP(t, oks[2], "offer in the 200")
	if len(offer.Media) != 1 || offer.Media[0].Kind != "audio" || offer.Media[0].Port == 0 {
		t.Errorf("offer media %+v, want one audio line with a port", offer.Media)
	}
	if got := offer.Direction(0); got != "sendrecv" {
		t.Errorf("offer after hold says %q, want a=sendrecv (RFC 6337 §5.3: the offerer may resume)\n%s", got, oks[2].Body)
	}
	for _, c := range []string{"PCMU", "PCMA", "telephone-event"} {
		if !offer.Media[0].HasCodec(c) {
			t.Errorf("offer lacks %s: m=%v %v\n%s", c, offer.Media[0].Fmts, offer.Media[0].Codecs(), oks[2].Body)
		}
	}
	if offer.SessID != d1.SessID || offer.Version <= d2.Version {
		t.Errorf("offer o= %s/%d after %s/%d: want the same session, a higher version", offer.SessID, offer.Version, d2.SessID, d2.Version)
	}

	ack1 := sentRequest(t, msgs, "ACK", 1)
	hold := sentRequest(t, msgs, "INVITE", 2)
	reinv := sentRequest(t, msgs, "INVITE", 3)
	ack3 := sentRequest(t, msgs, "ACK", 3)
	bye := sentRequest(t, msgs, "BYE", 4)
	if n := countPrompt(rtp.packets(ack1.At, hold.At), media.PromptGreeting); n < 10 {
		t.Errorf("before hold the caller got %d greeting packets, want >= 10 (setup)", n)
	}
	if n := len(rtp.packets(oks[1].At.Add(150*time.Millisecond), reinv.At)); n > 2 {
		t.Errorf("while held (we sendonly, matterline recvonly) matterline sent %d packets, want none", n)
	}
	after := rtp.packets(ack3.At, bye.At)
	if n := countPrompt(after, media.PromptGreeting); n < 25 {
		t.Errorf("after the resume (answer in the ACK) the caller got %d greeting packets in %s (%d packets in all), want >= 25",
			n, bye.At.Sub(ack3.At).Round(time.Millisecond), len(after))
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, p.diag())
	}
	e.waitIdle()
}

// 3. Late offer: INVITE without SDP, offer in the 200, answer in the ACK, then
// the greeting at the address of the answer.
func TestSippLateOffer(t *testing.T) {
	e := newEnv(t, menuLoopConfig(), WithRouter(noRuleRouter()))
	rtp := newRTPEndpoint(t)
	p := startSipp(t, sippOpts{scenario: "uac_late_offer.xml", remote: e.udp,
		keys: map[string]string{"rtp_port": strconv.Itoa(rtp.port())}})
	sippErr := sippDone(t, p, 30*time.Second)
	msgs := p.messages()
	oks := inviteOKs(t, p, msgs, 1)
	if strings.TrimSpace(oks[0].Body) == "" {
		t.Fatalf("200 to an INVITE without SDP carries no offer (RFC 3261 §13.2.1)\n%s", oks[0].Raw)
	}
	offer := mustSDP(t, oks[0], "offer in the 200")
	if len(offer.Media) != 1 || offer.Media[0].Kind != "audio" || offer.Media[0].Port == 0 || offer.Media[0].Proto != "RTP/AVP" {
		t.Errorf("offer media %+v, want one RTP/AVP audio line with a port", offer.Media)
	}
	for _, c := range []string{"PCMU", "PCMA", "telephone-event"} {
		if !offer.Media[0].HasCodec(c) {
			t.Errorf("offer lacks %s: %v", c, offer.Media[0].Codecs())
		}
	}
	if got := offer.Direction(0); got != "sendrecv" {
		t.Errorf("offer direction %q, want sendrecv", got)
	}
	ack := sentRequest(t, msgs, "ACK", 1)
	bye := sentRequest(t, msgs, "BYE", 2)
	if n := countPrompt(rtp.packets(ack.At, bye.At), media.PromptGreeting); n < 20 {
		t.Errorf("caller got %d greeting packets at the ACK's address, want >= 20", n)
	}
	if len(responsesTo(msgs, false, "BYE", 2, 200)) != 1 {
		t.Errorf("BYE not answered 200\n%s", dumpMsgs(msgs))
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, p.diag())
	}
	e.waitIdle()
}

// 4a. Audio + video offer: the answer keeps both m= lines, video refused with port 0.
func TestSippAudioVideoOffer(t *testing.T) {
	e := newEnv(t, defaultTestConfig(), WithRouter(noRuleRouter()))
	p := startSipp(t, sippOpts{scenario: "uac_audio_video.xml", remote: e.udp,
		keys: map[string]string{"video_port": strconv.Itoa(freeUDPPort(t) &^ 1)}})
	sippErr := sippDone(t, p, 30*time.Second)
	msgs := p.messages()
	ok := inviteOKs(t, p, msgs, 1)[0]
	d := mustSDP(t, ok, "answer")
	if len(d.Media) != 2 {
		t.Fatalf("answer has %d m= lines, want 2 (RFC 3264 §6: one per offered stream, same order)\n%s", len(d.Media), ok.Body)
	}
	if d.Media[0].Kind != "audio" || d.Media[0].Port == 0 || !d.Media[0].HasCodec("PCMU") {
		t.Errorf("first m= line %+v, want audio accepted with PCMU", d.Media[0])
	}
	if d.Media[1].Kind != "video" || d.Media[1].Port != 0 {
		t.Errorf("second m= line %+v, want video with port 0", d.Media[1])
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, p.diag())
	}
	e.waitIdle()
}

// 4b. RTP/SAVP audio then RTP/AVP audio: the first refused (port 0), the second answered.
func TestSippTwoAudioOffer(t *testing.T) {
	e := newEnv(t, defaultTestConfig(), WithRouter(noRuleRouter()))
	p := startSipp(t, sippOpts{scenario: "uac_two_audio.xml", remote: e.udp,
		keys: map[string]string{"srtp_port": strconv.Itoa(freeUDPPort(t) &^ 1)}})
	sippErr := sippDone(t, p, 30*time.Second)
	msgs := p.messages()
	ok := inviteOKs(t, p, msgs, 1)[0]
	d := mustSDP(t, ok, "answer")
	if len(d.Media) != 2 {
		t.Fatalf("answer has %d m= lines, want 2\n%s", len(d.Media), ok.Body)
	}
	if d.Media[0].Port != 0 {
		t.Errorf("first m= line (RTP/SAVP) %+v, want port 0", d.Media[0])
	}
	if m := d.Media[1]; m.Kind != "audio" || m.Port == 0 || m.Proto != "RTP/AVP" || !m.HasCodec("PCMU") {
		t.Errorf("second m= line %+v, want RTP/AVP audio answered with PCMU", m)
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, p.diag())
	}
	e.waitIdle()
}

// 5. REFER answered 481: the dialog is gone (RFC 3261 §12.2.1.2); no bridged
// fallback to the destination, no more requests on the dialog.
func TestSippReferAnswered481(t *testing.T) {
	sippPath(t)
	if _, err := os.Stat(dtmfPcap); err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatalf("sipp pcap missing: %v", err)
		}
		t.Skipf("sipp pcap missing: %v", err)
	}
	callee := newCallee(t, phone.AnswerOptions{})
	cfg := transferConfig()
	cfg.OutboundProxy = "sip:" + callee.Addr().String()
	cdr := &memCDR{}
	rule := coldRule(calleeURI(callee, "101"))
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	p := startSipp(t, sippOpts{scenario: "uac_refer_481.xml", remote: e.udp})
	sippErr := sippDone(t, p, 30*time.Second)
	msgs := p.messages()
	refers := requests(msgs, false, "REFER")
	if len(refers) == 0 {
		t.Fatalf("no REFER\n%s\n%s", dumpMsgs(msgs), p.diag())
	}
	if in, err := callee.Next(ctxT(t, 3*time.Second)); err == nil {
		t.Errorf("the destination got an INVITE after the REFER was answered 481 (bridged fallback on a dead dialog): %s", in.Invite.StartLine())
	}
	later := filterMsgs(msgs, func(m sippMsg) bool {
		return !m.Sent && m.Method != "" && m.At.After(refers[0].At) && m.Method != "REFER"
	})
	if len(later) > 0 {
		t.Errorf("matterline sent requests on the dialog after 481:\n%s", dumpMsgs(later))
	}
	callID := requests(msgs, true, "INVITE")[0].Header("Call-ID")
	if rec := cdr.wait(t, callID); rec.Outcome == records.OutcomeBridged || rec.Outcome == records.OutcomeReferred {
		t.Errorf("record outcome %v, want neither bridged nor referred", rec.Outcome)
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, p.diag())
	}
	e.waitIdle()
}

// ---- outbound leg: sipp is the attorney's phone at a warm rule's destination ----

type calleeRun struct {
	e    *testEnv
	p    *sippProc
	c    *phone.Outgoing
	cdr  *memCDR
	rule *routing.Rule
}

// sippCallee starts sipp as a UAS with scenario, a server whose warm rule points
// at it (edit lets a test change the config and rule), and a caller who presses 1.
func sippCallee(t *testing.T, scenario string, edit func(*Config, *routing.Rule), files map[string][]byte) *calleeRun {
	t.Helper()
	p := startSipp(t, sippOpts{scenario: scenario, files: files})
	cfg := transferConfig()
	rule := warmRule("felix", "sip:101@127.0.0.1:"+strconv.Itoa(p.port), "")
	if edit != nil {
		edit(&cfg, rule)
	}
	cdr := &memCDR{}
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	return &calleeRun{e: e, p: p, c: c, cdr: cdr, rule: rule}
}

// stateOf is the call's state, or false when it is gone.
func (r *calleeRun) stateOf() (CallState, bool) {
	for _, s := range r.e.srv.Registry().List() {
		if s.SIPCallID == r.c.CallID {
			return s.State, true
		}
	}
	return 0, false
}

// waitBridged waits until the call is bridged (true) or gone / timed out (false).
func (r *calleeRun) waitBridged(d time.Duration) bool {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		st, ok := r.stateOf()
		if !ok {
			return false
		}
		if st == StateBridged {
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

func (r *calleeRun) hangUp(t *testing.T) time.Time {
	t.Helper()
	at := time.Now()
	if _, ok := r.stateOf(); ok {
		if _, err := r.c.Bye(ctxT(t, 5*time.Second)); err != nil {
			t.Logf("caller bye: %v", err)
		}
	}
	return at
}

// sentOKTags lists the To-tags of the 200 OKs sipp sent to INVITEs, in order.
func sentOKTags(msgs []sippMsg) []string {
	var tags []string
	for _, m := range responsesTo(msgs, true, "INVITE", 0, 200) {
		tags = append(tags, m.ToTag())
	}
	return tags
}

// 6a. Forked 2xx: each 2xx ACKed in its own dialog, the second dialog BYEd, the
// first kept (RFC 3261 §13.2.2.4).
func TestSippForked2xx(t *testing.T) {
	r := sippCallee(t, "uas_fork_2xx.xml", nil, nil)
	bridged := r.waitBridged(8 * time.Second)
	time.Sleep(2 * time.Second) // time to ACK both and BYE the second
	_, alive := r.stateOf()
	hung := r.hangUp(t)
	sippErr := sippDone(t, r.p, 15*time.Second)
	msgs := r.p.messages()
	tags := sentOKTags(msgs)
	if len(tags) != 2 || tags[0] == tags[1] {
		t.Fatalf("sipp sent 200s with To-tags %q, want two different\n%s", tags, dumpMsgs(msgs))
	}
	a, b := tags[0], tags[1]
	acked := map[string]int{}
	for _, m := range requests(msgs, false, "ACK") {
		acked[m.ToTag()]++
	}
	if acked[a] == 0 {
		t.Errorf("no ACK for the first 2xx (To-tag %s)", a)
	}
	if acked[b] == 0 {
		t.Errorf("no ACK for the second, forked 2xx (To-tag %s): RFC 3261 §13.2.2.4", b)
	}
	var byeB, byeAEarly bool
	for _, m := range requests(msgs, false, "BYE") {
		switch tag := m.ToTag(); {
		case tag == b && m.At.Before(hung):
			byeB = true
		case tag == a && m.At.Before(hung):
			byeAEarly = true
		}
	}
	if !byeB {
		t.Errorf("no BYE for the second dialog (To-tag %s) before the caller hung up", b)
	}
	if byeAEarly || !bridged || !alive {
		t.Errorf("first dialog not kept: bridged=%v alive after 2s=%v, BYE to dialog A before the caller hung up=%v", bridged, alive, byeAEarly)
	}
	if t.Failed() {
		t.Logf("messages:\n%s", dumpMsgs(msgs))
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, r.p.diag())
	}
	r.e.waitIdle()
}

// 6b. Lost ACK: the retransmitted 2xx gets a second ACK (RFC 3261 §13.2.2.4).
func TestSippLostAck(t *testing.T) {
	r := sippCallee(t, "uas_lost_ack.xml", nil, nil)
	bridged := r.waitBridged(8 * time.Second)
	time.Sleep(1500 * time.Millisecond) // the second 200 goes 500 ms after the first ACK
	r.hangUp(t)
	sippErr := sippDone(t, r.p, 15*time.Second)
	msgs := r.p.messages()
	oks := filterMsgs(msgs, func(m sippMsg) bool {
		_, meth := m.CSeq()
		return m.Sent && m.Status == 200 && meth == "INVITE"
	})
	if len(oks) != 2 {
		t.Fatalf("sipp sent %d 200s to the INVITE, want 2\n%s\n%s", len(oks), dumpMsgs(msgs), r.p.diag())
	}
	seq, _ := oks[0].CSeq()
	var acks []sippMsg
	for _, m := range requests(msgs, false, "ACK") {
		if n, _ := m.CSeq(); n == seq && m.ToTag() == oks[0].ToTag() {
			acks = append(acks, m)
		}
	}
	if len(acks) < 2 || !acks[1].At.After(oks[1].At) {
		t.Errorf("%d ACKs for the 2xx, want one more after the retransmitted 200 at %s\n%s",
			len(acks), oks[1].At.Format("15:04:05.000"), dumpMsgs(msgs))
	}
	if !bridged {
		t.Errorf("call not bridged")
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, r.p.diag())
	}
	r.e.waitIdle()
}

// setOutboundAuth sets Config.OutboundAuth (sip.outbound_auth) by name: the field
// is part of the second-round contract but may not exist yet. Expected shape:
// OutboundAuth DigestCredentials{Username, Password, Realm string}.
func setOutboundAuth(t *testing.T, cfg *Config, user, pass, realm string) {
	t.Helper()
	cfg.OutboundAuth = DigestCredentials{Username: user, Password: pass, Realm: realm}
}

func outboundAuth(t *testing.T, code int) {
	const user, pass, realm = "matterline", "s3cret", "matterline.test"
	scenario := "uas_auth_" + strconv.Itoa(code) + ".xml"
	hdr := map[int]string{401: "Authorization", 407: "Proxy-Authorization"}[code]
	r := sippCallee(t, scenario, func(cfg *Config, _ *routing.Rule) { setOutboundAuth(t, cfg, user, pass, realm) }, nil)
	bridged := r.waitBridged(8 * time.Second)
	r.hangUp(t)
	sippErr := sippDone(t, r.p, 15*time.Second)
	msgs := r.p.messages()
	invites := requests(msgs, false, "INVITE")
	if len(invites) < 2 {
		t.Fatalf("matterline sent %d INVITE(s), want a second one with %s after the %d\n%s\n%s", len(invites), hdr, code, dumpMsgs(msgs), r.p.diag())
	}
	first, second := invites[0], invites[len(invites)-1]
	if len(filterMsgs(requests(msgs, false, "ACK"), func(m sippMsg) bool { return m.At.Before(second.At) })) == 0 {
		t.Errorf("the %d was not ACKed before the new INVITE", code)
	}
	if first.Header("Call-ID") != second.Header("Call-ID") {
		t.Errorf("new INVITE has Call-ID %q, want %q", second.Header("Call-ID"), first.Header("Call-ID"))
	}
	s1, _ := first.CSeq()
	s2, _ := second.CSeq()
	if s2 <= s1 {
		t.Errorf("new INVITE CSeq %d, want > %d (RFC 3261 §22.2)", s2, s1)
	}
	if headerTag(second.Header("From")) != headerTag(first.Header("From")) {
		t.Errorf("new INVITE From-tag changed")
	}
	h := second.Header(hdr)
	if h == "" {
		t.Fatalf("new INVITE has no %s\n%s", hdr, second.Raw)
	}
	params, err := checkDigest(h, "INVITE", pass)
	if err != nil {
		t.Errorf("%s: %v\n%s", hdr, err, h)
	}
	if params["username"] != user || params["realm"] != realm {
		t.Errorf("%s username %q realm %q, want %q %q", hdr, params["username"], params["realm"], user, realm)
	}
	if len(responsesTo(msgs, true, "INVITE", s2, 200)) == 0 {
		t.Errorf("no 200 to the second INVITE\n%s", dumpMsgs(msgs))
	}
	if !bridged {
		t.Errorf("call not bridged after authenticating")
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, r.p.diag())
	}
	r.e.waitIdle()
}

// 6c. 401 / 407 challenges answered with sip.outbound_auth credentials.
func TestSippOutboundAuth401(t *testing.T) { outboundAuth(t, 401) }
func TestSippOutboundAuth407(t *testing.T) { outboundAuth(t, 407) }

// 6d. Early media: the caller hears the destination's 183 audio, not ringback.
func TestSippEarlyMedia(t *testing.T) {
	early := media.EncodeUlaw(-7000) // a level no test prompt uses
	b := make([]byte, 8000*3)        // 3 s of PCMU for sipp's rtp_stream
	for i := range b {
		b[i] = early
	}
	r := sippCallee(t, "uas_early_media.xml", func(_ *Config, rule *routing.Rule) { rule.RingTimeout = 8 * time.Second }, map[string][]byte{"early.ulaw": b})
	bridged := r.waitBridged(10 * time.Second)
	r.hangUp(t)
	sippErr := sippDone(t, r.p, 15*time.Second)
	msgs := r.p.messages()
	ok := responsesTo(msgs, true, "INVITE", 0, 200)
	prog := responsesTo(msgs, true, "INVITE", 0, 183)
	if len(ok) == 0 || len(prog) == 0 {
		t.Fatalf("sipp sent no 183/200\n%s\n%s", dumpMsgs(msgs), r.p.diag())
	}
	var heard, other int
	for _, pk := range r.c.RTP.Packets() {
		if pk.At.Before(prog[0].At) || !pk.At.Before(ok[0].At) {
			continue
		}
		if pk.PayloadType == 0 && len(pk.Payload) > 0 && pk.Payload[0] == early && pk.Payload[len(pk.Payload)-1] == early {
			heard++
		} else {
			other++
		}
	}
	if heard < 50 {
		t.Errorf("between the 183 and the 200 (%s) the caller heard %d packets of the destination's early media and %d others, want >= 50 early media",
			ok[0].At.Sub(prog[0].At).Round(time.Millisecond), heard, other)
	}
	if !bridged {
		t.Errorf("call not bridged after the 200")
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, r.p.diag())
	}
	r.e.waitIdle()
}

// 6e. No provisional response: the ring timeout may not CANCEL before one
// arrives (RFC 3261 §9.1); the 487 is ACKed and the call is not bridged.
func TestSippNoProvisionalCancel(t *testing.T) {
	r := sippCallee(t, "uas_no_provisional.xml", nil, nil)
	sippErr := sippDone(t, r.p, 20*time.Second)
	msgs := r.p.messages()
	ringing := responsesTo(msgs, true, "INVITE", 0, 180)
	cancels := requests(msgs, false, "CANCEL")
	if len(cancels) == 0 {
		t.Fatalf("no CANCEL after the ring timeout (%s)\n%s\n%s", r.rule.RingTimeout, dumpMsgs(msgs), r.p.diag())
	}
	if len(ringing) == 0 || cancels[0].At.Before(ringing[0].At) {
		t.Fatalf("CANCEL at %s before any provisional response (RFC 3261 §9.1)\n%s",
			cancels[0].At.Format("15:04:05.000"), dumpMsgs(msgs))
	}
	term := responsesTo(msgs, true, "INVITE", 0, 487)
	if len(term) == 0 {
		t.Fatalf("sipp sent no 487\n%s\n%s", dumpMsgs(msgs), r.p.diag())
	}
	if len(filterMsgs(requests(msgs, false, "ACK"), func(m sippMsg) bool { return m.At.After(term[0].At) })) == 0 {
		t.Errorf("487 not ACKed (RFC 3261 §17.1.1.3)\n%s", dumpMsgs(msgs))
	}
	if rec := r.cdr.wait(t, r.c.CallID); rec.Outcome == records.OutcomeBridged {
		t.Errorf("record outcome %v after a cancelled INVITE", rec.Outcome)
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, r.p.diag())
	}
	r.hangUp(t)
	r.e.waitIdle()
}

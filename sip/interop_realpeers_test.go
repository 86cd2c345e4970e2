package sip

// The call core against independent implementations: baresip user agents as
// caller and attorney, Kamailio proxies with and without Record-Route on both
// legs, and a sipp caller that holds a bridged call for two minutes and resumes
// with an offerless re-INVITE. Audio is judged by what each side hears (distinct
// tones: caller 1000 Hz, attorney 600 Hz), never by packet counts. Run alone with
//
//	go test -race -run 'TestBaresip|TestBridgedHold' -v ./sip/
//
// Needs baresip, kamailio and sipp: skipped without them unless CI=true.

import (
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/internal/interop"
)

const attorneyNumber = "+15551234567"

// warmThroughProxies is the shared body of the two Kamailio tests: baresip
// caller → Kamailio (Record-Route) → matterline → outbound proxy Kamailio
// (Record-Route as given) → baresip attorney, warm rule to a number with accept
// digit 1. With callerHolds the caller holds and resumes once bridged (matterline
// re-INVITEs the attorney twice). It returns after the attorney hung up and the
// caller's call closed.
func warmThroughProxies(t *testing.T, outboundRecordRoute, callerHolds bool) (inK, outK *interop.Kamailio, log *msgLog, attorney *interop.Baresip, e *testEnv) {
	start := time.Now()
	label := labelTest(t)
	// baresip picks the account by the Request-URI's user: the number.
	attorney = interop.StartBaresip(t, interop.BaresipOptions{User: attorneyNumber, ToneHz: attorneyHz, AutoAnswer: true})
	outK = interop.StartKamailio(t, interop.KamailioOptions{RecordRoute: outboundRecordRoute, Forward: attorney.Addr()})

	cfg := transferConfig()
	cfg.OutboundProxy = "sip:" + outK.Addr()
	cfg.AcceptTimeout = 10 * time.Second
	rule := warmRule("attorney", attorneyNumber, "1")
	rule.RingTimeout = 10 * time.Second
	log = newMsgLog(t)
	e = newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithTracer(log))
	e.srv.SetSIPTrace(true)
	inK = interop.StartKamailio(t, interop.KamailioOptions{RecordRoute: true, Forward: e.udp})
	caller := interop.StartBaresip(t, interop.BaresipOptions{User: "caller", ToneHz: callerHz, OutboundProxy: inK.URI()})
	baseline, _ := labelledGoroutines(label)

	if err := caller.Dial("sip:" + testService + "@" + e.udp); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatal(err)
	}
	waitLoud(t, caller, "caller (greeting)", 0, 500)
	whisperFrom := len(attorney.Heard())
	if err := caller.SendDTMF("1"); err != nil {
		t.Fatal(err)
	}
	if _, err := attorney.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatal(err)
	}
	waitLoud(t, attorney, "attorney (whisper)", whisperFrom, 5000)
	if err := attorney.SendDTMF("1"); err != nil {
		t.Fatal(err)
	}
	waitHears(t, attorney, "attorney", callerHz)
	waitHears(t, caller, "caller", attorneyHz)
	if n := e.srv.Registry().Count(); n != 1 {
		t.Errorf("registry has %d calls while bridged, want 1", n)
	} else if st := e.onlyCall().State; st != StateBridged {
		t.Errorf("call state %v, want bridged", st)
	}
	if callerHolds {
		if err := caller.Hold(); err != nil {
			t.Fatal(err)
		}
		eventually(t, peerTimeout, "the hold reflected to the attorney", func() bool {
			rs := reinvitesTo(log, outK.Addr())
			return len(rs) == 1 && sdpDirection(rs[0].Body) != "sendrecv"
		})
		if err := caller.Resume(); err != nil {
			t.Fatal(err)
		}
		eventually(t, peerTimeout, "the resume reflected to the attorney", func() bool {
			rs := reinvitesTo(log, outK.Addr())
			return len(rs) == 2 && sdpDirection(rs[1].Body) == "sendrecv"
		})
		waitHears(t, attorney, "attorney (after resume)", callerHz)
		waitHears(t, caller, "caller (after resume)", attorneyHz)
	}

	if err := attorney.Hangup(); err != nil {
		t.Fatal(err)
	}
	if ev, err := caller.WaitEvent(interop.EventCallClosed, peerTimeout); err != nil {
		t.Fatal(err)
	} else {
		t.Logf("caller: %v", ev)
	}
	e.leakCheck(t, label, baseline)
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
	return inK, outK, log, attorney, e
}

// legCallIDs returns the SIP Call-IDs of the caller's leg (the INVITE the first
// proxy relayed) and of the outbound leg (the INVITE to the number the second
// proxy relayed).
func legCallIDs(t *testing.T, inK, outK *interop.Kamailio) (in, out string) {
	t.Helper()
	initial := func(r interop.ProxiedRequest) bool { return r.Method == "INVITE" && r.Routing == interop.RoutedInitial }
	ri, err := inK.WaitRequest(peerTimeout, initial)
	if err != nil {
		t.Fatal(err)
	}
	ro, err := outK.WaitRequest(peerTimeout, initial)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(ro.RequestURI, attorneyNumber) {
		t.Errorf("outbound INVITE's Request-URI %q does not name %s", ro.RequestURI, attorneyNumber)
	}
	return ri.CallID, ro.CallID
}

// proxied lists what proxy k did with the requests of Call-ID callID.
func proxied(k *interop.Kamailio, callID string) []interop.ProxiedRequest {
	var out []interop.ProxiedRequest
	for _, r := range k.Requests() {
		if r.CallID == callID {
			out = append(out, r)
		}
	}
	return out
}

// waitLoose waits until proxy k loose-routed (RFC 3261 §16.12) a method of callID.
func waitLoose(t *testing.T, k *interop.Kamailio, which, method, callID string) {
	t.Helper()
	if _, err := k.WaitRequest(peerTimeout, func(r interop.ProxiedRequest) bool {
		return r.CallID == callID && r.Method == method && r.Routing == interop.RoutedLoose
	}); err != nil {
		t.Errorf("%s proxy: no loose-routed %s: %v", which, method, err)
	}
}

// noneDropped fails on any in-dialog request of callID that proxy k dropped
// (no Route to it: the sender ignored the route set, RFC 3261 §12.2.1.1).
func noneDropped(t *testing.T, k *interop.Kamailio, which, callID string) {
	t.Helper()
	for _, r := range proxied(k, callID) {
		if r.Routing == interop.DroppedInDialog {
			t.Errorf("%s proxy dropped %v", which, r)
		}
	}
}

// 1. Both proxies Record-Route: every in-dialog request of both legs (ACK,
// the re-INVITEs reflecting the caller's hold and resume, BYE) goes through
// them (RFC 3261 §12.1.2 route set, §12.2.1.1 loose routing).
func TestBaresipWarmTransferThroughKamailio(t *testing.T) {
	t.Parallel()
	inK, outK, log, attorney, _ := warmThroughProxies(t, true, true)
	inID, outID := legCallIDs(t, inK, outK)

	waitLoose(t, outK, "outbound", "ACK", outID)
	waitLoose(t, outK, "outbound", "BYE", outID) // the attorney's, through the route set
	waitLoose(t, inK, "caller's", "ACK", inID)
	waitLoose(t, inK, "caller's", "BYE", inID) // matterline's, after the attorney hung up
	noneDropped(t, outK, "outbound", outID)
	noneDropped(t, inK, "caller's", inID)
	reinvites := 0
	for _, r := range proxied(outK, outID) {
		if r.Method == "INVITE" && r.InDialog() {
			reinvites++
			if r.Routing != interop.RoutedLoose {
				t.Errorf("outbound re-INVITE not loose-routed: %v", r)
			}
		}
	}
	if reinvites < 2 {
		t.Errorf("outbound proxy relayed %d re-INVITEs (hold, resume), want 2", reinvites)
	}
	waitLoose(t, inK, "caller's", "INVITE", inID) // the caller's hold

	// matterline's own in-dialog requests on the outbound leg went to the proxy,
	// not to the attorney's Contact.
	for _, m := range log.filter(func(m traceMsg) bool { return m.Outbound && m.CallID == outID && m.Method != "" }) {
		if m.Dst.String() != outK.Addr() {
			t.Errorf("matterline sent %s (CSeq %d) to %v, want the outbound proxy %s", m.Method, m.CSeq, m.Dst, outK.Addr())
		}
	}
	if t.Failed() {
		t.Logf("outbound proxy: %v\ncaller's proxy: %v\nattorney:\n%s", outK.Requests(), inK.Requests(), attorney.Output())
	}
}

// 2. The outbound proxy does not Record-Route: the outbound leg's in-dialog
// requests go to the attorney's Contact directly (RFC 3261 §12.2.1.1 with an
// empty route set), none through the proxy.
func TestBaresipWarmTransferProxyWithoutRecordRoute(t *testing.T) {
	t.Parallel()
	inK, outK, log, attorney, _ := warmThroughProxies(t, false, false)
	inID, outID := legCallIDs(t, inK, outK)

	for _, r := range proxied(outK, outID) {
		if r.InDialog() {
			t.Errorf("outbound proxy saw an in-dialog request without Record-Route: %v", r)
		}
	}
	acks := log.filter(func(m traceMsg) bool { return m.Outbound && m.CallID == outID && m.Method == "ACK" })
	if len(acks) == 0 {
		t.Errorf("matterline sent no ACK on the outbound leg")
	}
	for _, m := range acks {
		if m.Dst.String() != attorney.Addr() {
			t.Errorf("ACK went to %v, want the attorney's Contact %s", m.Dst, attorney.Addr())
		}
	}
	if len(log.filter(func(m traceMsg) bool { return !m.Outbound && m.CallID == outID && m.Method == "BYE" })) == 0 {
		t.Errorf("matterline got no BYE from the attorney")
	}
	waitLoose(t, inK, "caller's", "BYE", inID)
	noneDropped(t, inK, "caller's", inID)
	if t.Failed() {
		t.Logf("outbound proxy: %v\ncaller's proxy: %v", outK.Requests(), inK.Requests())
	}
}

// bridgedHoldEnv is a server with a warm rule (no accept digit: the bridge
// follows the whisper) to a baresip attorney that answers at once.
func bridgedHoldEnv(t *testing.T, inactivity time.Duration, toneSeconds int) (*testEnv, *msgLog, *interop.Baresip) {
	attorney := interop.StartBaresip(t, interop.BaresipOptions{User: "attorney", ToneHz: attorneyHz,
		AutoAnswer: true, ToneSeconds: toneSeconds})
	cfg := transferConfig()
	cfg.RTPInactivity = inactivity
	rule := warmRule("attorney", "sip:attorney@"+attorney.Addr(), "")
	rule.RingTimeout = 10 * time.Second
	log := newMsgLog(t)
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithTracer(log))
	e.srv.SetSIPTrace(true)
	return e, log, attorney
}

// reinvitesTo lists the re-INVITEs (To-tag set) matterline sent to dst,
// retransmissions once, in order.
func reinvitesTo(log *msgLog, dst string) []traceMsg {
	var out []traceMsg
	seen := map[string]bool{}
	for _, m := range log.filter(func(m traceMsg) bool {
		return m.Outbound && m.Method == "INVITE" && m.ToTag != "" && m.Dst.String() == dst
	}) {
		k := m.CallID + "/" + strconv.Itoa(m.CSeq)
		if seen[k] {
			continue
		}
		seen[k] = true
		out = append(out, m)
	}
	return out
}

// okFor reports whether the peer answered re-INVITE m with 200.
func okFor(log *msgLog, m traceMsg) bool {
	return len(log.filter(func(r traceMsg) bool {
		return !r.Outbound && r.Status == 200 && r.CallID == m.CallID && r.CSeqMethod == "INVITE" && r.CSeq == m.CSeq
	})) > 0
}

// 3. A bridged call held by the caller for two minutes (RTPInactivity 10 s: the
// timer must not run while held, RFC 3264 §8.4), then resumed with an offerless
// re-INVITE: matterline's 200 offers sendrecv, the ACK answers (RFC 3261 §14.2,
// RFC 6337 §5.3), the hold and the resume are reflected to the attorney, and
// audio flows both ways again.
func TestBridgedHoldTwoMinutesOfferlessResume(t *testing.T) {
	if testing.Short() {
		t.Skip("two minutes of hold")
	}
	t.Parallel()
	start := time.Now()
	label := labelTest(t)
	e, log, attorney := bridgedHoldEnv(t, 10*time.Second, 240)
	rtp := newRTPEndpoint(t)
	baseline, _ := labelledGoroutines(label)
	tone := rtp.sendTone(callerHz)
	p := startSipp(t, sippOpts{scenario: "uac_bridge_hold_nosdp.xml", remote: e.udp, timeout: 240 * time.Second,
		keys: map[string]string{"rtp_port": strconv.Itoa(rtp.port())}})

	// Menu: press 1 once the greeting comes (it also gives the tone its
	// destination).
	eventually(t, peerTimeout, "greeting", func() bool { return len(rtp.packets(time.Time{}, time.Time{})) >= 5 })
	tone.digit(1)
	if _, err := attorney.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatal(err)
	}
	callID := e.onlyCall().SIPCallID
	e.waitState(callID, StateBridged)
	bridged := time.Now()
	waitHears(t, attorney, "attorney (bridged)", callerHz)

	// Hold: sipp sends a=sendonly about 12 s after the answer; the caller stops
	// talking, so no RTP flows either way while held.
	hold := log.wait(t, 30*time.Second, "the caller's hold re-INVITE", func(m traceMsg) bool {
		return !m.Outbound && m.CallID == callID && m.Method == "INVITE" && m.CSeq == 2
	})
	tone.muted.Store(true)
	if hold.At.Before(bridged.Add(-time.Second)) {
		t.Fatalf("sipp held at %v, before the bridge (%v): raise the scenario's first pause", hold.At, bridged)
	}
	if d := sdpDirection(hold.Body); d != "sendonly" {
		t.Fatalf("hold re-INVITE says %q", d)
	}
	eventually(t, peerTimeout, "the hold reflected to the attorney and answered 200", func() bool {
		rs := reinvitesTo(log, attorney.Addr())
		return len(rs) > 0 && okFor(log, rs[0])
	})
	refl := reinvitesTo(log, attorney.Addr())[0]
	if d := sdpDirection(refl.Body); d != "sendonly" && d != "inactive" {
		t.Errorf("hold reflected to the attorney as %q, want sendonly or inactive\n%s", d, refl.Body)
	}

	// Resume (re-INVITE without SDP, CSeq 3) after two minutes; the answer comes
	// in the ACK.
	ack := log.wait(t, 150*time.Second, "the ACK of the offerless re-INVITE", func(m traceMsg) bool {
		return !m.Outbound && m.CallID == callID && m.Method == "ACK" && m.CSeq == 3
	})
	tone.muted.Store(false)
	heldFor := ack.At.Sub(hold.At)
	t.Logf("held for %v", heldFor.Round(time.Millisecond))
	if heldFor < 2*time.Minute {
		t.Errorf("held for only %v", heldFor)
	}
	if byes := log.filter(func(m traceMsg) bool { return m.Outbound && m.Method == "BYE" }); len(byes) > 0 {
		t.Fatalf("matterline sent BYE while the call was held (RTPInactivity 10 s)\n%s", log.dump())
	}
	eventually(t, peerTimeout, "the resume reflected to the attorney and answered 200", func() bool {
		rs := reinvitesTo(log, attorney.Addr())
		return len(rs) >= 2 && sdpDirection(rs[len(rs)-1].Body) == "sendrecv" && okFor(log, rs[len(rs)-1])
	})
	if !strings.Contains(attorney.Output(), "got re-INVITE") {
		t.Errorf("the attorney's baresip logged no re-INVITE\n%s", attorney.Output())
	}

	waitHears(t, attorney, "attorney (after resume)", callerHz)
	from := time.Now()
	var got []int16
	eventually(t, peerTimeout, "600 Hz at the caller after the resume", func() bool {
		got = decodePCMU(rtp.packets(from, time.Time{}))
		if len(got) < 8000 {
			return false
		}
		got = got[len(got)-8000:] // the last second
		return interop.HearsTone(got, attorneyHz)
	})

	sippErr := sippDone(t, p, 60*time.Second)
	msgs := p.messages()
	oks := inviteOKs(t, p, msgs, 1, 2, 3)
	if strings.TrimSpace(oks[2].Body) == "" {
		t.Errorf("200 to the offerless re-INVITE carries no offer\n%s", oks[2].Raw)
	} else if d := mustSDP(t, oks[2], "offer in the 200"); d.Direction(0) != "sendrecv" {
		t.Errorf("offer in the 200 says %q, want sendrecv", d.Direction(0))
	}
	if byes := requests(msgs, false, "BYE"); len(byes) > 0 {
		t.Errorf("sipp got a BYE from matterline\n%s", dumpMsgs(msgs))
	}
	if sippErr != nil {
		t.Errorf("sipp failed: %v\n%s", sippErr, p.diag())
	}
	if _, err := attorney.WaitEvent(interop.EventCallClosed, peerTimeout); err != nil {
		t.Error(err)
	}
	e.leakCheck(t, label, baseline)
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

// 3b. The attorney holds (baresip: re-INVITE a=sendonly) for 15 s with
// RTPInactivity 3 s and resumes (re-INVITE with SDP, sendrecv): the hold is
// reflected to the caller, nobody hangs up, audio flows both ways after.
func TestBridgedAttorneyHoldResume(t *testing.T) {
	t.Parallel()
	start := time.Now()
	label := labelTest(t)
	e, log, attorney := bridgedHoldEnv(t, 3*time.Second, 0)
	caller := interop.StartBaresip(t, interop.BaresipOptions{User: "caller", ToneHz: callerHz})
	baseline, _ := labelledGoroutines(label)

	if err := caller.Dial("sip:" + testService + "@" + e.udp); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatal(err)
	}
	waitLoud(t, caller, "caller (greeting)", 0, 500)
	if err := caller.SendDTMF("1"); err != nil {
		t.Fatal(err)
	}
	if _, err := attorney.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatal(err)
	}
	e.waitState(e.onlyCall().SIPCallID, StateBridged)
	waitHears(t, caller, "caller (bridged)", attorneyHz)

	if err := attorney.Hold(); err != nil {
		t.Fatal(err)
	}
	eventually(t, peerTimeout, "the hold reflected to the caller and answered 200", func() bool {
		rs := reinvitesTo(log, caller.Addr())
		return len(rs) > 0 && sdpDirection(rs[0].Body) != "sendrecv" && okFor(log, rs[0])
	})
	time.Sleep(15 * time.Second)
	if byes := log.filter(func(m traceMsg) bool { return m.Method == "BYE" }); len(byes) > 0 {
		t.Fatalf("BYE while the attorney held (RTPInactivity 3 s)\n%s", log.dump())
	}
	if err := attorney.Resume(); err != nil {
		t.Fatal(err)
	}
	eventually(t, peerTimeout, "the resume reflected to the caller and answered 200", func() bool {
		rs := reinvitesTo(log, caller.Addr())
		return len(rs) >= 2 && sdpDirection(rs[len(rs)-1].Body) == "sendrecv" && okFor(log, rs[len(rs)-1])
	})
	waitHears(t, caller, "caller (after resume)", attorneyHz)
	waitHears(t, attorney, "attorney (after resume)", callerHz)
	if byes := log.filter(func(m traceMsg) bool { return m.Method == "BYE" }); len(byes) > 0 {
		t.Fatalf("BYE during the call\n%s", log.dump())
	}

	if err := caller.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := attorney.WaitEvent(interop.EventCallClosed, peerTimeout); err != nil {
		t.Fatal(err)
	}
	e.leakCheck(t, label, baseline)
	t.Logf("took %v", time.Since(start).Round(time.Millisecond))
}

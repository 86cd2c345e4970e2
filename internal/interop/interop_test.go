package interop

import (
	"strings"
	"testing"
	"time"
)

const (
	callerHz = 1000.0
	calleeHz = 600.0
	// listenWindow is how much received audio each check analyses.
	listenWindow = 400 * time.Millisecond
	eventTimeout = 5 * time.Second
)

// call sets up caller A (1000 Hz) → Kamailio (Record-Route) → callee B
// (600 Hz, auto-answer) and waits until both consider the call established.
func call(t *testing.T) (a, b *Baresip, k *Kamailio) {
	t.Helper()
	k = StartKamailio(t, KamailioOptions{RecordRoute: true})
	b = StartBaresip(t, BaresipOptions{User: "callee", ToneHz: calleeHz, AutoAnswer: true})
	a = StartBaresip(t, BaresipOptions{User: "caller", ToneHz: callerHz, OutboundProxy: k.URI()})
	if err := a.Dial(b.URI()); err != nil {
		t.Fatal(err)
	}
	for _, ua := range []*Baresip{a, b} {
		if _, err := ua.WaitEvent(EventCallEstablished, eventTimeout); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := k.WaitRequest(eventTimeout, func(r ProxiedRequest) bool {
		return r.Method == "INVITE" && r.Routing == RoutedInitial
	}); err != nil {
		t.Fatal(err)
	}
	return a, b, k
}

// assertHears checks that ua hears freq (and not the tone it sends itself).
func assertHears(t *testing.T, ua *Baresip, name string, freq float64) {
	t.Helper()
	var s []int16
	// The first window after an answer or a resume may still hold silence
	// from the jitter buffer: allow a few tries.
	for try := 0; try < 5; try++ {
		if s = ua.HeardFor(listenWindow); HearsTone(s, freq) {
			return
		}
	}
	t.Fatalf("%s does not hear %v Hz in the last %v (%d samples, level %.1f dBFS, share %.2f)\n%s",
		name, freq, listenWindow, len(s), ToneLevel(s, freq, SampleRate), ToneShare(s, freq, SampleRate), ua.Output())
}

func TestBaresipCallThroughKamailio(t *testing.T) {
	t.Parallel()
	start := time.Now()
	a, b, k := call(t)
	assertHears(t, a, "caller", calleeHz)
	assertHears(t, b, "callee", callerHz)

	if err := a.SendDTMF("1#"); err != nil {
		t.Fatal(err)
	}
	for _, digit := range []string{"1", "#"} {
		e, err := b.WaitEvent(EventCallDTMFStart, eventTimeout)
		if err != nil {
			t.Fatal(err)
		}
		if e.Param != digit {
			t.Errorf("callee got DTMF %q, want %q", e.Param, digit)
		}
	}

	if err := a.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(EventCallClosed, eventTimeout); err != nil {
		t.Fatal(err)
	}
	bye, err := k.WaitRequest(eventTimeout, func(r ProxiedRequest) bool { return r.Method == "BYE" })
	if err != nil {
		t.Fatal(err)
	}
	if !bye.InDialog() || !bye.Relayed() || bye.Routing != RoutedLoose {
		t.Errorf("BYE handled as %v, want in-dialog and loose-routed", bye)
	}
	t.Logf("requests through the proxy: %v", k.Requests())
	t.Logf("took %v", time.Since(start))
}

func TestBaresipHoldResume(t *testing.T) {
	t.Parallel()
	start := time.Now()
	a, b, k := call(t)
	assertHears(t, b, "callee", callerHz)

	if err := a.Hold(); err != nil {
		t.Fatal(err)
	}
	if _, err := k.WaitRequest(eventTimeout, func(r ProxiedRequest) bool {
		return r.Method == "INVITE" && r.Routing == RoutedLoose
	}); err != nil {
		t.Fatal(err)
	}
	// baresip 1.0.0 stops sending while it holds: the callee hears silence.
	time.Sleep(200 * time.Millisecond)
	if s := b.HeardFor(listenWindow); HearsTone(s, callerHz) {
		t.Errorf("callee still hears the caller's %v Hz while on hold", callerHz)
	}
	if err := a.Resume(); err != nil {
		t.Fatal(err)
	}
	if !waitFor(eventTimeout, func() bool { return count(k.Requests(), "INVITE", RoutedLoose) >= 2 }) {
		t.Fatalf("no second re-INVITE through the proxy: %v", k.Requests())
	}
	assertHears(t, a, "caller", calleeHz)
	assertHears(t, b, "callee", callerHz)
	t.Logf("requests through the proxy: %v", k.Requests())
	t.Logf("took %v", time.Since(start))
}

// With Forward set, the proxy relays the INVITE to its target whatever the
// Request-URI says (here a port nobody listens on). The callee answers by hand.
func TestKamailioForward(t *testing.T) {
	t.Parallel()
	b := StartBaresip(t, BaresipOptions{User: "callee", ToneHz: calleeHz})
	k := StartKamailio(t, KamailioOptions{RecordRoute: true, Forward: b.Addr()})
	a := StartBaresip(t, BaresipOptions{User: "caller", ToneHz: callerHz, OutboundProxy: k.URI()})
	if err := a.Dial("sip:callee@127.0.0.1:9"); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(EventCallIncoming, eventTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WaitEvent(EventCallRinging, eventTimeout); err != nil {
		t.Fatal(err)
	}
	if err := b.Accept(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(EventCallEstablished, eventTimeout); err != nil {
		t.Fatal(err)
	}
	assertHears(t, a, "caller", calleeHz)
	if err := a.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(EventCallClosed, eventTimeout); err != nil {
		t.Fatal(err)
	}
	if _, err := k.WaitRequest(eventTimeout, func(r ProxiedRequest) bool {
		return r.Method == "INVITE" && r.Routing == RoutedInitial && r.RequestURI == "sip:callee@127.0.0.1:9"
	}); err != nil {
		t.Fatal(err)
	}
}

func TestBaresipOverTCP(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{RecordRoute: true, Transport: TransportTCP})
	b := StartBaresip(t, BaresipOptions{User: "callee", ToneHz: calleeHz, AutoAnswer: true, Transport: TransportTCP})
	a := StartBaresip(t, BaresipOptions{User: "caller", ToneHz: callerHz, OutboundProxy: k.URI(), Transport: TransportTCP})
	if err := a.Dial(b.URI()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(EventCallEstablished, eventTimeout); err != nil {
		t.Fatal(err)
	}
	assertHears(t, b, "callee", callerHz)
	if err := b.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := a.WaitEvent(EventCallClosed, eventTimeout); err != nil {
		t.Fatal(err)
	}
	bye, err := k.WaitRequest(eventTimeout, func(r ProxiedRequest) bool { return r.Method == "BYE" })
	if err != nil {
		t.Fatal(err)
	}
	if bye.Routing != RoutedLoose || !strings.Contains(bye.RequestURI, "transport=tcp") {
		t.Errorf("callee's BYE handled as %v, want loose-routed over TCP", bye)
	}
}

// baresip answers the proxy's 407 with its auth_pass; with a wrong one the
// call ends with the 407.
func TestBaresipProxyAuth(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{RecordRoute: true, AuthPassword: "s3cret"})
	b := StartBaresip(t, BaresipOptions{User: "callee", AutoAnswer: true})
	a := StartBaresip(t, BaresipOptions{User: "caller", OutboundProxy: k.URI(), AuthPassword: "s3cret"})
	intruder := StartBaresip(t, BaresipOptions{User: "intruder", OutboundProxy: k.URI(), AuthPassword: "wrong"})

	if err := a.Dial(b.URI()); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(EventCallEstablished, eventTimeout); err != nil {
		t.Fatal(err)
	}
	if err := a.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := b.WaitEvent(EventCallClosed, eventTimeout); err != nil {
		t.Fatal(err)
	}

	if err := intruder.Dial(b.URI()); err != nil {
		t.Fatal(err)
	}
	e, err := intruder.WaitEvent(EventCallClosed, eventTimeout)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(e.Param, "407") {
		t.Errorf("intruder's call closed with %q, want the 407", e.Param)
	}
	if n := count(k.Requests(), "INVITE", RoutedInitial); n != 1 {
		t.Errorf("%d INVITEs relayed, want 1 (the caller's): %v", n, k.Requests())
	}
}

func count(rs []ProxiedRequest, method string, routing Routing) int {
	n := 0
	for _, r := range rs {
		if r.Method == method && r.Routing == routing {
			n++
		}
	}
	return n
}

func waitFor(timeout time.Duration, cond func() bool) bool {
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			return false
		}
		time.Sleep(20 * time.Millisecond)
	}
	return true
}

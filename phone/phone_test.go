package phone

import (
	"context"
	"errors"
	"fmt"
	"math"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// events collects the events of a test's phones.
type events struct {
	mu  sync.Mutex
	all []Event
}

func (e *events) add(ev Event) {
	e.mu.Lock()
	e.all = append(e.all, ev)
	e.mu.Unlock()
}

func (e *events) kinds(phone string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	var out []string
	for _, ev := range e.all {
		if ev.Phone == phone {
			out = append(out, ev.Kind.String())
		}
	}
	return out
}

func (e *events) find(kind EventKind) (Event, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, ev := range e.all {
		if ev.Kind == kind {
			return ev, true
		}
	}
	return Event{}, false
}

// checkGoroutines fails when goroutines outlive the test (a generous wait, as
// sipgo's timers wind down).
func checkGoroutines(t *testing.T) {
	t.Helper()
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		deadline := time.Now().Add(5 * time.Second)
		for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
			time.Sleep(20 * time.Millisecond)
		}
		if n := runtime.NumGoroutine(); n > before {
			buf := make([]byte, 1<<16)
			buf = buf[:runtime.Stack(buf, true)]
			t.Errorf("goroutines: %d before, %d after\n%s", before, n, buf)
		}
	})
}

func newPair(t *testing.T, ev *events, cc CalleeConfig) (*Caller, *Callee) {
	t.Helper()
	cc.Name, cc.OnEvent = "callee", ev.add
	callee, err := NewCallee(cc)
	if err != nil {
		t.Fatal(err)
	}
	caller, err := NewCaller(CallerConfig{From: "+12175552171", DisplayName: "Ada Quist", OnEvent: ev.add})
	if err != nil {
		callee.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() {
		caller.Close()
		callee.Close()
	})
	return caller, callee
}

func TestCallAudioBothWaysAndDTMF(t *testing.T) {
	checkGoroutines(t)
	ev := &events{}
	ports, err := media.NewPortAllocator(30000, 30100, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	callee, err := NewCallee(CalleeConfig{Name: "callee", Number: "+12175550101", RingDelay: 50 * time.Millisecond,
		OnEvent: ev.add, Ports: ports})
	if err != nil {
		t.Fatal(err)
	}
	defer callee.Close()
	caller, err := NewCaller(CallerConfig{From: "+12175552171", DisplayName: "Ada Quist", OnEvent: ev.add})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	target := fmt.Sprintf("sip:+12175550101@%s", callee.Addr())
	out, err := caller.Dial(ctx, target, DialOptions{Headers: []Header{{"Diversion", "<sip:+12175550100@127.0.0.1>;reason=unconditional"}}})
	if err != nil {
		t.Fatal(err)
	}
	in, err := callee.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if in.ID() != out.ID() {
		t.Fatalf("call ids %q and %q", in.ID(), out.ID())
	}
	info := in.Info()
	if info.From != "+12175552171" || info.FromName != "Ada Quist" || info.PAssertedIdentity != "+12175552171" ||
		len(info.Diversion) != 1 || info.Diversion[0] != "+12175550100" || info.To != "+12175550101" {
		t.Errorf("callee saw %+v", info)
	}
	if ports.InUse() != 1 {
		t.Errorf("callee rtp ports in use %d, want 1", ports.InUse())
	}

	// Audio both ways, told apart by frequency.
	if err := out.StartVoice(1500); err != nil {
		t.Fatal(err)
	}
	if err := in.StartVoice(820); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var hin, hout Heard
	var errIn, errOut error
	wg.Add(2)
	go func() {
		defer wg.Done()
		hin, errIn = in.Listen(ctx, Sound{Tones: []float64{1500}, For: 500 * time.Millisecond})
	}()
	go func() {
		defer wg.Done()
		hout, errOut = out.Listen(ctx, Sound{Tones: []float64{820}, For: 500 * time.Millisecond})
	}()
	wg.Wait()
	if errIn != nil || errOut != nil {
		t.Fatalf("callee heard caller: %v; caller heard callee: %v", errIn, errOut)
	}
	if hin.Purity < 0.8 || hout.Purity < 0.8 || hin.Level < -20 || hout.Level < -20 {
		t.Errorf("heard: callee %+v, caller %+v", hin, hout)
	}
	// The caller does not hear its own tone.
	sctx, scancel := context.WithTimeout(ctx, 300*time.Millisecond)
	if _, err := out.Listen(sctx, Sound{Tones: []float64{1500}, For: 100 * time.Millisecond}); !errors.Is(err, ErrNotHeard) {
		t.Errorf("caller heard its own voice: %v", err)
	}
	scancel()

	// DTMF by RFC 4733 while the voice plays, and by INFO.
	if err := out.SendDTMF(ctx, '1'); err != nil {
		t.Fatal(err)
	}
	if err := out.SendDTMFInfo(ctx, '#'); err != nil {
		t.Fatal(err)
	}
	waitFor(t, func() bool { return countKind(ev, "callee", "dtmf_received") == 2 })
	got := ""
	ev.mu.Lock()
	for _, e := range ev.all {
		if e.Kind == EventDTMFReceived {
			got += e.Detail + ";"
		}
	}
	ev.mu.Unlock()
	if got != "key 1 (rfc4733);key # (info);" {
		t.Errorf("callee received %q", got)
	}

	// The callee hangs up; the caller's call ends.
	if err := in.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-out.Done():
	case <-ctx.Done():
		t.Fatal("caller's call did not end")
	}
	if out.EndReason() != "remote_bye" || in.EndReason() != "local_bye" {
		t.Errorf("end reasons caller %q callee %q", out.EndReason(), in.EndReason())
	}
	if st := out.Stats(); st.PacketsIn < 25 || st.PacketsOut < 25 {
		t.Errorf("caller rtp %+v", st)
	}
	waitFor(t, func() bool { return ports.InUse() == 0 })

	want := "invite_sent response answered dtmf_sent dtmf_sent bye_received ended"
	if k := strings.Join(ev.kinds("caller"), " "); k != want {
		t.Errorf("caller events %q, want %q", k, want)
	}
	want = "invite_received ringing answer_sent dtmf_received dtmf_received bye_sent ended"
	if k := strings.Join(ev.kinds("callee"), " "); k != want {
		t.Errorf("callee events %q, want %q", k, want)
	}
}

func TestRejectAndCloseWithCallUp(t *testing.T) {
	checkGoroutines(t)
	ev := &events{}
	caller, busy := newPair(t, ev, CalleeConfig{Reject: 486})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_, err := caller.Dial(ctx, "sip:x@"+busy.Addr().String(), DialOptions{})
	var se *StatusError
	if !errors.As(err, &se) || se.Code != 486 {
		t.Fatalf("dial a busy callee: %v", err)
	}

	ev2 := &events{}
	caller2, callee := newPair(t, ev2, CalleeConfig{})
	out, err := caller2.Dial(ctx, "sip:x@"+callee.Addr().String(), DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := callee.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// Closing the caller phone hangs up its call with BYE.
	caller2.Close()
	select {
	case <-in.Done():
	case <-ctx.Done():
		t.Fatal("callee's call did not end on the caller's close")
	}
	if out.EndReason() != "local_bye" || in.EndReason() != "remote_bye" {
		t.Errorf("end reasons %q %q", out.EndReason(), in.EndReason())
	}
}

func TestCancelWhileRinging(t *testing.T) {
	checkGoroutines(t)
	ev := &events{}
	caller, callee := newPair(t, ev, CalleeConfig{RingDelay: 5 * time.Second})
	_, err := caller.Dial(context.Background(), "sip:x@"+callee.Addr().String(),
		DialOptions{AnswerTimeout: 300 * time.Millisecond})
	if err == nil {
		t.Fatal("dial answered")
	}
	waitFor(t, func() bool { _, ok := ev.find(EventCancelled); return ok })
}

func TestSpeechAndQuiet(t *testing.T) {
	checkGoroutines(t)
	ev := &events{}
	caller, callee := newPair(t, ev, CalleeConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	out, err := caller.Dial(ctx, "sip:x@"+callee.Addr().String(), DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	in, err := callee.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	// A "prompt" of mixed tones is speech-like sound without a dominant tone.
	prompt := mix(300, 700, 1900, 600*time.Millisecond)
	since := time.Now()
	go func() { _ = in.Play(ctx, prompt) }()
	h, err := out.Listen(ctx, Sound{NewTalkspurt: true, Since: since, For: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if h.Level < -30 {
		t.Errorf("level %.1f dBFS", h.Level)
	}
	go func() { _ = in.Play(ctx, prompt) }()
	nctx, ncancel := context.WithTimeout(ctx, 500*time.Millisecond)
	if _, err := out.Listen(nctx, Sound{Tones: []float64{700}, For: 100 * time.Millisecond}); !errors.Is(err, ErrNotHeard) {
		t.Errorf("a mix of three tones counted as a pure 700 Hz tone: %v", err)
	}
	ncancel()
	if err := out.WaitQuiet(ctx, 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	_ = out.Hangup(ctx)
}

func mix(f1, f2, f3 float64, d time.Duration) *media.Prompt {
	n := int(d.Seconds() * sampleRate)
	s := make([]int16, n)
	for i := range s {
		t := float64(i) / sampleRate
		s[i] = int16(3000 * (math.Sin(2*math.Pi*f1*t) + math.Sin(2*math.Pi*f2*t) + math.Sin(2*math.Pi*f3*t)))
	}
	return &media.Prompt{Name: "mix", Samples: s}
}

func TestGoertzel(t *testing.T) {
	for _, tc := range []struct {
		tone, probe float64
		min, max    float64
	}{
		{820, 820, 0.95, 1},
		{820, 1500, 0, 0.01},
		{440, 480, 0, 0.01},
		{1000, 1010, 0.3, 1}, // off-grid: still partly there
	} {
		p := media.Tone(tc.tone, time.Second)
		x := p.Samples[2000 : 2000+blockSamples]
		var e float64
		for _, v := range x {
			e += float64(v) * float64(v)
		}
		if got := goertzelShare(x, e, tc.probe); got < tc.min || got > tc.max {
			t.Errorf("tone %g probed at %g: share %.3f, want %.2f..%.2f", tc.tone, tc.probe, got, tc.min, tc.max)
		}
	}
	// Ringback is heard as 440+480.
	rb := media.Ringback(time.Second)
	a := newAnalyzer()
	ctx, cancel := context.WithTimeout(context.Background(), time.Second)
	defer cancel()
	res := make(chan error, 1)
	go func() {
		_, err := a.listen(ctx, Sound{Tones: []float64{440, 480}, For: 500 * time.Millisecond}, nil)
		res <- err
	}()
	time.Sleep(20 * time.Millisecond)
	a.feed(rb.Samples, true, time.Now())
	if err := <-res; err != nil {
		t.Fatal(err)
	}
}

func TestEventKindNames(t *testing.T) {
	if len(eventNames) != int(EventEnded)+1 || EventEnded.String() != "ended" || EventNotify.String() != "notify" ||
		EventKind(200).String() != "unknown" {
		t.Errorf("event names out of step with the kinds: %v", eventNames)
	}
}

func countKind(ev *events, phone, kind string) int {
	n := 0
	for _, k := range ev.kinds(phone) {
		if k == kind {
			n++
		}
	}
	return n
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 5s")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func TestReferAndReinvite(t *testing.T) {
	checkGoroutines(t)
	for _, accept := range []bool{false, true} {
		t.Run(fmt.Sprintf("accept=%v", accept), func(t *testing.T) {
			ev := &events{}
			callee, err := NewCallee(CalleeConfig{OnEvent: ev.add})
			if err != nil {
				t.Fatal(err)
			}
			defer callee.Close()
			caller, err := NewCaller(CallerConfig{From: "+12175552171", AcceptRefer: accept, OnEvent: ev.add})
			if err != nil {
				t.Fatal(err)
			}
			defer caller.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			out, err := caller.Dial(ctx, "sip:x@"+callee.Addr().String(), DialOptions{})
			if err != nil {
				t.Fatal(err)
			}
			in, err := callee.Next(ctx)
			if err != nil {
				t.Fatal(err)
			}

			// REFER from the callee's side of the dialog (as a B2BUA's cold transfer).
			res, err := in.request(ctx, sip.REFER, "", nil, sip.NewHeader("Refer-To", "<sip:+15551234567@127.0.0.1>"))
			if err != nil {
				t.Fatal(err)
			}
			want := 603
			if accept {
				want = 202
			}
			if res.StatusCode != want {
				t.Fatalf("REFER answered %d, want %d", res.StatusCode, want)
			}
			if accept {
				waitFor(t, func() bool { _, ok := ev.find(EventNotify); return ok })
				if n, _ := ev.find(EventNotify); n.Detail != "event refer: SIP/2.0 200 OK" || n.Phone != "callee" {
					t.Errorf("notify event %+v", n)
				}
			}

			// A re-INVITE putting the caller on hold is answered recvonly.
			offer := media.BuildSDP(media.LocalSDP{Addr: in.info.Local.Addr(), Port: int(in.info.Local.Port()),
				SessionID: 7, Version: 2, Codecs: []media.Codec{media.PCMU}, Direction: media.DirSendOnly})
			req := sip.NewRequest(sip.INVITE, in.uas.InviteRequest.Contact().Address)
			req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
			req.SetBody(offer)
			tx, err := in.uas.TransactionRequest(ctx, req)
			if err != nil {
				t.Fatal(err)
			}
			var final *sip.Response
			for final == nil {
				select {
				case r := <-tx.Responses():
					if !r.IsProvisional() {
						final = r
					}
				case <-ctx.Done():
					t.Fatal("no answer to re-INVITE")
				}
			}
			tx.Terminate()
			if final.StatusCode != 200 {
				t.Fatalf("re-INVITE answered %d", final.StatusCode)
			}
			ack := sip.NewRequest(sip.ACK, in.uas.InviteRequest.Contact().Address)
			if err := in.uas.WriteRequest(ack); err != nil {
				t.Fatal(err)
			}
			d, err := media.ParseSDP(final.Body())
			if err != nil || d.Direction != media.DirRecvOnly {
				t.Fatalf("re-INVITE answer %v direction %v", err, d.Direction)
			}
			if out.session().Direction() != media.DirRecvOnly {
				t.Errorf("caller's direction %v after hold", out.session().Direction())
			}
			if err := out.Hangup(ctx); err != nil {
				t.Fatal(err)
			}
			<-in.Done()
		})
	}
}

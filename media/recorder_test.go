package media

import (
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"
)

// memSink keeps what it is given.
type memSink struct {
	mu      sync.Mutex
	samples []int16
	calls   int
	failAt  int // fail the call with this number (1-based); 0 never
}

func (m *memSink) WriteSamples(s []int16) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.calls++
	if m.failAt > 0 && m.calls >= m.failAt {
		return errors.New("disk full")
	}
	m.samples = append(m.samples, s...)
	return nil
}

func (m *memSink) get() []int16 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return slices.Clone(m.samples)
}

// encodeFrames cuts p into 20 ms G.711 payloads of codec c.
func encodeFrames(c Codec, p *Prompt) [][]byte {
	var out [][]byte
	for i := 0; i < len(p.Samples); i += frameSamples {
		f := p.Samples[i:min(len(p.Samples), i+frameSamples)]
		b := make([]byte, len(f))
		Encode(c, b, f)
		out = append(out, b)
	}
	return out
}

func decodeAll(c Codec, frames [][]byte) []int16 {
	var out []int16
	for _, f := range frames {
		s := make([]int16, len(f))
		Decode(c, s, f)
		out = append(out, s...)
	}
	return out
}

func TestRecorderUnit(t *testing.T) {
	tone := encodeFrames(PCMU, Tone(440, time.Second))
	quiet := encodeFrames(PCMU, Silence(10*time.Second))
	feed := func(r *recorder, sink SampleSink, frames [][]byte, ts *uint32) (StopReason, int) {
		for i, f := range frames {
			if reason, _ := r.packet(sink, *ts, 5, f); reason != StopUnknown {
				return reason, i
			}
			*ts += uint32(len(f))
		}
		return StopUnknown, len(frames)
	}

	t.Run("silence after speech", func(t *testing.T) {
		sink := &memSink{}
		r := newRecorder(PCMU, RecordOptions{Silence: 2 * time.Second})
		ts := uint32(1234)
		if reason, _ := feed(r, sink, tone, &ts); reason != StopUnknown {
			t.Fatalf("stopped during the tone: %v", reason)
		}
		reason, at := feed(r, sink, quiet, &ts)
		if reason != StopSilence || at != 99 { // the 100th quiet frame completes 2 s
			t.Fatalf("reason %v at quiet frame %d", reason, at)
		}
		if !r.speech {
			t.Error("tone not counted as speech")
		}
		// Exactly the tone was written: the quiet tail is dropped.
		if got, want := sink.get(), decodeAll(PCMU, tone); !slices.Equal(got, want) {
			t.Fatalf("wrote %d samples, want the %d of the tone", len(got), len(want))
		}
	})

	t.Run("no speech needs min length", func(t *testing.T) {
		sink := &memSink{}
		r := newRecorder(PCMU, RecordOptions{Silence: time.Second, MinLength: 3 * time.Second})
		ts := uint32(0)
		reason, at := feed(r, sink, quiet, &ts)
		if reason != StopSilence || at != 149 {
			t.Fatalf("reason %v at frame %d, want silence at frame 149 (3 s)", reason, at)
		}
		if r.speech || len(sink.get()) != 2*8000 {
			t.Errorf("speech %v, wrote %d samples", r.speech, len(sink.get()))
		}
	})

	t.Run("max length", func(t *testing.T) {
		sink := &memSink{}
		r := newRecorder(PCMA, RecordOptions{MaxLength: 500 * time.Millisecond, Silence: -1})
		frames := encodeFrames(PCMA, Tone(300, 2*time.Second))
		ts := uint32(0)
		reason, at := feed(r, sink, frames, &ts)
		if reason != StopMaxLength || at != 24 {
			t.Fatalf("reason %v at %d", reason, at)
		}
		if err := r.flush(sink); err != nil {
			t.Fatal(err)
		}
		if got := sink.get(); !slices.Equal(got, decodeAll(PCMA, frames[:25])) {
			t.Errorf("wrote %d samples", len(got))
		}
	})

	t.Run("gaps", func(t *testing.T) {
		sink := &memSink{}
		r := newRecorder(PCMU, RecordOptions{Silence: -1, MaxGap: 100 * time.Millisecond})
		f := tone[0]
		r.packet(sink, 0, 1, f)
		r.packet(sink, 480, 1, f)   // two packets lost: 320 samples of silence
		r.packet(sink, 480, 1, f)   // duplicate: dropped
		r.packet(sink, 320, 1, f)   // late: dropped
		r.packet(sink, 99999, 1, f) // a jump beyond MaxGap: no fill
		r.packet(sink, 0, 2, f)     // a new SSRC: no fill
		r.flush(sink)
		got := sink.get()
		if len(got) != 160*6 || r.dropped != 2 {
			t.Fatalf("wrote %d samples, dropped %d", len(got), r.dropped)
		}
		if slices.ContainsFunc(got[160:480], func(v int16) bool { return v != 0 }) {
			t.Error("gap not filled with silence")
		}
	})

	t.Run("sink error", func(t *testing.T) {
		sink := &memSink{failAt: 2}
		r := newRecorder(PCMU, RecordOptions{})
		ts := uint32(0)
		reason, _ := feed(r, sink, tone, &ts)
		if reason != StopError {
			t.Fatalf("reason %v", reason)
		}
	})

	for r, s := range map[StopReason]string{StopUnknown: "unknown", StopMaxLength: "max_length", StopSilence: "silence", StopHangup: "hangup", StopCancelled: "cancelled", StopKey: "key", StopError: "error"} {
		if r.String() != s {
			t.Errorf("%d.String() = %q, want %q", r, r.String(), s)
		}
	}
}

// sendAudio sends payloads from the rig's phone every gap, on one timeline.
func sendAudio(t *testing.T, r *testRig, c Codec, frames [][]byte, ts *uint32, seq *uint16, gap time.Duration) {
	t.Helper()
	for _, f := range frames {
		r.send(t, r.peer, rtpBytes(t, c.PayloadType, *seq, *ts, f))
		*seq++
		*ts += uint32(len(f))
		time.Sleep(gap)
	}
}

func TestRecordOverUDP(t *testing.T) {
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	tone := encodeFrames(PCMU, Tone(440, 600*time.Millisecond))
	quiet := encodeFrames(PCMU, Silence(3*time.Second))
	sink := &memSink{}
	type result struct {
		rec Recording
		err error
	}
	done := make(chan result, 1)
	go func() {
		rec, err := r.sess.Record(context.Background(), sink, RecordOptions{Silence: 400 * time.Millisecond})
		done <- result{rec, err}
	}()
	if !waitFor(time.Second, func() bool { return r.sess.tap.Load() == tapRecord }) {
		t.Fatal("recording did not start")
	}
	if _, err := r.sess.Record(context.Background(), &memSink{}, RecordOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("second Record = %v", err)
	}
	// The beep plays while the recording already listens: the two do not interfere.
	if err := r.sess.Play(context.Background(), Tone(1000, 100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if beep := collect(r.peer, 5, time.Second); len(beep) != 5 {
		t.Fatalf("beep: %d packets", len(beep))
	}
	ts, seq := uint32(777), uint16(1)
	sendAudio(t, r, PCMU, tone, &ts, &seq, 5*time.Millisecond)
	// Quiet packets until the recording ends (the phone keeps sending).
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for _, f := range quiet {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			r.peer.WriteToUDPAddrPort(rtpBytes(t, 0, seq, ts, f), r.sessURL)
			seq++
			ts += uint32(len(f))
		}
	}()
	defer func() { close(stop); wg.Wait() }()
	var res result
	select {
	case res = <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("recording did not end on silence")
	}
	if res.err != nil || res.rec.Reason != StopSilence || !res.rec.Speech {
		t.Fatalf("Record = %+v, %v", res.rec, res.err)
	}
	if got, want := sink.get(), decodeAll(PCMU, tone); !slices.Equal(got, want) || res.rec.Duration != 600*time.Millisecond {
		t.Fatalf("recorded %d samples (%v), want the tone's %d", len(got), res.rec.Duration, len(want))
	}
	if r.sess.tap.Load() != tapNone || r.sess.handler.Load() != nil {
		t.Error("recording left its hook installed")
	}
}

func TestRecordStops(t *testing.T) {
	start := func(t *testing.T, r *testRig, ctx context.Context, opts RecordOptions) (chan Recording, *memSink) {
		sink := &memSink{}
		out := make(chan Recording, 1)
		go func() {
			rec, err := r.sess.Record(ctx, sink, opts)
			if err != nil {
				t.Error(err)
			}
			out <- rec
		}()
		if !waitFor(time.Second, func() bool { return r.sess.tap.Load() == tapRecord }) {
			t.Fatal("recording did not start")
		}
		return out, sink
	}
	wait := func(t *testing.T, ch chan Recording) Recording {
		t.Helper()
		select {
		case rec := <-ch:
			return rec
		case <-time.After(5 * time.Second):
			t.Fatal("recording did not stop")
		}
		return Recording{}
	}

	t.Run("cancelled keeps the tail", func(t *testing.T) {
		r := newRig(t, SessionConfig{})
		ctx, cancel := context.WithCancel(context.Background())
		ch, sink := start(t, r, ctx, RecordOptions{})
		ts, seq := uint32(0), uint16(0)
		sendAudio(t, r, PCMU, encodeFrames(PCMU, Silence(200*time.Millisecond)), &ts, &seq, time.Millisecond)
		waitFor(time.Second, func() bool { return r.sess.Stats().PacketsIn == 10 })
		time.Sleep(50 * time.Millisecond)
		cancel()
		rec := wait(t, ch)
		if rec.Reason != StopCancelled || rec.Speech || len(sink.get()) != 1600 || rec.Duration != 200*time.Millisecond {
			t.Errorf("%+v, %d samples", rec, len(sink.get()))
		}
	})
	t.Run("hangup", func(t *testing.T) {
		r := newRig(t, SessionConfig{})
		ch, _ := start(t, r, context.Background(), RecordOptions{})
		r.sess.Close()
		if rec := wait(t, ch); rec.Reason != StopHangup {
			t.Errorf("%+v", rec)
		}
	})
	t.Run("end key", func(t *testing.T) {
		r := newRig(t, SessionConfig{})
		ch, _ := start(t, r, context.Background(), RecordOptions{EndKey: '#'})
		r.sess.InjectDTMF(Digit{Key: '5'})
		r.sess.InjectDTMF(Digit{Key: '#'})
		if rec := wait(t, ch); rec.Reason != StopKey {
			t.Errorf("%+v", rec)
		}
	})
	t.Run("max length by the clock", func(t *testing.T) {
		// No packets at all and silence disabled: the wall clock still ends it.
		r := newRig(t, SessionConfig{})
		began := time.Now()
		ch, _ := start(t, r, context.Background(), RecordOptions{MaxLength: 200 * time.Millisecond, Silence: -1})
		if rec := wait(t, ch); rec.Reason != StopMaxLength || time.Since(began) > 3*time.Second {
			t.Errorf("%+v after %v", rec, time.Since(began))
		}
	})
	t.Run("phone stops sending", func(t *testing.T) {
		r := newRig(t, SessionConfig{})
		ch, _ := start(t, r, context.Background(), RecordOptions{Silence: 300 * time.Millisecond})
		ts, seq := uint32(0), uint16(0)
		sendAudio(t, r, PCMU, encodeFrames(PCMU, Tone(500, 200*time.Millisecond)), &ts, &seq, time.Millisecond)
		if rec := wait(t, ch); rec.Reason != StopSilence || !rec.Speech {
			t.Errorf("%+v", rec)
		}
	})
	t.Run("closed session", func(t *testing.T) {
		r := newRig(t, SessionConfig{})
		r.sess.Close()
		rec, err := r.sess.Record(context.Background(), &memSink{}, RecordOptions{})
		if err != nil || rec.Reason != StopHangup {
			t.Errorf("%+v, %v", rec, err)
		}
	})
}

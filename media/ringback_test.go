package media

import (
	"context"
	"errors"
	"math"
	"sync"
	"testing"
	"time"
)

// goertzel is the power of freq in s (relative).
func goertzel(s []int16, freq float64) float64 {
	w := 2 * math.Pi * freq / sampleRate
	c := 2 * math.Cos(w)
	var s1, s2 float64
	for _, v := range s {
		s0 := float64(v) + c*s1 - s2
		s2, s1 = s1, s0
	}
	return (s1*s1 + s2*s2 - c*s1*s2) / float64(len(s)*len(s))
}

func TestRingback(t *testing.T) {
	p := Ringback(13 * time.Second)
	if p.Duration() != 13*time.Second {
		t.Fatalf("duration %v", p.Duration())
	}
	sec := func(a, b float64) []int16 { return p.Samples[int(a*sampleRate):int(b*sampleRate)] }
	// Cadence: on 0-2 s, off 2-6 s, on 6-8 s, off 8-12 s, on from 12 s.
	for _, on := range [][2]float64{{0.1, 1.9}, {6.1, 7.9}, {12.1, 12.9}} {
		s := sec(on[0], on[1])
		if r := rms(s); r < 2000 || r > 5000 {
			t.Errorf("%v s: rms %.0f", on, r)
		}
		p440, p480, p1000 := goertzel(s, 440), goertzel(s, 480), goertzel(s, 1000)
		if p440 < 100*p1000 || p480 < 100*p1000 || math.Abs(p440-p480) > 0.2*p440 {
			t.Errorf("%v s: power 440 %.0f, 480 %.0f, 1000 %.0f", on, p440, p480, p1000)
		}
	}
	for _, off := range [][2]float64{{2, 6}, {8, 12}} {
		if r := rms(sec(off[0], off[1])); r != 0 {
			t.Errorf("%v s: rms %.0f during the pause", off, r)
		}
	}
	if Ringback(0).Duration() != 6*time.Second {
		t.Error("Ringback(0) is not one cycle")
	}
	h := HoldMusic(0)
	if h.Duration() != 4*time.Second || rms(h.Samples) < 1000 {
		t.Errorf("hold music: %v, rms %.0f", h.Duration(), rms(h.Samples))
	}
}

// Two sessions play at the same time, independently: the caller hears ringback
// while the attorney hears the whisper.
func TestPlayTwoSessionsConcurrently(t *testing.T) {
	caller := newRig(t, SessionConfig{Codec: PCMA})
	callee := newRig(t, SessionConfig{Codec: PCMU})
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	loopDone := make(chan error, 1)
	go func() { loopDone <- caller.sess.PlayLoop(ctx, Ringback(time.Second)) }()

	var wg sync.WaitGroup
	wg.Add(1)
	start := time.Now()
	var whisperErr error
	go func() {
		defer wg.Done()
		whisperErr = callee.sess.Play(context.Background(), Tone(700, time.Second))
	}()
	got := collect(callee.peer, 50, time.Second)
	wg.Wait()
	took := time.Since(start)
	if whisperErr != nil || len(got) != 50 || took < 950*time.Millisecond || took > 3*time.Second {
		t.Fatalf("whisper: %v, %d packets in %v", whisperErr, len(got), took)
	}
	// Meanwhile the ringback kept going, looping past its 1 s prompt on one line:
	// one marker, consecutive sequence numbers and timestamps.
	ring := collect(caller.peer, 60, time.Second)
	cancel()
	if err := <-loopDone; !errors.Is(err, context.Canceled) {
		t.Errorf("PlayLoop = %v", err)
	}
	if len(ring) < 50 {
		t.Fatalf("ringback: %d packets", len(ring))
	}
	for k, p := range ring {
		if p.PayloadType != PCMA.PayloadType || p.Marker != (k == 0) {
			t.Fatalf("ringback packet %d: %v", k, p.Header)
		}
		if k > 0 && (p.SequenceNumber != ring[k-1].SequenceNumber+1 || p.Timestamp != ring[k-1].Timestamp+160) {
			t.Fatalf("ringback packet %d: %v after %v", k, p.Header, ring[k-1].Header)
		}
	}
	if err := caller.sess.PlayLoop(context.Background(), &Prompt{}); err == nil {
		t.Error("PlayLoop of an empty prompt")
	}
}

package media

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// checkEvent verifies one RFC 4733 key press as sent by SendDTMF and returns its
// end packets' duration.
func checkEvent(t *testing.T, pkts []rtp.Packet, pt uint8, event uint8) uint16 {
	t.Helper()
	if len(pkts) < 4 {
		t.Fatalf("%d event packets", len(pkts))
	}
	var prevDur uint16
	ends := 0
	for k, p := range pkts {
		if p.PayloadType != pt || p.Timestamp != pkts[0].Timestamp || p.SSRC != pkts[0].SSRC {
			t.Fatalf("event packet %d: %v", k, p.Header)
		}
		if k > 0 && p.SequenceNumber != pkts[k-1].SequenceNumber+1 {
			t.Errorf("event packet %d seq %d after %d", k, p.SequenceNumber, pkts[k-1].SequenceNumber)
		}
		if p.Marker != (k == 0) {
			t.Errorf("event packet %d marker %v", k, p.Marker)
		}
		ev, err := ParseTelephoneEvent(p.Payload)
		if err != nil {
			t.Fatal(err)
		}
		if ev.Event != event || ev.Volume != dtmfVolume {
			t.Errorf("event packet %d: %+v", k, ev)
		}
		if ev.Duration < prevDur {
			t.Errorf("duration shrinks at packet %d: %d after %d", k, ev.Duration, prevDur)
		}
		prevDur = ev.Duration
		if ev.End {
			ends++
		} else if ends > 0 {
			t.Errorf("update after the end at packet %d", k)
		}
	}
	if ends != dtmfEndRepeats {
		t.Errorf("%d end packets, want %d", ends, dtmfEndRepeats)
	}
	return prevDur
}

func TestSendDTMF(t *testing.T) {
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	tail := promptTail(t, r)
	start := time.Now()
	if err := r.sess.SendDTMF(context.Background(), '#', 200*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	took := time.Since(start)
	pkts := collect(r.peer, 20, 300*time.Millisecond)
	// 0, 50, 100, 150 ms updates, then the end three times at 200, 250, 300 ms.
	if len(pkts) != 7 || took < 290*time.Millisecond || took > 3*time.Second {
		t.Fatalf("%d packets in %v", len(pkts), took)
	}
	if d := checkEvent(t, pkts, 101, 11); d != 1600 {
		t.Errorf("final duration %d, want 1600", d)
	}
	if pkts[0].SSRC != tail.SSRC || pkts[0].SequenceNumber != tail.SequenceNumber+1 {
		t.Errorf("event %v does not continue the stream %v", pkts[0].Header, tail)
	}
	if d := pkts[0].Timestamp - tail.Timestamp; d < 160 || d > 8000 {
		t.Errorf("event timestamp %d after the prompt's %d", pkts[0].Timestamp, tail.Timestamp)
	}
	// A receiving session sees one '#' of 200 ms.
	rx := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	for _, p := range pkts {
		b, _ := p.Marshal()
		rx.send(t, rx.peer, b)
	}
	select {
	case d := <-rx.sess.DTMF():
		if d.Key != '#' || d.Duration != 200*time.Millisecond {
			t.Errorf("received %+v", d)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no digit")
	}
	// The next prompt continues after the event.
	next := promptTail(t, r)
	last := pkts[len(pkts)-1]
	if next.SequenceNumber != last.SequenceNumber+5 || int32(next.Timestamp-last.Timestamp) < 1600 {
		t.Errorf("prompt after the event: %v, event %v", next, last.Header)
	}

	// Errors.
	if err := r.sess.SendDTMF(context.Background(), 'x', 0); !errors.Is(err, ErrBadDTMF) {
		t.Errorf("bad key: %v", err)
	}
	plain := newRig(t, SessionConfig{})
	if err := plain.sess.SendDTMF(context.Background(), '1', 0); !errors.Is(err, ErrNoTelephoneEvent) {
		t.Errorf("no telephone-event: %v", err)
	}
	r.sess.Close()
	if err := r.sess.SendDTMF(context.Background(), '1', 0); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("closed: %v", err)
	}
}

func TestSendDTMFDuringPlay(t *testing.T) {
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 96})
	played := make(chan error, 1)
	go func() { played <- r.sess.Play(context.Background(), Tone(800, 600*time.Millisecond)) }()
	first := collect(r.peer, 5, 3*time.Second)
	if len(first) != 5 {
		t.Fatal("prompt not playing")
	}
	if err := r.sess.SendDTMF(context.Background(), 'b', 60*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if err := <-played; err != nil {
		t.Fatal(err)
	}
	pkts := append(first, collect(r.peer, 100, 300*time.Millisecond)...)
	// Audio, then the event (audio paused), then the rest of the audio.
	var before, event, after []rtp.Packet
	for _, p := range pkts {
		switch {
		case p.PayloadType == 96:
			event = append(event, p)
		case len(event) == 0:
			before = append(before, p)
		default:
			after = append(after, p)
		}
	}
	if len(before)+len(after) != 30 {
		t.Fatalf("audio packets: %d before, %d after the event, want 30 in all", len(before), len(after))
	}
	if len(before) == 0 || len(after) == 0 {
		t.Fatalf("event not inside the audio: %d before, %d after", len(before), len(after))
	}
	checkEvent(t, event, 96, 13)
	for k := 1; k < len(pkts); k++ {
		if pkts[k].SequenceNumber != pkts[k-1].SequenceNumber+1 || pkts[k].SSRC != pkts[0].SSRC {
			t.Fatalf("packet %d: %v after %v", k, pkts[k].Header, pkts[k-1].Header)
		}
	}
	lastAudio, ev, resumed := before[len(before)-1], event[0], after[0]
	if ev.Timestamp != lastAudio.Timestamp+160 {
		t.Errorf("event ts %d, want the next frame's %d", ev.Timestamp, lastAudio.Timestamp+160)
	}
	// Event 60 ms + two 50 ms end repeats: the audio resumes at least 160 ms later.
	if d := resumed.Timestamp - ev.Timestamp; d < 1280 || d > 8000 || !resumed.Marker {
		t.Errorf("audio resumes %d samples after the event start, marker %v", d, resumed.Marker)
	}
}

func TestSendDTMFCancelled(t *testing.T) {
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Millisecond)
	defer cancel()
	if err := r.sess.SendDTMF(ctx, '5', 5*time.Second); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("SendDTMF = %v", err)
	}
	// The event is still closed properly: three end packets.
	pkts := collect(r.peer, 20, 200*time.Millisecond)
	if d := checkEvent(t, pkts, 101, 5); d > 8000 {
		t.Errorf("cut event reports %d samples", d)
	}
}

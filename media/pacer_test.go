package media

import (
	"context"
	"net"
	"sync/atomic"
	"testing"
	"time"
)

// pacerTests is the test whose subtests play through testPacer (newRig looks
// at the test's name); pacedRigs counts the sessions it put on it.
const pacerTests = "TestSessionsOnPacer"

var (
	testPacer = NewPacer()
	pacedRigs atomic.Int32
)

// The playing tests again, every Play's frames sent by a shared pacer instead
// of a timer of its own: the same packets, marks, timestamps, DTMF pauses and
// cancellations.
func TestSessionsOnPacer(t *testing.T) {
	defer func() {
		if n := pacedRigs.Load(); n < 10 {
			t.Errorf("only %d sessions played through the pacer", n)
		}
	}()
	for _, tc := range []struct {
		name string
		fn   func(*testing.T)
	}{
		{"Pacing", TestSessionPacing},
		{"PlayCancel", TestSessionPlayCancel},
		{"SendDTMF", TestSendDTMF},
		{"SendDTMFDuringPlay", TestSendDTMFDuringPlay},
		{"SendDTMFCancelled", TestSendDTMFCancelled},
		{"Ringback", TestRingback},
		{"PlayTwoSessionsConcurrently", TestPlayTwoSessionsConcurrently},
		{"BridgeWaitsForPlay", TestBridgeWaitsForPlay},
		{"BridgeRelaySameCodec", TestBridgeRelaySameCodec},
	} {
		t.Run(tc.name, tc.fn)
	}
}

// Many sessions play at once through one pacer: each stream keeps 20 ms
// pacing (no frame early, none much late) and its own sequence and
// timestamps, and the pacer's goroutine ends when the last Play is done.
func TestPacerManyStreams(t *testing.T) {
	p := NewPacer()
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	const streams, frames = 50, 25
	var sessions []*Session
	for range streams {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		s, err := NewSession(SessionConfig{Conn: c, Remote: sink.LocalAddr().(*net.UDPAddr).AddrPort(), Pacer: p})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		sessions = append(sessions, s)
	}
	type arrival struct {
		seq uint16
		ts  uint32
	}
	got := make(map[uint32][]arrival)
	done := make(chan struct{})
	go func() {
		defer close(done)
		buf := make([]byte, 1500)
		for n := 0; n < streams*frames; n++ {
			_ = sink.SetReadDeadline(time.Now().Add(5 * time.Second))
			k, _, err := sink.ReadFromUDPAddrPort(buf)
			if err != nil || k < 12 {
				return
			}
			ssrc := uint32(buf[8])<<24 | uint32(buf[9])<<16 | uint32(buf[10])<<8 | uint32(buf[11])
			got[ssrc] = append(got[ssrc], arrival{uint16(buf[2])<<8 | uint16(buf[3]),
				uint32(buf[4])<<24 | uint32(buf[5])<<16 | uint32(buf[6])<<8 | uint32(buf[7])})
		}
	}()
	// Each Play's duration, from the call to its return after the last frame:
	// the pacer never sends a frame before it is due, so no Play can take
	// less than 24 intervals of 20 ms. (Arrival times at one reader are no
	// measure: under -race on a busy machine it falls behind and catches up.)
	type played struct {
		took time.Duration
		err  error
	}
	results := make(chan played, streams)
	for _, s := range sessions {
		go func() {
			start := time.Now()
			err := s.Play(context.Background(), Tone(440, frames*frameDuration))
			results <- played{time.Since(start), err}
		}()
	}
	late := 0
	for range streams {
		r := <-results
		if r.err != nil {
			t.Fatal(r.err)
		}
		if r.took < (frames-1)*frameDuration {
			t.Errorf("a Play of %d frames took %v: faster than 20 ms each", frames, r.took)
		}
		if r.took > (frames-1)*frameDuration+time.Second {
			late++
		}
	}
	if late > streams/10 {
		t.Errorf("%d of %d Plays ran over a second late", late, streams)
	}
	<-done
	if len(got) != streams {
		t.Fatalf("%d streams arrived, want %d", len(got), streams)
	}
	for ssrc, as := range got {
		if len(as) != frames {
			t.Errorf("stream %x: %d packets, want %d", ssrc, len(as), frames)
			continue
		}
		for i := 1; i < len(as); i++ {
			if as[i].seq != as[i-1].seq+1 || as[i].ts != as[i-1].ts+frameSamples {
				t.Errorf("stream %x packet %d: seq %d ts %d after %d %d", ssrc, i, as[i].seq, as[i].ts, as[i-1].seq, as[i-1].ts)
			}
		}
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		p.mu.Lock()
		running := p.running
		p.mu.Unlock()
		if !running {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the pacer still runs with nothing to play")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

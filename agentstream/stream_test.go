package agentstream

import (
	"bytes"
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/coder/websocket"
)

func TestCheckURL(t *testing.T) {
	for _, tc := range []struct {
		url string
		ok  bool
	}{
		{"ws://127.0.0.1:9000/agent", true},
		{"ws://[::1]:9000/agent", true},
		{"ws://localhost:9000/", true},
		{"wss://agent.example.com/stream", true},
		{"ws://10.0.0.5:9000/agent", false},
		{"ws://agent.example.com/stream", false},
		{"http://127.0.0.1/", false},
		{"wss://", false},
		{"::", false},
	} {
		_, err := CheckURL(tc.url)
		if (err == nil) != tc.ok {
			t.Errorf("CheckURL(%q) = %v, want ok %v", tc.url, err, tc.ok)
		}
	}
}

// The messages: connected, start with the call and its parameters, then media in
// order (sequenceNumber +1, chunk +1, timestamp on a 20 ms grid), the caller's
// audio unchanged, at a 20 ms pace; dtmf; stop at the end.
func TestStreamMessagesInOrder(t *testing.T) {
	a := newTestAgent(t, false)
	tc := newTestCall(t)
	tc.send(func(i int) byte { return byte(i%100) + 1 }) // never 0xFF (silence)
	s, c, start := openStream(t, a, tc, nil)

	st := start.Start
	if start.SequenceNumber != "1" || st == nil || st.CallSid != "c0ffee" || st.StreamSid != s.StreamSid() ||
		start.StreamSid != s.StreamSid() || !strings.HasPrefix(st.StreamSid, "MZ") || st.AccountSid != "matterline" ||
		len(st.Tracks) != 1 || st.Tracks[0] != "inbound" || st.MediaFormat.Encoding != "audio/x-mulaw" ||
		st.MediaFormat.SampleRate != 8000 || st.MediaFormat.Channels != 1 ||
		st.CustomParameters["contact_name"] != "Ada Quist" || st.CustomParameters["lookup"] != "found" {
		t.Fatalf("start message: %s", start.raw)
	}
	if i, j := bytes.Index(start.raw, []byte(`"call_id"`)), bytes.Index(start.raw, []byte(`"contact_name"`)); i < 0 || j < i {
		t.Errorf("customParameters out of order: %s", start.raw)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	const n = 100
	var media []agentMsg
	dtmfSent := false
	var dtmf *agentMsg
	seq := 1
	for len(media) < n {
		m, err := readMsg(ctx, c)
		if err != nil {
			t.Fatal(err)
		}
		seq++
		if got, _ := strconv.Atoi(m.SequenceNumber); got != seq {
			t.Fatalf("sequenceNumber %s, want %d: %s", m.SequenceNumber, seq, m.raw)
		}
		if m.StreamSid != s.StreamSid() {
			t.Fatalf("streamSid %q", m.StreamSid)
		}
		switch m.Event {
		case "media":
			media = append(media, m)
		case "dtmf":
			dtmf = &m
		default:
			t.Fatalf("unexpected %s", m.raw)
		}
		if len(media) == 10 && !dtmfSent {
			s.DTMF('5')
			dtmfSent = true
		}
	}
	if dtmf == nil || dtmf.DTMF == nil || dtmf.DTMF.Digit != "5" || dtmf.DTMF.Track != "inbound_track" {
		t.Fatalf("dtmf message: %+v", dtmf)
	}
	var last byte
	var prevTS int
	for i, m := range media {
		if m.Media.Track != "inbound" || m.Media.Chunk != strconv.Itoa(i+1) {
			t.Fatalf("media %d: track %q chunk %q", i, m.Media.Track, m.Media.Chunk)
		}
		ts, err := strconv.Atoi(m.Media.Timestamp)
		if err != nil || ts%20 != 0 || (i > 0 && ts != prevTS+20) {
			t.Fatalf("media %d: timestamp %q after %d", i, m.Media.Timestamp, prevTS)
		}
		prevTS = ts
		p, err := base64.StdEncoding.DecodeString(m.Media.Payload)
		if err != nil || len(p) != 160 {
			t.Fatalf("media %d: payload %d bytes, %v", i, len(p), err)
		}
		if p[0] == 0xFF {
			continue // silence before the caller's first frame
		}
		if !bytes.Equal(p, bytes.Repeat(p[:1], 160)) {
			t.Fatalf("media %d: a frame mixes two caller frames", i)
		}
		if last != 0 && p[0] != last%100+1 {
			t.Errorf("media %d: caller frame %d after %d (lost or reordered)", i, p[0], last)
		}
		last = p[0]
	}
	// Pacing as ratios: the mean interval and the spread of the middle 90%.
	span := media[n-1].at.Sub(media[10].at)
	mean := span / time.Duration(n-11)
	if r := float64(mean) / float64(20*time.Millisecond); r < 0.9 || r > 1.1 {
		t.Errorf("mean interval %v: %.2f of 20 ms", mean, r)
	}
	wall := media[n-1].at.Sub(media[10].at)
	audio := time.Duration(n-11) * 20 * time.Millisecond
	if r := float64(wall) / float64(audio); r < 0.9 || r > 1.1 {
		t.Errorf("%v of audio took %v (%.2f)", audio, wall, r)
	}

	s.Stop()
	for {
		m, err := readMsg(ctx, c)
		if err != nil {
			t.Fatalf("no stop message: %v", err)
		}
		if m.Event == "stop" {
			if m.Stop == nil || m.Stop.CallSid != "c0ffee" || m.Stop.AccountSid != "matterline" {
				t.Fatalf("stop: %s", m.raw)
			}
			break
		}
	}
	if s.Reason() != EndStopped {
		t.Errorf("reason %s", s.Reason())
	}
	if st := s.Stats(); st.FramesDropped != 0 {
		t.Errorf("dropped %d frames", st.FramesDropped)
	}
}

// The agent's audio is played to the caller at 20 ms a packet; a mark comes
// back once the audio before it went out.
func TestAgentAudioAndMark(t *testing.T) {
	a := newTestAgent(t, false)
	tc := newTestCall(t)
	s, c, _ := openStream(t, a, tc, nil)
	audio := tone(440, time.Second)
	for len(audio) > 0 { // odd chunking
		k := min(333, len(audio))
		sendAudio(t, c, s.StreamSid(), audio[:k])
		audio = audio[k:]
	}
	sendJSON(t, c, map[string]any{"event": "mark", "streamSid": s.StreamSid(), "mark": map[string]string{"name": "greeting"}})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for {
		m, err := readMsg(ctx, c)
		if err != nil {
			t.Fatalf("no mark: %v", err)
		}
		if m.Event == "mark" {
			if m.Mark == nil || m.Mark.Name != "greeting" {
				t.Fatalf("mark: %s", m.raw)
			}
			break
		}
	}
	// By the mark, the 50 frames of tone have been sent; give the last ones
	// a moment on the loopback.
	waitFor(t, time.Second, "50 loud packets", func() bool { return tc.loud.Load() >= 49 })
	tc.mu.Lock()
	first, lastLoud := tc.loudAt[0], tc.loudAt[len(tc.loudAt)-1]
	span := tc.times[lastLoud-1].Sub(tc.times[first-1])
	tc.mu.Unlock()
	if got := lastLoud - first + 1; got < 49 || got > 52 {
		t.Errorf("tone spread over %d packets, want 50", got)
	}
	if r := float64(span) / float64(49*20*time.Millisecond); r < 0.9 || r > 1.1 {
		t.Errorf("1 s of agent audio played in %v (%.2f)", span, r)
	}
	if st := s.Stats(); st.AgentFrames != 50 || st.Marks != 1 {
		t.Errorf("stats %+v", st)
	}
}

// clear cuts the agent's audio within one frame: after the clear, the caller
// receives at most two more packets of the tone (one handed out, one in flight).
func TestClearCutsAgentAudio(t *testing.T) {
	a := newTestAgent(t, false)
	tc := newTestCall(t)
	s, c, _ := openStream(t, a, tc, nil)
	sendAudio(t, c, s.StreamSid(), tone(440, 5*time.Second))
	sendJSON(t, c, map[string]any{"event": "mark", "streamSid": s.StreamSid(), "mark": map[string]string{"name": "end"}})
	waitFor(t, 3*time.Second, "the tone", func() bool { return tc.loud.Load() >= 10 })
	at := tc.recv.Load()
	sendJSON(t, c, map[string]any{"event": "clear", "streamSid": s.StreamSid()})
	// The pending mark is echoed at once.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for {
		m, err := readMsg(ctx, c)
		if err != nil {
			t.Fatalf("no mark after clear: %v", err)
		}
		if m.Event == "mark" {
			break
		}
	}
	waitFor(t, 2*time.Second, "10 packets after the clear", func() bool { return tc.recv.Load() >= at+10 })
	tc.mu.Lock()
	after := 0
	for _, i := range tc.loudAt {
		if i > at {
			after++
		}
	}
	tc.mu.Unlock()
	if after > 2 {
		t.Errorf("%d packets of the tone after the clear, want at most 2", after)
	}
	if st := s.Stats(); st.Clears != 1 {
		t.Errorf("clears %d", st.Clears)
	}
}

// A dead WebSocket ends the stream with its reason.
func TestDeadWebSocket(t *testing.T) {
	for _, tc := range []struct {
		name string
		kill func(c *websocket.Conn)
		want EndReason
	}{
		{"agent closes", func(c *websocket.Conn) {
			go func() { _ = c.Close(websocket.StatusNormalClosure, "bye") }()
		}, EndAgentClosed},
		{"connection drops", func(c *websocket.Conn) { _ = c.CloseNow() }, EndReadError},
		{"no pong", func(c *websocket.Conn) {}, EndPongTimeout}, // the test agent never reads: no pong
	} {
		t.Run(tc.name, func(t *testing.T) {
			a := newTestAgent(t, false)
			call := newTestCall(t)
			s, c, _ := openStream(t, a, call, func(c *Config) {
				c.PingInterval, c.PongTimeout = 100*time.Millisecond, 100*time.Millisecond
			})
			if tc.want != EndPongTimeout {
				// Keep reading so pings are answered.
				go func() {
					for {
						if _, _, err := c.Read(context.Background()); err != nil {
							return
						}
					}
				}()
				time.Sleep(300 * time.Millisecond) // several pings answered
				if s.Reason() != EndUnknown {
					t.Fatalf("ended early: %s", s.Reason())
				}
			}
			tc.kill(c)
			select {
			case <-s.Done():
			case <-time.After(3 * time.Second):
				t.Fatal("stream did not end")
			}
			if s.Reason() != tc.want {
				t.Errorf("reason %s, want %s", s.Reason(), tc.want)
			}
			s.Wait()
		})
	}
}

// A dead agent found while our close handshake is under way (the writer
// started it, the agent never answers) ends the stream at once: the library's
// CloseNow alone would wait out the handshake's own 5 s timeout. This race made
// TestDeadWebSocket/no_pong fail about once in a hundred runs on a busy machine.
func TestDeadAgentDuringCloseHandshake(t *testing.T) {
	a := newTestAgent(t, false)
	call := newTestCall(t)
	s, _, _ := openStream(t, a, call, nil)
	handshake := make(chan struct{})
	go func() { s.closeConn(); close(handshake) }() // the agent never reads: no answer
	time.Sleep(100 * time.Millisecond)              // the close frame is out, the handshake waits
	start := time.Now()
	s.finish(EndPongTimeout)
	select {
	case <-handshake:
	case <-time.After(3 * time.Second):
		t.Fatal("the close handshake still waits for the dead agent")
	}
	if took := time.Since(start); took > 3*time.Second {
		t.Errorf("finish took %v", took)
	}
	if s.Reason() != EndPongTimeout {
		t.Errorf("reason %s", s.Reason())
	}
}

// A slow agent (it never reads) makes frames drop, counted, while the caller's
// RTP keeps its pace both ways: what the caller sends is still read, and what
// the caller receives still comes every 20 ms.
func TestSlowAgentNeverDelaysRTP(t *testing.T) {
	a := newTestAgent(t, true)
	tc := newTestCall(t)
	tc.send(func(i int) byte { return 0x10 })
	s, c, _ := openStream(t, a, tc, func(c *Config) {
		c.HTTPClient = smallClient()
		c.PingInterval, c.WriteTimeout = time.Hour, time.Hour
		c.UplinkQueue = 5
	})
	sendAudio(t, c, s.StreamSid(), tone(440, 10*time.Second))
	waitFor(t, 10*time.Second, "dropped frames", func() bool { return s.Stats().FramesDropped >= 20 })
	in0, recv0, t0 := tc.sess.Stats().PacketsIn, tc.recv.Load(), time.Now()
	time.Sleep(time.Second)
	in1, recv1, t1 := tc.sess.Stats().PacketsIn, tc.recv.Load(), time.Now()
	want := float64(t1.Sub(t0)) / float64(20*time.Millisecond)
	if r := float64(recv1-recv0) / want; r < 0.9 || r > 1.1 {
		t.Errorf("caller received %d packets in %v (%.2f of the 20 ms pace)", recv1-recv0, t1.Sub(t0), r)
	}
	if r := float64(in1-in0) / want; r < 0.9 || r > 1.1 {
		t.Errorf("session read %d of the caller's packets in %v (%.2f)", in1-in0, t1.Sub(t0), r)
	}
	if s.Reason() != EndUnknown {
		t.Errorf("stream ended: %s", s.Reason())
	}
	st := s.Stats()
	t.Logf("stats with a slow agent: %+v", st)
	if st.FramesDropped == 0 || st.AgentFrames < 50 {
		t.Errorf("stats %+v", st)
	}
}

// Malformed messages from the agent are counted and ignored; the stream goes on.
func TestMalformedAgentMessages(t *testing.T) {
	a := newTestAgent(t, false)
	tc := newTestCall(t)
	s, c, _ := openStream(t, a, tc, nil)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	for _, m := range []string{
		"not json", `{"event":"media"}`, `{"event":"media","media":{"payload":"!!!"}}`, `{"event":"mark"}`,
		`{"event":"media","media":{"payload":12}}`, `[]`, `{"event":"bogus"}`, `{"event":"start"}`, "",
	} {
		if err := c.Write(ctx, websocket.MessageText, []byte(m)); err != nil {
			t.Fatal(err)
		}
	}
	if err := c.Write(ctx, websocket.MessageBinary, []byte{0, 1, 2}); err != nil {
		t.Fatal(err)
	}
	sendAudio(t, c, s.StreamSid(), tone(440, 200*time.Millisecond))
	waitFor(t, 2*time.Second, "the tone", func() bool { return tc.loud.Load() >= 9 })
	st := s.Stats()
	if st.Malformed != 8 || st.Ignored != 2 || s.Reason() != EndUnknown {
		t.Errorf("stats %+v, reason %s; want 8 malformed, 2 ignored, running", st, s.Reason())
	}
}

// FuzzAgentMessage: no message from the agent panics the stream.
func FuzzAgentMessage(f *testing.F) {
	for _, s := range []string{`{"event":"media","streamSid":"MZ1","media":{"payload":"//8="}}`,
		`{"event":"mark","mark":{"name":"x"}}`, `{"event":"clear"}`, `{"event":"media","media":{"payload":"@"}}`, `{`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		s := &Stream{}
		s.play = newPlayout(1<<16, func(string) {})
		s.handle(b, nil)
		var dst [160]int16
		s.play.NextFrame(dst[:])
	})
}

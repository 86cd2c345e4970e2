package media

import (
	"context"
	"encoding/hex"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// testRig is a session on a loopback port from an allocator, and a peer socket.
type testRig struct {
	pa      *PortAllocator
	sess    *Session
	peer    *net.UDPConn
	closed  atomic.Int32
	sessURL netip.AddrPort
}

func newRig(t *testing.T, cfg SessionConfig) *testRig {
	t.Helper()
	lo, hi := freeRange(t, 4)
	pa, err := NewPortAllocator(lo, hi, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := pa.Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	peer, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	r := &testRig{pa: pa, peer: peer}
	p := port(conn)
	cfg.Conn = conn
	if !cfg.Remote.IsValid() {
		cfg.Remote = peer.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	cfg.OnClose = func() {
		r.closed.Add(1)
		pa.Release(p)
	}
	if strings.HasPrefix(t.Name(), pacerTests+"/") {
		cfg.Pacer = testPacer
		pacedRigs.Add(1)
	}
	r.sess, err = NewSession(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r.sessURL = netip.AddrPortFrom(loopback, uint16(p))
	t.Cleanup(func() {
		r.sess.Close()
		peer.Close()
	})
	return r
}

// recv reads RTP packets at the peer until n arrived or the deadline passed.
func (r *testRig) recv(t *testing.T, n int, within time.Duration) []rtp.Packet {
	t.Helper()
	var out []rtp.Packet
	buf := make([]byte, 1500)
	deadline := time.Now().Add(within)
	for len(out) < n {
		r.peer.SetReadDeadline(deadline)
		k, _, err := r.peer.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		var p rtp.Packet
		if err := p.Unmarshal(append([]byte(nil), buf[:k]...)); err != nil {
			t.Fatalf("peer got a non-rtp packet: %v", err)
		}
		out = append(out, p)
	}
	return out
}

func (r *testRig) send(t *testing.T, from *net.UDPConn, b []byte) {
	t.Helper()
	if _, err := from.WriteToUDPAddrPort(b, r.sessURL); err != nil {
		t.Fatal(err)
	}
}

func rtpBytes(t testing.TB, pt uint8, seq uint16, ts uint32, payload []byte) []byte {
	t.Helper()
	p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: 0x1234}, Payload: payload}
	b, err := p.Marshal()
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// waitFor polls cond for up to d.
func waitFor(d time.Duration, cond func() bool) bool {
	for end := time.Now().Add(d); time.Now().Before(end); time.Sleep(5 * time.Millisecond) {
		if cond() {
			return true
		}
	}
	return cond()
}

func TestSessionPacing(t *testing.T) {
	r := newRig(t, SessionConfig{Codec: PCMA})
	ctx := context.Background()

	start := time.Now()
	if err := r.sess.Play(ctx, Tone(440, time.Second)); err != nil {
		t.Fatal(err)
	}
	elapsed := time.Since(start)
	pkts := r.recv(t, 50, 5*time.Second)
	if len(pkts) != 50 {
		t.Fatalf("got %d packets for a 1 s prompt, want 50", len(pkts))
	}
	// 49 intervals of 20 ms = 980 ms; allow a loaded machine under -race.
	if elapsed < 950*time.Millisecond || elapsed > 4*time.Second {
		t.Errorf("1 s prompt took %v", elapsed)
	}
	for i, p := range pkts {
		if p.PayloadType != PCMA.PayloadType || len(p.Payload) != 160 || p.SSRC != pkts[0].SSRC || p.Version != 2 {
			t.Fatalf("packet %d: %v", i, p.Header)
		}
		if p.Marker != (i == 0) {
			t.Errorf("packet %d marker = %v", i, p.Marker)
		}
		if i > 0 {
			if p.SequenceNumber != pkts[i-1].SequenceNumber+1 {
				t.Errorf("packet %d seq %d after %d", i, p.SequenceNumber, pkts[i-1].SequenceNumber)
			}
			if p.Timestamp != pkts[i-1].Timestamp+160 {
				t.Errorf("packet %d ts %d after %d", i, p.Timestamp, pkts[i-1].Timestamp)
			}
		}
	}
	last := pkts[len(pkts)-1]

	// Right after: sequence continues, marker again, timestamp one frame on.
	if err := r.sess.Play(ctx, Silence(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	next := r.recv(t, 5, 3*time.Second)
	if len(next) != 5 {
		t.Fatalf("got %d packets for 100 ms, want 5", len(next))
	}
	if next[0].SequenceNumber != last.SequenceNumber+1 || !next[0].Marker || next[1].Marker || next[0].SSRC != last.SSRC {
		t.Errorf("second play starts with %v after %v", next[0].Header, last.Header)
	}
	if d := next[0].Timestamp - last.Timestamp; d < 160 || d > 160*10 || d%160 != 0 {
		t.Errorf("timestamp step between back-to-back plays = %d", d)
	}
	if next[4].Payload[0] != 0xD5 {
		t.Errorf("silence encodes as %#x, want 0xd5 (A-law)", next[4].Payload[0])
	}

	// After a 300 ms pause the timestamp advances by the pause.
	last = next[4]
	time.Sleep(300 * time.Millisecond)
	if err := r.sess.Play(ctx, Tone(1000, 30*time.Millisecond)); err != nil { // 1.5 frames: padded
		t.Fatal(err)
	}
	after := r.recv(t, 2, 3*time.Second)
	if len(after) != 2 || after[0].SequenceNumber != last.SequenceNumber+1 {
		t.Fatalf("after pause: %d packets", len(after))
	}
	if d := after[0].Timestamp - last.Timestamp; d < 160*15 || d > 160*200 {
		t.Errorf("timestamp advanced %d samples over a 300 ms pause, want ~2400+", d)
	}
	if st := r.sess.Stats(); st.PacketsOut != 57 {
		t.Errorf("PacketsOut = %d, want 57", st.PacketsOut)
	}
}

func TestSessionPlayCancel(t *testing.T) {
	r := newRig(t, SessionConfig{})
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	start := time.Now()
	err := r.sess.Play(ctx, Tone(440, 10*time.Second))
	if !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 3*time.Second {
		t.Fatalf("Play = %v after %v", err, time.Since(start))
	}
	// Close during Play ends it.
	done := make(chan error, 1)
	go func() { done <- r.sess.Play(context.Background(), Tone(440, 10*time.Second)) }()
	time.Sleep(60 * time.Millisecond)
	r.sess.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrSessionClosed) {
			t.Errorf("Play after Close = %v", err)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("Play did not return after Close")
	}
	if err := r.sess.Play(context.Background(), Tone(440, time.Second)); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("Play on closed session = %v", err)
	}
}

func TestSessionLatching(t *testing.T) {
	// The SDP said 127.0.0.1:9 (nobody there); the peer really sends from elsewhere
	// (NAT): it is learned once the delay has passed without the SDP address speaking.
	sdp := netip.MustParseAddrPort("127.0.0.1:9")
	r := newRig(t, SessionConfig{Remote: sdp, HasDTMF: true, DTMFPayloadType: 101, LatchDelay: 150 * time.Millisecond})
	peerAddr := r.peer.LocalAddr().(*net.UDPAddr).AddrPort()

	// Before the delay: another source is refused, however valid its packet.
	r.send(t, r.peer, rtpBytes(t, 0, 1, 160, make([]byte, 160)))
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == 1 }) {
		t.Fatalf("early packet from another source: %+v", r.sess.Stats())
	}
	time.Sleep(200 * time.Millisecond)

	// Not RTP, wrong version, wrong payload type: dropped, no latch.
	r.send(t, r.peer, []byte("hello"))
	r.send(t, r.peer, []byte{0x40, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff})
	r.send(t, r.peer, rtpBytes(t, 18, 1, 160, make([]byte, 20))) // G.729
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().Dropped == 3 }) {
		t.Fatalf("dropped = %d, want 3", r.sess.Stats().Dropped)
	}
	if r.sess.Latched() || r.sess.Remote() != sdp {
		t.Fatal("latched on garbage")
	}

	r.send(t, r.peer, rtpBytes(t, 0, 2, 320, make([]byte, 160)))
	if !waitFor(2*time.Second, r.sess.Latched) {
		t.Fatal("did not latch")
	}
	if r.sess.Remote() != peerAddr {
		t.Fatalf("latched to %v, want %v", r.sess.Remote(), peerAddr)
	}
	if err := r.sess.Play(context.Background(), Silence(40*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := r.recv(t, 2, 3*time.Second); len(got) != 2 {
		t.Fatalf("peer got %d packets after latching", len(got))
	}

	// Another source is ignored once latched...
	other, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	r.send(t, other, rtpBytes(t, 0, 3, 480, make([]byte, 160)))
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == 2 }) {
		t.Fatalf("foreign source not dropped: %+v", r.sess.Stats())
	}
	if r.sess.Remote() != peerAddr || r.sess.Stats().Dropped != 3 {
		t.Fatalf("foreign source moved the latch or was counted as malformed: %v %+v", r.sess.Remote(), r.sess.Stats())
	}
	// ... and the same SDP address again (a refresh) keeps the learned source ...
	r.sess.SetRemote(sdp)
	if !r.sess.Latched() || r.sess.Remote() != peerAddr {
		t.Fatalf("same-address SetRemote dropped the learned source: %v", r.sess.Remote())
	}
	// ... while a new SDP address re-arms latching (re-INVITE).
	moved := netip.MustParseAddrPort("127.0.0.1:11")
	r.sess.SetRemote(moved)
	if r.sess.Latched() || r.sess.Remote() != moved {
		t.Fatal("SetRemote did not re-arm")
	}
	time.Sleep(200 * time.Millisecond)
	r.send(t, other, rtpBytes(t, 101, 4, 640, []byte{5, 0x0a, 0, 160}))
	otherAddr := other.LocalAddr().(*net.UDPAddr).AddrPort()
	if !waitFor(2*time.Second, func() bool { return r.sess.Remote() == otherAddr }) {
		t.Fatalf("telephone-event did not latch: remote %v", r.sess.Remote())
	}
	if st := r.sess.Stats(); st.PacketsIn != 2 {
		t.Errorf("PacketsIn = %d, want 2", st.PacketsIn)
	}
}

func TestSessionGarbage(t *testing.T) {
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	junk := [][]byte{
		{},
		{0x80},
		make([]byte, 11),
		{0x8f, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1}, // 15 CSRCs announced, none present
		{0x90, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xbe, 0xde, 0, 9}, // extension longer than packet
		{0xa0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0, 0, 0, 200},     // padding longer than packet
		rtpBytes(t, 101, 1, 1, []byte{1, 2}),                      // short telephone-event
		rtpBytes(t, 72, 1, 1, make([]byte, 8)),                    // RTCP-like
		make([]byte, 1500),
	}
	for _, j := range junk {
		r.send(t, r.peer, j)
	}
	r.send(t, r.peer, rtpBytes(t, 0, 9, 9, make([]byte, 160)))
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().PacketsIn >= 2 }) {
		t.Fatalf("valid packet after junk not accepted: %+v", r.sess.Stats())
	}
	if st := r.sess.Stats(); st.Dropped < 7 {
		t.Errorf("dropped = %d: %+v", st.Dropped, st)
	}
}

func TestSessionDTMF(t *testing.T) {
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	for _, h := range sippDTMF1 {
		r.send(t, r.peer, mustHex(t, h))
	}
	select {
	case d := <-r.sess.DTMF():
		if d.Key != '1' || d.Source != DTMFSourceRFC4733 || d.Duration != 280*time.Millisecond {
			t.Errorf("digit = %+v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("no digit")
	}
	// The same press again (same timestamp) is not a new digit; a new timestamp is.
	b := mustHex(t, sippDTMF1[7])
	r.send(t, r.peer, b)
	b2 := append([]byte(nil), b...)
	b2[7]++ // timestamp + 1: a new press of the same key, start lost
	r.send(t, r.peer, b2)
	select {
	case d := <-r.sess.DTMF():
		if d.Key != '1' {
			t.Errorf("digit = %+v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("second press not delivered")
	}
	select {
	case d := <-r.sess.DTMF():
		t.Fatalf("extra digit %+v", d)
	case <-time.After(100 * time.Millisecond):
	}

	// An event whose end packets are all lost still arrives (after the end wait).
	start, _ := hex.DecodeString("80e51f40000040000e05384e030a0000")
	r.send(t, r.peer, start)
	select {
	case d := <-r.sess.DTMF():
		if d.Key != '3' {
			t.Errorf("digit = %+v", d)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("event without end never delivered")
	}

	// SIP INFO digits share the channel; a full queue drops instead of blocking.
	for range dtmfQueue + 3 {
		r.sess.InjectDTMF(Digit{Key: '#'})
	}
	if d := <-r.sess.DTMF(); d.Key != '#' || d.Source != DTMFSourceINFO {
		t.Errorf("injected = %+v", d)
	}
	if st := r.sess.Stats(); st.DTMFDropped != 3 {
		t.Errorf("DTMFDropped = %d", st.DTMFDropped)
	}
}

func TestSessionInactivityTimeout(t *testing.T) {
	r := newRig(t, SessionConfig{InactivityTimeout: 200 * time.Millisecond})
	start := time.Now()
	select {
	case <-r.sess.Timeout():
		if e := time.Since(start); e < 190*time.Millisecond {
			t.Errorf("timeout after %v", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no inactivity timeout")
	}
	select {
	case <-r.sess.Done():
		t.Error("timeout closed the session; the call layer decides")
	default:
	}
}

func TestSessionTrafficKeepsAlive(t *testing.T) {
	r := newRig(t, SessionConfig{InactivityTimeout: 200 * time.Millisecond})
	for i := range 25 { // 500 ms of packets every 20 ms
		r.send(t, r.peer, rtpBytes(t, 0, uint16(i), uint32(i*160), make([]byte, 160)))
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case <-r.sess.Timeout():
		t.Fatal("timed out while packets flowed")
	default:
	}
}

func TestSessionHoldSuspendsTimeout(t *testing.T) {
	r := newRig(t, SessionConfig{InactivityTimeout: 200 * time.Millisecond})
	// The peer offered sendonly: our answer is recvonly, we are on hold.
	r.sess.SetDirection(DirSendOnly.Answer())
	if err := r.sess.Play(context.Background(), Silence(60*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := r.recv(t, 1, 200*time.Millisecond); len(got) != 0 {
		t.Fatalf("sent %d packets while recvonly", len(got))
	}
	select {
	case <-r.sess.Timeout():
		t.Fatal("timed out while on hold")
	case <-time.After(600 * time.Millisecond):
	}
	r.sess.SetDirection(DirInactive)
	time.Sleep(300 * time.Millisecond)
	// Off hold: the timer restarts from now and fires again.
	resumed := time.Now()
	r.sess.SetDirection(DirSendRecv)
	select {
	case <-r.sess.Timeout():
		if e := time.Since(resumed); e < 190*time.Millisecond {
			t.Errorf("timeout %v after resuming, want >= 200ms", e)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("no timeout after resuming")
	}
	// Sending works again, with the marker on the first packet.
	if err := r.sess.Play(context.Background(), Silence(40*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := r.recv(t, 2, 3*time.Second); len(got) != 2 || !got[0].Marker {
		t.Fatalf("after hold: %d packets", len(got))
	}
}

func TestSessionCloseNoLeaks(t *testing.T) {
	before := runtime.NumGoroutine()
	lo, hi := freeRange(t, 8)
	pa, err := NewPortAllocator(lo, hi, time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	var closes atomic.Int32
	var sessions []*Session
	for range 8 {
		conn, err := pa.Listen(loopback)
		if err != nil {
			t.Fatal(err)
		}
		p := port(conn)
		s, err := NewSession(SessionConfig{
			Conn:              conn,
			Remote:            netip.MustParseAddrPort("127.0.0.1:9"),
			InactivityTimeout: time.Second,
			OnClose:           func() { closes.Add(1); pa.Release(p) },
		})
		if err != nil {
			t.Fatal(err)
		}
		s.SetPacketHandler(func(*rtp.Packet, netip.AddrPort) {})
		sessions = append(sessions, s)
	}
	if pa.InUse() != 8 {
		t.Fatalf("InUse = %d", pa.InUse())
	}
	for _, s := range sessions {
		go s.Play(context.Background(), Tone(300, 5*time.Second))
	}
	time.Sleep(50 * time.Millisecond)
	for _, s := range sessions {
		if err := s.Close(); err != nil {
			t.Error(err)
		}
		if err := s.Close(); err != nil { // idempotent
			t.Error(err)
		}
		select {
		case <-s.Done():
		default:
			t.Error("Done not closed")
		}
	}
	if closes.Load() != 8 {
		t.Errorf("OnClose ran %d times for 8 sessions", closes.Load())
	}
	if pa.InUse() != 0 {
		t.Errorf("InUse = %d after Close", pa.InUse())
	}
	if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
		buf := make([]byte, 1<<16)
		t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
	}
}

func TestSessionConnClosedUnderneath(t *testing.T) {
	r := newRig(t, SessionConfig{})
	r.sess.conn.Close() // someone else closed the socket: the session winds down cleanly
	select {
	case <-r.sess.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("session did not notice its socket closing")
	}
	r.sess.Close()
	if r.closed.Load() != 1 || r.pa.InUse() != 0 {
		t.Errorf("OnClose %d, InUse %d", r.closed.Load(), r.pa.InUse())
	}
}

func TestSessionPacketHandler(t *testing.T) {
	r := newRig(t, SessionConfig{})
	got := make(chan uint16, 4)
	r.sess.SetPacketHandler(func(p *rtp.Packet, from netip.AddrPort) { got <- p.SequenceNumber })
	r.send(t, r.peer, rtpBytes(t, 0, 77, 0, make([]byte, 160)))
	select {
	case seq := <-got:
		if seq != 77 {
			t.Errorf("seq %d", seq)
		}
	case <-time.After(3 * time.Second):
		t.Fatal("handler not called")
	}
	// Close from inside the handler must not deadlock.
	r.sess.SetPacketHandler(func(*rtp.Packet, netip.AddrPort) { r.sess.Close() })
	r.send(t, r.peer, rtpBytes(t, 0, 78, 160, make([]byte, 160)))
	select {
	case <-r.sess.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("Close from handler did not close")
	}
}

// BenchmarkSessionSendFrame is the prompt send path: encode 160 samples, marshal
// into the reused buffer, write to a loopback socket.
func BenchmarkSessionSendFrame(b *testing.B) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	defer sink.Close()
	s, err := NewSession(SessionConfig{Conn: conn, Remote: sink.LocalAddr().(*net.UDPAddr).AddrPort()})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	frame := benchSamples()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := s.sendFrame(frame, false); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkSessionHandlePacket is the receive path after the socket read, for a
// packet from the accepted source (the SDP address).
func BenchmarkSessionHandlePacket(b *testing.B) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		b.Fatal(err)
	}
	from := netip.MustParseAddrPort("127.0.0.1:40000")
	s, err := NewSession(SessionConfig{Conn: conn, Remote: from, HasDTMF: true, DTMFPayloadType: 101})
	if err != nil {
		b.Fatal(err)
	}
	defer s.Close()
	pkt := rtpBytes(b, 0, 1, 160, make([]byte, 160))
	var (
		p      rtp.Packet
		rx     dtmfReceiver
		digits = make([]Digit, 0, 2)
		now    = time.Now()
	)
	b.ReportAllocs()
	for b.Loop() {
		s.handlePacket(pkt, from, now, &p, &rx, digits[:0])
	}
}

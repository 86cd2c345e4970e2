package media

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// The attacks of the RTP hijack issue, performed with real UDP sockets: the peer
// on 127.0.0.1, the attacker on 127.0.0.2 (another loopback address).

// attackerConn binds a socket on 127.0.0.2, or skips the test.
func attackerConn(t *testing.T) *net.UDPConn {
	t.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind the attacker on 127.0.0.2 (a second loopback address is needed): %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// spray sends audio and the RFC 4733 '1' of sippDTMF1 from conn to dst in a loop
// until stop closes, and reports how many datagrams it sent.
func spray(t *testing.T, conn *net.UDPConn, dst netip.AddrPort, stop <-chan struct{}) (sent func() int) {
	t.Helper()
	var pkts [][]byte
	for i := range 8 {
		pkts = append(pkts, rtpBytes(t, 0, uint16(1000+i), uint32(160*i), make([]byte, 160)))
	}
	for _, h := range sippDTMF1 {
		pkts = append(pkts, mustHex(t, h))
	}
	var (
		n    atomic.Int64
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conn.WriteToUDPAddrPort(pkts[i%len(pkts)], dst); err == nil {
				n.Add(1)
			}
			time.Sleep(2 * time.Millisecond)
		}
	}()
	return func() int { <-done; return int(n.Load()) }
}

// talk sends an audio packet every 20 ms from conn to dst until stop closes.
func talk(conn *net.UDPConn, dst netip.AddrPort, stop <-chan struct{}) (sent func() int) {
	var (
		n    int
		done = make(chan struct{})
	)
	go func() {
		defer close(done)
		st := phoneStream{ssrc: 0xbeef}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			p := audioPayload(i)
			b := append(make([]byte, 0, 172), 0x80, 0, byte(st.seq>>8), byte(st.seq),
				byte(st.ts>>24), byte(st.ts>>16), byte(st.ts>>8), byte(st.ts), 0, 0, 0xbe, 0xef)
			if _, err := conn.WriteToUDPAddrPort(append(b, p...), dst); err == nil {
				n++
			}
			st.seq++
			st.ts += 160
			time.Sleep(20 * time.Millisecond)
		}
	}()
	return func() int { <-done; return n }
}

// drain counts the datagrams that reach conn until nothing came for idle.
func drain(conn *net.UDPConn, idle time.Duration) int {
	buf := make([]byte, 1500)
	n := 0
	for {
		conn.SetReadDeadline(time.Now().Add(idle))
		if _, _, err := conn.ReadFromUDPAddrPort(buf); err != nil {
			return n
		}
		n++
	}
}

func noDigit(t *testing.T, s *Session, within time.Duration) {
	t.Helper()
	select {
	case d := <-s.DTMF():
		t.Fatalf("digit %+v delivered from a source that is not the peer", d)
	case <-time.After(within):
	}
}

// (a) The attacker sprays the session's port before and after the real peer (the
// SDP address) starts sending, past the latch delay and window: the peer gets the
// whole prompt, the attacker nothing, its digit is never delivered, and every
// datagram it sent is counted as WrongSource.
func TestStrictRTPSprayAttack(t *testing.T) {
	evil := attackerConn(t)
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101, LatchWindow: 1500 * time.Millisecond})
	stopSpray, stopTalk := make(chan struct{}), make(chan struct{})
	sprayed := spray(t, evil, r.sessURL, stopSpray)

	time.Sleep(200 * time.Millisecond) // the attacker was first
	talked := talk(r.peer, r.sessURL, stopTalk)
	if !waitFor(2*time.Second, r.sess.Latched) {
		t.Fatal("the peer's packets did not confirm the source")
	}
	// A one-second prompt while both send; the spray goes on past the latch delay
	// (1 s) and the window (1.5 s).
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := r.sess.Play(context.Background(), Tone(440, time.Second)); err != nil {
			t.Error(err)
		}
	}()
	got := r.recv(t, 50, 5*time.Second)
	wg.Wait()
	time.Sleep(800 * time.Millisecond)
	close(stopSpray)
	close(stopTalk)
	nEvil, nPeer := sprayed(), talked()

	if len(got) != 50 {
		t.Errorf("the peer got %d of 50 prompt packets", len(got))
	}
	if n := drain(evil, 200*time.Millisecond); n != 0 {
		t.Errorf("the attacker got %d packets", n)
	}
	noDigit(t, r.sess, 300*time.Millisecond)
	peerAddr := r.peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if r.sess.Remote() != peerAddr {
		t.Errorf("remote %v, want the peer %v", r.sess.Remote(), peerAddr)
	}
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == uint64(nEvil) }) {
		t.Errorf("WrongSource = %d, the attacker sent %d", r.sess.Stats().WrongSource, nEvil)
	}
	if st := r.sess.Stats(); st.PacketsIn != uint64(nPeer) || st.Dropped != 0 {
		t.Errorf("stats %+v, the peer sent %d", st, nPeer)
	}
	t.Logf("attacker sent %d, peer sent %d, stats %+v", nEvil, nPeer, r.sess.Stats())
}

// (a') A peer that speaks late: the attacker latched after the delay, then the SDP
// address speaks and takes the session back; a digit the attacker had started is
// not delivered, and its later packets are refused.
func TestStrictRTPSDPAddressReclaims(t *testing.T) {
	evil := attackerConn(t)
	r := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101, LatchDelay: 50 * time.Millisecond})
	time.Sleep(100 * time.Millisecond)
	r.send(t, evil, mustHex(t, sippDTMF1[0])) // a key press starts, no end yet
	evilAddr := evil.LocalAddr().(*net.UDPAddr).AddrPort()
	if !waitFor(2*time.Second, func() bool { return r.sess.Remote() == evilAddr }) {
		t.Fatalf("test premise: the attacker was not learned (remote %v)", r.sess.Remote())
	}
	r.send(t, r.peer, rtpBytes(t, 0, 1, 160, make([]byte, 160)))
	peerAddr := r.peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if !waitFor(2*time.Second, func() bool { return r.sess.Remote() == peerAddr }) {
		t.Fatalf("the SDP address did not take the session back (remote %v)", r.sess.Remote())
	}
	for _, h := range sippDTMF1[1:] {
		r.send(t, evil, mustHex(t, h))
	}
	noDigit(t, r.sess, 500*time.Millisecond) // longer than the receiver's end wait
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == uint64(len(sippDTMF1)-1) }) {
		t.Errorf("WrongSource = %d, want %d", r.sess.Stats().WrongSource, len(sippDTMF1)-1)
	}
}

// (b) NAT: the SDP says 192.0.2.10, which never sends; the phone sends from
// 127.0.0.1 within the window and is learned with the default timings; audio flows
// both ways and the attacker cannot move the latch afterwards.
func TestStrictRTPNATLearning(t *testing.T) {
	evil := attackerConn(t)
	r := newRig(t, SessionConfig{Remote: netip.MustParseAddrPort("192.0.2.10:4000"), HasDTMF: true, DTMFPayloadType: 101})
	stop := make(chan struct{})
	talked := talk(r.peer, r.sessURL, stop)
	defer func() { close(stop); talked() }()
	if !waitFor(DefaultLatchWindow, r.sess.Latched) {
		t.Fatal("the NATed phone was not learned within the window")
	}
	peerAddr := r.peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if r.sess.Remote() != peerAddr {
		t.Fatalf("remote %v, want %v", r.sess.Remote(), peerAddr)
	}
	in := r.sess.Stats().PacketsIn
	if err := r.sess.Play(context.Background(), Silence(200*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if got := r.recv(t, 10, 3*time.Second); len(got) != 10 {
		t.Errorf("the phone got %d of 10 packets", len(got))
	}
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().PacketsIn >= in+5 }) {
		t.Errorf("the phone's audio stopped flowing in: %+v", r.sess.Stats())
	}
	for _, h := range sippDTMF1 {
		r.send(t, evil, mustHex(t, h))
	}
	noDigit(t, r.sess, 300*time.Millisecond)
	if r.sess.Remote() != peerAddr || r.sess.Stats().WrongSource < uint64(len(sippDTMF1)) {
		t.Errorf("after the attack: remote %v, stats %+v", r.sess.Remote(), r.sess.Stats())
	}
}

// (c) After the window a new source is refused while the current one sends; once
// it has been silent for RelatchAfter (and we expect it to send) another source
// takes over (failover), and a third is refused while that one sends.
func TestStrictRTPFailover(t *testing.T) {
	standby := attackerConn(t) // an SBC's standby on another address
	r := newRig(t, SessionConfig{LatchWindow: 200 * time.Millisecond, RelatchAfter: 300 * time.Millisecond})
	stop := make(chan struct{})
	talked := talk(r.peer, r.sessURL, stop)
	time.Sleep(400 * time.Millisecond) // past the window
	for i := range 5 {
		r.send(t, standby, rtpBytes(t, 0, uint16(i), uint32(160*i), make([]byte, 160)))
		time.Sleep(20 * time.Millisecond)
	}
	peerAddr := r.peer.LocalAddr().(*net.UDPAddr).AddrPort()
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == 5 }) || r.sess.Remote() != peerAddr {
		t.Fatalf("a new source was not refused while the current one sends: remote %v, %+v", r.sess.Remote(), r.sess.Stats())
	}
	close(stop)
	talked()

	// Silent past RelatchAfter, but on hold (we are inactive): silence is expected,
	// nobody takes over.
	time.Sleep(400 * time.Millisecond)
	r.sess.SetDirection(DirInactive)
	r.send(t, standby, rtpBytes(t, 0, 10, 1600, make([]byte, 160)))
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == 6 }) || r.sess.Remote() != peerAddr {
		t.Fatalf("took over while on hold: remote %v, %+v", r.sess.Remote(), r.sess.Stats())
	}
	r.sess.SetDirection(DirSendRecv)
	r.send(t, standby, rtpBytes(t, 0, 11, 1760, make([]byte, 160)))
	standbyAddr := standby.LocalAddr().(*net.UDPAddr).AddrPort()
	if !waitFor(2*time.Second, func() bool { return r.sess.Remote() == standbyAddr }) {
		t.Fatalf("no failover after silence: remote %v, %+v", r.sess.Remote(), r.sess.Stats())
	}
	if err := r.sess.Play(context.Background(), Silence(60*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if n := drain(standby, 300*time.Millisecond); n != 3 {
		t.Errorf("the standby got %d of 3 packets", n)
	}

	third, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Fatal(err)
	}
	defer third.Close()
	r.send(t, standby, rtpBytes(t, 0, 12, 1920, make([]byte, 160)))
	r.send(t, third, rtpBytes(t, 0, 1, 160, make([]byte, 160)))
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == 7 }) || r.sess.Remote() != standbyAddr {
		t.Errorf("a third source moved the latch: remote %v, %+v", r.sess.Remote(), r.sess.Stats())
	}
}

// A late offer: no SDP address yet, so nothing is accepted and nothing sent until
// SetRemote gives one.
func TestStrictRTPNoRemoteYet(t *testing.T) {
	r := newRig(t, SessionConfig{Remote: netip.AddrPortFrom(netip.IPv4Unspecified(), 0), LatchDelay: -1})
	for i := range 3 {
		r.send(t, r.peer, rtpBytes(t, 0, uint16(i), uint32(160*i), make([]byte, 160)))
	}
	if err := r.sess.Play(context.Background(), Silence(40*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().WrongSource == 3 }) {
		t.Fatalf("accepted media without an SDP address: %+v", r.sess.Stats())
	}
	if got := r.recv(t, 1, 200*time.Millisecond); len(got) != 0 || r.sess.Stats().PacketsOut != 0 {
		t.Fatalf("sent %d packets without an SDP address", len(got))
	}
	peerAddr := r.peer.LocalAddr().(*net.UDPAddr).AddrPort()
	r.sess.SetRemote(peerAddr)
	r.send(t, r.peer, rtpBytes(t, 0, 3, 480, make([]byte, 160)))
	if !waitFor(2*time.Second, func() bool { return r.sess.Stats().PacketsIn == 1 }) || !r.sess.Latched() {
		t.Fatalf("the answer's address is not accepted: %+v", r.sess.Stats())
	}
}

// (d) Ports are chosen at random within the range, not in sequence; a full range
// still reports ErrNoPorts, and the one port released is found.
func TestPortAllocatorRandom(t *testing.T) {
	lo, hi := freeRange(t, 100)
	pa, err := NewPortAllocator(lo, hi, 0)
	if err != nil {
		t.Fatal(err)
	}
	var conns []*net.UDPConn
	defer func() {
		for _, c := range conns {
			c.Close()
		}
	}()
	seen := map[int]bool{}
	var ports []int
	for range 50 {
		c, err := pa.Listen(loopback)
		if err != nil {
			t.Fatal(err)
		}
		conns = append(conns, c)
		p := port(c)
		if p%2 != 0 || p < lo || p > hi || seen[p] {
			t.Fatalf("port %d: odd, outside %d-%d or handed out twice", p, lo, hi)
		}
		seen[p] = true
		ports = append(ports, p)
	}
	steps, rising := 0, 0
	for i := 1; i < len(ports); i++ {
		if ports[i] == ports[i-1]+2 {
			steps++
		}
		if ports[i] > ports[i-1] {
			rising++
		}
	}
	// Uniform draws from 100 ports: a +2 step is a ~1% event, and 49 rises in a
	// row have odds of 1 in 49!.
	if steps > 10 || rising == len(ports)-1 {
		t.Errorf("ports look sequential (%d steps of +2, %d rises): %v", steps, rising, ports)
	}
	for range 50 {
		c, err := pa.Listen(loopback)
		if err != nil {
			t.Fatalf("range not filled: %v", err)
		}
		conns = append(conns, c)
	}
	if _, err := pa.Listen(loopback); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("full range: err = %v, want ErrNoPorts", err)
	}
	last := conns[73]
	p := port(last)
	last.Close()
	pa.Release(p)
	c, err := pa.Listen(loopback)
	if err != nil || port(c) != p {
		t.Fatalf("nearly full range: got %v, %v, want port %d", c, err, p)
	}
	conns[73] = c
}

// Neither accepted packets nor a spray from a wrong source allocate.
func TestSessionHandlePacketNoAlloc(t *testing.T) {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	peer := netip.MustParseAddrPort("127.0.0.1:40000")
	s, err := NewSession(SessionConfig{Conn: conn, Remote: peer, HasDTMF: true, DTMFPayloadType: 101})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	pkt := rtpBytes(t, 0, 1, 160, make([]byte, 160))
	var (
		p      rtp.Packet
		rx     dtmfReceiver
		digits = make([]Digit, 0, 2)
		now    = time.Now()
	)
	for _, from := range []netip.AddrPort{peer, netip.MustParseAddrPort("127.0.0.2:40000")} {
		if n := testing.AllocsPerRun(1000, func() { s.handlePacket(pkt, from, now, &p, &rx, digits[:0]) }); n != 0 {
			t.Errorf("from %v: %v allocations per packet", from, n)
		}
	}
	if st := s.Stats(); st.PacketsIn != 1001 || st.WrongSource != 1001 {
		t.Errorf("stats %+v", st)
	}
}

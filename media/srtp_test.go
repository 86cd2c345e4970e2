package media

import (
	"context"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
	"github.com/pion/srtp/v3"
)

// srtpPair is two sessions on loopback sockets, each the other's peer.
type srtpPair struct{ a, b *Session }

func udpConn(tb testing.TB) *net.UDPConn {
	tb.Helper()
	c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	return c
}

func addrOf(c *net.UDPConn) netip.AddrPort { return c.LocalAddr().(*net.UDPAddr).AddrPort() }

// newPair connects two sessions; ka and kb are each side's keys (zero: plain).
func newPair(t *testing.T, ka, kb SRTPKeys) srtpPair {
	t.Helper()
	ca, cb := udpConn(t), udpConn(t)
	mk := func(c *net.UDPConn, remote netip.AddrPort, k SRTPKeys) *Session {
		s, err := NewSession(SessionConfig{Conn: c, Remote: remote, SRTP: k, HasDTMF: true, DTMFPayloadType: 101})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	return srtpPair{a: mk(ca, addrOf(cb), ka), b: mk(cb, addrOf(ca), kb)}
}

// crossed are matching keys for two SDES peers: a's Local is b's Remote.
func crossed(suite CryptoSuite) (SRTPKeys, SRTPKeys) {
	ka, kb := testKey(10), testKey(90)
	return SRTPKeys{Suite: suite, Local: ka, Remote: kb}, SRTPKeys{Suite: suite, Local: kb, Remote: ka}
}

// hearing collects the decoded audio a session receives.
type hearing struct {
	mu      sync.Mutex
	samples []int16
}

func hear(s *Session) *hearing {
	h := &hearing{}
	s.SetPacketHandler(func(p *rtp.Packet, _ netip.AddrPort) {
		if p.PayloadType != s.Codec().PayloadType {
			return
		}
		out := make([]int16, len(p.Payload))
		Decode(s.Codec(), out, p.Payload)
		h.mu.Lock()
		h.samples = append(h.samples, out...)
		h.mu.Unlock()
	})
	return h
}

// tone reports whether freq dominates what was heard (Goertzel power against two
// other frequencies) over at least minSamples.
func (h *hearing) tone(freq float64, minSamples int) (bool, int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if len(h.samples) < minSamples {
		return false, len(h.samples)
	}
	s := h.samples
	p, o1, o2 := goertzel(s, freq), goertzel(s, 697), goertzel(s, 1633)
	return p > 50*o1 && p > 50*o2, len(s)
}

func playBoth(t *testing.T, x, y *Session, fx, fy float64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	errs := make(chan error, 2)
	go func() { errs <- x.Play(ctx, Tone(fx, 600*time.Millisecond)) }()
	go func() { errs <- y.Play(ctx, Tone(fy, 600*time.Millisecond)) }()
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
}

func checkHears(t *testing.T, name string, h *hearing, freq float64) {
	t.Helper()
	var ok bool
	var n int
	waitFor(2*time.Second, func() bool { ok, n = h.tone(freq, 3*frameSamples*10); return ok })
	if !ok {
		t.Errorf("%s does not hear %v Hz (%d samples)", name, freq, n)
	}
}

// Two sessions over real UDP sockets talking SRTP each hear the other's tone; what
// travels is not plain RTP.
func TestSRTPSessionsHearEachOther(t *testing.T) {
	for _, suite := range []CryptoSuite{SuiteAES128SHA1_80, SuiteAES128SHA1_32} {
		t.Run(suite.String(), func(t *testing.T) {
			ka, kb := crossed(suite)
			p := newPair(t, ka, kb)
			ha, hb := hear(p.a), hear(p.b)
			playBoth(t, p.a, p.b, 440, 1000)
			checkHears(t, "a", ha, 1000)
			checkHears(t, "b", hb, 440)
			for _, s := range []*Session{p.a, p.b} {
				if st := s.Stats(); st.SRTPAuth != 0 || st.SRTPReplay != 0 || st.PacketsIn < 20 {
					t.Errorf("stats %+v", st)
				}
			}
		})
	}
}

// A plain listener on an SRTP session's stream sees ciphertext with a tag.
func TestSRTPOnTheWire(t *testing.T) {
	ka, _ := crossed(SuiteAES128SHA1_80)
	sink := udpConn(t)
	defer sink.Close()
	s, err := NewSession(SessionConfig{Conn: udpConn(t), Remote: addrOf(sink), SRTP: ka})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	silence := make([]int16, frameSamples)
	if _, err := s.sendFrame(silence, true); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	sink.SetReadDeadline(time.Now().Add(time.Second))
	n, _, err := sink.ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != rtpHeaderSize+frameSamples+10 {
		t.Fatalf("packet of %d bytes", n)
	}
	plain := 0
	for _, c := range buf[rtpHeaderSize : rtpHeaderSize+frameSamples] {
		if c == 0xFF { // PCMU silence
			plain++
		}
	}
	if plain > 10 {
		t.Errorf("%d of 160 payload bytes are plain silence", plain)
	}
	// The peer's context decrypts it.
	dec, err := srtp.CreateContext(ka.Local[:16], ka.Local[16:], srtp.ProtectionProfileAes128CmHmacSha1_80)
	if err != nil {
		t.Fatal(err)
	}
	out, err := dec.DecryptRTP(nil, buf[:n], nil)
	if err != nil || out[rtpHeaderSize] != 0xFF {
		t.Fatalf("decrypt: %v", err)
	}
}

// An SRTP leg bridged to a plain leg: each phone hears the other's tone.
func TestSRTPBridgeToPlainRTP(t *testing.T) {
	ka, kb := crossed(SuiteAES128SHA1_80)
	secure := newPair(t, ka, kb)                // phone a <-> leg a (SRTP)
	plain := newPair(t, SRTPKeys{}, SRTPKeys{}) // leg b <-> phone b (RTP)
	// Plain leg b in PCMA, so the bridge also transcodes.
	plain.a.SetFormat(PCMA, true, 101)
	plain.b.SetFormat(PCMA, true, 101)
	phoneA, legA, legB, phoneB := secure.a, secure.b, plain.a, plain.b
	br, err := NewBridge(context.Background(), legA, legB, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	ha, hb := hear(phoneA), hear(phoneB)
	playBoth(t, phoneA, phoneB, 440, 1000)
	checkHears(t, "srtp phone", ha, 1000)
	checkHears(t, "plain phone", hb, 440)
	st := br.Stats()
	if st.AtoB.Relayed < 20 || st.BtoA.Relayed < 20 {
		t.Errorf("bridge stats %+v", st)
	}
	if legA.Stats().SRTPAuth != 0 {
		t.Errorf("auth failures %+v", legA.Stats())
	}

	// DTMF over SRTP through the bridge: phone b's RFC 4733 digit reaches the
	// SRTP phone a as a digit.
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := phoneB.SendDTMF(ctx, '5', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	for {
		select {
		case d := <-phoneA.DTMF():
			if d.Key != '5' {
				t.Errorf("digit %+v", d)
			}
			return
		case <-ctx.Done():
			t.Fatal("the srtp phone got no digit through the bridge")
		}
	}
}

// Two SRTP legs bridged (each with its own keys) relay audio both ways.
func TestSRTPBridgeBothSecure(t *testing.T) {
	k1a, k1b := crossed(SuiteAES128SHA1_80)
	k2a, k2b := crossed(SuiteAES128SHA1_32)
	k2a.Local, k2b.Remote = testKey(150), testKey(150)
	one, two := newPair(t, k1a, k1b), newPair(t, k2a, k2b)
	phoneA, legA, legB, phoneB := one.a, one.b, two.a, two.b
	br, err := NewBridge(context.Background(), legA, legB, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	ha, hb := hear(phoneA), hear(phoneB)
	playBoth(t, phoneA, phoneB, 440, 1000)
	checkHears(t, "phone a", ha, 1000)
	checkHears(t, "phone b", hb, 440)
}

// RFC 4733 events go out encrypted and are detected after decryption.
func TestSRTPDTMF(t *testing.T) {
	ka, kb := crossed(SuiteAES128SHA1_80)
	p := newPair(t, ka, kb)
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if err := p.a.SendDTMF(ctx, '7', 100*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	select {
	case d := <-p.b.DTMF():
		if d.Key != '7' || d.Source != DTMFSourceRFC4733 {
			t.Errorf("digit %+v", d)
		}
	case <-ctx.Done():
		t.Fatal("no digit over srtp")
	}
}

// peerEncrypter is the far end's SRTP sender.
type peerEncrypter struct {
	ctx *srtp.Context
	seq uint16
	hdr rtp.Header
	buf [1500]byte
}

func newPeerEncrypter(tb testing.TB, suite CryptoSuite, key [sdesKeyLen]byte) *peerEncrypter {
	tb.Helper()
	ctx, err := newSRTPContext(suite, key)
	if err != nil {
		tb.Fatal(err)
	}
	return &peerEncrypter{ctx: ctx, seq: 1}
}

// next is the next encrypted audio packet (PCMU, SSRC 0x1234).
func (e *peerEncrypter) next(tb testing.TB, plain []byte) []byte {
	e.seq++
	h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: e.seq, Timestamp: uint32(e.seq) * 160, SSRC: 0x1234}
	n, err := h.MarshalTo(plain)
	if err != nil {
		tb.Fatal(err)
	}
	out, err := e.ctx.EncryptRTP(e.buf[:0], plain[:n+160], &e.hdr)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// A packet with a wrong tag or key is dropped and counted, a replay too; good ones
// pass; a rekey accepts the new key and, for packets in flight, the old one.
func TestSRTPAuthAndReplay(t *testing.T) {
	ka, _ := crossed(SuiteAES128SHA1_80)
	r := newRig(t, SessionConfig{SRTP: ka})
	got := make(chan uint16, 16)
	r.sess.SetPacketHandler(func(p *rtp.Packet, _ netip.AddrPort) { got <- p.SequenceNumber })
	plain := make([]byte, 1500)
	good := newPeerEncrypter(t, SuiteAES128SHA1_80, ka.Remote)
	expect := func(what string, seq uint16, ok bool) {
		t.Helper()
		select {
		case s := <-got:
			if !ok || s != seq {
				t.Errorf("%s: got seq %d", what, s)
			}
		case <-time.After(300 * time.Millisecond):
			if ok {
				t.Errorf("%s: nothing arrived", what)
			}
		}
	}

	p1 := append([]byte(nil), good.next(t, plain)...)
	r.send(t, r.peer, p1)
	expect("good", good.seq, true)

	bad := append([]byte(nil), good.next(t, plain)...)
	bad[len(bad)-1] ^= 1
	r.send(t, r.peer, bad)
	expect("flipped tag", 0, false)

	wrongKey := newPeerEncrypter(t, SuiteAES128SHA1_80, testKey(77))
	wrongKey.seq = good.seq + 5
	r.send(t, r.peer, wrongKey.next(t, plain))
	expect("wrong key", 0, false)

	r.send(t, r.peer, p1) // replay
	expect("replay", 0, false)

	plainRTP := rtpBytes(t, 0, good.seq+10, 1, make([]byte, 160))
	r.send(t, r.peer, plainRTP)
	expect("plain rtp", 0, false)

	st := r.sess.Stats()
	if st.SRTPAuth != 3 || st.SRTPReplay != 1 || st.PacketsIn != 1 {
		t.Errorf("stats %+v", st)
	}

	// Rekey: the peer's new key works at once, its old one for packets in flight.
	newKey := testKey(120)
	if err := r.sess.SetSRTP(SRTPKeys{Suite: ka.Suite, Local: ka.Local, Remote: newKey}); err != nil {
		t.Fatal(err)
	}
	rekeyed := newPeerEncrypter(t, SuiteAES128SHA1_80, newKey)
	rekeyed.seq = good.seq + 20
	r.send(t, r.peer, good.next(t, plain))
	expect("old key in flight", good.seq, true)
	r.send(t, r.peer, rekeyed.next(t, plain))
	expect("new key", rekeyed.seq, true)

	// Off again: plain RTP.
	if err := r.sess.SetSRTP(SRTPKeys{}); err != nil {
		t.Fatal(err)
	}
	r.send(t, r.peer, rtpBytes(t, 0, rekeyed.seq+1, 1, make([]byte, 160)))
	expect("plain after srtp off", rekeyed.seq+1, true)
}

// Our side keeps its encrypting context (rollover counter) when only the peer
// rekeys, and SetSRTP with the same keys changes nothing.
func TestSetSRTPKeepsContexts(t *testing.T) {
	ka, _ := crossed(SuiteAES128SHA1_80)
	r := newRig(t, SessionConfig{SRTP: ka})
	tx, rx := r.sess.srtpTx.Load(), r.sess.srtpRx.Load()
	if err := r.sess.SetSRTP(ka); err != nil {
		t.Fatal(err)
	}
	if r.sess.srtpTx.Load() != tx || r.sess.srtpRx.Load() != rx {
		t.Error("same keys replaced a context")
	}
	k2 := ka
	k2.Remote = testKey(3)
	if err := r.sess.SetSRTP(k2); err != nil {
		t.Fatal(err)
	}
	if r.sess.srtpTx.Load() != tx || r.sess.srtpRx.Load() == rx || r.sess.srtpRx.Load().prev != rx.ctx {
		t.Error("peer rekey: wrong contexts")
	}
}

// srtpRelayBench is an SRTP-receiving session bridged to a destination session;
// feed runs the whole receive path (decrypt, strict-RTP checks, relay, encrypt when
// the destination is SRTP, send) for one packet the far end encrypted.
func srtpRelayBench(tb testing.TB, srcSRTP, dstSRTP bool) (feed func(), done func()) {
	tb.Helper()
	from := netip.MustParseAddrPort("127.0.0.1:9")
	sink := udpConn(tb)
	var ks, kd SRTPKeys
	if srcSRTP {
		ks, _ = crossed(SuiteAES128SHA1_80)
	}
	if dstSRTP {
		kd, _ = crossed(SuiteAES128SHA1_80)
	}
	a, err := NewSession(SessionConfig{Conn: udpConn(tb), Remote: from, SRTP: ks, HasDTMF: true, DTMFPayloadType: 101})
	if err != nil {
		tb.Fatal(err)
	}
	b, err := NewSession(SessionConfig{Conn: udpConn(tb), Remote: addrOf(sink), SRTP: kd, HasDTMF: true, DTMFPayloadType: 101})
	if err != nil {
		tb.Fatal(err)
	}
	br, err := NewBridge(context.Background(), a, b, BridgeOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	var (
		pkt    rtp.Packet
		rx     dtmfReceiver
		digits = make([]Digit, 0, 2)
		plain  = make([]byte, 1500)
		in     = make([]byte, 1500)
		enc    *peerEncrypter
		seq    uint16
	)
	if srcSRTP {
		enc = newPeerEncrypter(tb, SuiteAES128SHA1_80, ks.Remote)
	}
	feed = func() {
		var b []byte
		if enc != nil {
			b = in[:copy(in, enc.next(tb, plain))]
		} else {
			seq++
			h := rtp.Header{Version: 2, PayloadType: 0, SequenceNumber: seq, Timestamp: uint32(seq) * 160, SSRC: 0x1234}
			n, _ := h.MarshalTo(in)
			b = in[:n+160]
		}
		a.handlePacket(b, from, time.Now(), &pkt, &rx, digits[:0])
	}
	return feed, func() {
		if st := br.Stats(); st.AtoB.Relayed == 0 {
			tb.Errorf("nothing relayed: %+v, src %+v", st, a.Stats())
		}
		br.Stop()
		a.Close()
		b.Close()
		sink.Close()
	}
}

var relayCases = []struct {
	name     string
	src, dst bool
}{{"RTP-RTP", false, false}, {"SRTP-RTP", true, false}, {"RTP-SRTP", false, true}, {"SRTP-SRTP", true, true}}

// The SRTP hot path allocates nothing: far-end encryption, decryption in place,
// relay, encryption into the session's buffer, send.
func TestSRTPRelayNoAlloc(t *testing.T) {
	for _, tc := range relayCases {
		t.Run(tc.name, func(t *testing.T) {
			feed, done := srtpRelayBench(t, tc.src, tc.dst)
			defer done()
			feed() // first packet: the per-SSRC state of both contexts
			n := testing.AllocsPerRun(1000, feed)
			if raceEnabled && tc.src {
				t.Logf("%v allocations per packet under -race (sync.Pool drops items); the plain build asserts 0", n)
				return
			}
			if n != 0 {
				t.Errorf("%v allocations per packet", n)
			}
		})
	}
}

// BenchmarkSRTPRelay is the per-packet cost of a bridged packet from the read
// loop's view (after the socket read): RTP-RTP is the plain relay, the others add
// SRTP decryption and/or encryption. Each iteration also includes the far end's
// encryption of the packet when the source is SRTP (see BenchmarkSRTPPeerEncrypt
// to subtract it).
func BenchmarkSRTPRelay(b *testing.B) {
	for _, tc := range relayCases {
		b.Run(tc.name, func(b *testing.B) {
			feed, done := srtpRelayBench(b, tc.src, tc.dst)
			defer done()
			b.ReportAllocs()
			for b.Loop() {
				feed()
			}
		})
	}
}

// BenchmarkSRTPPeerEncrypt is the far end's share of BenchmarkSRTPRelay.
func BenchmarkSRTPPeerEncrypt(b *testing.B) {
	enc := newPeerEncrypter(b, SuiteAES128SHA1_80, testKey(1))
	plain := make([]byte, 1500)
	b.ReportAllocs()
	for b.Loop() {
		enc.next(b, plain)
	}
}

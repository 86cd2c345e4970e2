package media

import (
	"context"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// phoneStream is what a fake phone sends: its own SSRC, sequence and timestamps.
type phoneStream struct {
	ssrc uint32
	seq  uint16
	ts   uint32
}

// audioPayload is packet i's recognisable 160-byte payload: the index in the first
// two bytes, then a pattern that walks through all byte values.
func audioPayload(i int) []byte {
	p := make([]byte, 160)
	p[0], p[1] = byte(i), byte(i>>8)
	for j := 2; j < len(p); j++ {
		p[j] = byte(i*7 + j*3)
	}
	return p
}

// sendStream sends n audio packets of pt from conn to dst every gap, marker on the
// first, and advances st.
func sendStream(t *testing.T, conn *net.UDPConn, dst netip.AddrPort, st *phoneStream, pt uint8, first, n int, gap time.Duration) {
	t.Helper()
	for i := first; i < first+n; i++ {
		p := rtp.Packet{Header: rtp.Header{Version: 2, Marker: i == first, PayloadType: pt, SequenceNumber: st.seq, Timestamp: st.ts, SSRC: st.ssrc}, Payload: audioPayload(i)}
		b, err := p.Marshal()
		if err != nil {
			t.Error(err)
			return
		}
		if _, err := conn.WriteToUDPAddrPort(b, dst); err != nil {
			t.Error(err)
			return
		}
		st.seq++
		st.ts += 160
		if gap > 0 {
			time.Sleep(gap)
		}
	}
}

// collect reads packets at conn until n arrived or nothing came for idle.
func collect(conn *net.UDPConn, n int, idle time.Duration) []rtp.Packet {
	var out []rtp.Packet
	buf := make([]byte, 1500)
	for len(out) < n {
		conn.SetReadDeadline(time.Now().Add(idle))
		k, _, err := conn.ReadFromUDPAddrPort(buf)
		if err != nil {
			break
		}
		var p rtp.Packet
		if err := p.Unmarshal(append([]byte(nil), buf[:k]...)); err == nil {
			out = append(out, p)
		}
	}
	return out
}

// checkRelayed verifies the relayed packets a phone received: dst's SSRC, payload
// type, sequence numbers continuing after, timestamps on one 160-per-packet line,
// and each payload transformed by want from the source payload.
func checkRelayed(t *testing.T, name string, got []rtp.Packet, after rtp.Header, ssrc uint32, pt uint8, want func([]byte) []byte, firstIdx, sent int) {
	t.Helper()
	if loss := sent - len(got); float64(loss) > 0.01*float64(sent) {
		t.Fatalf("%s: %d of %d packets arrived (loss %.1f%%)", name, len(got), sent, 100*float64(loss)/float64(sent))
	}
	if len(got) == 0 {
		t.Fatalf("%s: nothing relayed", name)
	}
	first := got[0]
	if first.SequenceNumber != after.SequenceNumber+1 {
		t.Errorf("%s: first relayed seq %d after prompt seq %d", name, first.SequenceNumber, after.SequenceNumber)
	}
	if d := first.Timestamp - after.Timestamp; d < 160 || d > 8000*5 {
		t.Errorf("%s: first relayed ts %d is %d after the prompt's last %d", name, first.Timestamp, d, after.Timestamp)
	}
	if !first.Marker {
		t.Errorf("%s: first relayed packet has no marker", name)
	}
	idx0 := -1 // sent index of the first packet that arrived
	var prev uint16 = first.SequenceNumber - 1
	for k, p := range got {
		if p.SSRC != ssrc || p.PayloadType != pt || p.Version != 2 {
			t.Fatalf("%s: packet %d header %v, want ssrc %#x pt %d", name, k, p.Header, ssrc, pt)
		}
		if int16(p.SequenceNumber-prev) <= 0 {
			t.Fatalf("%s: packet %d seq %d after %d", name, k, p.SequenceNumber, prev)
		}
		prev = p.SequenceNumber
		// Recover the index from the payload (through the inverse transform).
		idx := -1
		if string(want(audioPayload(firstIdx+k))) == string(p.Payload) {
			idx = firstIdx + k // the usual case: nothing lost before it
		} else {
			for i := firstIdx; i < firstIdx+sent; i++ {
				if string(want(audioPayload(i))) == string(p.Payload) {
					idx = i
					break
				}
			}
		}
		if idx < 0 {
			t.Fatalf("%s: packet %d payload matches no sent packet: % x", name, k, p.Payload[:8])
		}
		if k == 0 {
			idx0 = idx
		}
		if want := first.Timestamp + uint32(160*(idx-idx0)); p.Timestamp != want {
			t.Fatalf("%s: packet %d (sent #%d) ts %d, want %d", name, k, idx, p.Timestamp, want)
		}
		if k > 0 && p.Marker {
			t.Errorf("%s: packet %d has the marker", name, k)
		}
	}
}

func identity(b []byte) []byte { return b }

func through(table *[256]byte) func([]byte) []byte {
	return func(b []byte) []byte {
		out := make([]byte, len(b))
		for i, c := range b {
			out[i] = table[c]
		}
		return out
	}
}

// promptTail plays a short prompt on s and returns the last header its phone saw.
func promptTail(t *testing.T, r *testRig) rtp.Header {
	t.Helper()
	if err := r.sess.Play(context.Background(), Silence(100*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	pkts := r.recv(t, 5, 3*time.Second)
	if len(pkts) != 5 {
		t.Fatalf("prompt: %d packets", len(pkts))
	}
	return pkts[4].Header
}

func goroutineCheck(t *testing.T) func() {
	t.Helper()
	before := runtime.NumGoroutine()
	return func() {
		t.Helper()
		if !waitFor(5*time.Second, func() bool { return runtime.NumGoroutine() <= before }) {
			buf := make([]byte, 1<<16)
			t.Errorf("goroutines: %d before, %d after\n%s", before, runtime.NumGoroutine(), buf[:runtime.Stack(buf, true)])
		}
	}
}

func TestBridgeRelaySameCodec(t *testing.T) {
	const n = 500
	a := newRig(t, SessionConfig{Codec: PCMU, HasDTMF: true, DTMFPayloadType: 101})
	b := newRig(t, SessionConfig{Codec: PCMU, HasDTMF: true, DTMFPayloadType: 96})
	tailA, tailB := promptTail(t, a), promptTail(t, b)
	if tailA.SSRC != a.sess.SSRC() || tailB.SSRC != b.sess.SSRC() {
		t.Fatal("SSRC() differs from what the prompt used")
	}
	time.Sleep(50 * time.Millisecond) // a pause between prompt and bridge

	// A handler installed before the bridge is restored after it.
	var before sync.WaitGroup
	before.Add(1)
	var onceBefore sync.Once
	a.sess.SetPacketHandler(func(*rtp.Packet, netip.AddrPort) { onceBefore.Do(before.Done) })

	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()

	// While bridged, the sessions' own writers are off limits.
	if err := a.sess.Play(context.Background(), Silence(20*time.Millisecond)); !errors.Is(err, ErrBridged) {
		t.Errorf("Play while bridged = %v", err)
	}
	if err := b.sess.SendDTMF(context.Background(), '1', 0); !errors.Is(err, ErrBridged) {
		t.Errorf("SendDTMF while bridged = %v", err)
	}
	if _, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{}); !errors.Is(err, ErrBusy) {
		t.Errorf("second bridge = %v", err)
	}
	if _, err := a.sess.Record(context.Background(), &memSink{}, RecordOptions{}); !errors.Is(err, ErrBridged) {
		t.Errorf("Record while bridged = %v", err)
	}

	var wg sync.WaitGroup
	var gotA, gotB []rtp.Packet
	wg.Add(4)
	go func() { defer wg.Done(); gotB = collect(b.peer, n+10, time.Second) }() // what A's phone said
	go func() { defer wg.Done(); gotA = collect(a.peer, n+10, time.Second) }()
	phoneA := &phoneStream{ssrc: 0xA0A0, seq: 100, ts: 4000}
	go func() {
		defer wg.Done()
		sendStream(t, a.peer, a.sessURL, phoneA, 0, 0, n, 2*time.Millisecond)
	}()
	go func() {
		defer wg.Done()
		sendStream(t, b.peer, b.sessURL, &phoneStream{ssrc: 0xB0B0, seq: 60000, ts: 0xFFFFF000}, 0, 1000, n, 2*time.Millisecond)
	}()
	wg.Wait()
	checkRelayed(t, "a->b", gotB, tailB, b.sess.SSRC(), 0, identity, 0, n)
	checkRelayed(t, "b->a", gotA, tailA, a.sess.SSRC(), 0, identity, 1000, n)

	// DTMF from A's phone reaches B's phone re-stamped: B's telephone-event payload
	// type, B's SSRC, sequence numbers continuing the audio's with the same offset
	// (sipp repeats the end packet under one sequence number; so does the relay),
	// one timestamp for the whole event.
	lastB := gotB[len(gotB)-1]
	for k, h := range sippDTMF1 {
		// sipp's key press, moved onto phone A's stream (its SSRC, sequence numbers
		// and timeline).
		pkt := mustHex(t, h)
		binary.BigEndian.PutUint16(pkt[2:4], phoneA.seq+uint16(min(k, 7)))
		binary.BigEndian.PutUint32(pkt[4:8], phoneA.ts)
		binary.BigEndian.PutUint32(pkt[8:12], phoneA.ssrc)
		a.send(t, a.peer, pkt)
		time.Sleep(2 * time.Millisecond)
	}
	ev := collect(b.peer, len(sippDTMF1), time.Second)
	if len(ev) != len(sippDTMF1) {
		t.Fatalf("relayed %d of %d telephone-event packets", len(ev), len(sippDTMF1))
	}
	for k, p := range ev {
		if p.PayloadType != 96 || p.SSRC != b.sess.SSRC() || p.Timestamp != ev[0].Timestamp || p.SequenceNumber != lastB.SequenceNumber+1+uint16(min(k, 7)) {
			t.Fatalf("event packet %d: %v (last audio %v)", k, p.Header, lastB.Header)
		}
		want := mustHex(t, sippDTMF1[k])[12:]
		if string(p.Payload) != string(want) {
			t.Errorf("event packet %d payload % x, want % x", k, p.Payload, want)
		}
		if p.Marker != (k == 0) {
			t.Errorf("event packet %d marker %v", k, p.Marker)
		}
	}
	if d := ev[0].Timestamp - lastB.Timestamp; int32(d) < 0 || d > 8000*3 {
		t.Errorf("event timestamp %d jumps %d from the audio's %d", ev[0].Timestamp, d, lastB.Timestamp)
	}
	// The digit is still detected on the receiving session.
	select {
	case d := <-a.sess.DTMF():
		if d.Key != '1' {
			t.Errorf("digit %+v", d)
		}
	case <-time.After(2 * time.Second):
		t.Error("digit not delivered on the bridged session")
	}

	st := br.Stats()
	if st.AtoB.Relayed < n*99/100+uint64(len(sippDTMF1)) || st.AtoB.DTMF != uint64(len(sippDTMF1)) || st.BtoA.Relayed < n*99/100 {
		t.Errorf("stats %+v", st)
	}
	if st.AtoB.Transcoded != 0 || st.AtoB.Resyncs != 1 || st.BtoA.Resyncs != 1 {
		t.Errorf("stats %+v", st)
	}

	// Unbridge: the old handler is back, and a prompt continues each stream.
	br.Stop()
	br.Stop() // idempotent
	select {
	case <-br.Done():
	default:
		t.Fatal("Done not closed after Stop")
	}
	a.send(t, a.peer, rtpBytes(t, 0, 9000, 9000, make([]byte, 160)))
	waitCh := make(chan struct{})
	go func() { before.Wait(); close(waitCh) }()
	select {
	case <-waitCh:
	case <-time.After(2 * time.Second):
		t.Fatal("previous handler not restored")
	}
	if got := collect(b.peer, 1, 100*time.Millisecond); len(got) != 0 {
		t.Fatalf("relayed after Stop: %v", got[0].Header)
	}
	lastEv := ev[len(ev)-1]
	next := promptTail(t, b)
	if next.SSRC != b.sess.SSRC() || next.SequenceNumber != lastEv.SequenceNumber+5 {
		t.Errorf("prompt after bridge: %v, last relayed %v", next, lastEv.Header)
	}
	if d := next.Timestamp - lastEv.Timestamp; int32(d) <= 0 || d > 8000*5 {
		t.Errorf("prompt after bridge ts %d, last relayed %d", next.Timestamp, lastEv.Timestamp)
	}
}

func TestBridgeTranscode(t *testing.T) {
	const n = 200
	a := newRig(t, SessionConfig{Codec: PCMU})
	b := newRig(t, SessionConfig{Codec: PCMA})
	tailA, tailB := promptTail(t, a), promptTail(t, b)
	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	var wg sync.WaitGroup
	var gotA, gotB []rtp.Packet
	wg.Add(4)
	go func() { defer wg.Done(); gotB = collect(b.peer, n+5, time.Second) }()
	go func() { defer wg.Done(); gotA = collect(a.peer, n+5, time.Second) }()
	go func() {
		defer wg.Done()
		sendStream(t, a.peer, a.sessURL, &phoneStream{ssrc: 1, seq: 1, ts: 1}, PCMU.PayloadType, 0, n, 2*time.Millisecond)
	}()
	go func() {
		defer wg.Done()
		sendStream(t, b.peer, b.sessURL, &phoneStream{ssrc: 2, seq: 2, ts: 2}, PCMA.PayloadType, 0, n, 2*time.Millisecond)
	}()
	wg.Wait()
	checkRelayed(t, "pcmu->pcma", gotB, tailB, b.sess.SSRC(), PCMA.PayloadType, through(&ulawToAlawTable), 0, n)
	checkRelayed(t, "pcma->pcmu", gotA, tailA, a.sess.SSRC(), PCMU.PayloadType, through(&alawToUlawTable), 0, n)
	// Spot-check the tables against the public per-byte functions.
	if p := gotB[0].Payload; p[5] != UlawToAlaw(audioPayload(0)[5]) {
		t.Errorf("byte 5: %#x, want %#x", p[5], UlawToAlaw(audioPayload(0)[5]))
	}
	if st := br.Stats(); st.AtoB.Transcoded < n*99/100 || st.BtoA.Transcoded < n*99/100 {
		t.Errorf("transcoded: %+v", st)
	}
}

func TestBridgeDropsWhatTheOtherSideCannotTake(t *testing.T) {
	a := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	b := newRig(t, SessionConfig{}) // no telephone-event
	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	for _, h := range sippDTMF1 {
		a.send(t, a.peer, mustHex(t, h))
	}
	a.send(t, a.peer, rtpBytes(t, 13, 1, 160, []byte{40})) // comfort noise (RFC 3389)
	a.send(t, a.peer, rtpBytes(t, 0, 2, 320, make([]byte, 160)))
	got := collect(b.peer, 5, 300*time.Millisecond)
	if len(got) != 1 || got[0].PayloadType != 0 {
		t.Fatalf("b's phone got %d packets", len(got))
	}
	if st := br.Stats(); st.AtoB.Dropped != uint64(len(sippDTMF1)) || st.AtoB.Relayed != 1 {
		t.Errorf("stats %+v", st)
	}
	if st := a.sess.Stats(); st.Dropped != 1 {
		t.Errorf("comfort noise not counted by the session: %+v", st)
	}
}

func TestBridgeHold(t *testing.T) {
	a := newRig(t, SessionConfig{})
	b := newRig(t, SessionConfig{})
	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	st := &phoneStream{ssrc: 7, seq: 1, ts: 1}
	sendStream(t, a.peer, a.sessURL, st, 0, 0, 5, 20*time.Millisecond)
	if got := collect(b.peer, 5, time.Second); len(got) != 5 {
		t.Fatalf("before hold: %d", len(got))
	}
	// B's phone put us on hold (it offered sendonly, we answered recvonly).
	b.sess.SetDirection(DirSendOnly.Answer())
	sendStream(t, a.peer, a.sessURL, st, 0, 5, 5, 20*time.Millisecond)
	if got := collect(b.peer, 1, 200*time.Millisecond); len(got) != 0 {
		t.Fatalf("sent %d packets toward a leg on hold", len(got))
	}
	if s := br.Stats(); s.AtoB.Held != 5 {
		t.Errorf("held = %d", s.AtoB.Held)
	}
	b.sess.SetDirection(DirSendRecv)
	sendStream(t, a.peer, a.sessURL, st, 0, 10, 5, 20*time.Millisecond)
	got := collect(b.peer, 5, time.Second)
	if len(got) != 5 {
		t.Fatalf("after hold: %d", len(got))
	}
	// The timeline kept running through the hold; no resync was needed.
	if s := br.Stats(); s.AtoB.Resyncs != 1 {
		t.Errorf("resyncs = %d", s.AtoB.Resyncs)
	}
}

func TestBridgeResync(t *testing.T) {
	a := newRig(t, SessionConfig{})
	b := newRig(t, SessionConfig{})
	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{ResyncThreshold: 500 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	s1 := &phoneStream{ssrc: 1, seq: 10, ts: 1000}
	sendStream(t, a.peer, a.sessURL, s1, 0, 0, 5, 20*time.Millisecond)
	// A new SSRC (the far end switched media source) with an unrelated clock.
	s2 := &phoneStream{ssrc: 2, seq: 5000, ts: 3_000_000_000}
	sendStream(t, a.peer, a.sessURL, s2, 0, 5, 5, 20*time.Millisecond)
	// The same SSRC restarting its clock (jump far beyond the wall clock).
	s2.ts += 8000 * 3600
	sendStream(t, a.peer, a.sessURL, s2, 0, 10, 5, 20*time.Millisecond)
	got := collect(b.peer, 15, time.Second)
	if len(got) != 15 {
		t.Fatalf("got %d", len(got))
	}
	for k := 1; k < len(got); k++ {
		p, q := got[k-1], got[k]
		if q.SequenceNumber != p.SequenceNumber+1 || q.SSRC != p.SSRC {
			t.Fatalf("packet %d: %v after %v", k, q.Header, p.Header)
		}
		d := q.Timestamp - p.Timestamp
		if k%5 == 0 {
			// Resync: continues the line with the time that passed, marked.
			if !q.Marker || d < 160 || d > 8000 {
				t.Errorf("packet %d after a jump: marker %v, ts step %d", k, q.Marker, d)
			}
		} else if d != 160 || q.Marker {
			t.Errorf("packet %d: ts step %d marker %v", k, d, q.Marker)
		}
	}
	if st := br.Stats(); st.AtoB.Resyncs != 3 {
		t.Errorf("resyncs = %d, want 3", st.AtoB.Resyncs)
	}
}

// The relay shifts sequence numbers by a fixed offset: a gap of lost packets stays a
// gap of the same size and reordered packets stay reordered (RFC 3550 §6.4.1 reports
// of the far end then describe the near leg), telephone-events on the audio's SSRC
// share that offset, and events on an SSRC of their own get the next free numbers.
func TestBridgeKeepsLossAndReorder(t *testing.T) {
	a := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	b := newRig(t, SessionConfig{HasDTMF: true, DTMFPayloadType: 101})
	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	defer br.Stop()
	const ssrc = 0x5150
	pkt := func(pt uint8, seq uint16, ts, ssrc uint32, payload []byte) []byte {
		p := rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: pt, SequenceNumber: seq, Timestamp: ts, SSRC: ssrc}, Payload: payload}
		bs, err := p.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		return bs
	}
	// 65534..65535 then a wrap, 2 and 3 lost, 5 and 4 swapped, 6 late after 7.
	order := []uint16{65534, 65535, 0, 1, 4, 5, 7, 6, 8}
	for _, seq := range order {
		i := int(int16(seq)) // -2, -1, 0, ...
		a.send(t, a.peer, pkt(0, seq, uint32(50_000+160*i), ssrc, audioPayload(i+2)))
		time.Sleep(5 * time.Millisecond)
	}
	// A key press on the audio's SSRC right after sequence number 8, and one on a
	// stream of its own (sequence numbers unrelated to the audio's).
	a.send(t, a.peer, pkt(101, 9, 52_000, ssrc, []byte{5, 0x8a, 0x01, 0x40}))
	time.Sleep(5 * time.Millisecond)
	a.send(t, a.peer, pkt(101, 40_000, 90_000, 0xE0E0, []byte{6, 0x8a, 0x01, 0x40}))
	got := collect(b.peer, len(order)+2, time.Second)
	if len(got) != len(order)+2 {
		t.Fatalf("relayed %d of %d packets", len(got), len(order)+2)
	}
	base, ts0 := got[0].SequenceNumber, got[0].Timestamp
	for k, seq := range order {
		p := got[k]
		if p.SequenceNumber-base != seq-order[0] {
			t.Errorf("packet %d (in seq %d): out seq %d is %d after the first, want %d",
				k, seq, p.SequenceNumber, p.SequenceNumber-base, seq-order[0])
		}
		if p.Timestamp-ts0 != 160*uint32(seq-order[0]) {
			t.Errorf("packet %d (in seq %d): ts step %d", k, seq, p.Timestamp-ts0)
		}
	}
	if ev := got[len(order)]; ev.SequenceNumber != base+(9-order[0]) || ev.PayloadType != 101 {
		t.Errorf("event on the audio ssrc: %v, want seq %d", ev.Header, base+(9-order[0]))
	}
	if ev := got[len(order)+1]; ev.SequenceNumber != base+(10-order[0]) || ev.SSRC != b.sess.SSRC() {
		t.Errorf("event on its own ssrc: %v, want seq %d", ev.Header, base+(10-order[0]))
	}
	if st := br.Stats(); st.AtoB.Resyncs != 1 {
		t.Errorf("resyncs = %d, want 1 (loss and reorder are not jumps)", st.AtoB.Resyncs)
	}

	// A sequence jump beyond RFC 3550's MAX_DROPOUT is a new stream: re-anchored.
	a.send(t, a.peer, pkt(0, 20_000, uint32(50_000+160*9), ssrc, audioPayload(20)))
	got = collect(b.peer, 1, time.Second)
	if len(got) != 1 || got[0].SequenceNumber != base+(11-order[0]) || !got[0].Marker {
		t.Fatalf("after a sequence jump: %v, want seq %d with marker", got, base+(11-order[0]))
	}
	if st := br.Stats(); st.AtoB.Resyncs != 2 {
		t.Errorf("resyncs = %d, want 2", st.AtoB.Resyncs)
	}
}

func TestBridgeEndsWhenASessionCloses(t *testing.T) {
	check := goroutineCheck(t)
	a := newRig(t, SessionConfig{})
	b := newRig(t, SessionConfig{})
	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	// Traffic in flight while B hangs up.
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		st := &phoneStream{ssrc: 3}
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			sendStream(t, a.peer, a.sessURL, st, 0, i, 1, time.Millisecond)
		}
	}()
	time.Sleep(50 * time.Millisecond)
	b.sess.Close()
	select {
	case <-br.Done():
	case <-time.After(3 * time.Second):
		t.Fatal("bridge still up after a session closed")
	}
	close(stop)
	wg.Wait()
	br.Stop() // after the end: returns at once
	// The surviving leg plays again (e.g. "the other party hung up").
	if err := a.sess.Play(context.Background(), Silence(40*time.Millisecond)); err != nil {
		t.Fatal(err)
	}
	// Closed sessions cannot be bridged.
	if _, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{}); !errors.Is(err, ErrSessionClosed) {
		t.Errorf("bridge with a closed session = %v", err)
	}
	a.sess.Close()
	a.peer.Close()
	b.peer.Close()
	check()
}

func TestBridgeWaitsForPlay(t *testing.T) {
	a := newRig(t, SessionConfig{})
	b := newRig(t, SessionConfig{})
	playCtx, cancelPlay := context.WithCancel(context.Background())
	played := make(chan error, 1)
	go func() { played <- a.sess.Play(playCtx, Tone(440, 10*time.Second)) }()
	if got := collect(a.peer, 1, 3*time.Second); len(got) != 1 {
		t.Fatal("prompt not playing")
	}

	// A prompt still playing: NewBridge waits, bounded by its ctx.
	ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	if _, err := NewBridge(ctx, a.sess, b.sess, BridgeOptions{}); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("NewBridge during Play = %v", err)
	}
	// The failed attempt left nothing behind: the prompt goes on, and once it is
	// stopped the bridge comes up.
	cancelPlay()
	br, err := NewBridge(context.Background(), a.sess, b.sess, BridgeOptions{})
	if err != nil {
		t.Fatal(err)
	}
	br.Stop()
	if err := <-played; !errors.Is(err, context.Canceled) {
		t.Errorf("Play = %v", err)
	}
}

// relayBench is a relay between two sessions whose destination sends to a sink.
func relayBench(tb testing.TB, src, dst Codec) (*relay, *rtp.Packet, func()) {
	tb.Helper()
	mk := func(c Codec, remote netip.AddrPort) *Session {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			tb.Fatal(err)
		}
		s, err := NewSession(SessionConfig{Conn: conn, Codec: c, Remote: remote, HasDTMF: true, DTMFPayloadType: 101})
		if err != nil {
			tb.Fatal(err)
		}
		return s
	}
	sink, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		tb.Fatal(err)
	}
	a := mk(src, netip.MustParseAddrPort("127.0.0.1:9"))
	b := mk(dst, sink.LocalAddr().(*net.UDPAddr).AddrPort())
	br, err := NewBridge(context.Background(), a, b, BridgeOptions{})
	if err != nil {
		tb.Fatal(err)
	}
	pkt := &rtp.Packet{Header: rtp.Header{Version: 2, PayloadType: src.PayloadType, SSRC: 99, SequenceNumber: 1, Timestamp: 1}, Payload: audioPayload(1)}
	return br.ab, pkt, func() {
		br.Stop()
		a.Close()
		b.Close()
		sink.Close()
	}
}

func TestBridgeRelayNoAlloc(t *testing.T) {
	for _, tc := range []struct {
		name     string
		src, dst Codec
	}{{"same", PCMU, PCMU}, {"transcode", PCMU, PCMA}} {
		t.Run(tc.name, func(t *testing.T) {
			r, pkt, done := relayBench(t, tc.src, tc.dst)
			defer done()
			from := netip.MustParseAddrPort("127.0.0.1:9")
			allocs := testing.AllocsPerRun(1000, func() {
				r.handle(pkt, from)
				pkt.SequenceNumber++
				pkt.Timestamp += 160
			})
			if allocs != 0 {
				t.Errorf("%v allocations per relayed packet", allocs)
			}
			if st := r.stats(); st.Relayed < 1000 {
				t.Errorf("relayed %d", st.Relayed)
			}
		})
	}
}

// BenchmarkBridgeRelay is the per-packet cost of the bridge: re-stamp, (transcode,)
// write the header by hand, send to a loopback socket.
func BenchmarkBridgeRelay(b *testing.B) {
	for _, tc := range []struct {
		name     string
		src, dst Codec
	}{{"PCMU-PCMU", PCMU, PCMU}, {"PCMU-PCMA", PCMU, PCMA}} {
		b.Run(tc.name, func(b *testing.B) {
			r, pkt, done := relayBench(b, tc.src, tc.dst)
			defer done()
			from := netip.MustParseAddrPort("127.0.0.1:9")
			b.ReportAllocs()
			for b.Loop() {
				r.handle(pkt, from)
				pkt.SequenceNumber++
				pkt.Timestamp += 160
			}
		})
	}
	// The relay's own work without the sendto(2) that dominates the figures above:
	// the destination has no address yet, so the stamped packet is not sent.
	b.Run("PCMU-PCMA-nosend", func(b *testing.B) {
		r, pkt, done := relayBench(b, PCMU, PCMA)
		defer done()
		r.dst.SetRemote(netip.AddrPortFrom(loopback, 0))
		from := netip.MustParseAddrPort("127.0.0.1:9")
		b.ReportAllocs()
		for b.Loop() {
			r.handle(pkt, from)
			pkt.SequenceNumber++
			pkt.Timestamp += 160
		}
	})
}

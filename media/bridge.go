package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// ErrBridged is returned by Play, PlayLoop, SendDTMF and Record on a session that is
// part of a bridge: while bridged, everything the session sends comes from the
// other leg. Stop the bridge first.
var ErrBridged = errors.New("media: session is bridged")

// ErrBusy is returned by NewBridge and Record when the session's packet hook is
// already taken by another bridge or recording.
var ErrBusy = errors.New("media: session busy")

// Owners of a session's packet hook (Session.tap).
const (
	tapNone uint32 = iota
	tapBridge
	tapRecord
)

func (s *Session) bridged() bool { return s.tap.Load() == tapBridge }

// Sequence-number steps that count as a jump, as in RFC 3550 Appendix A.1
// (MAX_DROPOUT, MAX_MISORDER): a step forward of more than maxDropout or backward
// of more than maxMisorder is a restarted or switched source, not loss or reorder.
const (
	maxDropout  = 3000
	maxMisorder = 100
)

// defaultResyncThreshold is how far an incoming timestamp step may differ from the
// wall-clock time between two packets before the relay treats it as a jump.
const defaultResyncThreshold = time.Second

// BridgeOptions tunes a bridge. The zero value is ready to use.
type BridgeOptions struct {
	// ResyncThreshold: when the RTP timestamp of an incoming audio packet moves by
	// more than this away from the wall-clock time since the previous one (a peer
	// that restarted its clock, a media source switched behind an SBC), the relay
	// recomputes its timestamp offset as for a new stream. 0 means 1 s.
	ResyncThreshold time.Duration
	Logger          *slog.Logger
}

// RelayStats are the counters of one direction of a bridge.
type RelayStats struct {
	// Relayed counts packets sent on (audio and telephone-event).
	Relayed uint64
	// Transcoded counts audio packets converted between PCMU and PCMA.
	Transcoded uint64
	// DTMF counts telephone-event packets relayed.
	DTMF uint64
	// Dropped counts packets not relayed: telephone-events toward a leg that did
	// not negotiate telephone-event, empty or oversized payloads, a closed socket.
	// Comfort noise and payload types nobody negotiated never reach the bridge: the
	// receiving session drops and counts them (Stats.Dropped).
	Dropped uint64
	// Held counts packets not sent because the destination may not send (hold:
	// recvonly or inactive, see Session.SetDirection) or has no address yet.
	Held uint64
	// Resyncs counts re-anchorings of the timestamp and sequence offsets: the
	// first packet, each new incoming SSRC and each timestamp or sequence jump.
	Resyncs uint64
}

// BridgeStats are a bridge's counters; AtoB is what a received and b sent.
type BridgeStats struct {
	AtoB, BtoA RelayStats
}

// Bridge relays RTP both ways between two sessions (the two legs of a call): the
// B2BUA's media as two back-to-back RTP sessions (RFC 7667 §3.2.2, Topo-Back-To-Back;
// when the legs' codecs differ it also acts as the media translator of §3.2.1.2).
//
// Each leg keeps one continuous outgoing stream across prompts and bridging: relayed
// packets are re-stamped with the destination session's own SSRC, sequence numbers
// and timeline (RFC 3550 §5.1), exactly as if the session had produced them. Both
// the timestamp and the sequence number are shifted by an offset (destination minus
// source) computed on the first packet, on each new incoming SSRC and on each
// timestamp or sequence jump (RFC 3550 A.1 limits), so that the first relayed packet
// continues the destination's stream from where its last prompt left it (the
// timestamp advanced by the wall-clock time since); such a packet carries the marker
// bit, as does every packet whose source marked it. Between resyncs the offsets stay
// fixed, so loss and reordering on the incoming leg reach the far end unchanged
// (RFC 3550 §6.4.1 loss and jitter reports stay meaningful end to end). Audio is transcoded PCMU↔PCMA
// byte for byte through the G.711 tables when the legs differ. RFC 4733
// telephone-events are passed on with the destination's telephone-event payload
// type and the same offset (all packets of one event keep one timestamp, §2.5.1.2),
// or dropped and counted when the destination did not negotiate telephone-event.
// Packets toward a leg on hold (its direction forbids sending) are dropped.
//
// The relay runs on each session's read goroutine, in its packet hook: no extra
// goroutine, no queue, no allocation per packet (one preallocated buffer per
// direction, header written by hand). While bridged, the sessions' Play, PlayLoop,
// SendDTMF and Record return ErrBridged; DTMF still arrives on each session's DTMF
// channel. A bridge ends with Stop or when either session closes; it then restores
// the packet handlers that were installed before it.
type Bridge struct {
	a, b         *Session
	ab, ba       *relay
	hookA, hookB *PacketHandler
	prevA, prevB *PacketHandler
	log          *slog.Logger

	stopOnce  sync.Once // ends the bridge (stop)
	closeOnce sync.Once // closes quit (Stop)
	quit      chan struct{}
	done      chan struct{}
	watchDone chan struct{}
}

// NewBridge bridges a and b and returns at once with media flowing.
//
// Both sessions' writers are taken over for the bridge's lifetime, so a Play or
// SendDTMF in progress on either session must end first: NewBridge waits for it
// until ctx ends (cancel the prompt's context before bridging; a Play ends within
// one 20 ms frame). Errors: ErrBusy when either session is already bridged or
// recording, ErrSessionClosed when either is closed, ctx's error when a Play did not
// end in time.
func NewBridge(ctx context.Context, a, b *Session, opts BridgeOptions) (*Bridge, error) {
	if a == nil || b == nil || a == b {
		return nil, errors.New("media: bridge: need two distinct sessions")
	}
	for _, s := range []*Session{a, b} {
		select {
		case <-s.done:
			return nil, ErrSessionClosed
		default:
		}
	}
	if !a.tap.CompareAndSwap(tapNone, tapBridge) {
		return nil, fmt.Errorf("media: bridge: rtp port %d: %w", a.localPort, ErrBusy)
	}
	if !b.tap.CompareAndSwap(tapNone, tapBridge) {
		a.tap.Store(tapNone)
		return nil, fmt.Errorf("media: bridge: rtp port %d: %w", b.localPort, ErrBusy)
	}
	// Take both writers (in a fixed order; ErrBusy above rules out a second bridge
	// waiting on the same sessions in the opposite order).
	var held []*Session
	release := func() {
		for _, s := range held {
			<-s.play
		}
		a.tap.Store(tapNone)
		b.tap.Store(tapNone)
	}
	for _, s := range []*Session{a, b} {
		select {
		case s.play <- struct{}{}:
			held = append(held, s)
		case <-s.done:
			release()
			return nil, ErrSessionClosed
		case <-ctx.Done():
			release()
			return nil, fmt.Errorf("media: bridge: waiting for playback to end: %w", ctx.Err())
		}
	}
	threshold := opts.ResyncThreshold
	if threshold <= 0 {
		threshold = defaultResyncThreshold
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	br := &Bridge{
		a:         a,
		b:         b,
		ab:        newRelay(a, b, threshold),
		ba:        newRelay(b, a, threshold),
		log:       log.With("rtp_port_a", a.localPort, "rtp_port_b", b.localPort),
		quit:      make(chan struct{}),
		done:      make(chan struct{}),
		watchDone: make(chan struct{}),
	}
	hA, hB := PacketHandler(br.ab.handle), PacketHandler(br.ba.handle)
	br.hookA, br.hookB = &hA, &hB
	br.prevA = a.handler.Swap(br.hookA)
	br.prevB = b.handler.Swap(br.hookB)
	br.log.Debug("bridge started", "codec_a", a.Codec().Name, "codec_b", b.Codec().Name)
	go br.watch()
	return br, nil
}

// watch ends the bridge when either session closes or Stop is called.
func (br *Bridge) watch() {
	defer close(br.watchDone)
	select {
	case <-br.a.done:
	case <-br.b.done:
	case <-br.quit:
	}
	br.stop()
}

// Stop ends the bridge: no packet is relayed after it returns, the sessions' previous
// packet handlers are back, and both sessions can Play again (their streams continue
// where the relayed media left them). Idempotent, safe from any goroutine except a
// PacketHandler of the bridged sessions.
func (br *Bridge) Stop() {
	br.closeOnce.Do(func() { close(br.quit) })
	<-br.watchDone
}

// Done is closed when the bridge has ended (Stop, or either session closed).
func (br *Bridge) Done() <-chan struct{} { return br.done }

// Stats returns the counters of both directions.
func (br *Bridge) Stats() BridgeStats {
	return BridgeStats{AtoB: br.ab.stats(), BtoA: br.ba.stats()}
}

func (br *Bridge) stop() {
	br.stopOnce.Do(func() {
		// Unhook (unless someone replaced our handler meanwhile), then wait for a
		// relay in flight on either read goroutine before handing the writers back.
		br.a.handler.CompareAndSwap(br.hookA, br.prevA)
		br.b.handler.CompareAndSwap(br.hookB, br.prevB)
		br.ab.halt()
		br.ba.halt()
		<-br.a.play
		<-br.b.play
		br.a.tap.Store(tapNone)
		br.b.tap.Store(tapNone)
		st := br.Stats()
		br.log.Debug("bridge stopped",
			"a_to_b", st.AtoB.Relayed, "b_to_a", st.BtoA.Relayed,
			"dropped", st.AtoB.Dropped+st.BtoA.Dropped, "held", st.AtoB.Held+st.BtoA.Held)
		close(br.done)
	})
}

// relay is one direction of a bridge: packets received by src, sent by dst on dst's
// stream. handle runs on src's read goroutine; mu only guards against stop (it is
// never contended while media flows).
type relay struct {
	src, dst  *Session
	table     *[256]byte // PCMU↔PCMA transcoding table; nil when the codecs match
	threshold int64      // resync threshold in 8 kHz samples

	mu      sync.Mutex
	stopped bool
	synced  bool
	inSSRC  uint32
	offset  uint32    // out timestamp = in timestamp + offset (mod 2^32)
	lastIn  uint32    // timestamp of the newest audio packet
	lastAt  time.Time // its arrival
	marker  bool      // the next audio packet starts a talkspurt
	evValid bool
	evIn    uint32 // incoming timestamp of the current telephone-event ...
	evOut   uint32 // ... and the outgoing one
	seqOff  uint16 // out sequence = in sequence + seqOff (mod 2^16)
	lastSeq uint16 // sequence number of the newest audio packet
	buf     [maxPacketSize]byte

	relayed, transcoded, dtmf, dropped, held, resyncs atomic.Uint64
}

func newRelay(src, dst *Session, threshold time.Duration) *relay {
	r := &relay{src: src, dst: dst, threshold: int64(threshold / (time.Second / sampleRate))}
	switch {
	case src.Codec().isAlaw() == dst.Codec().isAlaw():
	case src.Codec().isAlaw():
		r.table = &alawToUlawTable
	default:
		r.table = &ulawToAlawTable
	}
	return r
}

func (r *relay) halt() {
	r.mu.Lock()
	r.stopped = true
	r.mu.Unlock()
}

func (r *relay) stats() RelayStats {
	return RelayStats{
		Relayed:    r.relayed.Load(),
		Transcoded: r.transcoded.Load(),
		DTMF:       r.dtmf.Load(),
		Dropped:    r.dropped.Load(),
		Held:       r.held.Load(),
		Resyncs:    r.resyncs.Load(),
	}
}

// handle relays one packet from src to dst (the PacketHandler of src). The session
// has already checked the version and that the payload type is src's codec or its
// telephone-event. No allocation.
func (r *relay) handle(pkt *rtp.Packet, _ netip.AddrPort) {
	now := time.Now()
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.stopped {
		return
	}
	src, dst := r.src, r.dst
	sf, df := src.format(), dst.format()
	audio := pkt.PayloadType == sf.codec.PayloadType
	n := len(pkt.Payload)
	switch {
	case !audio && !df.hasDTMF:
		r.dropped.Add(1) // RFC 4733 §7.1.1: the destination did not ask for events
		return
	case n == 0 || rtpHeaderSize+n > len(r.buf):
		r.dropped.Add(1)
		return
	case !audio && n < 4:
		r.dropped.Add(1)
		return
	}
	if !Direction(dst.dir.Load()).canSend() {
		r.held.Add(1)
		return
	}
	w := &dst.w // ours: the bridge holds dst's writer

	if audio {
		if !r.synced || pkt.SSRC != r.inSSRC || r.jumped(pkt.Timestamp, now) || r.seqJumped(pkt.SequenceNumber) {
			r.resync(w, pkt, now)
		} else {
			if int32(pkt.Timestamp-r.lastIn) > 0 {
				r.lastIn, r.lastAt = pkt.Timestamp, now
			}
			if int16(pkt.SequenceNumber-r.lastSeq) > 0 {
				r.lastSeq = pkt.SequenceNumber
			}
		}
	} else if !r.synced {
		r.resync(w, pkt, now)
	}
	// Telephone-events share the audio's sequence space when they share its SSRC
	// (RFC 4733 §2.1); events on a stream of their own are numbered in arrival order.
	seq := pkt.SequenceNumber + r.seqOff
	if !audio && pkt.SSRC != r.inSSRC {
		seq = w.pkt.SequenceNumber
	}

	var (
		ts     uint32
		pt     uint8
		marker bool
	)
	if audio {
		ts, pt, marker = pkt.Timestamp+r.offset, df.codec.PayloadType, pkt.Marker || r.marker
	} else {
		// All packets of one event keep one timestamp (RFC 4733 §2.5.1.2), even if
		// the offset moved during the event.
		if !r.evValid || pkt.Timestamp != r.evIn {
			r.evValid, r.evIn, r.evOut = true, pkt.Timestamp, pkt.Timestamp+r.offset
		}
		ts, pt, marker = r.evOut, df.dtmfPT, pkt.Marker
	}
	b := r.buf[:rtpHeaderSize+n]
	putRTPHeader(b, marker, pt, seq, ts, w.pkt.SSRC)
	if audio && r.table != nil {
		transcode(b[rtpHeaderSize:], pkt.Payload, r.table)
	} else {
		copy(b[rtpHeaderSize:], pkt.Payload)
	}
	sent, err := dst.transmit(b)
	if err != nil || !sent {
		if err != nil {
			r.dropped.Add(1)
		} else {
			r.held.Add(1) // no address to send to yet
		}
		return
	}
	// Keep dst's sequence and timeline where the newest packet leaves them (a
	// reordered packet does not move them back), so the next resync and the next
	// Play after the bridge continue them.
	// (seq is read back from the header: keeping it live across the transcoding
	// loop costs that loop a register.)
	if next := binary.BigEndian.Uint16(b[2:4]) + 1; !w.started || int16(next-w.pkt.SequenceNumber) > 0 {
		w.pkt.SequenceNumber = next
	}
	end := ts + uint32(n)
	if !audio {
		end = ts + uint32(binary.BigEndian.Uint16(pkt.Payload[2:4]))
	}
	if !w.started || int32(end-w.nextTS) > 0 {
		w.nextTS = end
	}
	w.lastSlot = now
	w.started = true
	r.relayed.Add(1)
	if audio {
		r.marker = false
		if r.table != nil {
			r.transcoded.Add(1)
		}
	} else {
		r.dtmf.Add(1)
	}
}

// transcode maps each byte of in through t into out (len(out) >= len(in)).
func transcode(out, in []byte, t *[256]byte) {
	out = out[:len(in)]
	for i, c := range in {
		out[i] = t[c]
	}
}

// jumped reports whether ts moved away from the wall clock since the previous audio
// packet by more than the threshold (forwards or backwards).
func (r *relay) jumped(ts uint32, now time.Time) bool {
	step := int64(int32(ts - r.lastIn))
	wall := int64(now.Sub(r.lastAt) / (time.Second / sampleRate))
	d := step - wall
	return d > r.threshold || d < -r.threshold
}

// seqJumped reports whether seq is too far from the newest audio sequence number to
// be loss or reordering (RFC 3550 A.1).
func (r *relay) seqJumped(seq uint16) bool {
	d := int(int16(seq - r.lastSeq))
	return d > maxDropout || d < -maxMisorder
}

// resync anchors the incoming stream on dst's stream: this packet gets the timestamp
// dst's next packet would have now and dst's next sequence number.
func (r *relay) resync(w *writer, pkt *rtp.Packet, now time.Time) {
	r.offset = w.tsAt(now) - pkt.Timestamp
	r.seqOff = w.pkt.SequenceNumber - pkt.SequenceNumber
	r.lastSeq = pkt.SequenceNumber
	r.synced = true
	r.inSSRC = pkt.SSRC
	r.lastIn, r.lastAt = pkt.Timestamp, now
	r.marker = true
	r.evValid = false
	r.resyncs.Add(1)
}

package media

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// ErrSessionClosed is returned by Play when the session closes under it.
var ErrSessionClosed = errors.New("media: session closed")

// rtpHeaderSize is the fixed RTP header without CSRCs (RFC 3550 §5.1).
const rtpHeaderSize = 12

// maxPacketSize is the receive buffer; larger datagrams are truncated and dropped.
const maxPacketSize = 1500

// dtmfQueue is the capacity of the DTMF channel; digits beyond it are dropped.
const dtmfQueue = 16

// maxTick bounds the read loop's housekeeping interval (DTMF end wait, inactivity).
const maxTick = 100 * time.Millisecond

// maxLag is how far Play may fall behind its schedule (a stalled machine) before it
// re-anchors instead of sending a burst of late packets.
const maxLag = 100 * time.Millisecond

// SessionConfig sets up one RTP session (one call leg's media).
type SessionConfig struct {
	Conn            *net.UDPConn // from PortAllocator.Listen; the session owns and closes it
	Codec           Codec        // zero value means PCMU
	HasDTMF         bool
	DTMFPayloadType uint8
	// Remote is the peer's address from the SDP c=/m= lines: where to send, and the
	// only source accepted until the rules in rtp_source.go allow another. A zero,
	// port-0 or unspecified Remote (a late offer before the answer) accepts and sends
	// nothing until SetRemote.
	Remote netip.AddrPort
	// LatchWindow is how long after the start or a SetRemote a source other than
	// the SDP address may be learned (a peer behind NAT). 0 means
	// DefaultLatchWindow (3 s); negative disables learning (the SDP address only,
	// apart from RelatchAfter).
	LatchWindow time.Duration
	// LatchDelay is how long within the window the SDP address has to speak
	// first before another source may be learned. 0 means DefaultLatchDelay (1 s);
	// negative means none.
	LatchDelay time.Duration
	// RelatchAfter lets another source take over once the current one, having
	// sent, has been silent this long while we expect it to send (failover of an
	// SBC). 0 means DefaultRelatchAfter (2 s); negative disables it.
	RelatchAfter time.Duration
	// InactivityTimeout ends the session (Timeout channel closes) when no RTP arrives
	// for this long; 0 disables. Not counted while on hold (SetDirection).
	InactivityTimeout time.Duration
	// SRTP are the SDES keys when the leg negotiated RTP/SAVP (srtp.go); zero
	// means plain RTP. SetSRTP changes them later.
	SRTP SRTPKeys
	// OnClose runs once after the socket is closed (e.g. release the port).
	OnClose func()
	Logger  *slog.Logger
	// Pacer sends the frames of this session's Plays together with those of
	// other sessions (pacer.go); nil means a timer per Play.
	Pacer *Pacer
}

// PacketHandler sees every accepted RTP packet (media and telephone-event) on the
// session's read goroutine, after latching and DTMF detection. pkt and its Payload
// are reused for the next packet: copy what must outlive the call. It must not block
// and must not call Close synchronously.
type PacketHandler func(pkt *rtp.Packet, from netip.AddrPort)

// Stats are counters for logs and metrics.
type Stats struct {
	PacketsIn, PacketsOut uint64
	// Dropped counts packets from the accepted source (or a source being learned)
	// that were malformed or of a payload type we did not agree, and read errors.
	// Packets from other sources are not in it (they were before strict RTP): see
	// WrongSource.
	Dropped uint64
	// WrongSource counts datagrams from a source the session does not accept
	// (metrics label wrong_source): injection, spraying, stale media of an old
	// call.
	WrongSource uint64
	// DTMFDropped counts digits lost because nobody read the DTMF channel.
	DTMFDropped uint64
	// SendErrors counts packets the socket refused to send.
	SendErrors uint64
	// SRTPAuth counts SRTP packets from the accepted source whose authentication
	// tag did not verify (metrics label srtp_auth), SRTPReplay replayed ones
	// (srtp_replay). Neither is in Dropped.
	SRTPAuth, SRTPReplay uint64
}

// Session is one leg's RTP: a read loop (latching, DTMF, inactivity) and a paced
// writer (prompts at 20 ms with continuous seq/timestamp, marker on talkspurt start).
//
// The read goroutine is owned by the session: Close closes the socket, which wakes
// the blocked read (net.ErrClosed is the clean exit), and waits for it.
type Session struct {
	conn      *net.UDPConn
	fmt       atomic.Pointer[format] // what goes on the wire (SetFormat)
	timeout   time.Duration
	onClose   func()
	log       *slog.Logger
	localPort int
	epoch     time.Time // monotonic origin for lastRx

	remote  atomic.Pointer[netip.AddrPort] // send address and accepted source
	latched atomic.Bool                    // the remote has sent since the last re-arm
	arm     atomic.Pointer[sourceArm]      // the SDP address and when it was set
	latchMu sync.Mutex                     // orders SetRemote and source changes
	src     sourceState                    // owned by the read loop (rtp_source.go)

	latchWindow, latchDelay, relatchAfter time.Duration

	dir      atomic.Uint32 // our Direction
	lastRx   atomic.Int64  // ns since epoch of the last accepted packet
	handler  atomic.Pointer[PacketHandler]
	inHandle atomic.Bool // the read loop is inside the PacketHandler

	packetsIn, packetsOut, dropped, wrongSrc, dtmfDropped, sendErrors atomic.Uint64

	// SRTP (srtp.go): nil pointers mean plain RTP; srtpMu orders SetSRTP calls.
	srtpRx               atomic.Pointer[srtpRx]
	srtpTx               atomic.Pointer[srtpTx]
	srtpMu               sync.Mutex
	srtpAuth, srtpReplay atomic.Uint64
	srtpWarned           atomic.Bool

	dtmf        chan Digit
	timedOut    chan struct{}
	timeoutOnce sync.Once
	done        chan struct{}
	loopDone    chan struct{}
	closeOnce   sync.Once
	closeErr    error

	play  chan struct{} // one Play at a time; holds the writer state below
	w     writer
	pacer *Pacer // nil: playTimed

	// tap says who owns the packet hook besides SetPacketHandler users: nobody, a
	// bridge or a recording (see bridge.go, recorder.go).
	tap atomic.Uint32
	// inject hands a DTMF event to the Play that holds the writer (dtmf_send.go).
	inject chan *dtmfJob
}

// writer is the sending state, owned by whoever holds Session.play.
type writer struct {
	pkt      rtp.Packet
	payload  [frameSamples]byte
	buf      [rtpHeaderSize + frameSamples]byte
	nextTS   uint32    // timestamp of the next frame
	lastSlot time.Time // schedule time of the last frame (sent or silent)
	started  bool
}

// NewSession starts the read loop. It never blocks.
func NewSession(cfg SessionConfig) (*Session, error) {
	if cfg.Conn == nil {
		return nil, errors.New("media: new session: nil conn")
	}
	local, ok := cfg.Conn.LocalAddr().(*net.UDPAddr)
	if !ok {
		return nil, fmt.Errorf("media: new session: conn has local address %v", cfg.Conn.LocalAddr())
	}
	codec := cfg.Codec
	if codec.IsZero() {
		codec = PCMU
	}
	if codec.ClockRate == 0 {
		codec.ClockRate = sampleRate
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Session{
		conn:      cfg.Conn,
		timeout:   max(0, cfg.InactivityTimeout),
		onClose:   cfg.OnClose,
		localPort: local.Port,
		epoch:     time.Now(),
		dtmf:      make(chan Digit, dtmfQueue),
		timedOut:  make(chan struct{}),
		done:      make(chan struct{}),
		loopDone:  make(chan struct{}),
		play:      make(chan struct{}, 1),
		inject:    make(chan *dtmfJob),
		pacer:     cfg.Pacer,
	}
	s.log = log.With("rtp_port", s.localPort)
	s.latchWindow = orDefault(cfg.LatchWindow, DefaultLatchWindow)
	s.latchDelay = max(0, orDefault(cfg.LatchDelay, DefaultLatchDelay))
	s.relatchAfter = orDefault(cfg.RelatchAfter, DefaultRelatchAfter)
	s.fmt.Store(&format{codec: codec, hasDTMF: cfg.HasDTMF, dtmfPT: cfg.DTMFPayloadType})
	remote := netip.AddrPortFrom(cfg.Remote.Addr().Unmap(), cfg.Remote.Port())
	s.remote.Store(&remote)
	s.arm.Store(&sourceArm{sdp: remote})
	s.dir.Store(uint32(DirSendRecv))
	s.w.pkt.Header = rtp.Header{
		Version:        2,
		PayloadType:    codec.PayloadType,
		SSRC:           rand.Uint32(),         // RFC 3550 §8: random SSRC
		SequenceNumber: uint16(rand.Uint32()), // RFC 3550 §5.1: random initial
	}
	s.w.nextTS = rand.Uint32()
	if err := s.SetSRTP(cfg.SRTP); err != nil {
		return nil, fmt.Errorf("media: new session: %w", err)
	}
	go s.readLoop()
	return s, nil
}

// LocalPort is the bound RTP port.
func (s *Session) LocalPort() int { return s.localPort }

// Codec is the session's audio format.
func (s *Session) Codec() Codec { return s.format().codec }

// format is a session's negotiated wire format.
type format struct {
	codec   Codec
	hasDTMF bool
	dtmfPT  uint8
}

func (s *Session) format() *format { return s.fmt.Load() }

// SetFormat changes the negotiated format: the audio codec (with the payload type
// the peer uses) and telephone-event. An offer/answer exchange after the session
// started (a late offer answered in the ACK, a re-offer that moves the
// telephone-event payload type) calls it; a zero codec means PCMU. Safe from any
// goroutine; the next packet in or out uses it.
func (s *Session) SetFormat(c Codec, hasDTMF bool, dtmfPT uint8) {
	if c.IsZero() {
		c = PCMU
	}
	if c.ClockRate == 0 {
		c.ClockRate = sampleRate
	}
	old := s.fmt.Load()
	if old.codec == c && old.hasDTMF == hasDTMF && old.dtmfPT == dtmfPT {
		return
	}
	s.fmt.Store(&format{codec: c, hasDTMF: hasDTMF, dtmfPT: dtmfPT})
}

// DTMF delivers each key press once (RFC 4733 repeats and end retransmissions
// de-duplicated). Digits from SIP INFO are fed in with InjectDTMF. The channel is
// never closed: select on Done as well.
func (s *Session) DTMF() <-chan Digit { return s.dtmf }

// InjectDTMF queues a digit that arrived by signalling (SIP INFO). It never blocks:
// when the queue is full the digit is dropped and counted.
func (s *Session) InjectDTMF(d Digit) {
	if d.Source == "" {
		d.Source = DTMFSourceINFO
	}
	s.deliver(d)
}

func (s *Session) deliver(d Digit) {
	select {
	case s.dtmf <- d:
		s.log.Debug("dtmf", "key", string(d.Key), "source", d.Source, "duration", d.Duration)
	default:
		s.dtmfDropped.Add(1)
		s.log.Warn("dtmf queue full, digit dropped", "key", string(d.Key))
	}
}

// SetRemote applies the SDP address of an offer/answer exchange and re-opens the
// latch window (see rtp_source.go). A new address becomes the remote at once and
// is the only accepted source until it sends or the learning rules allow another.
// The same address again (a refresh, a hold or resume) keeps a source that has
// already sent, so a peer behind NAT does not lose its learned source.
func (s *Session) SetRemote(addr netip.AddrPort) {
	addr = netip.AddrPortFrom(addr.Addr().Unmap(), addr.Port())
	s.latchMu.Lock()
	defer s.latchMu.Unlock()
	if prev := s.arm.Load(); prev.sdp != addr || !s.latched.Load() {
		s.remote.Store(&addr)
		s.latched.Store(false)
	}
	s.arm.Store(&sourceArm{sdp: addr, at: time.Since(s.epoch)})
}

// Remote is the current send address and the only accepted source: the SDP
// address, or the source learned from received packets.
func (s *Session) Remote() netip.AddrPort { return *s.remote.Load() }

// Latched reports whether the remote has sent a valid packet since the session
// started or SetRemote changed the address (the source is confirmed, whether it
// is the SDP address or a learned one).
func (s *Session) Latched() bool { return s.latched.Load() }

// orDefault is d for a zero v.
func orDefault(v, d time.Duration) time.Duration {
	if v == 0 {
		return d
	}
	return v
}

// SetDirection applies the negotiated direction: when we must not send (recvonly/
// inactive answer) Play stays silent; on hold the inactivity timer is suspended.
//
// d is OUR direction. The inactivity timer runs only for sendrecv: with recvonly or
// inactive we are on hold (many phones stop sending), with sendonly the peer does not
// send. Leaving hold restarts the timer from now.
func (s *Session) SetDirection(d Direction) {
	if d == DirUnknown {
		d = DirSendRecv
	}
	old := Direction(s.dir.Swap(uint32(d)))
	if old != DirSendRecv && d == DirSendRecv {
		s.lastRx.Store(int64(time.Since(s.epoch)))
	}
}

// Direction is our current direction.
func (s *Session) Direction() Direction { return Direction(s.dir.Load()) }

// SetPacketHandler installs h (nil removes it); see PacketHandler. This is the hook
// for bridging and recording.
func (s *Session) SetPacketHandler(h PacketHandler) {
	if h == nil {
		s.handler.Store(nil)
		return
	}
	s.handler.Store(&h)
}

// Timeout is closed when the inactivity timeout fires. The session stays open: the
// call layer decides (BYE, then Close).
func (s *Session) Timeout() <-chan struct{} { return s.timedOut }

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { return s.done }

// Stats returns the counters.
func (s *Session) Stats() Stats {
	return Stats{
		PacketsIn:   s.packetsIn.Load(),
		PacketsOut:  s.packetsOut.Load(),
		Dropped:     s.dropped.Load(),
		WrongSource: s.wrongSrc.Load(),
		DTMFDropped: s.dtmfDropped.Load(),
		SendErrors:  s.sendErrors.Load(),
		SRTPAuth:    s.srtpAuth.Load(),
		SRTPReplay:  s.srtpReplay.Load(),
	}
}

// Close stops the read loop and the writer, closes the socket, runs OnClose.
// Idempotent; safe from any goroutine. It returns after the read goroutine has
// ended and OnClose has run (except when called from a PacketHandler).
func (s *Session) Close() error {
	s.shutdown()
	if !s.inHandle.Load() {
		<-s.loopDone
	}
	return s.closeErr
}

func (s *Session) shutdown() {
	s.closeOnce.Do(func() {
		close(s.done)
		if err := s.conn.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			s.closeErr = fmt.Errorf("media: close rtp socket: %w", err)
		}
	})
}

// readLoop is the session's only reader. It blocks in ReadFrom; a read deadline
// every tick runs the housekeeping (DTMF end wait, inactivity), and closing the
// socket ends it.
func (s *Session) readLoop() {
	defer func() {
		s.shutdown() // the socket may have been closed under us
		if s.onClose != nil {
			s.onClose()
		}
		close(s.loopDone)
	}()

	tick := maxTick
	if s.timeout > 0 {
		tick = min(tick, max(s.timeout/4, 5*time.Millisecond))
	}
	buf := make([]byte, maxPacketSize)
	var (
		pkt    rtp.Packet
		rx     dtmfReceiver
		digits = make([]Digit, 0, 2)
	)
	s.lastRx.Store(int64(time.Since(s.epoch)))
	nextTick := time.Now().Add(tick)
	_ = s.conn.SetReadDeadline(nextTick)
	for {
		n, from, err := s.conn.ReadFromUDPAddrPort(buf)
		now := time.Now()
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			select {
			case <-s.done:
				return
			default:
			}
			if !errors.Is(err, os.ErrDeadlineExceeded) {
				// Transient (e.g. ICMP errors surfaced on the socket): count and go on.
				s.dropped.Add(1)
				s.log.Debug("rtp read", "err", err)
			}
		} else {
			s.handlePacket(buf[:n], from, now, &pkt, &rx, digits[:0])
		}
		if !now.Before(nextTick) {
			s.housekeeping(now, &rx, digits[:0])
			nextTick = now.Add(tick)
			_ = s.conn.SetReadDeadline(nextTick)
		}
	}
}

// handlePacket admits one datagram by its source (rtp_source.go), validates it
// (RFC 3550 §5.1, version 2, payload type of the negotiated codec or
// telephone-event) and dispatches it.
func (s *Session) handlePacket(b []byte, from netip.AddrPort, now time.Time, pkt *rtp.Packet, rx *dtmfReceiver, digits []Digit) {
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	if s.arm.Load() != s.src.arm {
		s.resync()
	}
	since := now.Sub(s.epoch)
	st := &s.src
	if from == st.cur {
		st.lastCur = since // any datagram (comfort noise, RTCP) shows the source is alive
	} else if !s.mayTake(from, since) {
		s.wrongSource(from)
		return
	}
	if len(b) < rtpHeaderSize || b[0]>>6 != 2 || len(b) >= maxPacketSize {
		s.dropped.Add(1)
		return
	}
	if rx := s.srtpRx.Load(); rx != nil {
		var ok bool
		if b, ok = s.unprotect(rx, b); !ok {
			return
		}
	}
	if err := pkt.Unmarshal(b); err != nil {
		s.dropped.Add(1)
		return
	}
	pt := pkt.PayloadType
	f := s.format()
	isDTMF := f.hasDTMF && pt == f.dtmfPT
	if pt != f.codec.PayloadType && !isDTMF {
		s.dropped.Add(1) // RTCP on a muxed port, comfort noise, codecs we did not agree
		return
	}
	if from != st.cur || !st.heard {
		changed := from != st.cur
		if !s.take(from, since) {
			s.wrongSource(from)
			return
		}
		if changed {
			*rx = dtmfReceiver{} // a pending event of the old source is not delivered
		}
	}
	s.packetsIn.Add(1)
	s.lastRx.Store(int64(now.Sub(s.epoch)))

	if isDTMF {
		if ev, err := ParseTelephoneEvent(pkt.Payload); err == nil {
			for _, d := range rx.handle(pkt.Timestamp, ev, now, digits) {
				s.deliver(d)
			}
		} else {
			s.dropped.Add(1)
		}
	}
	if h := s.handler.Load(); h != nil {
		s.inHandle.Store(true)
		(*h)(pkt, from)
		s.inHandle.Store(false)
	}
}

// housekeeping runs on every tick of the read loop.
func (s *Session) housekeeping(now time.Time, rx *dtmfReceiver, digits []Digit) {
	for _, d := range rx.expire(now, digits) {
		s.deliver(d)
	}
	if s.timeout <= 0 || Direction(s.dir.Load()) != DirSendRecv {
		return
	}
	idle := now.Sub(s.epoch) - time.Duration(s.lastRx.Load())
	if idle >= s.timeout {
		s.timeoutOnce.Do(func() {
			s.log.Info("rtp inactivity timeout", "idle", idle.Round(time.Millisecond))
			close(s.timedOut)
		})
	}
}

// Play sends p paced at 20 ms per packet, returning when done, when ctx ends, or when
// the session closes. Sequence numbers and timestamps continue across prompts and
// silences; the first packet of each Play has the marker bit.
//
// Packets go out on a schedule computed from the start of the Play (no drift). The
// RTP timestamp follows the wall clock: after a pause between two Plays it advances
// by the time that passed, so the receiver's jitter buffer sees a silence, not a
// jump. While our direction forbids sending, or no remote address is known, Play
// keeps time without sending. Plays are serialized.
//
// A session that is part of a bridge does not play: Play returns ErrBridged at once
// (stop the bridge first). A SendDTMF during a Play pauses the audio for the event.
func (s *Session) Play(ctx context.Context, p *Prompt) error {
	if p == nil {
		return errors.New("media: play: nil prompt")
	}
	release, err := s.acquirePlay(ctx)
	if err != nil {
		return err
	}
	defer release()
	return s.playLocked(ctx, p.Samples, true)
}

// acquirePlay takes the session's one playing slot (prompts never interleave);
// release gives it back.
func (s *Session) acquirePlay(ctx context.Context) (release func(), err error) {
	if s.bridged() {
		return nil, ErrBridged
	}
	select {
	case s.play <- struct{}{}:
		return func() { <-s.play }, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	case <-s.done:
		return nil, ErrSessionClosed
	}
}

// playLocked sends samples paced at 20 ms; the caller holds s.play. marker sets the
// marker bit on the first packet (a talkspurt start, RFC 3550 §5.1). A DTMF job
// handed over on s.inject is sent between two frames, pausing the audio. The
// session's Pacer sends the frames when it has one (playPaced), else a timer of
// this Play's own (playTimed).
func (s *Session) playLocked(ctx context.Context, samples []int16, marker bool) error {
	if s.pacer != nil {
		return s.playPaced(ctx, samples, marker)
	}
	return s.playTimed(ctx, samples, marker)
}

// playTimed is playLocked on a timer of its own.
func (s *Session) playTimed(ctx context.Context, samples []int16, marker bool) error {
	frames := (len(samples) + frameSamples - 1) / frameSamples
	if frames == 0 {
		return nil
	}
	w := &s.w
	start := s.anchor(time.Now())
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for i := 0; i < frames; {
		due := start.Add(time.Duration(i) * frameDuration)
		var job *dtmfJob
		if wait := time.Until(due); wait > 0 {
			timer.Reset(wait)
			select {
			case <-timer.C:
			case job = <-s.inject:
				timer.Stop()
			case <-ctx.Done():
				return ctx.Err()
			case <-s.done:
				return ErrSessionClosed
			}
		} else {
			if wait < -maxLag {
				// Stalled (GC, overloaded host): re-anchor rather than burst.
				start = time.Now().Add(-time.Duration(i) * frameDuration)
				due = start.Add(time.Duration(i) * frameDuration)
			}
			select {
			case job = <-s.inject:
			case <-ctx.Done():
				return ctx.Err()
			case <-s.done:
				return ErrSessionClosed
			default:
			}
		}
		if job != nil {
			// The audio pauses for the event (RFC 4733 §2.5.1) and resumes after it
			// as a new talkspurt, one frame after the event's last packet.
			err := s.runDTMFJob(job)
			if errors.Is(err, ErrSessionClosed) {
				return err
			}
			start = w.lastSlot.Add(frameDuration - time.Duration(i)*frameDuration)
			marker = true
			continue
		}
		frame := samples[i*frameSamples : min(len(samples), (i+1)*frameSamples)]
		sent, err := s.sendFrame(frame, marker)
		if err != nil {
			return err
		}
		if sent {
			marker = false
		}
		w.lastSlot = due
		w.started = true
		i++
	}
	return nil
}

// sendFrame encodes up to 160 samples (padding with silence), sends one packet with
// the current sequence number and timestamp, and advances the timestamp. The
// sequence number advances only when a packet leaves. No allocation.
func (s *Session) sendFrame(frame []int16, marker bool) (sent bool, err error) {
	w := &s.w
	ts := w.nextTS
	w.nextTS += frameSamples
	if !Direction(s.dir.Load()).canSend() {
		return false, nil
	}
	dst := *s.remote.Load()
	if !dst.IsValid() || dst.Port() == 0 || dst.Addr().IsUnspecified() {
		return false, nil
	}
	codec := s.format().codec
	w.pkt.PayloadType = codec.PayloadType
	n := Encode(codec, w.payload[:], frame)
	if n < frameSamples {
		fill := silenceByte(codec)
		for i := n; i < frameSamples; i++ {
			w.payload[i] = fill
		}
	}
	w.pkt.Marker = marker
	w.pkt.Timestamp = ts
	w.pkt.Payload = w.payload[:]
	size, err := w.pkt.MarshalTo(w.buf[:])
	if err != nil {
		return false, fmt.Errorf("media: marshal rtp: %w", err)
	}
	if err := s.writeRTP(w.buf[:size], dst); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return false, ErrSessionClosed
		}
		s.sendErrors.Add(1) // the packet is lost; keep the sequence moving
	} else {
		s.packetsOut.Add(1)
	}
	w.pkt.SequenceNumber++
	return true, nil
}

// transmit sends one marshalled packet b to the current remote address and counts
// it. It sends nothing (sent false) while our direction forbids sending or no remote
// address is known. A socket error loses the packet but still counts as sent, so
// the caller keeps the sequence moving; a closed socket is ErrSessionClosed. Safe
// from any goroutine; no allocation.
func (s *Session) transmit(b []byte) (sent bool, err error) {
	if !Direction(s.dir.Load()).canSend() {
		return false, nil
	}
	dst := *s.remote.Load()
	if !dst.IsValid() || dst.Port() == 0 || dst.Addr().IsUnspecified() {
		return false, nil
	}
	if err := s.writeRTP(b, dst); err != nil {
		if errors.Is(err, net.ErrClosed) {
			return false, ErrSessionClosed
		}
		s.sendErrors.Add(1)
		return true, nil
	}
	s.packetsOut.Add(1)
	return true, nil
}

// tsAt is the RTP timestamp a packet sent at now carries on this writer's stream:
// the next frame's timestamp, advanced by the wall-clock time since the last frame
// beyond one frame interval (RFC 3550 §5.1: the timestamp follows the sampling
// clock, so a pause shows as a timestamp gap, not a jump back).
func (w *writer) tsAt(now time.Time) uint32 {
	if !w.started {
		return w.nextTS
	}
	if gap := now.Sub(w.lastSlot) - frameDuration; gap > 0 {
		return w.nextTS + uint32(gap/(time.Second/sampleRate))
	}
	return w.nextTS
}

// putRTPHeader writes a 12-byte RTP header (RFC 3550 §5.1: version 2, no padding,
// extension or CSRC) into b.
func putRTPHeader(b []byte, marker bool, pt uint8, seq uint16, ts, ssrc uint32) {
	_ = b[rtpHeaderSize-1]
	b[0] = 0x80
	b[1] = pt & 0x7F
	if marker {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], seq)
	binary.BigEndian.PutUint32(b[4:8], ts)
	binary.BigEndian.PutUint32(b[8:12], ssrc)
}

// SSRC is the synchronization source of everything this session sends (prompts,
// DTMF and bridged media alike, RFC 3550 §8).
func (s *Session) SSRC() uint32 { return s.w.pkt.SSRC }

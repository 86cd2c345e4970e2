package agentstream

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"

	"github.com/matterline/matterline/media"
)

// Errors.
var (
	// ErrBadURL: agent.stream_url is not ws:// to a loopback host or wss://.
	ErrBadURL = errors.New("agentstream: bad stream url")
	// ErrDial: the agent's WebSocket could not be opened.
	ErrDial = errors.New("agentstream: dial")
)

// Defaults of Config.
const (
	DefaultDialTimeout  = 5 * time.Second
	DefaultPingInterval = 5 * time.Second
	DefaultPongTimeout  = 5 * time.Second
	DefaultWriteTimeout = 5 * time.Second
	DefaultUplinkQueue  = 25 // 500 ms of caller audio waiting for a slow agent
	DefaultMaxPlayout   = 5 * time.Minute
	DefaultAccountSid   = "matterline"
	// maxMessage bounds one message from the agent (a 10 s media chunk in
	// base64 is about 107 kB).
	maxMessage = 1 << 20
	// controlQueue is how many marks, digits and the stop may wait for the writer.
	controlQueue = 64
	// closeWait bounds the WebSocket close handshake after the stop message.
	closeWait = time.Second
)

// Config configures a Dialer. Zero values mean the defaults.
type Config struct {
	// URL is agent.stream_url: ws:// only to a loopback host (the agent runs on
	// this machine), wss:// otherwise.
	URL string
	// Header is sent with the WebSocket upgrade (e.g. an Authorization the agent
	// wants).
	Header http.Header
	// HTTPClient dials the WebSocket (TLS settings for wss://); nil means
	// http.DefaultClient.
	HTTPClient *http.Client
	// AccountSid is the accountSid of start and stop (Twilio's account id; the
	// agent rarely reads it). Default "matterline".
	AccountSid string
	// DialTimeout bounds opening the WebSocket.
	DialTimeout time.Duration
	// PingInterval and PongTimeout: a WebSocket ping every PingInterval must be
	// answered within PongTimeout, else the stream is dead.
	PingInterval, PongTimeout time.Duration
	// WriteTimeout: a message the agent does not take within it ends the stream.
	WriteTimeout time.Duration
	// UplinkQueue is how many 20 ms frames of the caller's audio may wait for the
	// agent to read; beyond it frames are dropped (and counted).
	UplinkQueue int
	// MaxPlayout caps the agent audio buffered for the caller; beyond it the
	// agent's audio is dropped (and counted).
	MaxPlayout time.Duration
	Logger     *slog.Logger
}

// Media is what a stream needs of the call's media: a *media.Session.
type Media interface {
	TapAudio(h media.AudioHandler) (untap func(), err error)
	PlayStream(ctx context.Context, src media.FrameSource) error
}

// Request is one call's stream.
type Request struct {
	// CallID is matterline's call id: the start message's callSid, and the id
	// for POST /v1/calls/{id}/transfer.
	CallID string
	// Params are the start message's customParameters, in order.
	Params []Param
	Media  Media
}

// Dialer opens streams. Safe for concurrent use.
type Dialer struct {
	cfg Config
	u   *url.URL
}

// CheckURL checks a stream URL: ws:// only to a loopback host, wss:// to any.
func CheckURL(raw string) (*url.URL, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return nil, fmt.Errorf("%w: %q: want ws://127.0.0.1:PORT/PATH or wss://HOST/PATH", ErrBadURL, raw)
	}
	switch u.Scheme {
	case "wss":
		return u, nil
	case "ws":
		h := u.Hostname()
		if h == "localhost" {
			return u, nil
		}
		if a, err := netip.ParseAddr(h); err == nil && a.IsLoopback() {
			return u, nil
		}
		return nil, fmt.Errorf("%w: %q: ws:// (unencrypted) only to a loopback host; use wss://", ErrBadURL, raw)
	}
	return nil, fmt.Errorf("%w: %q: the scheme must be ws or wss", ErrBadURL, raw)
}

// NewDialer checks cfg and defaults a copy.
func NewDialer(cfg Config) (*Dialer, error) {
	u, err := CheckURL(cfg.URL)
	if err != nil {
		return nil, err
	}
	c := cfg
	if c.DialTimeout <= 0 {
		c.DialTimeout = DefaultDialTimeout
	}
	if c.PingInterval <= 0 {
		c.PingInterval = DefaultPingInterval
	}
	if c.PongTimeout <= 0 {
		c.PongTimeout = DefaultPongTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = DefaultWriteTimeout
	}
	if c.UplinkQueue <= 0 {
		c.UplinkQueue = DefaultUplinkQueue
	}
	if c.MaxPlayout <= 0 {
		c.MaxPlayout = DefaultMaxPlayout
	}
	if c.AccountSid == "" {
		c.AccountSid = DefaultAccountSid
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return &Dialer{cfg: c, u: u}, nil
}

// EndReason says why a stream ended. The zero value is unknown.
type EndReason uint8

// End reasons.
const (
	EndUnknown      EndReason = iota
	EndStopped                // we stopped it (Stop: a transfer, the call ending)
	EndAgentClosed            // the agent closed the WebSocket
	EndReadError              // reading from the agent failed
	EndPongTimeout            // no pong within PongTimeout
	EndWriteTimeout           // the agent did not take a message within WriteTimeout
	EndMediaGone              // the call's media closed
)

var endNames = [...]string{"unknown", "stopped", "agent_closed", "read_error", "pong_timeout", "write_timeout", "media_gone"}

func (r EndReason) String() string {
	if int(r) < len(endNames) {
		return endNames[r]
	}
	return "unknown"
}

// Stats are a stream's counters.
type Stats struct {
	FramesSent    uint64 // caller frames sent to the agent
	FramesDropped uint64 // caller frames dropped: the agent read too slowly, or the caller sent too fast
	AgentFrames   uint64 // 20 ms frames of agent audio played to the caller
	AgentDropped  uint64 // agent audio bytes dropped (MaxPlayout reached)
	Malformed     uint64 // messages from the agent that were not valid JSON, or bad base64
	Ignored       uint64 // valid messages with an unknown event
	Marks         uint64 // marks echoed to the agent
	Clears        uint64
}

// upFrame is one 20 ms frame of the caller's audio on its way to the agent.
type upFrame struct {
	slot    uint64 // 20 ms slots since the stream started: the timestamp
	payload [frameBytes]byte
}

// Stream is one call's media stream to an agent. Its goroutines (reader,
// writer, pacer, pinger, playout) are its own: Stop ends them, Done reports the
// end, Wait waits for them.
type Stream struct {
	cfg       *Config
	log       *slog.Logger
	conn      *websocket.Conn
	callID    string
	streamSid string

	ctx    context.Context // the stream's life; cancelled on the end
	cancel context.CancelFunc
	// raw is the WebSocket's TCP connection. closeNow closes it: the
	// library's CloseNow alone does not while a close handshake is under way
	// (it waits out that handshake's own 5 s timeout).
	raw  *rawConn
	wg   sync.WaitGroup
	done chan struct{}
	end  atomic.Uint32 // EndReason, first one wins
	once sync.Once

	up      uplink
	upQueue chan *upFrame
	upFree  chan *upFrame
	control chan controlBuilder
	stopReq chan struct{}
	stopped sync.Once
	// stopReason is the end reason of a stop we asked for (Stop, the media's end).
	stopReason atomic.Uint32
	play       *playout
	untap      func()

	framesSent, upDropped, malformed, ignored, marks, clears atomic.Uint64
	controlDropped                                           atomic.Uint64
}

// Open dials the agent, sends connected and start, and starts streaming: the
// caller's audio to the agent, the agent's audio to the caller. The stream lives
// until Stop, the agent's end or a dead WebSocket (see Done and Reason); ctx
// bounds only the dial.
func (d *Dialer) Open(ctx context.Context, req Request) (*Stream, error) {
	if req.Media == nil {
		return nil, errors.New("agentstream: open: no media")
	}
	cfg := &d.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.DialTimeout)
	defer cancel()
	raw := new(rawConn)
	conn, _, err := websocket.Dial(dctx, d.u.String(), &websocket.DialOptions{
		HTTPClient: raw.client(cfg.HTTPClient), HTTPHeader: cfg.Header})
	if err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrDial, d.u.Redacted(), err)
	}
	conn.SetReadLimit(maxMessage)
	s := &Stream{
		cfg: cfg, conn: conn, raw: raw, callID: req.CallID, streamSid: newSid("MZ"),
		done:    make(chan struct{}),
		upQueue: make(chan *upFrame, cfg.UplinkQueue),
		upFree:  make(chan *upFrame, cfg.UplinkQueue+1),
		control: make(chan controlBuilder, controlQueue),
		stopReq: make(chan struct{}),
	}
	s.log = cfg.Logger.With("stream_sid", s.streamSid)
	for range cfg.UplinkQueue + 1 {
		s.upFree <- new(upFrame)
	}
	maxBytes := int(cfg.MaxPlayout / (frameMS * time.Millisecond) * frameBytes)
	s.play = newPlayout(maxBytes, s.echoMark)
	s.ctx, s.cancel = context.WithCancel(context.Background())

	// connected and start go out before any media, from this goroutine.
	wctx, wcancel := context.WithTimeout(ctx, cfg.WriteTimeout)
	defer wcancel()
	first := []any{
		connectedMsg{Event: eventConnected, Protocol: protocolName, Version: protocolVersion},
		startMsg{Event: eventStart, SequenceNumber: "1", StreamSid: s.streamSid, Start: startBody{
			StreamSid: s.streamSid, AccountSid: cfg.AccountSid, CallSid: req.CallID,
			Tracks: []string{trackInbound}, CustomParameters: orderedParams(req.Params),
			MediaFormat: mediaFormat{Encoding: encodingMulaw, SampleRate: streamRate, Channels: 1}}},
	}
	for _, m := range first {
		b, _ := json.Marshal(m)
		if err := conn.Write(wctx, websocket.MessageText, b); err != nil {
			_ = conn.CloseNow()
			s.cancel()
			return nil, fmt.Errorf("%w: %s: send start: %w", ErrDial, d.u.Redacted(), err)
		}
	}
	untap, err := req.Media.TapAudio(s.up.tap)
	if err != nil {
		_ = conn.CloseNow()
		s.cancel()
		return nil, fmt.Errorf("agentstream: tap the caller's audio: %w", err)
	}
	s.untap = untap
	s.log.Info("agent stream started", "url", d.u.Redacted())
	s.wg.Add(5)
	go s.readLoop()
	go s.writeLoop(2) // start was sequenceNumber 1
	go s.pace()
	go s.pingLoop()
	go func() {
		defer s.wg.Done()
		err := req.Media.PlayStream(s.ctx, s.play)
		if s.ctx.Err() == nil {
			s.log.Info("agent stream: media ended", "error", err)
			s.stopWith(EndMediaGone)
		}
	}()
	return s, nil
}

// CallID is the call the stream belongs to.
func (s *Stream) CallID() string { return s.callID }

// StreamSid is the stream's id (streamSid of every message).
func (s *Stream) StreamSid() string { return s.streamSid }

// Done is closed when the stream has ended (Reason tells why).
func (s *Stream) Done() <-chan struct{} { return s.done }

// Reason is why the stream ended (EndUnknown while it runs).
func (s *Stream) Reason() EndReason { return EndReason(s.end.Load()) }

// Stats returns the counters.
func (s *Stream) Stats() Stats {
	frames, overflow := s.play.stats()
	return Stats{
		FramesSent:    s.framesSent.Load(),
		FramesDropped: s.upDropped.Load() + s.up.dropped(),
		AgentFrames:   frames,
		AgentDropped:  overflow,
		Malformed:     s.malformed.Load(),
		Ignored:       s.ignored.Load(),
		Marks:         s.marks.Load(),
		Clears:        s.clears.Load(),
	}
}

// DTMF forwards a key the caller pressed as a dtmf message. It never blocks.
func (s *Stream) DTMF(key rune) {
	s.sendControl(func(seq uint64) any {
		return dtmfMsg{Event: eventDTMF, StreamSid: s.streamSid, SequenceNumber: strconv.FormatUint(seq, 10),
			DTMF: dtmfBody{Track: dtmfTrack, Digit: string(key)}}
	})
}

// Stop ends the stream from our side: the stop message goes out (a slow
// agent's connection is closed after closeWait instead), no more audio flows
// either way, and the WebSocket's close handshake runs on (Wait waits for it, at
// most about 5 s with an agent that does not answer it). Idempotent.
func (s *Stream) Stop() {
	s.stopWith(EndStopped)
	t := time.NewTimer(closeWait)
	defer t.Stop()
	select {
	case <-s.done:
	case <-t.C:
		s.finish(EndStopped)
		s.closeNow()
	}
}

// closeNow drops the connection without the close handshake, also while one
// is under way, and wakes every goroutine waiting on it.
func (s *Stream) closeNow() {
	s.raw.close()
	_ = s.conn.CloseNow()
}

// stopWith asks the writer to send stop and end the stream with reason.
func (s *Stream) stopWith(reason EndReason) {
	s.stopped.Do(func() {
		s.stopReason.Store(uint32(reason))
		close(s.stopReq)
	})
}

// Wait waits until the stream has ended and its goroutines are gone (the close
// handshake included).
func (s *Stream) Wait() {
	<-s.done
	s.wg.Wait()
}

// finish ends the stream with reason (the first wins): no more audio either way,
// the WebSocket closed (after the stop message when we stopped it).
func (s *Stream) finish(reason EndReason) {
	s.once.Do(func() {
		s.end.Store(uint32(reason))
		s.untap()
		switch reason {
		case EndPongTimeout, EndWriteTimeout, EndReadError:
			// Dead: no close handshake. Dropped before the cancel, so the
			// writer does not start one.
			s.raw.close()
		}
		s.cancel()
		switch reason {
		case EndPongTimeout, EndWriteTimeout, EndReadError:
			_ = s.conn.CloseNow() // wake every waiter
		}
		st := s.Stats()
		s.log.Info("agent stream ended", "reason", reason.String(), "frames_sent", st.FramesSent,
			"frames_dropped", st.FramesDropped, "agent_frames", st.AgentFrames, "malformed", st.Malformed)
		close(s.done)
	})
}

// ---- goroutines ----

// readLoop reads the agent's messages: media is queued for the caller, mark
// queued behind it, clear empties the queue; anything else is counted and
// ignored. A read error (including the agent's close) ends the stream.
func (s *Stream) readLoop() {
	defer s.wg.Done()
	var buf []byte
	for {
		// Not under s.ctx: a cancelled read would close the WebSocket without
		// the close handshake; the writer's close (or closeNow) wakes it.
		typ, b, err := s.conn.Read(context.Background())
		if err != nil {
			switch {
			case s.ctx.Err() != nil:
			case websocket.CloseStatus(err) != -1:
				s.log.Info("agent closed the stream", "status", websocket.CloseStatus(err).String())
				s.finish(EndAgentClosed)
			default:
				s.log.Info("agent stream read failed", "error", err)
				s.finish(EndReadError)
			}
			return
		}
		if typ == websocket.MessageText || typ == websocket.MessageBinary {
			buf = s.handle(b, buf)
		}
	}
}

// handle serves one message from the agent; buf is scratch space for decoded
// audio, returned for reuse. Bad JSON or base64 is counted and dropped; an
// unknown event is counted and ignored.
func (s *Stream) handle(b, buf []byte) []byte {
	var m inMsg
	if err := json.Unmarshal(b, &m); err != nil {
		s.malformed.Add(1)
		return buf
	}
	switch m.Event {
	case eventMedia:
		if m.Media == nil {
			s.malformed.Add(1)
			return buf
		}
		n := base64.StdEncoding.DecodedLen(len(m.Media.Payload))
		if cap(buf) < n {
			buf = make([]byte, n)
		}
		n, err := base64.StdEncoding.Decode(buf[:n], []byte(m.Media.Payload))
		if err != nil {
			s.malformed.Add(1)
			return buf
		}
		s.play.push(buf[:n])
	case eventMark:
		if m.Mark == nil {
			s.malformed.Add(1)
			return buf
		}
		s.play.mark(m.Mark.Name)
	case eventClear:
		s.clears.Add(1)
		s.play.clear()
	default:
		s.ignored.Add(1)
	}
	return buf
}

// writeLoop is the only writer after start: control messages (marks, digits,
// stop) before media. A write the agent does not take within WriteTimeout ends
// the stream; the pacer meanwhile drops frames, never waits.
func (s *Stream) writeLoop(seq uint64) {
	defer s.wg.Done()
	var chunk uint64
	b := make([]byte, 0, 512)
	write := func(p []byte) bool {
		// Not under s.ctx: a write cancelled half-way closes the WebSocket.
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.WriteTimeout)
		err := s.conn.Write(ctx, websocket.MessageText, p)
		cancel()
		if err == nil {
			return true
		}
		if s.ctx.Err() == nil {
			s.log.Info("agent stream write failed", "error", err)
			switch {
			case errors.Is(err, context.DeadlineExceeded):
				s.finish(EndWriteTimeout)
			default:
				// The agent's close frame may have stopped the write first:
				// let the reader, which sees why, name the end.
				select {
				case <-s.done:
				case <-time.After(200 * time.Millisecond):
					s.finish(EndReadError)
				}
			}
		}
		return false
	}
	for {
		// Control first: a mark echo or a digit does not wait behind media.
		select {
		case c := <-s.control:
			if !write(s.seqControl(c, &seq)) {
				return
			}
			continue
		default:
		}
		select {
		case c := <-s.control:
			if !write(s.seqControl(c, &seq)) {
				return
			}
		case f := <-s.upQueue:
			chunk++
			b = appendMedia(b[:0], seq, chunk, f.slot*frameMS, f.payload[:], s.streamSid)
			seq++
			s.upFree <- f
			if !write(b) {
				return
			}
			s.framesSent.Add(1)
		case <-s.stopReq:
			stop, _ := json.Marshal(stopMsg{Event: eventStop, SequenceNumber: strconv.FormatUint(seq, 10),
				StreamSid: s.streamSid, Stop: stopBody{AccountSid: s.cfg.AccountSid, CallSid: s.callID}})
			write(stop)
			s.finish(EndReason(s.stopReason.Load()))
			s.closeConn()
			return
		case <-s.ctx.Done():
			s.closeConn()
			return
		}
	}
}

// closeConn closes the WebSocket with a close handshake bounded by closeWait.
func (s *Stream) closeConn() {
	closed := make(chan struct{})
	go func() {
		_ = s.conn.Close(websocket.StatusNormalClosure, "stream stopped")
		close(closed)
	}()
	select {
	case <-closed:
	case <-time.After(closeWait):
		s.closeNow()
		<-closed
	}
}

// control messages are built by the writer, which owns the sequence numbers.
type controlBuilder func(seq uint64) any

func (s *Stream) sendControl(build controlBuilder) {
	select {
	case s.control <- build:
	default:
		s.controlDropped.Add(1)
	}
}

// seqControl renders a control message with the next sequence number.
func (s *Stream) seqControl(build controlBuilder, seq *uint64) []byte {
	b, _ := json.Marshal(build(*seq))
	*seq++
	return b
}

// pace sends the caller's audio to the agent every 20 ms: the oldest frame the
// tap has collected, or silence when there is none (hold, loss, silence
// suppression), so the agent sees a steady 50 frames a second with timestamps on
// a 20 ms grid. A full queue (a slow agent) drops the frame and counts it; the
// caller's RTP never waits for the agent.
func (s *Stream) pace() {
	defer s.wg.Done()
	t := time.NewTicker(frameMS * time.Millisecond)
	defer t.Stop()
	var slot uint64
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		slot++
		var f *upFrame
		select {
		case f = <-s.upFree:
		default:
			s.upDropped.Add(1) // every slot is queued: the agent is behind
			var sink [frameBytes]byte
			s.up.pop(&sink)
			continue
		}
		if !s.up.pop(&f.payload) {
			for i := range f.payload {
				f.payload[i] = 0xFF // μ-law silence
			}
		}
		f.slot = slot
		select {
		case s.upQueue <- f:
		default:
			s.upFree <- f
			s.upDropped.Add(1)
		}
	}
}

// pingLoop pings the agent; no pong within PongTimeout ends the stream.
func (s *Stream) pingLoop() {
	defer s.wg.Done()
	t := time.NewTicker(s.cfg.PingInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.ctx.Done():
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), s.cfg.PongTimeout)
		err := s.conn.Ping(ctx)
		cancel()
		if err != nil && s.ctx.Err() == nil {
			if !errors.Is(err, context.DeadlineExceeded) {
				// The connection itself failed: the reader names the end
				// (closed by the agent, or a read error).
				select {
				case <-s.done:
				case <-time.After(200 * time.Millisecond):
					s.finish(EndReadError)
				}
				return
			}
			s.log.Info("agent stream: no pong", "error", err)
			s.finish(EndPongTimeout)
			return
		}
	}
}

// echoMark sends a mark back to the agent once the audio before it has played.
func (s *Stream) echoMark(name string) {
	s.marks.Add(1)
	s.sendControl(func(seq uint64) any {
		return markMsg{Event: eventMark, SequenceNumber: strconv.FormatUint(seq, 10), StreamSid: s.streamSid,
			Mark: markBody{Name: name}}
	})
}

func newSid(prefix string) string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	return prefix + hex.EncodeToString(b[:])
}

// rawConn keeps the TCP connection a WebSocket was dialled on, so that a dead
// agent can be dropped at once whatever the WebSocket library is waiting for.
type rawConn struct {
	mu    sync.Mutex
	conns []net.Conn
}

// client returns an HTTP client that dials like hc (nil: the default
// transport) and records the connections it opens. A client whose transport is
// not an *http.Transport is used as it is (then close is a no-op).
func (r *rawConn) client(hc *http.Client) *http.Client {
	var tr *http.Transport
	switch {
	case hc == nil:
		tr = http.DefaultTransport.(*http.Transport).Clone()
		hc = &http.Client{}
	default:
		t, ok := hc.Transport.(*http.Transport)
		if hc.Transport == nil {
			t, ok = http.DefaultTransport.(*http.Transport), true
		}
		if !ok {
			return hc
		}
		tr = t.Clone()
		c := *hc
		hc = &c
	}
	dial := tr.DialContext
	if dial == nil {
		dial = (&net.Dialer{}).DialContext
	}
	tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := dial(ctx, network, addr)
		if err == nil {
			r.mu.Lock()
			r.conns = append(r.conns, c)
			r.mu.Unlock()
		}
		return c, err
	}
	hc.Transport = tr
	return hc
}

// close closes every connection dialled (normally one).
func (r *rawConn) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, c := range r.conns {
		_ = c.Close()
	}
}

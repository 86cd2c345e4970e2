package media

// THIS FILE IS THE AGREED API OF package media, written before the implementation.
// The media implementer replaces every stub below with real code (moving each piece
// into a file named by concern) and deletes this file. Names and signatures may grow
// (extra fields, extra methods) but must not change without updating package sip.

import (
	"context"
	"log/slog"
	"net"
	"net/netip"
	"time"
)

// SessionConfig sets up one RTP session (one call leg's media).
type SessionConfig struct {
	Conn   *net.UDPConn // from PortAllocator.Listen; the session owns and closes it
	Codec  Codec
	HasDTMF         bool
	DTMFPayloadType uint8
	// Remote is where to send until the peer's first packet latches the real source
	// (symmetric RTP).
	Remote netip.AddrPort
	// InactivityTimeout ends the session (Timeout channel closes) when no RTP arrives
	// for this long; 0 disables. Not counted while on hold (SetDirection).
	InactivityTimeout time.Duration
	// OnClose runs once after the socket is closed (e.g. release the port).
	OnClose func()
	Logger  *slog.Logger
}

// Session is one leg's RTP: a read loop (latching, DTMF, inactivity) and a paced
// writer (prompts at 20 ms with continuous seq/timestamp, marker on talkspurt start).
type Session struct{}

// NewSession starts the read loop. It never blocks.
func NewSession(cfg SessionConfig) (*Session, error) { panic("stub") }

// Play sends p paced at 20 ms per packet, returning when done, when ctx ends, or when
// the session closes. Sequence numbers and timestamps continue across prompts and
// silences; the first packet of each Play has the marker bit.
func (s *Session) Play(ctx context.Context, p *Prompt) error { panic("stub") }

// DTMF delivers each key press once (RFC 4733 repeats and end retransmissions
// de-duplicated). Digits from SIP INFO are fed in with InjectDTMF.
func (s *Session) DTMF() <-chan Digit { panic("stub") }

// InjectDTMF queues a digit that arrived by signalling (SIP INFO).
func (s *Session) InjectDTMF(d Digit) { panic("stub") }

// SetRemote changes the destination (re-INVITE with a new address) and re-arms latching.
func (s *Session) SetRemote(addr netip.AddrPort) { panic("stub") }

// SetDirection applies the negotiated direction: when we must not send (recvonly/
// inactive answer) Play stays silent; on hold the inactivity timer is suspended.
func (s *Session) SetDirection(d Direction) { panic("stub") }

// Timeout is closed when the inactivity timeout fires.
func (s *Session) Timeout() <-chan struct{} { panic("stub") }

// Done is closed when the session is closed.
func (s *Session) Done() <-chan struct{} { panic("stub") }

// LocalPort is the bound RTP port.
func (s *Session) LocalPort() int { panic("stub") }

// Stats are counters for logs and metrics.
type Stats struct {
	PacketsIn, PacketsOut, Dropped uint64
}

func (s *Session) Stats() Stats { panic("stub") }

// Close stops the read loop and the writer, closes the socket, runs OnClose.
// Idempotent; safe from any goroutine.
func (s *Session) Close() error { panic("stub") }

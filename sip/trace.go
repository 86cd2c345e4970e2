package sip

import (
	"bytes"
	"net"
	"net/netip"
	"sync/atomic"
	"time"
)

// MessageTracer sees the SIP messages matterline receives and sends on its
// listeners while the SIP trace is on (Server.SetSIPTrace), for a message log
// ("sip_trace") or HEPv3 export to a Homer collector.
//
// TraceSIP is called synchronously on sipgo's read loops and on whichever
// goroutine sends: it must be safe for concurrent use and fast (hand the message
// to a buffered queue; never block on the network). The message and its Data are
// the tracer's to keep.
type MessageTracer interface {
	TraceSIP(m TracedMessage)
}

// TracedMessage is one SIP message seen on the wire.
//
// UDP: one datagram, one message. TCP: Data is what one read or one write
// carried. sipgo writes each message with one write, so outbound TCP data is one
// whole message; an inbound read may hold part of a message or several (TCP is a
// byte stream, RFC 3261 §18.3), so a consumer that needs whole messages frames
// them itself by Content-Length. Keep-alives (CRLF, RFC 5626 §3.5.1) and NUL
// padding are not reported.
type TracedMessage struct {
	Time    time.Time
	Network string // "udp" or "tcp"
	// Src and Dst are the source and destination. Our side is the listener's
	// address; for a UDP listener on a wildcard address it is Config.ExternalIP
	// with the listener's port when set, else the wildcard address itself.
	// Addresses are unmapped (no IPv4-in-IPv6 forms).
	Src, Dst netip.AddrPort
	// Outbound is true for messages we sent.
	Outbound bool
	// Data is a copy of the bytes on the wire (made only while tracing is on).
	Data []byte
}

// CallID returns the value of the first Call-ID header (or its compact form "i")
// in m.Data, "" when there is none (for HEP correlation).
func (m TracedMessage) CallID() string {
	data := m.Data
	first := true
	for len(data) > 0 {
		line := data
		if i := bytes.IndexByte(data, '\n'); i >= 0 {
			line, data = data[:i], data[i+1:]
		} else {
			data = nil
		}
		line = bytes.TrimRight(line, "\r")
		if first { // the start line
			first = false
			continue
		}
		if len(line) == 0 { // end of the headers
			return ""
		}
		name, value, ok := bytes.Cut(line, []byte(":"))
		if !ok {
			continue
		}
		name = bytes.TrimSpace(name)
		if bytes.EqualFold(name, []byte("Call-ID")) || bytes.EqualFold(name, []byte("i")) {
			return string(bytes.TrimSpace(value))
		}
	}
	return ""
}

// WithTracer sets the SIP message tracer. The trace starts off; SetSIPTrace
// switches it at run time. Without a tracer the listeners are not wrapped at all.
//
// What is traced: everything received and sent on the UDP listening sockets
// (requests and responses, including the in-dialog requests we send to callers,
// which leave from the listening socket) and on TCP connections accepted by our
// listeners. What is not: UDP requests that sipgo's client sends from a socket it
// opens itself (a request to a new peer without Request.Laddr set to the listening
// address: set it, as prepareOutgoing does, to keep outbound legs traced) and TCP
// connections that sipgo's client dials itself (an outbound leg over TCP, a BYE
// to a caller whose TCP connection is gone).
func WithTracer(t MessageTracer) Option { return func(s *Server) { s.obs.tracer = t } }

// SetSIPTrace switches the SIP message trace on or off at run time (safe from any
// goroutine, before or after Start). It has an effect only with WithTracer.
func (s *Server) SetSIPTrace(on bool) { s.obs.traceOn.Store(on) }

// SIPTraceEnabled reports whether the SIP message trace is switched on.
func (s *Server) SIPTraceEnabled() bool { return s.obs.traceOn.Load() }

// traceUDP wraps a UDP listening socket for the trace; pc itself without a tracer.
func (s *Server) traceUDP(l *listener, pc net.PacketConn) net.PacketConn {
	if s.obs.tracer == nil {
		return pc
	}
	local := l.addr
	if local.Addr().IsUnspecified() && s.cfg.ExternalIP.IsValid() {
		local = netip.AddrPortFrom(s.cfg.ExternalIP, local.Port())
	}
	return &tracedPacketConn{PacketConn: pc, on: &s.obs.traceOn, t: s.obs.tracer,
		local: unmapAddrPort(local)}
}

// traceTCP wraps a TCP listener so that every accepted connection is traced; ln
// itself without a tracer.
func (s *Server) traceTCP(_ *listener, ln net.Listener) net.Listener {
	if s.obs.tracer == nil {
		return ln
	}
	return &tracedListener{Listener: ln, on: &s.obs.traceOn, t: s.obs.tracer}
}

// tracedPacketConn reports every datagram read and written while on is set. Off,
// it costs one atomic load per datagram and copies nothing. LocalAddr and the
// rest come from the wrapped socket, so sipgo's connection pool keys are
// unchanged.
type tracedPacketConn struct {
	net.PacketConn
	on    *atomic.Bool
	t     MessageTracer
	local netip.AddrPort
}

func (c *tracedPacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	n, addr, err := c.PacketConn.ReadFrom(b)
	if n > 0 && c.on.Load() {
		traceData(c.t, "udp", false, c.local, addrPortOf(addr), b[:n])
	}
	return n, addr, err
}

func (c *tracedPacketConn) WriteTo(b []byte, addr net.Addr) (int, error) {
	n, err := c.PacketConn.WriteTo(b, addr)
	if n > 0 && c.on.Load() {
		traceData(c.t, "udp", true, c.local, addrPortOf(addr), b[:n])
	}
	return n, err
}

// tracedListener wraps every accepted TCP connection.
type tracedListener struct {
	net.Listener
	on *atomic.Bool
	t  MessageTracer
}

func (l *tracedListener) Accept() (net.Conn, error) {
	conn, err := l.Listener.Accept()
	if err != nil {
		return nil, err
	}
	return &tracedConn{Conn: conn, on: l.on, t: l.t,
		local: addrPortOf(conn.LocalAddr()), remote: addrPortOf(conn.RemoteAddr())}, nil
}

// tracedConn reports every TCP read and write chunk while on is set.
type tracedConn struct {
	net.Conn
	on            *atomic.Bool
	t             MessageTracer
	local, remote netip.AddrPort
}

func (c *tracedConn) Read(b []byte) (int, error) {
	n, err := c.Conn.Read(b)
	if n > 0 && c.on.Load() {
		traceData(c.t, "tcp", false, c.local, c.remote, b[:n])
	}
	return n, err
}

func (c *tracedConn) Write(b []byte) (int, error) {
	n, err := c.Conn.Write(b)
	if n > 0 && c.on.Load() {
		traceData(c.t, "tcp", true, c.local, c.remote, b[:n])
	}
	return n, err
}

// traceData hands a copy of b to t, unless b is only a keep-alive.
func traceData(t MessageTracer, network string, outbound bool, local, remote netip.AddrPort, b []byte) {
	if len(bytes.Trim(b, "\r\n\x00")) == 0 {
		return
	}
	m := TracedMessage{Time: time.Now(), Network: network, Outbound: outbound,
		Src: remote, Dst: local, Data: redactSDESKeys(bytes.Clone(b))}
	if outbound {
		m.Src, m.Dst = local, remote
	}
	t.TraceSIP(m)
}

// sdesInline is where an SDES key begins in an SDP crypto attribute
// (RFC 4568 §6.1: "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:KEY|2^20|1:4").
var sdesInline = []byte("inline:")

// redactKey replaces an SDES master key and salt in a trace.
const redactKey = 'x'

// redactSDESKeys overwrites, in place, the key of every "inline:" key
// parameter of the a=crypto lines in b (up to its "|" lifetime or MKI, or the
// end of the parameter), so that a SIP trace or a HEP capture never holds the
// SRTP keys of a call: they are secrets, and whoever holds them can decrypt
// and inject the call's media. The length is kept, so Content-Length stays
// true.
func redactSDESKeys(b []byte) []byte {
	rest := b
	for {
		i := bytes.Index(rest, sdesInline)
		if i < 0 {
			return b
		}
		rest = rest[i+len(sdesInline):]
		for j, c := range rest {
			if c == '|' || c == ';' || c == ' ' || c == '\r' || c == '\n' {
				break
			}
			rest[j] = redactKey
		}
	}
}

// addrPortOf converts a socket address; the zero AddrPort when unknown.
func addrPortOf(a net.Addr) netip.AddrPort {
	switch v := a.(type) {
	case *net.UDPAddr:
		return unmapAddrPort(v.AddrPort())
	case *net.TCPAddr:
		return unmapAddrPort(v.AddrPort())
	case nil:
		return netip.AddrPort{}
	}
	ap, err := netip.ParseAddrPort(a.String())
	if err != nil {
		return netip.AddrPort{}
	}
	return unmapAddrPort(ap)
}

func unmapAddrPort(ap netip.AddrPort) netip.AddrPort {
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

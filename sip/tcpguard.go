package sip

import (
	"errors"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"time"
)

// TCP guard: accepted SIP/TCP connections are bounded so that idle or half-open
// connections from anywhere cannot exhaust file descriptors (security issue 2).
//
//   - a global cap below the fd limit, leaving room for RTP sockets and HTTP;
//   - a per-source cap, low for sources outside TrustedSources (they may only
//     reach established dialogs, so they have no reason to hold many);
//   - an untrusted connection must deliver a complete header section
//     (start line to the empty line, RFC 3261 §7) within TCPFirstMessageTimeout;
//   - every connection is closed after an idle read timeout (read deadlines
//     re-armed on each Read).
//
// A connection over a cap is closed at once in Accept and never reaches sipgo.
// A deadline expiry is reported to sipgo as io.EOF, which makes its reader
// close the connection and drop it from the pool quietly (transport_tcp.go
// readConnection treats EOF as a clean close).

// Defaults of the TCP guard settings in Config.
const (
	DefaultTCPMaxPerSource          = 16
	DefaultTCPMaxPerUntrustedSource = 4
	DefaultTCPIdleTimeout           = 2 * time.Hour
	DefaultTCPUntrustedIdleTimeout  = 30 * time.Second
	DefaultTCPFirstMessageTimeout   = 5 * time.Second
	// defaultTCPMaxConns is the global cap when the fd limit allows it.
	defaultTCPMaxConns = 1024
	// fdHeadroom is kept free for HTTP, the store, logs and the listeners;
	// fdsPerCall covers a call's RTP and RTCP sockets on both legs.
	fdHeadroom = 256
	fdsPerCall = 4
)

// TCPStats counts the guard's work; tests and metrics read it.
type TCPStats struct {
	Open            int64 // accepted connections still open
	Accepted        int64 // accepted and handed to sipgo, in total
	RefusedGlobal   int64 // closed at accept: global cap reached
	RefusedSource   int64 // closed at accept: per-source cap reached
	FirstMsgTimeout int64 // untrusted, closed without a complete header section in time
	IdleTimeout     int64 // closed after the idle read timeout
}

// TCPStats reports the TCP guard's counters.
func (s *Server) TCPStats() TCPStats { return s.tcp.stats() }

// tcpMaxConnsFor derives the global cap from the fd limit: the limit less
// room for every call's RTP sockets and a fixed headroom, at most
// defaultTCPMaxConns and at least 32.
func tcpMaxConnsFor(maxCalls int) int {
	n := defaultTCPMaxConns
	if lim, ok := fdLimit(); ok && lim < 1<<24 {
		room := int64(lim) - fdHeadroom - int64(fdsPerCall*maxCalls)
		if room < int64(n) {
			n = int(room)
		}
	}
	return max(n, 32)
}

type tcpGuard struct {
	log                        *slog.Logger
	trusted                    []netip.Prefix
	maxConns                   int
	maxTrusted, maxUntrusted   int
	idleTrusted, idleUntrusted time.Duration
	firstMsg                   time.Duration

	mu     sync.Mutex
	open   int
	source map[netip.Addr]int

	accepted, refusedGlobal, refusedSource, firstTimeout, idleTimeout atomic.Int64
}

func newTCPGuard(c Config, log *slog.Logger) *tcpGuard {
	return &tcpGuard{log: log, trusted: c.TrustedSources, maxConns: c.TCPMaxConns,
		maxTrusted: c.TCPMaxPerSource, maxUntrusted: c.TCPMaxPerUntrustedSource,
		idleTrusted: c.TCPIdleTimeout, idleUntrusted: c.TCPUntrustedIdleTimeout,
		firstMsg: c.TCPFirstMessageTimeout, source: make(map[netip.Addr]int)}
}

func (g *tcpGuard) stats() TCPStats {
	g.mu.Lock()
	open := g.open
	g.mu.Unlock()
	return TCPStats{Open: int64(open), Accepted: g.accepted.Load(),
		RefusedGlobal: g.refusedGlobal.Load(), RefusedSource: g.refusedSource.Load(),
		FirstMsgTimeout: g.firstTimeout.Load(), IdleTimeout: g.idleTimeout.Load()}
}

// sourceKey is what the per-source cap counts: the address, or its /64 for
// IPv6 (one host usually owns a whole /64).
func sourceKey(a netip.Addr) netip.Addr {
	a = a.Unmap()
	if a.Is6() {
		p, _ := a.Prefix(64)
		return p.Addr()
	}
	return a
}

// admit reserves a slot for a connection from src; false means close it.
func (g *tcpGuard) admit(src netip.Addr, trusted bool) bool {
	k := sourceKey(src)
	limit := g.maxUntrusted
	if trusted {
		limit = g.maxTrusted
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.open >= g.maxConns {
		g.refusedGlobal.Add(1)
		g.log.Warn("sip tcp connection refused: global connection cap", "cap", g.maxConns)
		return false
	}
	if g.source[k] >= limit {
		g.refusedSource.Add(1)
		g.log.Warn("sip tcp connection refused: per-source connection cap", "source", k.String(),
			"cap", limit, "trusted", trusted)
		return false
	}
	g.open++
	g.source[k]++
	return true
}

func (g *tcpGuard) release(src netip.Addr) {
	k := sourceKey(src)
	g.mu.Lock()
	defer g.mu.Unlock()
	g.open--
	if g.source[k]--; g.source[k] <= 0 {
		delete(g.source, k)
	}
}

// guardTCP wraps a TCP listener with g. The SIP trace wraps the result, so it
// sees only admitted connections.
func (s *Server) guardTCP(ln net.Listener) net.Listener {
	return &guardedListener{Listener: ln, g: s.tcp}
}

type guardedListener struct {
	net.Listener
	g *tcpGuard
}

// Accept returns the next admitted connection; connections over a cap are
// closed here. Temporary accept errors (EMFILE, ENFILE, ECONNABORTED) are
// retried with backoff as net/http does, since sipgo stops serving the
// listener on any error.
func (l *guardedListener) Accept() (net.Conn, error) {
	var backoff time.Duration
	for {
		conn, err := l.Listener.Accept()
		if err != nil {
			if errors.Is(err, net.ErrClosed) || !isTemporary(err) {
				return nil, err
			}
			backoff = min(max(2*backoff, 5*time.Millisecond), time.Second)
			l.g.log.Warn("sip tcp accept failed, retrying", "error", err, "backoff", backoff)
			time.Sleep(backoff)
			continue
		}
		backoff = 0
		src := addrPortOf(conn.RemoteAddr()).Addr().Unmap()
		trusted := addrTrusted(src, l.g.trusted)
		if !l.g.admit(src, trusted) {
			closeNow(conn)
			continue
		}
		l.g.accepted.Add(1)
		gc := &guardedConn{Conn: conn, g: l.g, src: src, idle: l.g.idleTrusted}
		if !trusted {
			gc.idle = l.g.idleUntrusted
			gc.firstBy = time.Now().Add(l.g.firstMsg)
		}
		return gc, nil
	}
}

// isTemporary reports accept errors worth retrying.
func isTemporary(err error) bool {
	var t interface{ Temporary() bool }
	return errors.As(err, &t) && t.Temporary()
}

// closeNow closes conn with a reset, so no socket lingers in TIME_WAIT on our side.
func closeNow(conn net.Conn) {
	if tc, ok := conn.(*net.TCPConn); ok {
		_ = tc.SetLinger(0)
	}
	_ = conn.Close()
}

// guardedConn arms a read deadline before every Read: the idle timeout, and
// for an untrusted peer, until its first header section is complete, the
// first-message deadline if that is earlier. Read is called only from sipgo's
// reader goroutine, so the fields below need no lock.
type guardedConn struct {
	net.Conn
	g       *tcpGuard
	src     netip.Addr
	idle    time.Duration
	firstBy time.Time // zero once a header section ended (or for trusted peers)
	tail    uint32    // last bytes read, to find CRLFCRLF across reads
	seen    bool      // a non-CRLF byte arrived (keep-alives do not start a message)
	// plain: TLS runs above, so header sections are found in the decrypted
	// stream (tls.go) and this conn only applies the deadlines.
	plain    bool
	timedOut bool // a deadline closed the connection
	once     sync.Once
}

func (c *guardedConn) Read(b []byte) (int, error) {
	deadline := time.Now().Add(c.idle)
	first := !c.firstBy.IsZero()
	if first && c.firstBy.Before(deadline) {
		deadline = c.firstBy
	}
	if err := c.Conn.SetReadDeadline(deadline); err != nil {
		return 0, err
	}
	n, err := c.Conn.Read(b)
	if first && n > 0 && !c.plain && c.headerEnded(b[:n]) {
		c.firstBy = time.Time{}
	}
	if err != nil && errors.Is(err, os.ErrDeadlineExceeded) {
		c.timedOut = true
		if first && !c.firstBy.IsZero() && !time.Now().Before(c.firstBy) {
			c.g.firstTimeout.Add(1)
			c.g.log.Warn("sip tcp connection closed: no complete message in time", "source", c.src.String())
		} else {
			c.g.idleTimeout.Add(1)
		}
		// sipgo closes the connection quietly on EOF.
		return n, io.EOF
	}
	return n, err
}

// headerEnded feeds b to the CRLFCRLF finder; true when a header section ended.
func (c *guardedConn) headerEnded(b []byte) bool {
	for _, ch := range b {
		if ch != '\r' && ch != '\n' {
			c.seen = true
		}
		c.tail = c.tail<<8 | uint32(ch)
		if c.seen && c.tail == 0x0d0a0d0a {
			return true
		}
	}
	return false
}

func (c *guardedConn) Close() error {
	err := c.Conn.Close()
	c.once.Do(func() { c.g.release(c.src) })
	return err
}

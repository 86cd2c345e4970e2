package phone

import (
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
)

// Timing of a phone's SIP stack.
const (
	// listenWait bounds the wait for sipgo to register the listener.
	listenWait = 2 * time.Second
	// strayPoll and strayQuiet shape the sweep for connections sipgo opens while
	// the phone closes (see stack.close); strayMax bounds it.
	strayPoll  = 5 * time.Millisecond
	strayQuiet = 4
	strayMax   = 500 * time.Millisecond
)

// stackConfig says how a phone's SIP stack listens.
type stackConfig struct {
	userAgent string // User-Agent header
	transport string // "udp", "tcp" or "tls"
	listen    string // ip:port; the ip is advertised
	// tls is the listener's certificate and, for the connections the phone
	// dials, its trusted roots (transport "tls").
	tls *tls.Config
	log *slog.Logger
	// setup runs before the stack serves: the phone keeps the stack and
	// installs its request handlers on s.srv.
	setup func(s *stack)
}

// stack is one sipgo user agent with its server, client and listening socket,
// shared by every phone of this package.
type stack struct {
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	transport string // "udp", "tcp" or "tls"
	ip        netip.Addr
	addr      netip.AddrPort
	ln        io.Closer
	serveDone chan struct{}
	// deaf drops every datagram read once the phone is closing.
	deaf atomic.Bool
}

func startStack(cfg stackConfig) (*stack, error) {
	tr := strings.ToLower(cfg.transport)
	if tr == "" {
		tr = "udp"
	}
	if tr != "udp" && tr != "tcp" && tr != "tls" {
		return nil, fmt.Errorf("phone: transport %q: want udp, tcp or tls", cfg.transport)
	}
	if tr == "tls" && cfg.tls == nil {
		return nil, errors.New("phone: transport tls needs a tls config")
	}
	if cfg.listen == "" {
		cfg.listen = "127.0.0.1:0"
	}
	ap, err := netip.ParseAddrPort(cfg.listen)
	if err != nil {
		return nil, fmt.Errorf("phone: listen %q: want ip:port: %w", cfg.listen, err)
	}
	if ap.Addr().IsUnspecified() {
		return nil, fmt.Errorf("phone: listen %q: give the address to advertise, not a wildcard", cfg.listen)
	}
	s := &stack{transport: tr, ip: ap.Addr().Unmap(), serveDone: make(chan struct{})}
	log := cfg.log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	uaOpts := []sipgo.UserAgentOption{sipgo.WithUserAgent(cfg.userAgent),
		sipgo.WithUserAgentHostname(s.ip.String()),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log),
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {})),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log),
			sip.WithTransportLayerReadFilter(func(_ sip.TransportReadProps, data []byte) ([]byte, error) {
				if s.deaf.Load() {
					return nil, nil
				}
				return data, nil
			}))}
	if cfg.tls != nil {
		uaOpts = append(uaOpts, sipgo.WithUserAgenTLSConfig(cfg.tls))
	}
	s.ua, err = sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, fmt.Errorf("phone: user agent: %w", err)
	}
	s.srv, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(log))
	if err != nil {
		_ = s.ua.Close()
		return nil, fmt.Errorf("phone: server: %w", err)
	}
	var serve func() error
	clientOpts := []sipgo.ClientOption{sipgo.WithClientLogger(log), sipgo.WithClientHostname(s.ip.String())}
	if tr == "udp" {
		pc, err := net.ListenPacket("udp", cfg.listen)
		if err != nil {
			_ = s.ua.Close()
			return nil, fmt.Errorf("phone: listen: %w", err)
		}
		s.ln = pc
		s.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		serve = func() error { return s.srv.ServeUDP(pc) }
	} else {
		l, err := net.Listen("tcp", cfg.listen)
		if err != nil {
			_ = s.ua.Close()
			return nil, fmt.Errorf("phone: listen: %w", err)
		}
		s.ln = l
		s.addr = l.Addr().(*net.TCPAddr).AddrPort()
		serve = func() error { return s.srv.ServeTCP(l) }
		if tr == "tls" {
			serve = func() error { return s.srv.ServeTLS(tls.NewListener(l, cfg.tls)) }
		}
	}
	s.addr = netip.AddrPortFrom(s.addr.Addr().Unmap(), s.addr.Port())
	if tr == "udp" {
		// SIPGO-NOTES: on TCP, binding the outgoing socket to the listening
		// port fails; on UDP every request should leave from the listener.
		clientOpts = append(clientOpts, sipgo.WithClientConnectionAddr(s.addr.String()))
	}
	s.client, err = sipgo.NewClient(s.ua, clientOpts...)
	if err != nil {
		_ = s.ln.Close()
		_ = s.ua.Close()
		return nil, fmt.Errorf("phone: client: %w", err)
	}
	cfg.setup(s)
	go func() {
		defer close(s.serveDone)
		_ = serve()
	}()
	// SIPGO-NOTES: a request sent before sipgo registered the listener makes it
	// bind the same port again; wait until it is up. sipgo registers the listen
	// port before it adds the listening socket to its connection pool, and a
	// request sent in between goes out on a new unbound socket that is never
	// closed: on UDP wait for the pool too.
	deadline := time.Now().Add(listenWait)
	tl := s.ua.TransportLayer()
	for len(tl.ListenPorts(tr)) == 0 || (tr == "udp" && tl.Pool(tr).Size() == 0) {
		if time.Now().After(deadline) {
			s.close()
			return nil, errors.New("phone: sip listener did not start")
		}
		time.Sleep(time.Millisecond)
	}
	return s, nil
}

// contact is the phone's Contact address with user.
func (s *stack) contact(user string) sip.Uri {
	u := sip.Uri{Scheme: "sip", User: user, Host: s.ip.String(), Port: int(s.addr.Port())}
	if s.transport == "tcp" || s.transport == "tls" {
		u.UriParams = sip.NewParams()
		u.UriParams.Add("transport", s.transport)
	}
	return u
}

// bindLocal makes req leave from the listening socket (UDP only): sipgo applies
// the client's connection address to requests it builds itself, not to dialog
// requests such as BYE, INFO or NOTIFY (SIPGO-NOTES).
func (s *stack) bindLocal(req *sip.Request) {
	if s.transport != "udp" {
		return
	}
	req.Laddr = sip.Addr{IP: s.addr.Addr().AsSlice(), Port: int(s.addr.Port())}
}

// close stops the stack and sweeps stray connections; for a phone with no
// handler work of its own left.
func (s *stack) close() {
	s.stop()
	s.sweep()
}

// stop stops the stack: no more messages are taken in, transactions end, the
// listener closes and the serve goroutine returns. The caller has ended its
// calls first; after its handlers have returned it calls sweep.
func (s *stack) stop() {
	s.deaf.Store(true)
	_ = s.ua.Close()
	_ = s.ln.Close()
	<-s.serveDone
}

// sweep closes connections sipgo opened while the phone was closing.
//
// sipgo handles every message on a goroutine of its own, and one that was read
// just before the close (an ACK, a retransmission) can run after the
// connection pool was cleared: finding no socket for the far end, it opens a
// new unbound UDP socket with a reader goroutine that nothing closes (the
// goroutine leak phone and sip tests saw now and then). So after the listener
// is gone the pool is swept until it has stayed empty for a while.
func (s *stack) sweep() {
	tl := s.ua.TransportLayer()
	deadline := time.Now().Add(strayMax)
	for quiet := 0; quiet < strayQuiet && time.Now().Before(deadline); {
		if tl.Pool("udp").Size() == 0 && tl.Pool("tcp").Size() == 0 && tl.Pool("tls").Size() == 0 {
			quiet++
		} else {
			quiet = 0
			_ = tl.Close()
		}
		time.Sleep(strayPoll)
	}
}

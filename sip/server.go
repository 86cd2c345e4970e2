package sip

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// Server is matterline's inbound SIP side: listeners, ACL, the inbound call legs,
// the menu and the call registry.
type Server struct {
	cfg        Config
	log        *slog.Logger
	lookup     Lookup
	router     Router
	transferer Transferer
	ports      *media.PortAllocator
	pacer      *media.Pacer // sends every call's prompts, one goroutine for all
	prompts    *media.Prompts
	now        func() time.Time
	tts        Speaker
	cdr        CallRecorder
	messages   MessageStore
	legs       legTable // outbound legs by SIP Call-ID (leg_outbound.go)
	// agentStream is the media-stream agent (agent_stream.go).
	agentStream agentStreamConf

	reg      *Registry
	ua       *sipgo.UserAgent
	sipSrv   *sipgo.Server
	client   *sipgo.Client
	dialogUA *sipgo.DialogUA

	ackWait time.Duration // 64*T1; shortened by tests

	obs serverObs // observer and SIP trace (observe.go, trace.go)

	draining atomic.Bool
	wg       sync.WaitGroup // call goroutines, leg reapers and listener loops
	closing  chan struct{}  // closed when Close starts
	invites  *rateTable     // new calls per source address
	tcp      *tcpGuard      // caps and deadlines of accepted TCP connections
	tls      *tlsState      // certificate and client config of SIP over TLS (tls.go)
	// background counts the goroutines calls start beside their own (playback,
	// retransmissions, transaction readers, the lookup); tests check it drains.
	background atomic.Int64

	mu        sync.Mutex
	listeners []*listener
	started   bool
	closed    bool
}

type listener struct {
	network string // "udp", "tcp" or "tls"
	addr    netip.AddrPort
	closer  io.Closer
}

func (l *listener) String() string { return l.network + "://" + l.addr.String() }

// NewServer builds a server from cfg (defaulted into a copy) and options. It binds
// nothing until Start.
func NewServer(cfg Config, opts ...Option) (*Server, error) {
	c, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Server{cfg: c, reg: newRegistry(), now: time.Now, ackWait: defaultAckWait, closing: make(chan struct{}), pacer: media.NewPacer(),
		invites: newRateTable(c.InviteRate, float64(c.InviteBurst))}
	for _, o := range opts {
		o(s)
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	// Everything logged from here on is bounded (logguard.go).
	s.log = slog.New(newLogGuard(s.log.Handler()))
	s.tcp = newTCPGuard(c, s.log)
	for _, l := range c.Listen {
		if _, _, err := parseListen(l); err != nil {
			return nil, err
		}
	}
	if s.tls, err = newTLSState(c, s.log); err != nil {
		return nil, err
	}
	if s.ports == nil {
		p, err := media.NewPortAllocator(10000, 20000, 5*time.Second)
		if err != nil {
			return nil, fmt.Errorf("sip: default rtp ports: %w", err)
		}
		s.ports = p
	}
	if s.prompts == nil {
		p, err := media.LoadPrompts("")
		if err != nil {
			return nil, fmt.Errorf("sip: built-in prompts: %w", err)
		}
		s.prompts = p
	}
	sipLog := s.log.With("component", "sipgo")
	uaOpts := []sipgo.UserAgentOption{
		sipgo.WithUserAgent(c.UserAgent),
		sipgo.WithUserAgentTransactionLayerOptions(
			gosip.WithTransactionLayerLogger(sipLog),
			gosip.WithTransactionLayerUnhandledResponseHandler(func(res *gosip.Response) { s.strayResponse(res) }),
		),
		sipgo.WithUserAgentTransportLayerOptions(gosip.WithTransportLayerLogger(sipLog)),
		sipgo.WithUserAgenTLSConfig(s.tls.client),
	}
	host := ""
	if c.ExternalIP.IsValid() {
		host = c.ExternalIP.String()
		uaOpts = append(uaOpts, sipgo.WithUserAgentHostname(host))
	}
	s.ua, err = sipgo.NewUA(uaOpts...)
	if err != nil {
		return nil, fmt.Errorf("sip: user agent: %w", err)
	}
	s.sipSrv, err = sipgo.NewServer(s.ua, sipgo.WithServerLogger(sipLog))
	if err != nil {
		_ = s.ua.Close()
		return nil, fmt.Errorf("sip: server: %w", err)
	}
	clientOpts := []sipgo.ClientOption{sipgo.WithClientLogger(sipLog), sipgo.WithClientNAT()}
	if host != "" {
		clientOpts = append(clientOpts, sipgo.WithClientHostname(host))
	}
	s.client, err = sipgo.NewClient(s.ua, clientOpts...)
	if err != nil {
		_ = s.ua.Close()
		return nil, fmt.Errorf("sip: client: %w", err)
	}
	s.dialogUA = &sipgo.DialogUA{Client: s.client}

	s.sipSrv.OnInvite(s.onInvite)
	s.sipSrv.OnAck(s.onAck)
	s.sipSrv.OnBye(s.onBye)
	s.sipSrv.OnCancel(s.onCancel)
	s.sipSrv.OnOptions(s.onOptions)
	s.sipSrv.OnInfo(s.onInfo)
	s.sipSrv.OnUpdate(s.onUpdate)
	s.sipSrv.OnNotify(s.onNotify)
	s.sipSrv.OnNoRoute(s.onOther)
	return s, nil
}

func parseListen(l string) (network string, ap netip.AddrPort, err error) {
	network, hostport, ok := strings.Cut(l, "://")
	network = strings.ToLower(network)
	if !ok || (network != "udp" && network != "tcp" && network != "tls") {
		return "", ap, fmt.Errorf("sip: listen %q: want udp://host:port, tcp://host:port or tls://host:port", l)
	}
	ap, err = netip.ParseAddrPort(hostport)
	if err != nil {
		return "", ap, fmt.Errorf("sip: listen %q: %w", l, err)
	}
	return network, ap, nil
}

// Start binds every listener and serves them; it returns once they are bound and
// serving. ctx bounds start-up only; Close stops the server.
func (s *Server) Start(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return ErrClosed
	}
	if s.started {
		return errors.New("sip: server already started")
	}
	ls, err := bindAll(ctx, s.cfg.Listen)
	if err != nil {
		return err
	}
	s.started = true
	s.listeners = ls
	for _, l := range ls {
		s.wg.Add(1)
		go func(l *listener) {
			defer s.wg.Done()
			var err error
			switch c := l.closer.(type) {
			case net.PacketConn:
				err = s.sipSrv.ServeUDP(s.traceUDP(l, c))
			case net.Listener:
				if l.network == "tls" {
					err = s.sipSrv.ServeTLS(s.traceTCP(l, s.guardTLS(c)))
				} else {
					err = s.sipSrv.ServeTCP(s.traceTCP(l, s.guardTCP(c)))
				}
			}
			if err != nil && !errors.Is(err, net.ErrClosed) {
				s.log.Error("sip listener stopped", "listener", l.String(), "error", err)
			}
		}(l)
	}
	// Wait until sipgo registered the listeners (SIPGO-NOTES: a request sent before
	// that binds the port a second time).
	deadline := time.Now().Add(2 * time.Second)
	for _, l := range ls {
		for !containsInt(s.ua.TransportLayer().ListenPorts(l.network), int(l.addr.Port())) {
			if time.Now().After(deadline) {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	time.Sleep(5 * time.Millisecond)
	for _, l := range ls {
		s.log.Info("sip listening", "listener", l.String())
	}
	return nil
}

func containsInt(xs []int, x int) bool {
	for _, v := range xs {
		if v == x {
			return true
		}
	}
	return false
}

// bindAll binds the listeners. Port-0 listeners on the same host get one port for
// UDP and TCP (retrying when the other transport's port is taken).
func bindAll(ctx context.Context, specs []string) ([]*listener, error) {
	type spec struct {
		network string
		ap      netip.AddrPort
	}
	var fixed []spec
	zero := map[netip.Addr][]string{} // host -> networks with port 0
	var zeroOrder []netip.Addr
	for _, l := range specs {
		n, ap, err := parseListen(l)
		if err != nil {
			return nil, err
		}
		if ap.Port() == 0 && n != "tls" { // TLS cannot share TCP's port
			if _, ok := zero[ap.Addr()]; !ok {
				zeroOrder = append(zeroOrder, ap.Addr())
			}
			zero[ap.Addr()] = append(zero[ap.Addr()], n)
			continue
		}
		fixed = append(fixed, spec{n, ap})
	}
	var out []*listener
	closeAll := func() {
		for _, l := range out {
			_ = l.closer.Close()
		}
	}
	for _, sp := range fixed {
		l, err := bindOne(ctx, sp.network, sp.ap)
		if err != nil {
			closeAll()
			return nil, err
		}
		out = append(out, l)
	}
	for _, host := range zeroOrder {
		nets := zero[host]
		var err error
		for attempt := 0; attempt < 20; attempt++ {
			var group []*listener
			var first *listener
			first, err = bindOne(ctx, nets[0], netip.AddrPortFrom(host, 0))
			if err != nil {
				break
			}
			group = append(group, first)
			for _, n := range nets[1:] {
				var l *listener
				l, err = bindOne(ctx, n, first.addr)
				if err != nil {
					break
				}
				group = append(group, l)
			}
			if err == nil {
				out = append(out, group...)
				break
			}
			for _, l := range group {
				_ = l.closer.Close()
			}
		}
		if err != nil {
			closeAll()
			return nil, err
		}
	}
	return out, nil
}

// udpReadBuffer is the receive buffer asked for a SIP UDP listener.
const udpReadBuffer = 4 << 20

func bindOne(ctx context.Context, network string, ap netip.AddrPort) (*listener, error) {
	var lc net.ListenConfig
	switch network {
	case "udp":
		pc, err := lc.ListenPacket(ctx, "udp", ap.String())
		if err != nil {
			return nil, fmt.Errorf("sip: listen udp %s: %w", ap, err)
		}
		bound, err := netip.ParseAddrPort(pc.LocalAddr().String())
		if err != nil {
			_ = pc.Close()
			return nil, fmt.Errorf("sip: listen udp %s: %w", ap, err)
		}
		if u, ok := pc.(*net.UDPConn); ok {
			// Room for a burst of requests while the process is busy (a GC
			// cycle at thousands of calls a second): the default ~200 KB
			// overflowed at 2,000 calls/s, and each INVITE lost there came
			// back only with the caller's retransmission 500 ms later. The
			// kernel caps it at net.core.rmem_max.
			_ = u.SetReadBuffer(udpReadBuffer)
		}
		return &listener{network: "udp", addr: bound, closer: pc}, nil
	default: // tcp, tls
		ln, err := lc.Listen(ctx, "tcp", ap.String())
		if err != nil {
			return nil, fmt.Errorf("sip: listen %s %s: %w", network, ap, err)
		}
		bound, err := netip.ParseAddrPort(ln.Addr().String())
		if err != nil {
			_ = ln.Close()
			return nil, fmt.Errorf("sip: listen %s %s: %w", network, ap, err)
		}
		return &listener{network: network, addr: bound, closer: ln}, nil
	}
}

// Addrs returns the bound listener addresses, like "udp://127.0.0.1:40123".
func (s *Server) Addrs() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]string, 0, len(s.listeners))
	for _, l := range s.listeners {
		out = append(out, l.String())
	}
	return out
}

// goTracked runs f on a goroutine counted in background.
func (s *Server) goTracked(f func()) {
	s.background.Add(1)
	go func() {
		defer s.background.Add(-1)
		f()
	}()
}

// Registry is the live call registry.
func (s *Server) Registry() *Registry { return s.reg }

// Drain stops taking calls (INVITE and out-of-dialog OPTIONS get 503, so a PBX's
// keep-alive sees the node as down), waits up to timeout for the calls to
// end, then hangs up the rest with BYE.
func (s *Server) Drain(ctx context.Context, timeout time.Duration) {
	s.setDraining(true)
	t := time.NewTimer(timeout)
	defer t.Stop()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	for s.reg.Count() > 0 {
		select {
		case <-ctx.Done():
			s.hangupAll(ctx, EndDrain)
			return
		case <-t.C:
			s.hangupAll(ctx, EndDrain)
			return
		case <-tick.C:
		}
	}
}

// HangupAll ends every call now with BYE (ringing calls get 480) and waits until
// they are torn down or ctx ends.
func (s *Server) HangupAll(ctx context.Context) { s.hangupAll(ctx, EndHangup) }

func (s *Server) hangupAll(ctx context.Context, reason EndReason) {
	calls := s.reg.all()
	for _, c := range calls {
		go c.post(hangupEvent{reason: reason})
	}
	for _, c := range calls {
		select {
		case <-c.done:
		case <-ctx.Done():
			return
		}
	}
}

// Hangup ends one call with BYE and waits for its teardown (or ctx).
func (s *Server) Hangup(ctx context.Context, id string) error {
	c := s.reg.call(id)
	if c == nil {
		return fmt.Errorf("hangup %s: %w", id, ErrCallNotFound)
	}
	go c.post(hangupEvent{reason: EndHangup})
	select {
	case <-c.done:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// Close hangs up all calls, stops the listeners and waits for every call goroutine.
// Idempotent.
func (s *Server) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.closing)
	s.mu.Unlock()
	s.setDraining(true)

	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout+time.Second)
	s.hangupAll(ctx, EndShutdown)
	cancel()

	s.mu.Lock()
	ls := s.listeners
	s.mu.Unlock()
	var errs []error
	for _, l := range ls {
		if err := l.closer.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
			errs = append(errs, err)
		}
	}
	// sipgo closes a UDP listener's connection from its read loop as well:
	// whichever comes second sees it closed, which is not a failure.
	if err := s.ua.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		errs = append(errs, err)
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		errs = append(errs, errors.New("sip: close: call goroutines did not stop within 10s"))
	}
	return errors.Join(errs...)
}

// pickListener returns the listener a request on network most likely came in on:
// the one bound to local (the address the kernel uses towards the source), else a
// wildcard one, else the first of that network.
func (s *Server) pickListener(network string, local netip.Addr) *listener {
	s.mu.Lock()
	defer s.mu.Unlock()
	network = strings.ToLower(network)
	var wildcard, first *listener
	for _, l := range s.listeners {
		if l.network != network {
			continue
		}
		if l.addr.Addr().Unmap() == local {
			return l
		}
		if wildcard == nil && l.addr.Addr().IsUnspecified() {
			wildcard = l
		}
		if first == nil {
			first = l
		}
	}
	if wildcard != nil {
		return wildcard
	}
	if first != nil {
		return first
	}
	if len(s.listeners) > 0 {
		return s.listeners[0]
	}
	return &listener{network: network, addr: netip.AddrPortFrom(netip.IPv4Unspecified(), 5060)}
}

// advertiseFor is the address put in Contact and SDP for a call whose INVITE came
// from src on l: ExternalIP, else the listener's address, else the local address
// the kernel would use towards src.
func (s *Server) advertiseFor(l *listener, src netip.Addr) netip.Addr {
	if s.cfg.ExternalIP.IsValid() {
		return s.cfg.ExternalIP
	}
	if a := l.addr.Addr(); !a.IsUnspecified() {
		return a.Unmap()
	}
	if a := localAddrToward(src); a.IsValid() {
		return a
	}
	return netip.MustParseAddr("127.0.0.1")
}

// localAddrToward is the local address the kernel picks to reach dst (a connected
// UDP socket sends nothing); invalid when unknown.
func localAddrToward(dst netip.Addr) netip.Addr {
	if !dst.IsValid() {
		return netip.Addr{}
	}
	conn, err := net.DialUDP("udp", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(dst, 9)))
	if err != nil {
		return netip.Addr{}
	}
	defer conn.Close()
	la, err := netip.ParseAddrPort(conn.LocalAddr().String())
	if err != nil {
		return netip.Addr{}
	}
	return la.Addr().Unmap()
}

// reply sends a response built from req with extra headers; errors are logged.
func (s *Server) reply(tx gosip.ServerTransaction, req *gosip.Request, code int, phrase string, hdrs ...gosip.Header) {
	s.replyTagged(tx, req, "", code, phrase, hdrs...)
}

// replyTagged is reply with our To tag (responses in a dialog we create, RFC
// 3261 §8.2.6.2); tag "" adds none.
func (s *Server) replyTagged(tx gosip.ServerTransaction, req *gosip.Request, tag string, code int, phrase string, hdrs ...gosip.Header) {
	res := gosip.NewResponseFromRequest(req, code, phrase, nil)
	if code > 100 {
		setToTag(res, tag)
	}
	res.AppendHeader(gosip.NewHeader("Server", s.cfg.UserAgent))
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	if err := tx.Respond(res); err != nil {
		s.log.Debug("respond failed", "code", code, "method", string(req.Method), "error", err)
		return
	}
	s.notifyResponse(string(req.Method), code)
}

// replyErr answers req with the response mapError gives for err.
func (s *Server) replyErr(tx gosip.ServerTransaction, req *gosip.Request, err error) {
	s.replyErrTagged(tx, req, "", err)
}

// replyErrTagged is replyErr with our To tag.
func (s *Server) replyErrTagged(tx gosip.ServerTransaction, req *gosip.Request, tag string, err error) {
	st := mapError(err)
	var hdrs []gosip.Header
	switch st.Code {
	case 405:
		hdrs = append(hdrs, gosip.NewHeader("Allow", allowHeader))
	case 415:
		hdrs = append(hdrs, gosip.NewHeader("Accept", acceptHeader))
	case 420:
		var be *BadExtensionError
		if errors.As(err, &be) {
			hdrs = append(hdrs, gosip.NewHeader("Unsupported", stripCRLF(strings.Join(be.Options, ", "))))
		}
	case 422:
		// RFC 4028 §9: a 422 carries Min-SE, and we say we support the timer.
		hdrs = append(hdrs, gosip.NewHeader("Min-SE", strconv.Itoa(int(MinSE/time.Second))),
			gosip.NewHeader("Supported", supportedHeader))
	case 491:
		hdrs = append(hdrs, gosip.NewHeader("Retry-After", "2"))
	case 503:
		hdrs = append(hdrs, gosip.NewHeader("Retry-After", "30"))
	}
	if st.Warning != "" {
		hdrs = append(hdrs, gosip.NewHeader("Warning",
			fmt.Sprintf("%d %s %q", st.WarnCode, s.warnAgent(), st.Warning)))
	}
	s.replyTagged(tx, req, tag, st.Code, st.Phrase, hdrs...)
}

func (s *Server) warnAgent() string {
	if s.cfg.ExternalIP.IsValid() {
		return s.cfg.ExternalIP.String()
	}
	return "matterline"
}

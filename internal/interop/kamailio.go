package interop

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// KamailioOptions configures StartKamailio. The zero value is a UDP proxy that
// routes every initial request by its Request-URI without Record-Route.
type KamailioOptions struct {
	// RecordRoute makes the proxy call record_route() on initial INVITE,
	// SUBSCRIBE and REFER, so the dialog's later requests come through it.
	RecordRoute bool
	// Forward is host:port to relay every initial request to (e.g. matterline's
	// listener), keeping the Request-URI. Empty routes by Request-URI.
	Forward string
	// AuthPassword makes the proxy challenge initial INVITEs (407, RFC 3261
	// §22.3) and accept any user name with this password. Empty: no
	// authentication.
	AuthPassword string
	// Transport adds a TCP listener on the same port when TransportTCP, and
	// relays initial requests to Forward over TCP. Default UDP only.
	Transport Transport
	// StartTimeout bounds the wait until the proxy answers OPTIONS. Default
	// DefaultStartTimeout.
	StartTimeout time.Duration
}

func (o KamailioOptions) withDefaults() KamailioOptions {
	if o.Transport == 0 {
		o.Transport = TransportUDP
	}
	if o.StartTimeout <= 0 {
		o.StartTimeout = DefaultStartTimeout
	}
	return o
}

// ErrBadOptions is returned (wrapped) for options that cannot be used.
var ErrBadOptions = errors.New("interop: bad options")

// check rejects a Forward that is not a plain host:port and an AuthPassword
// that could not be quoted: both are written into the script.
func (o KamailioOptions) check() error {
	if strings.ContainsAny(o.AuthPassword, "\"\\\r\n$") {
		return fmt.Errorf("%w: AuthPassword has characters the script cannot hold", ErrBadOptions)
	}
	if o.Forward == "" {
		return nil
	}
	host, port, err := net.SplitHostPort(o.Forward)
	if err != nil {
		return fmt.Errorf("%w: Forward %q: %w", ErrBadOptions, o.Forward, err)
	}
	if _, err := strconv.ParseUint(port, 10, 16); err != nil || host == "" || strings.ContainsAny(host, "\"\\;\r\n \t") {
		return fmt.Errorf("%w: Forward %q is not host:port", ErrBadOptions, o.Forward)
	}
	return nil
}

// Routing is what the proxy did with a request.
type Routing int

const (
	routingUnknown Routing = iota
	// RoutedInitial: a request without To-tag, relayed (to Forward or by
	// Request-URI).
	RoutedInitial
	// RoutedLoose: an in-dialog request whose Route header named the proxy
	// (loose_route() succeeded), relayed.
	RoutedLoose
	// RoutedTransaction: an in-dialog ACK without a Route to the proxy that
	// matched a transaction (the ACK of a non-2xx final response), relayed.
	RoutedTransaction
	// Challenged: an initial INVITE without valid credentials, answered 407
	// (only with AuthPassword).
	Challenged
	// DroppedInDialog: an in-dialog request without a Route to the proxy, not
	// relayed: an ACK is discarded, anything else answered 404 "Not here".
	DroppedInDialog
	// DroppedToSelf: an initial request addressed to the proxy itself (other
	// than the OPTIONS keepalive), answered 404.
	DroppedToSelf
)

var routingNames = map[Routing]string{
	RoutedInitial:     "initial",
	RoutedLoose:       "loose",
	RoutedTransaction: "transaction",
	Challenged:        "challenged",
	DroppedInDialog:   "dropped",
	DroppedToSelf:     "to-self",
}

func (r Routing) String() string {
	if s, ok := routingNames[r]; ok {
		return s
	}
	return "unknown"
}

func parseRouting(s string) Routing {
	for r, name := range routingNames {
		if name == s {
			return r
		}
	}
	return routingUnknown
}

// ProxiedRequest is one request the proxy handled, from its script's log.
type ProxiedRequest struct {
	Method     string
	RequestURI string
	CallID     string
	Routing    Routing
	At         time.Time // when the log line was read
}

// InDialog reports whether the request carried a To-tag.
func (r ProxiedRequest) InDialog() bool {
	return r.Routing == RoutedLoose || r.Routing == RoutedTransaction || r.Routing == DroppedInDialog
}

// Relayed reports whether the proxy forwarded the request.
func (r ProxiedRequest) Relayed() bool {
	return r.Routing == RoutedInitial || r.Routing == RoutedLoose || r.Routing == RoutedTransaction
}

func (r ProxiedRequest) String() string {
	return fmt.Sprintf("%s %s (%s, call-id %s)", r.Method, r.RequestURI, r.Routing, r.CallID)
}

// logMarker starts the script's xlog lines: marker|routing|method|call-id|r-uri.
const logMarker = "INTEROP|"

// Kamailio is a running Kamailio proxy on 127.0.0.1.
type Kamailio struct {
	addr string
	opts KamailioOptions
	proc *process

	mu       sync.Mutex
	requests []ProxiedRequest
	changed  chan struct{} // closed and replaced when requests grows
}

// StartKamailio starts a stateful Kamailio proxy listening on a free port of
// 127.0.0.1 and stops it when the test ends. It skips the test when kamailio is
// not installed (fails it when CI=true).
func StartKamailio(t testing.TB, opts KamailioOptions) *Kamailio {
	t.Helper()
	bin := findBinary(t, "kamailio", "/usr/sbin/kamailio", "kamailio")
	opts = opts.withDefaults()
	if err := opts.check(); err != nil {
		t.Fatal(err)
	}
	var lastErr error
	for range startAttempts {
		k, err := startKamailio(t, bin, opts)
		if err == nil {
			return k
		}
		lastErr = err
	}
	t.Fatal(lastErr)
	return nil
}

func startKamailio(t testing.TB, bin string, opts KamailioOptions) (*Kamailio, error) {
	port, err := freePort(opts.Transport == TransportTCP)
	if err != nil {
		return nil, err
	}
	dir := t.TempDir()
	cfg := filepath.Join(dir, "kamailio.cfg")
	if err := writeKamailioConfig(cfg, port, opts); err != nil {
		return nil, err
	}
	run := filepath.Join(dir, "run")
	if err := os.Mkdir(run, 0o700); err != nil {
		return nil, fmt.Errorf("interop: kamailio runtime dir: %w", err)
	}
	k := &Kamailio{
		addr:    net.JoinHostPort("127.0.0.1", strconv.Itoa(port)),
		opts:    opts,
		changed: make(chan struct{}),
	}
	// -DD: stay in the foreground (children are still forked); -E: log to
	// stderr; -Y: private runtime dir; -m/-M: small shared and private memory.
	p, err := startProcess("kamailio", bin, dir, nil, k.onLine,
		"-f", cfg, "-DD", "-E", "-Y", run, "-m", "32", "-M", "4")
	if err != nil {
		return nil, err
	}
	k.proc = p
	t.Cleanup(func() { p.stopAndCheck(t) })
	if err := k.waitReady(opts.StartTimeout); err != nil {
		p.stop()
		return nil, p.failure(err)
	}
	return k, nil
}

// waitReady sends OPTIONS keepalives until the proxy answers one.
func (k *Kamailio) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return err
	}
	defer c.Close()
	to, err := net.ResolveUDPAddr("udp4", k.addr)
	if err != nil {
		return err
	}
	buf := make([]byte, 4096)
	for n := 0; time.Now().Before(deadline); n++ {
		if k.proc.exited() {
			return errors.New("kamailio exited")
		}
		if _, err := c.WriteTo(optionsPing(c.LocalAddr().String(), k.addr, n), to); err != nil {
			return err
		}
		_ = c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
		m, _, err := c.ReadFrom(buf)
		if err == nil && strings.HasPrefix(string(buf[:m]), "SIP/2.0 200") {
			return nil
		}
	}
	return fmt.Errorf("no answer to OPTIONS on %s within %v", k.addr, timeout)
}

// optionsPing is a minimal out-of-dialog OPTIONS to the proxy itself
// (RFC 3261 §11).
func optionsPing(from, to string, n int) []byte {
	return []byte(fmt.Sprintf("OPTIONS sip:%s SIP/2.0\r\n"+
		"Via: SIP/2.0/UDP %s;branch=z9hG4bK-interop-%d-%d\r\n"+
		"Max-Forwards: 70\r\n"+
		"From: <sip:probe@%s>;tag=probe%d\r\n"+
		"To: <sip:%s>\r\n"+
		"Call-ID: interop-probe-%d-%d@127.0.0.1\r\n"+
		"CSeq: %d OPTIONS\r\n"+
		"Content-Length: 0\r\n\r\n",
		to, from, os.Getpid(), n, from, n, to, os.Getpid(), n, n+1))
}

// onLine parses the script's log lines out of Kamailio's stderr.
func (k *Kamailio) onLine(line string) {
	i := strings.Index(line, logMarker)
	if i < 0 {
		return
	}
	f := strings.SplitN(line[i+len(logMarker):], "|", 4)
	if len(f) != 4 {
		return
	}
	r := ProxiedRequest{Routing: parseRouting(f[0]), Method: f[1], CallID: f[2], RequestURI: f[3], At: time.Now()}
	k.mu.Lock()
	k.requests = append(k.requests, r)
	close(k.changed)
	k.changed = make(chan struct{})
	k.mu.Unlock()
}

// Addr is the proxy's host:port on 127.0.0.1.
func (k *Kamailio) Addr() string { return k.addr }

// URI is the proxy's SIP URI with the lr parameter, usable as an outbound
// proxy or a Route (RFC 3261 §16.12.1.1), with ;transport=tcp for TCP.
func (k *Kamailio) URI() string {
	if k.opts.Transport == TransportTCP {
		return "sip:" + k.addr + ";transport=tcp;lr"
	}
	return "sip:" + k.addr + ";lr"
}

// Requests is every request the proxy's script has handled so far, in order.
// OPTIONS keepalives addressed to the proxy itself are not included.
func (k *Kamailio) Requests() []ProxiedRequest {
	k.mu.Lock()
	defer k.mu.Unlock()
	return append([]ProxiedRequest(nil), k.requests...)
}

// WaitRequest waits until a request for which match returns true has been
// handled, and returns it. It fails with the requests seen and the proxy's
// output when none arrives within timeout.
func (k *Kamailio) WaitRequest(timeout time.Duration, match func(ProxiedRequest) bool) (ProxiedRequest, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		k.mu.Lock()
		for _, r := range k.requests {
			if match(r) {
				k.mu.Unlock()
				return r, nil
			}
		}
		changed := k.changed
		k.mu.Unlock()
		select {
		case <-changed:
		case <-k.proc.done:
			return ProxiedRequest{}, fmt.Errorf("interop: kamailio exited: %v\n%s", k.proc.err, k.proc.output())
		case <-deadline.C:
			return ProxiedRequest{}, fmt.Errorf("%w within %v; requests handled: %v", ErrNoSuchRequest, timeout, k.Requests())
		}
	}
}

// ErrNoSuchRequest is returned (wrapped) by WaitRequest on timeout.
var ErrNoSuchRequest = errors.New("interop: proxy handled no matching request")

// Output is Kamailio's log so far.
func (k *Kamailio) Output() string { return k.proc.output() }

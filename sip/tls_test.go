package sip

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"log/slog"
	"math/big"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/internal/testpki"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
)

// tlsSetup is a CA with matterline's certificate files and a config that
// listens on UDP, TCP and TLS and trusts the CA for peers.
type tlsSetup struct {
	ca                *testpki.CA
	dir               string
	certFile, keyFile string
	caFile            string
}

func newTLSSetup(t testing.TB) *tlsSetup {
	t.Helper()
	ts := &tlsSetup{ca: testpki.NewCA(t, "matterline test CA"), dir: t.TempDir()}
	ts.certFile, ts.keyFile = ts.ca.Issue(t, "matterline", "127.0.0.1", "localhost").Write(t, ts.dir, "matterline")
	ts.caFile = filepath.Join(ts.dir, "ca.pem")
	if err := os.WriteFile(ts.caFile, ts.ca.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return ts
}

func (ts *tlsSetup) config(base Config) Config {
	base.Listen = append(append([]string(nil), base.Listen...), "tls://127.0.0.1:0")
	base.TLS = TLSFiles{CertFile: ts.certFile, KeyFile: ts.keyFile, CAFile: ts.caFile}
	return base
}

// phoneTLS is a phone's TLS config: its own certificate from ca (for its
// listener) and trust in the test CA.
func (ts *tlsSetup) phoneTLS(t testing.TB, ca *testpki.CA, names ...string) *tls.Config {
	is := ca.Issue(t, "phone", names...)
	return &tls.Config{Certificates: []tls.Certificate{is.TLS}, RootCAs: ts.ca.Pool, MinVersion: tls.VersionTLS12}
}

// tlsAddr is the server's TLS listener address.
func (e *testEnv) tlsAddr() string {
	e.t.Helper()
	for _, a := range e.srv.Addrs() {
		if strings.HasPrefix(a, "tls://") {
			return strings.TrimPrefix(a, "tls://")
		}
	}
	e.t.Fatal("no tls listener")
	return ""
}

func TestTLSCallAnsweredAndHungUp(t *testing.T) {
	ts := newTLSSetup(t)
	for _, tc := range []struct {
		name, target, contact string
	}{
		{"sip-transport-tls", "sip:100@%s;transport=tls", "sip:matterline@127.0.0.1:%s;transport=tls"},
		{"sips", "sips:100@%s", "sips:matterline@127.0.0.1:%s"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			e := newEnv(t, ts.config(defaultTestConfig()))
			addr := e.tlsAddr()
			_, port, _ := net.SplitHostPort(addr)
			p := e.newPhoneWith(phone.UAConfig{Transport: "tls", TLS: ts.phoneTLS(t, ts.ca, "127.0.0.1")})
			c, res := e.call(p, phone.InviteOptions{Target: fmt.Sprintf(tc.target, addr)})
			if res.StatusCode != 200 {
				t.Fatalf("invite over tls: %d %s", res.StatusCode, res.Reason)
			}
			if got, want := res.Contact().Address.String(), fmt.Sprintf(tc.contact, port); got != want {
				t.Errorf("Contact = %q, want %q", got, want)
			}
			if via := res.Via(); via == nil || !strings.EqualFold(via.Transport, "TLS") {
				t.Errorf("Via = %v, want TLS", via)
			}
			if !c.RTP.WaitPackets(3, 5*time.Second) {
				t.Fatal("no greeting over the tls call")
			}
			if tr := e.srv.reg.call(e.onlyCall().ID).transport; tr != "TLS" {
				t.Errorf("call transport = %q, want TLS", tr)
			}
			// The caller hangs up; then matterline hangs up a second call (its
			// BYE goes back over the caller's TLS connection).
			bye, err := c.Bye(ctxT(t, 5*time.Second))
			if err != nil || bye.StatusCode != 200 {
				t.Fatalf("bye: %v %v", bye, err)
			}
			e.waitIdle()
			c2, res := e.call(p, phone.InviteOptions{Target: fmt.Sprintf(tc.target, addr)})
			if res.StatusCode != 200 {
				t.Fatalf("second invite: %d", res.StatusCode)
			}
			if err := e.srv.Hangup(ctxT(t, 10*time.Second), e.onlyCall().ID); err != nil {
				t.Fatal(err)
			}
			if err := c2.WaitBye(ctxT(t, 5*time.Second)); err != nil {
				t.Fatalf("no bye over tls: %v", err)
			}
			e.waitIdle()
		})
	}
}

func TestTLSWarmTransferBridges(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	co := phone.AnswerOptions{RingFor: 200 * time.Millisecond}
	callee, err := phone.NewUA(phone.UAConfig{Transport: "tls", Logger: testLogger(t), Answer: &co,
		TLS: ts.phoneTLS(t, ts.ca, "127.0.0.1")})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = callee.Close() })
	cdr := &memCDR{}
	rule := warmRule("felix", fmt.Sprintf("sip:101@%s;transport=tls", callee.Addr()), "1")
	e := newEnv(t, ts.config(transferConfig()), WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	_, port, _ := net.SplitHostPort(e.tlsAddr())
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	in, err := callee.Next(ctxT(t, 8*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	if !in.WaitAcked(5 * time.Second) {
		t.Fatal("no ack")
	}
	inv := in.Invite
	if got, want := inv.Contact().Address.String(), "sip:matterline@127.0.0.1:"+port+";transport=tls"; got != want {
		t.Errorf("outbound Contact = %q, want %q", got, want)
	}
	if via := inv.Via(); via == nil || via.Transport != "TLS" || fmt.Sprint(via.Port) != port {
		t.Errorf("outbound Via = %v, want TLS with the tls listener's port %s", via, port)
	}
	if err := in.SendDTMF('1'); err != nil {
		t.Fatal(err)
	}
	e.waitState(c.CallID, StateBridged)
	checkBridgeAudio(t, c, 0, in)
	// The callee hangs up over TLS (to matterline's Contact): the caller gets BYE.
	if res, err := in.HangUp(ctxT(t, 5*time.Second)); err != nil || res.StatusCode != 200 {
		t.Fatalf("callee bye: %v %v", res, err)
	}
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	rec := cdr.wait(t, c.CallID)
	if rec.Outcome != records.OutcomeBridged || rec.EndReason != records.EndCalleeBye {
		t.Errorf("record = %+v", rec)
	}
	e.waitIdle()
}

// logCapture keeps the messages logged at Warn and above, then passes every
// record on.
type logCapture struct {
	st   *capturedLogs
	next slog.Handler
}

type capturedLogs struct {
	mu   sync.Mutex
	msgs []string
}

func newLogCapture(next slog.Handler) *logCapture {
	return &logCapture{st: &capturedLogs{}, next: next}
}

func (h *logCapture) Enabled(context.Context, slog.Level) bool { return true }

func (h *logCapture) Handle(ctx context.Context, r slog.Record) error {
	if r.Level >= slog.LevelWarn {
		var b strings.Builder
		b.WriteString(r.Message)
		r.Attrs(func(a slog.Attr) bool { fmt.Fprintf(&b, " %s=%v", a.Key, a.Value); return true })
		h.st.mu.Lock()
		h.st.msgs = append(h.st.msgs, b.String())
		h.st.mu.Unlock()
	}
	if h.next.Enabled(ctx, r.Level) {
		return h.next.Handle(ctx, r)
	}
	return nil
}

func (h *logCapture) WithAttrs(as []slog.Attr) slog.Handler {
	return &logCapture{st: h.st, next: h.next.WithAttrs(as)}
}

func (h *logCapture) WithGroup(name string) slog.Handler {
	return &logCapture{st: h.st, next: h.next.WithGroup(name)}
}

func (h *logCapture) has(sub string) (string, bool) {
	h.st.mu.Lock()
	defer h.st.mu.Unlock()
	for _, m := range h.st.msgs {
		if strings.Contains(m, sub) {
			return m, true
		}
	}
	return "", false
}

func TestTLSDestinationRefused(t *testing.T) {
	ts := newTLSSetup(t)
	other := testpki.NewCA(t, "another CA")
	for _, tc := range []struct {
		name string
		ca   *testpki.CA
		host []string
		log  string
	}{
		{"other-ca", other, []string{"127.0.0.1"}, "certificate from an untrusted CA"},
		{"wrong-name", ts.ca, []string{"wrong.example"}, "certificate name does not match"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			co := phone.AnswerOptions{}
			callee, err := phone.NewUA(phone.UAConfig{Transport: "tls", Logger: testLogger(t), Answer: &co,
				TLS: ts.phoneTLS(t, tc.ca, tc.host...)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { _ = callee.Close() })
			cdr := &memCDR{}
			rule := warmRule("felix", fmt.Sprintf("sip:101@%s;transport=tls", callee.Addr()), "1")
			logs := newLogCapture(testLogger(t).Handler())
			e := newEnv(t, ts.config(transferConfig()), WithRouter(newFakeRouter(transferDecision(rule))),
				WithCallRecords(cdr), WithLogger(slog.New(logs)))
			c := e.dialTransfer(e.phone, phone.InviteOptions{})
			// Unavailable handling hangup: goodbye, then BYE to the caller.
			if err := c.WaitBye(ctxT(t, 8*time.Second)); err != nil {
				t.Fatal(err)
			}
			if _, err := callee.Next(ctxT(t, 200*time.Millisecond)); err == nil {
				t.Fatal("the callee with a bad certificate got the call")
			}
			rec := cdr.wait(t, c.CallID)
			if rec.Outcome != records.OutcomeFailed {
				t.Errorf("record = %+v, want outcome failed", rec)
			}
			if m, ok := logs.has(tc.log); !ok {
				t.Errorf("no log line %q", tc.log)
			} else {
				t.Logf("logged: %s", m)
			}
			e.waitIdle()
		})
	}
}

func TestTLSNoListenerNoFallback(t *testing.T) {
	t.Parallel()
	cfg := transferConfig()
	rule := warmRule("felix", "sips:101@127.0.0.1:5999", "1")
	cdr := &memCDR{}
	e := newEnv(t, cfg, WithRouter(newFakeRouter(transferDecision(rule))), WithCallRecords(cdr))
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	if err := c.WaitBye(ctxT(t, 8*time.Second)); err != nil {
		t.Fatal(err)
	}
	if rec := cdr.wait(t, c.CallID); rec.Outcome != records.OutcomeFailed {
		t.Errorf("record = %+v, want failed", rec)
	}
	e.waitIdle()
}

// servedSerial dials addr over TLS and returns the serial of the certificate served.
func servedSerial(t *testing.T, addr string, roots *x509.CertPool) *big.Int {
	t.Helper()
	conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
		&tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber
}

func TestTLSReloadSwapsCertificate(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	first := ts.ca.Issue(t, "first", "127.0.0.1")
	certFile, keyFile := first.Write(t, ts.dir, "served")
	cfg := ts.config(defaultTestConfig())
	cfg.TLS.CertFile, cfg.TLS.KeyFile = certFile, keyFile
	e := newEnv(t, cfg)
	addr := e.tlsAddr()
	if got := servedSerial(t, addr, ts.ca.Pool); got.Cmp(first.Serial) != 0 {
		t.Fatalf("served serial %v, want %v", got, first.Serial)
	}

	second := ts.ca.Issue(t, "second", "127.0.0.1")
	second.Write(t, ts.dir, "served")
	if err := e.srv.ReloadTLS(); err != nil {
		t.Fatal(err)
	}
	if got := servedSerial(t, addr, ts.ca.Pool); got.Cmp(second.Serial) != 0 {
		t.Fatalf("after reload: served serial %v, want %v", got, second.Serial)
	}

	// A bad file keeps the old certificate: garbage, then a key of another cert.
	if err := os.WriteFile(certFile, []byte("not a certificate"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadTLS(); err == nil {
		t.Error("reload of a garbage cert_file succeeded")
	}
	third := ts.ca.Issue(t, "third", "127.0.0.1")
	if err := os.WriteFile(certFile, third.CertPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	if err := e.srv.ReloadTLS(); err == nil || !strings.Contains(err.Error(), "private key does not match") {
		t.Errorf("reload with a mismatched key: %v", err)
	}
	if got := servedSerial(t, addr, ts.ca.Pool); got.Cmp(second.Serial) != 0 {
		t.Fatalf("after failed reloads: served serial %v, want %v (the old one)", got, second.Serial)
	}
}

func TestTLSGuardHandshakeNeverCompletes(t *testing.T) {
	d := attackerDialer(t)
	ts := newTLSSetup(t)
	cfg := ts.config(guardTestConfig())
	cfg.TCPFirstMessageTimeout = 300 * time.Millisecond
	e := newEnv(t, cfg)
	addr := e.tlsAddr()

	// More connections than the per-source cap, none of which handshakes.
	const attack = 10
	var conns []net.Conn
	for range attack {
		c, err := d.Dial("tcp", addr)
		if err != nil {
			continue
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	// A trusted peer that never handshakes is cut too.
	trusted, err := net.DialTimeout("tcp", addr, 2*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer trusted.Close()

	start := time.Now()
	for i, c := range append(conns, trusted) {
		if !closedByPeer(c, start.Add(3*time.Second)) {
			t.Fatalf("connection %d without a handshake still open after 3s", i)
		}
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Errorf("closed after %v, want about 300ms", took)
	}
	eventually(t, 2*time.Second, "released", func() bool { return e.srv.TCPStats().Open == 0 })
	st := e.srv.TCPStats()
	t.Logf("tcp guard after the tls attack: %+v", st)
	if st.RefusedSource < attack-DefaultTCPMaxPerUntrustedSource {
		t.Errorf("refused by the per-source cap: %d, want at least %d", st.RefusedSource, attack-DefaultTCPMaxPerUntrustedSource)
	}
	if st.FirstMsgTimeout < 2 {
		t.Errorf("first-message timeouts: %d, want the attacker's and the trusted one", st.FirstMsgTimeout)
	}

	// A TLS caller still gets through afterwards.
	p := e.newPhoneWith(phone.UAConfig{Transport: "tls", TLS: ts.phoneTLS(t, ts.ca, "127.0.0.1")})
	c, res := e.call(p, phone.InviteOptions{Target: fmt.Sprintf("sip:100@%s;transport=tls", addr)})
	if res.StatusCode != 200 {
		t.Fatalf("tls call after the attack: %d", res.StatusCode)
	}
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

func TestTLSConfigErrors(t *testing.T) {
	ts := newTLSSetup(t)
	other := ts.ca.Issue(t, "other", "127.0.0.1")
	_, otherKey := other.Write(t, ts.dir, "other")
	for _, tc := range []struct {
		name string
		tls  TLSFiles
		want string
	}{
		{"missing", TLSFiles{}, "without sip.tls.cert_file"},
		{"no-file", TLSFiles{CertFile: filepath.Join(ts.dir, "nope.crt"), KeyFile: ts.keyFile}, "no such file"},
		{"mismatch", TLSFiles{CertFile: ts.certFile, KeyFile: otherKey}, "private key does not match"},
		{"bad-ca", TLSFiles{CertFile: ts.certFile, KeyFile: ts.keyFile, CAFile: ts.certFile + "x"}, "ca_file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := defaultTestConfig()
			cfg.Listen = []string{"tls://127.0.0.1:0"}
			cfg.TLS = tc.tls
			_, err := NewServer(cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewServer: %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

func TestTargetForTLS(t *testing.T) {
	for _, tc := range []struct {
		proxy, dest, tport, uri, via string
	}{
		{"", "sip:101@pbx.example;transport=tls", "TLS", "sip:101@pbx.example;transport=tls", ""},
		{"", "sips:101@pbx.example", "TLS", "sips:101@pbx.example", ""},
		{"", "sip:101@pbx.example;transport=tcp", "TCP", "sip:101@pbx.example;transport=tcp", ""},
		{"", "sip:101@pbx.example", "UDP", "sip:101@pbx.example", ""},
		{"sip:trunk.example;transport=tls", "+15551234567", "TLS", "sip:+15551234567@trunk.example:5061", "trunk.example:5061"},
		{"sips:trunk.example", "+15551234567", "TLS", "sips:+15551234567@trunk.example:5061", "trunk.example:5061"},
		{"sips:trunk.example:5071", "+15551234567", "TLS", "sips:+15551234567@trunk.example:5071", "trunk.example:5071"},
		{"trunk.example", "+15551234567", "UDP", "sip:+15551234567@trunk.example:5060", "trunk.example:5060"},
	} {
		s := &Server{cfg: Config{OutboundProxy: tc.proxy}}
		got, err := s.targetFor(tc.dest)
		if err != nil {
			t.Errorf("%s via %q: %v", tc.dest, tc.proxy, err)
			continue
		}
		if got.tport != tc.tport || got.uri.String() != tc.uri || got.dest != tc.via {
			t.Errorf("%s via %q: got %s %s %q, want %s %s %q", tc.dest, tc.proxy,
				got.tport, got.uri.String(), got.dest, tc.tport, tc.uri, tc.via)
		}
	}
}

func TestDialogContactTLS(t *testing.T) {
	req := gosip.NewRequest(gosip.INVITE, gosip.Uri{Scheme: "sips", User: "100", Host: "127.0.0.1"})
	req.SetTransport("TLS")
	for _, h := range []gosip.Header{
		&gosip.FromHeader{Address: gosip.Uri{Scheme: "sips", User: "a", Host: "x"}, Params: gosip.NewParams()},
		&gosip.ToHeader{Address: gosip.Uri{Scheme: "sips", User: "100", Host: "x"}, Params: gosip.NewParams()},
	} {
		req.AppendHeader(h)
	}
	callID := gosip.CallIDHeader("c1")
	req.AppendHeader(&callID)
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: 1, MethodName: gosip.INVITE})
	d := uasDialog(req, "tag")
	if !d.secure {
		t.Fatal("a sips: INVITE over TLS did not make a secure dialog")
	}
	if got := d.contact().Address.String(); !strings.HasPrefix(got, "sips:") || strings.Contains(got, "transport") {
		t.Errorf("sips contact = %q", got)
	}
	d.secure = false
	if got := d.contact().Address.String(); !strings.HasSuffix(got, ";transport=tls") {
		t.Errorf("tls contact = %q", got)
	}
}

package sip

import (
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// SIP over TLS (RFC 3261 §26.2, RFC 5630).
//
// Inbound: tls:// listeners serve the certificate in TLSFiles; Server.ReloadTLS
// re-reads it (serve calls it on SIGHUP) and swaps it atomically through
// tls.Config.GetCertificate, so connections in progress keep theirs and new
// handshakes get the new one. A file that does not load keeps the old
// certificate.
//
// The TCP guard applies beneath TLS: an accepted connection counts against
// the same global and per-source caps as a plain TCP one, and its handshake
// must complete within TCPFirstMessageTimeout whatever the source (an
// untrusted peer then also has to deliver a complete header section by that
// deadline, as on TCP). Header sections are found in the decrypted stream.
//
// Outbound: sips: URIs and ;transport=tls targets (rule destinations and
// sip.outbound_proxy) are dialled over TLS only. The peer's certificate is
// verified against the system pool plus TLSFiles.CAFile, and its name against
// the target host (an IP literal against the certificate's IP SANs). A
// failed verification fails the leg like an unreachable destination; there is
// no fallback to TCP.

// TLSFiles names the PEM files of SIP over TLS (sip.tls).
type TLSFiles struct {
	// CertFile and KeyFile are the certificate (chain) and private key served
	// on tls:// listeners and offered when a peer asks for a client
	// certificate. Required with a tls:// listener; reloaded by ReloadTLS.
	CertFile string
	KeyFile  string
	// CAFile holds extra CA certificates trusted for peers, besides the
	// system pool. Read once, at NewServer.
	CAFile string
}

// Errors of SIP over TLS.
var (
	// ErrTLSNotConfigured: a tls:// listener without a certificate and key.
	ErrTLSNotConfigured = errors.New("sip: tls listener without sip.tls.cert_file and key_file")
	// ErrNoTLSListener: a TLS destination while no tls:// listener is
	// configured (its Contact and Via would have nowhere to point).
	ErrNoTLSListener = errors.New("sip: tls destination without a tls:// listener")
)

// connectTimeout bounds connecting to a peer for an outbound request: TCP
// connect, DNS and the TLS handshake (sipgo's dialer waits a minute and a
// handshake with no context deadline forever).
const connectTimeout = 5 * time.Second

// expiryWarning is how close to its end a certificate is reported.
const expiryWarning = 14 * 24 * time.Hour

// CertInfo describes a loaded certificate for logs and config check.
type CertInfo struct {
	Subject  string
	Names    []string // DNS and IP SANs
	NotAfter time.Time
}

// Expired reports whether the certificate has expired at now.
func (c CertInfo) Expired(now time.Time) bool { return now.After(c.NotAfter) }

// LoadTLSCertificate reads a PEM certificate and key and checks that they
// belong together; errors name the file at fault.
func LoadTLSCertificate(certFile, keyFile string) (*tls.Certificate, CertInfo, error) {
	if certFile == "" || keyFile == "" {
		return nil, CertInfo{}, ErrTLSNotConfigured
	}
	certPEM, err := os.ReadFile(certFile)
	if err != nil {
		return nil, CertInfo{}, fmt.Errorf("sip: tls cert_file: %w", err)
	}
	keyPEM, err := os.ReadFile(keyFile)
	if err != nil {
		return nil, CertInfo{}, fmt.Errorf("sip: tls key_file: %w", err)
	}
	cert, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		return nil, CertInfo{}, fmt.Errorf("sip: tls cert_file %s and key_file %s: %w", certFile, keyFile, err)
	}
	leaf := cert.Leaf
	if leaf == nil {
		if leaf, err = x509.ParseCertificate(cert.Certificate[0]); err != nil {
			return nil, CertInfo{}, fmt.Errorf("sip: tls cert_file %s: %w", certFile, err)
		}
		cert.Leaf = leaf
	}
	info := CertInfo{Subject: leaf.Subject.String(), NotAfter: leaf.NotAfter}
	info.Names = append(info.Names, leaf.DNSNames...)
	for _, ip := range leaf.IPAddresses {
		info.Names = append(info.Names, ip.String())
	}
	return &cert, info, nil
}

// LoadTLSRoots is the system pool plus the PEM certificates in caFile ("" =
// the system pool alone).
func LoadTLSRoots(caFile string) (*x509.CertPool, error) {
	pool, err := x509.SystemCertPool()
	if err != nil || pool == nil {
		pool = x509.NewCertPool()
	}
	if caFile == "" {
		return pool, nil
	}
	pem, err := os.ReadFile(caFile)
	if err != nil {
		return nil, fmt.Errorf("sip: tls ca_file: %w", err)
	}
	if !pool.AppendCertsFromPEM(pem) {
		return nil, fmt.Errorf("sip: tls ca_file %s: no PEM certificate in it", caFile)
	}
	return pool, nil
}

// hasTLSListener reports whether listen names a tls:// listener.
func hasTLSListener(listen []string) bool {
	for _, l := range listen {
		if n, _, err := parseListen(l); err == nil && n == "tls" {
			return true
		}
	}
	return false
}

// tlsState is the server's TLS material: the served certificate (swapped by
// ReloadTLS) and the client configuration for outbound connections.
type tlsState struct {
	files  TLSFiles
	log    *slog.Logger
	cert   atomic.Pointer[tls.Certificate]
	reload sync.Mutex // one reload at a time
	client *tls.Config
	server *tls.Config
}

// newTLSState loads the certificate (required when a tls:// listener is
// configured, optional otherwise) and the trusted roots.
func newTLSState(c Config, log *slog.Logger) (*tlsState, error) {
	st := &tlsState{files: c.TLS, log: log}
	if c.TLS.CertFile != "" || c.TLS.KeyFile != "" || hasTLSListener(c.Listen) {
		cert, info, err := LoadTLSCertificate(c.TLS.CertFile, c.TLS.KeyFile)
		if err != nil {
			return nil, err
		}
		st.cert.Store(cert)
		st.logLoaded(info, "sip tls certificate loaded")
	}
	roots, err := LoadTLSRoots(c.TLS.CAFile)
	if err != nil {
		return nil, err
	}
	st.server = &tls.Config{
		MinVersion: tls.VersionTLS12,
		GetCertificate: func(*tls.ClientHelloInfo) (*tls.Certificate, error) {
			if cert := st.cert.Load(); cert != nil {
				return cert, nil
			}
			return nil, ErrTLSNotConfigured
		},
	}
	// sipgo sets ServerName to the target host for each connection
	// (TransportTLS.init), so the peer's name is checked by crypto/tls: DNS
	// names against DNS SANs, IP literals against IP SANs.
	st.client = &tls.Config{
		MinVersion: tls.VersionTLS12,
		RootCAs:    roots,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			if cert := st.cert.Load(); cert != nil {
				return cert, nil
			}
			return &tls.Certificate{}, nil // none: the peer decides
		},
	}
	return st, nil
}

func (st *tlsState) logLoaded(info CertInfo, msg string) {
	st.log.Info(msg, "subject", info.Subject, "names", strings.Join(info.Names, ","),
		"not_after", info.NotAfter.UTC().Format(time.RFC3339))
	now := time.Now()
	switch {
	case info.Expired(now):
		st.log.Warn("sip tls certificate has expired", "subject", info.Subject,
			"not_after", info.NotAfter.UTC().Format(time.RFC3339))
	case info.NotAfter.Sub(now) < expiryWarning:
		st.log.Warn("sip tls certificate expires soon", "subject", info.Subject,
			"not_after", info.NotAfter.UTC().Format(time.RFC3339))
	}
}

// ReloadTLS re-reads sip.tls.cert_file and key_file and serves the new
// certificate to new TLS connections. On any error the old certificate stays
// and the error is logged and returned. Safe from any goroutine.
func (s *Server) ReloadTLS() error {
	st := s.tls
	if st.files.CertFile == "" && st.files.KeyFile == "" {
		return nil
	}
	st.reload.Lock()
	defer st.reload.Unlock()
	cert, info, err := LoadTLSCertificate(st.files.CertFile, st.files.KeyFile)
	if err != nil {
		s.log.Error("sip tls certificate not reloaded, keeping the old one", "error", err)
		return err
	}
	st.cert.Store(cert)
	st.logLoaded(info, "sip tls certificate reloaded")
	return nil
}

// guardTLS wraps a TCP listener with the TCP guard, then TLS.
func (s *Server) guardTLS(ln net.Listener) net.Listener {
	return &tlsListener{inner: &guardedListener{Listener: ln, g: s.tcp}, conf: s.tls.server, log: s.log}
}

type tlsListener struct {
	inner *guardedListener
	conf  *tls.Config
	log   *slog.Logger
}

func (l *tlsListener) Accept() (net.Conn, error) {
	conn, err := l.inner.Accept()
	if err != nil {
		return nil, err
	}
	gc := conn.(*guardedConn)
	gc.plain = true // header sections are found after decryption
	c := &tlsConn{Conn: tls.Server(gc, l.conf), raw: gc, log: l.log}
	if gc.firstBy.IsZero() {
		// Trusted: the handshake alone has the first-message deadline.
		gc.firstBy = time.Now().Add(l.inner.g.firstMsg)
		c.handshakeOnly = true
	}
	return c, nil
}

func (l *tlsListener) Close() error   { return l.inner.Close() }
func (l *tlsListener) Addr() net.Addr { return l.inner.Addr() }

// tlsConn is an accepted TLS connection over a guarded TCP connection. Read is
// called only from sipgo's reader goroutine; the handshake runs in the first
// Read, under the guard's deadlines.
type tlsConn struct {
	*tls.Conn
	raw           *guardedConn
	log           *slog.Logger
	handshook     bool
	handshakeOnly bool // the first-message deadline ends with the handshake
}

func (c *tlsConn) Read(b []byte) (int, error) {
	if !c.handshook {
		if err := c.Conn.Handshake(); err != nil {
			if !c.raw.timedOut {
				c.log.Info("sip tls handshake failed", "source", c.raw.src.String(), "error", err)
			}
			// sipgo closes the connection quietly on EOF.
			return 0, io.EOF
		}
		c.handshook = true
		if c.handshakeOnly {
			c.raw.firstBy = time.Time{}
		}
	}
	n, err := c.Conn.Read(b)
	if n > 0 && !c.raw.firstBy.IsZero() && c.raw.headerEnded(b[:n]) {
		c.raw.firstBy = time.Time{}
	}
	if err != nil && c.raw.timedOut {
		return n, io.EOF
	}
	return n, err
}

// logTLSRefusal logs why a TLS peer was refused when err says so: its
// certificate did not verify (unknown CA, wrong name, expired) or the
// handshake failed.
func logTLSRefusal(log *slog.Logger, target string, err error) {
	var verr *tls.CertificateVerificationError
	var herr x509.HostnameError
	var aerr x509.UnknownAuthorityError
	var cerr x509.CertificateInvalidError
	switch {
	case errors.As(err, &herr):
		log.Warn("tls peer refused: certificate name does not match the target", "target", target, "reason", herr.Error())
	case errors.As(err, &aerr):
		log.Warn("tls peer refused: certificate from an untrusted CA", "target", target, "reason", aerr.Error())
	case errors.As(err, &cerr):
		log.Warn("tls peer refused: certificate invalid", "target", target, "reason", cerr.Error())
	case errors.As(err, &verr):
		log.Warn("tls peer refused: certificate not verified", "target", target, "reason", verr.Error())
	case strings.Contains(err.Error(), "TLS handshake error"):
		log.Warn("tls peer refused: handshake failed", "target", target, "reason", err.Error())
	}
}

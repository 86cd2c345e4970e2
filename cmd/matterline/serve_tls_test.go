package main

import (
	"context"
	"crypto/tls"
	"log/slog"
	"math/big"
	"net"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/internal/testpki"
	"github.com/matterline/matterline/sip"
)

func TestConfigCheckTLS(t *testing.T) {
	t.Setenv("MATTERLINE_HTTP_TOKEN", "")
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	certFile, keyFile := ca.Issue(t, "sip.firm.example", "sip.firm.example", "127.0.0.1").Write(t, dir, "good")
	_, otherKey := ca.Issue(t, "other").Write(t, dir, "other")
	expCert, expKey := ca.IssueValid(t, "old", time.Now().Add(-48*time.Hour), time.Now().Add(-24*time.Hour), "127.0.0.1").Write(t, dir, "expired")
	caFile := ca.WriteCA(t, dir, "ca")
	conf := func(cert, key, caf string) string {
		cfg, _ := noDBConfig(t, "http:\n  listen: 127.0.0.1:0\nsip:\n  listen: [\"tls://127.0.0.1:5061\"]\n  tls:\n    cert_file: "+cert+
			"\n    key_file: "+key+"\n    ca_file: \""+caf+"\"\n")
		return cfg
	}
	good := conf(certFile, keyFile, caFile)
	if out, errs, code := cliRun(t, nil, "", "config", "check", "-config", good); code != 0 || !strings.Contains(out, "config OK") ||
		!strings.Contains(out, "sip.tls: certificate "+certFile+" (CN=sip.firm.example, names sip.firm.example,127.0.0.1") {
		t.Errorf("good: %d %q %q", code, out, errs)
	}
	if _, errs, code := cliRun(t, nil, "", "config", "check", "-config", conf(certFile, otherKey, "")); code != 1 ||
		!strings.Contains(errs, "private key does not match") {
		t.Errorf("mismatched key: %d %q", code, errs)
	}
	if out, errs, code := cliRun(t, nil, "", "config", "check", "-config", conf(expCert, expKey, "")); code != 0 ||
		!strings.Contains(out, "config OK") || !strings.Contains(errs, "has expired") {
		t.Errorf("expired: %d %q %q", code, out, errs)
	}
	if _, errs, code := cliRun(t, nil, "", "config", "check", "-config", conf(certFile, keyFile, certFile+".nope")); code != 1 ||
		!strings.Contains(errs, "sip.tls.ca_file") {
		t.Errorf("missing ca_file: %d %q", code, errs)
	}
	noCert, _ := noDBConfig(t, "http:\n  listen: 127.0.0.1:0\nsip:\n  listen: [\"tls://127.0.0.1:5061\"]\n")
	if _, errs, code := cliRun(t, nil, "", "config", "check", "-config", noCert); code != 1 ||
		!strings.Contains(errs, "sip.tls.cert_file: required with a tls:// listener") {
		t.Errorf("no certificate: %d %q", code, errs)
	}
}

func TestSIGHUPReloadsTLSCertificate(t *testing.T) {
	dir := t.TempDir()
	ca := testpki.NewCA(t, "test CA")
	first := ca.Issue(t, "first", "127.0.0.1")
	certFile, keyFile := first.Write(t, dir, "sip")
	srv, err := sip.NewServer(sip.Config{Listen: []string{"tls://127.0.0.1:0"},
		TLS: sip.TLSFiles{CertFile: certFile, KeyFile: keyFile}})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	addr := strings.TrimPrefix(srv.Addrs()[0], "tls://")
	served := func() *big.Int {
		conn, err := tls.DialWithDialer(&net.Dialer{Timeout: 2 * time.Second}, "tcp", addr,
			&tls.Config{RootCAs: ca.Pool, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12})
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		return conn.ConnectionState().PeerCertificates[0].SerialNumber
	}
	if got := served(); got.Cmp(first.Serial) != 0 {
		t.Fatalf("served %v, want %v", got, first.Serial)
	}
	stop := reloadOnHangup(srv, config.SIPTLS{CertFile: certFile, KeyFile: keyFile}, slog.New(slog.DiscardHandler))
	defer stop()
	second := ca.Issue(t, "second", "127.0.0.1")
	second.Write(t, dir, "sip")
	if err := syscall.Kill(syscall.Getpid(), syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(3 * time.Second)
	for served().Cmp(second.Serial) != 0 {
		if time.Now().After(deadline) {
			t.Fatal("SIGHUP did not swap the served certificate")
		}
		time.Sleep(20 * time.Millisecond)
	}
}

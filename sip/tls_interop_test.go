package sip

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/internal/interop"
	"github.com/matterline/matterline/routing"
)

// Interop of SIP over TLS with independent implementations (OpenSSL under
// baresip's libre and under sipp): each places a call to matterline's tls://
// listener, which answers it; the caller hangs up.

func TestBaresipCallsOverTLS(t *testing.T) {
	t.Parallel()
	ts := newTLSSetup(t)
	// baresip's sip_certificate is one PEM file with the certificate and key.
	leaf := ts.ca.Issue(t, "baresip", "127.0.0.1")
	bundle := filepath.Join(ts.dir, "baresip.pem")
	if err := os.WriteFile(bundle, append(append([]byte(nil), leaf.CertPEM...), leaf.KeyPEM...), 0o600); err != nil {
		t.Fatal(err)
	}
	e := newEnv(t, ts.config(defaultTestConfig()))
	caller := interop.StartBaresip(t, interop.BaresipOptions{User: "caller", ToneHz: callerHz,
		Transport: interop.TransportTLS, TLSCertificate: bundle, TLSCAFile: ts.caFile})
	if err := caller.Dial("sip:" + testService + "@" + e.tlsAddr() + ";transport=tls"); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(interop.EventCallEstablished, peerTimeout); err != nil {
		t.Fatalf("baresip over tls: %v\n%s", err, caller.Output())
	}
	if tr := e.srv.reg.call(e.onlyCall().ID).transport; tr != "TLS" {
		t.Errorf("call transport = %q, want TLS", tr)
	}
	waitLoud(t, caller, "caller (greeting over a tls call)", 0, 500)
	if err := caller.Hangup(); err != nil {
		t.Fatal(err)
	}
	if _, err := caller.WaitEvent(interop.EventCallClosed, peerTimeout); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

// sippTLS returns sipp when it was built with TLS (-t l1), else skips: Debian's
// sip-tester 3.6.1 is built without it, so this skips there even when CI=true
// (a CI image that wants it needs sipp built with -DUSE_SSL=1).
func sippTLS(t *testing.T) string {
	t.Helper()
	sipp, err := exec.LookPath("sipp")
	if err != nil {
		if os.Getenv("CI") == "true" {
			t.Fatal("sipp not on PATH (required when CI=true)")
		}
		t.Skip("sipp not on PATH")
	}
	help, _ := exec.Command(sipp, "-h").CombinedOutput()
	if !strings.Contains(string(help), "l1: TLS") && !strings.Contains(string(help), "tls_cert") {
		t.Skip("sipp is built without TLS (no -t l1 in sipp -h); Debian's sip-tester is")
	}
	return sipp
}

func TestSippCallsOverTLS(t *testing.T) {
	sipp := sippTLS(t)
	ts := newTLSSetup(t)
	r := newFakeRouter(routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule})
	e := newEnv(t, ts.config(defaultTestConfig()), WithRouter(r))
	dir := t.TempDir()
	cert, key := ts.ca.Issue(t, "sipp", "127.0.0.1").Write(t, dir, "sipp")
	ctx, cancel := context.WithTimeout(context.Background(), 40*time.Second)
	defer cancel()
	// The built-in uac scenario: INVITE, 200, ACK, BYE.
	cmd := exec.CommandContext(ctx, sipp,
		"-sn", "uac",
		"-t", "l1",
		"-tls_cert", cert, "-tls_key", key,
		"-s", testService,
		"-m", "1",
		"-d", "1000",
		"-i", "127.0.0.1",
		"-p", strconv.Itoa(freeUDPPort(t)),
		"-timeout", "30s", "-timeout_error",
		"-nostdin",
		"-trace_err", "-error_file", filepath.Join(dir, "errors.log"),
		e.tlsAddr(),
	)
	cmd.Dir = dir
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if err != nil {
		errLog, _ := os.ReadFile(filepath.Join(dir, "errors.log"))
		t.Fatalf("sipp over tls: %v\n%s\nerrors.log:\n%s", err, tail(out, 3000), errLog)
	}
	if st := e.srv.TCPStats(); st.Accepted == 0 {
		t.Errorf("no tls connection accepted: %+v", st)
	}
	e.waitIdle()
}

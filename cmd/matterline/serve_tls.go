package main

// SIP over TLS in serve: the start-up check of sip.tls (shared with config
// check) and the certificate reload on SIGHUP.

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"time"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/sip"
)

// checkTLS loads sip.tls as serve will: the certificate and its key (which
// must match), and the CA file. An expired certificate is a warning, as serve
// starts with it (the peers decide).
func checkTLS(cfg *config.Config, log *slog.Logger) []error {
	var errs []error
	t := cfg.SIP.TLS
	tlsListener := false
	for _, l := range cfg.SIP.Listen {
		tlsListener = tlsListener || strings.HasPrefix(l, "tls://")
	}
	if tlsListener || t.CertFile != "" || t.KeyFile != "" {
		_, info, err := sip.LoadTLSCertificate(t.CertFile, t.KeyFile)
		switch {
		case err != nil:
			errs = append(errs, fmt.Errorf("sip.tls: %w", err))
		case info.Expired(time.Now()):
			log.Warn("sip.tls.cert_file has expired: TLS peers will refuse it", "file", t.CertFile,
				"subject", info.Subject, "not_after", info.NotAfter.UTC().Format(time.RFC3339))
		default:
			log.Info("sip.tls certificate", "file", t.CertFile, "subject", info.Subject,
				"names", strings.Join(info.Names, ","), "not_after", info.NotAfter.UTC().Format(time.RFC3339))
		}
	}
	if _, err := sip.LoadTLSRoots(t.CAFile); err != nil {
		errs = append(errs, fmt.Errorf("sip.tls.ca_file: %w", err))
	}
	return errs
}

// reloadOnHangup re-reads the SIP TLS certificate and key on each SIGHUP
// (systemctl reload) until stop is called; a file that does not load keeps
// the old certificate (the server logs why). Without sip.tls.cert_file there
// is nothing to reload and SIGHUP is ignored (no signal goroutine is started).
func reloadOnHangup(srv *sip.Server, tlsFiles config.SIPTLS, log *slog.Logger) (stop func()) {
	if tlsFiles.CertFile == "" {
		signal.Ignore(syscall.SIGHUP)
		return func() {}
	}
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-hup:
				log.Info("SIGHUP: reloading the SIP TLS certificate")
				_ = srv.ReloadTLS()
			case <-ctx.Done():
				return
			}
		}
	}()
	return func() {
		signal.Stop(hup)
		cancel()
		<-done
	}
}

// describeTLS is config check's line about sip.tls: the certificate served on
// tls:// listeners and the peers' CAs; "" when TLS is not configured or the
// certificate does not load (checkServe reported that).
func describeTLS(cfg *config.Config) string {
	t := cfg.SIP.TLS
	if t.CertFile == "" {
		return ""
	}
	_, info, err := sip.LoadTLSCertificate(t.CertFile, t.KeyFile)
	if err != nil {
		return ""
	}
	ca := "system pool"
	if t.CAFile != "" {
		ca = "system pool + " + t.CAFile
	}
	return fmt.Sprintf("sip.tls: certificate %s (%s, names %s, expires %s), key %s, peers verified against %s",
		t.CertFile, info.Subject, strings.Join(info.Names, ","), info.NotAfter.UTC().Format(time.DateOnly), t.KeyFile, ca)
}

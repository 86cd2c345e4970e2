package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"time"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/phone"
)

// demoStage is what a scripted demo call (demo --call, --agent, --agent-sip)
// stands on: the server's log file, the attorney's phone at the outbound proxy,
// the sandbox Clio with the sample rules, the caller's phone and the server.
type demoStage struct {
	logPath  string
	logFile  *os.File
	log      *slog.Logger
	attorney *phone.Callee
	caller   *phone.Caller
	a        *app
	served   chan error
	stopSrv  context.CancelFunc
	cleanup  []func()
}

// openDemoStage opens the server's log in dir: the steps stay readable, and its
// tail is shown when the call fails. close releases what the stage holds.
func openDemoStage(dir string, cfg *config.Config) (*demoStage, error) {
	st := &demoStage{logPath: filepath.Join(dir, "matterline.log")}
	f, err := os.OpenFile(st.logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, err
	}
	st.logFile, st.log = f, newLogger(cfg.Log, f)
	st.cleanup = append(st.cleanup, func() { f.Close() })
	return st, nil
}

// start brings up the phones, the sandbox Clio and the server with cfg (which
// gets the attorney's phone as its outbound proxy); it returns once the server
// listens.
func (st *demoStage) start(ctx context.Context, cfg *config.Config, p *stepPrinter) error {
	// The attorney's phone listens where the demo sends transfer destinations:
	// a free loopback port, set as the outbound proxy before the server starts.
	attorney, err := phone.NewCallee(phone.CalleeConfig{Name: "attorney", Listen: "127.0.0.1:0",
		Number: demoAttorney, RingDelay: demoRingDelay, OnEvent: p.phoneEvent,
		Logger: st.log.With("component", "attorney-phone")})
	if err != nil {
		return fmt.Errorf("attorney's phone: %w", err)
	}
	st.attorney = attorney
	st.cleanup = append(st.cleanup, func() { attorney.Close() })
	cfg.SIP.OutboundProxy = "sip:" + attorney.Addr().String()
	if err := cfg.Validate(); err != nil {
		return err
	}
	stopClio, err := startDemoClio(cfg, st.log)
	if err != nil {
		return err
	}
	st.cleanup = append(st.cleanup, stopClio)
	if err := importDemoRules(ctx, cfg); err != nil {
		return err
	}
	caller, err := phone.NewCaller(phone.CallerConfig{Name: "caller", Listen: "127.0.0.1:0",
		From: demoCaller, DisplayName: demoCallerName, OnEvent: p.phoneEvent,
		Logger: st.log.With("component", "caller-phone")})
	if err != nil {
		return fmt.Errorf("caller's phone: %w", err)
	}
	st.caller = caller
	st.cleanup = append(st.cleanup, func() { caller.Close() })

	srvCtx, stopServer := context.WithCancel(context.WithoutCancel(ctx))
	st.stopSrv = stopServer
	st.cleanup = append(st.cleanup, stopServer)
	ready := make(chan *app, 1)
	st.served = make(chan error, 1)
	go func() {
		st.served <- serve(srvCtx, stdio{out: io.Discard, err: st.logFile}, cfg, "", func(a *app) { ready <- a })
	}()
	select {
	case st.a = <-ready:
		return nil
	case err := <-st.served:
		return fmt.Errorf("demo server: %w", err)
	case <-ctx.Done():
		stopServer()
		<-st.served
		return fmt.Errorf("demo server did not start: %w", ctx.Err())
	}
}

// finish tears the call down (the phones hang up what is left, the server
// finishes those calls, then stops) and reports: the summary line, or FAILED
// with the tail of the server's log.
func (st *demoStage) finish(s stdio, p *stepPrinter, runErr error, summary string) error {
	_ = st.caller.Close()
	_ = st.attorney.Close()
	waitIdle(st.a.sip.Registry(), 5*time.Second)
	st.stopSrv()
	select {
	case <-st.served:
	case <-time.After(10 * time.Second):
		fmt.Fprintln(s.err, "matterline demo: the server did not stop within 10s")
	}
	if runErr != nil {
		p.step("FAILED", "%v", runErr)
		showLogTail(s.err, st.logPath, 25)
		return runErr
	}
	p.step("summary", "%s", summary)
	return nil
}

// close releases what the stage holds, in reverse order.
func (st *demoStage) close() {
	for i := len(st.cleanup) - 1; i >= 0; i-- {
		st.cleanup[i]()
	}
}

package interop

import (
	"errors"
	"fmt"
	"runtime"
	"strings"
	"testing"
	"time"
)

// stopTB records how a helper ended the test instead of ending it.
type stopTB struct {
	testing.TB
	skipped, failed string
}

func (s *stopTB) Helper()           {}
func (s *stopTB) Skip(args ...any)  { s.skipped = fmt.Sprint(args...); runtime.Goexit() }
func (s *stopTB) Fatal(args ...any) { s.failed = fmt.Sprint(args...); runtime.Goexit() }

func runHelper(tb *stopTB, f func(testing.TB)) {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f(tb)
	}()
	<-done
}

func TestMissingBinary(t *testing.T) {
	find := func(tb testing.TB) { findBinary(tb, "interop-no-such-program", "/nonexistent/x", "some-package") }

	t.Setenv("CI", "")
	tb := &stopTB{TB: t}
	runHelper(tb, find)
	if tb.failed != "" || !strings.Contains(tb.skipped, "some-package") {
		t.Errorf("without CI: skipped %q, failed %q; want a skip naming the package", tb.skipped, tb.failed)
	}

	t.Setenv("CI", "true")
	tb = &stopTB{TB: t}
	runHelper(tb, find)
	if tb.skipped != "" || !strings.Contains(tb.failed, "CI=true") {
		t.Errorf("with CI=true: skipped %q, failed %q; want a failure", tb.skipped, tb.failed)
	}
}

// A process that does not come up fails the test with its output.
func TestStartFailureShowsOutput(t *testing.T) {
	t.Parallel()
	tb := &stopTB{TB: t}
	runHelper(tb, func(tb testing.TB) {
		StartKamailio(tb, KamailioOptions{StartTimeout: time.Nanosecond})
	})
	if tb.skipped != "" {
		// No kamailio on this machine (StartKamailio fails instead under CI=true).
		t.Skip(tb.skipped)
	}
	if !strings.Contains(tb.failed, "no answer to OPTIONS") || !strings.Contains(tb.failed, "--- kamailio output ---") {
		t.Errorf("failure = %q, want the reason and kamailio's output", tb.failed)
	}
}

func TestKamailioRejectsBadForward(t *testing.T) {
	for _, fwd := range []string{"127.0.0.1", `127.0.0.1:5060"`, "a;b:5060", "h:99999", ":5060"} {
		if err := (KamailioOptions{Forward: fwd}).check(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("Forward %q: err = %v, want ErrBadOptions", fwd, err)
		}
	}
	if err := (KamailioOptions{Forward: "127.0.0.1:5060"}).check(); err != nil {
		t.Errorf("good Forward rejected: %v", err)
	}
}

func TestBaresipRejectsBadOptions(t *testing.T) {
	for _, o := range []BaresipOptions{
		{User: "a;b"}, {User: "a\nmodule x"}, {AuthPassword: "p>q"}, {OutboundProxy: `sip:x"`},
	} {
		if err := o.withDefaults().check(); !errors.Is(err, ErrBadOptions) {
			t.Errorf("%+v: err = %v, want ErrBadOptions", o, err)
		}
	}
	if err := (BaresipOptions{User: "alice", AuthPassword: "s3cret", OutboundProxy: "sip:127.0.0.1:5060;lr"}).withDefaults().check(); err != nil {
		t.Errorf("good options rejected: %v", err)
	}
}

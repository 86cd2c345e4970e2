package sip

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
)

// oneCall places a call, lets it reach the menu and hangs up.
func oneCall(ctx context.Context, e *testEnv, p *phone.UA) error {
	c, err := p.Invite(ctx, phone.InviteOptions{Target: e.target("udp")})
	if err != nil {
		return err
	}
	defer c.Close()
	res, err := c.WaitFinal(ctx)
	if err != nil {
		return err
	}
	if res.StatusCode != 200 {
		return &statusError{res.StatusCode}
	}
	if !c.RTP.WaitPackets(1, 5*time.Second) {
		return &statusError{0}
	}
	r, err := c.Bye(ctx)
	if err != nil {
		return err
	}
	if r.StatusCode != 200 {
		return &statusError{r.StatusCode}
	}
	return nil
}

type statusError struct{ code int }

func (e *statusError) Error() string { return "unexpected status " + strconv.Itoa(e.code) }

func TestNoLeaksAfterSequentialCalls(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	// Warm up sipgo's connection state, then take the baseline.
	if err := oneCall(ctxT(t, 10*time.Second), e, e.phone); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()
	for i := 0; i < 100; i++ {
		if err := oneCall(ctxT(t, 10*time.Second), e, e.phone); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
	}
	e.waitIdle()
	waitGoroutines(t, baseline, 2)
}

func TestNoLeaksAfterConcurrentCalls(t *testing.T) {
	e := newEnv(t, defaultTestConfig())
	if err := oneCall(ctxT(t, 10*time.Second), e, e.phone); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()
	var wg sync.WaitGroup
	errs := make(chan error, 20)
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			errs <- oneCall(ctx, e, e.phone)
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Error(err)
		}
	}
	e.waitIdle()
	waitGoroutines(t, baseline, 2)
}

// oneWarmCall transfers a call to the callee (accepted on answer), checks the
// bridge is up, and hangs up from the side given.
func oneWarmCall(t *testing.T, e *testEnv, callee *phone.UA, calleeHangsUp bool) {
	t.Helper()
	ctx := ctxT(t, 15*time.Second)
	c := e.dialTransfer(e.phone, phone.InviteOptions{})
	defer c.Close()
	in, err := callee.Next(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer in.RTP.Close()
	e.waitState(c.CallID, StateBridged)
	if calleeHangsUp {
		if _, err := in.HangUp(ctx); err != nil {
			t.Fatal(err)
		}
		if err := c.WaitBye(ctx); err != nil {
			t.Fatal(err)
		}
	} else {
		if _, err := c.Bye(ctx); err != nil {
			t.Fatal(err)
		}
		select {
		case <-in.Bye:
		case <-ctx.Done():
			t.Fatal("callee got no bye")
		}
	}
	e.waitIdle()
}

func TestNoLeaksAfterTransfers(t *testing.T) {
	callee := newCallee(t, phone.AnswerOptions{})
	rule := warmRule("felix", calleeURI(callee, "101"), "")
	e := newEnv(t, transferConfig(), WithRouter(newFakeRouter(transferDecision(rule))))
	oneWarmCall(t, e, callee, false)
	time.Sleep(100 * time.Millisecond)
	baseline := runtime.NumGoroutine()
	for i := 0; i < 6; i++ {
		oneWarmCall(t, e, callee, i%2 == 0)
	}
	e.waitIdle()
	if n := e.srv.legs.count(); n != 0 {
		t.Errorf("%d outbound legs left", n)
	}
	waitGoroutines(t, baseline, 2)
}

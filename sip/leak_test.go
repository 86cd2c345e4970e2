package sip

import (
	"context"
	"runtime"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/sip/internal/testphone"
)

// oneCall places a call, lets it reach the menu and hangs up.
func oneCall(ctx context.Context, e *testEnv, p *testphone.Phone) error {
	c, err := p.Invite(ctx, testphone.InviteOptions{Target: e.target("udp")})
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

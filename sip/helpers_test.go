package sip

import (
	"context"
	"encoding/binary"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/routing"
)

// Test prompts are constant-level tones so the RTP payload byte tells which prompt
// is playing (a constant sample encodes to one constant G.711 byte).
var promptLevels = map[string]int16{
	media.PromptGreeting:     1000,
	media.PromptInvalid:      3000,
	media.PromptGoodbye:      6000,
	media.PromptNobody:       9000,
	media.PromptOutsideHours: 12000,
	media.PromptTransferring: 15000,
	media.PromptPleaseHold:   18000,
	media.PromptLeaveMessage: 21000,
	media.PromptThankYou:     24000,
}

var promptLengths = map[string]time.Duration{
	media.PromptGreeting: 1500 * time.Millisecond,
}

// promptOf names the prompt a PCMU payload belongs to ("" when unknown).
func promptOf(payload []byte) string {
	if len(payload) == 0 {
		return ""
	}
	for name, lvl := range promptLevels {
		if payload[0] == media.EncodeUlaw(lvl) && payload[len(payload)-1] == media.EncodeUlaw(lvl) {
			return name
		}
	}
	return ""
}

// promptSequence collapses the received packets into the sequence of prompts heard.
func promptSequence(pkts []phone.RTPPacket) []string {
	var out []string
	for _, p := range pkts {
		n := promptOf(p.Payload)
		if n == "" {
			continue
		}
		if len(out) == 0 || out[len(out)-1] != n {
			out = append(out, n)
		}
	}
	return out
}

func writeWAV(t testing.TB, path string, level int16, d time.Duration) {
	t.Helper()
	n := int(d.Milliseconds() * 8)
	data := make([]byte, 44+2*n)
	copy(data[0:], "RIFF")
	binary.LittleEndian.PutUint32(data[4:], uint32(36+2*n))
	copy(data[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(data[16:], 16)
	binary.LittleEndian.PutUint16(data[20:], 1)
	binary.LittleEndian.PutUint16(data[22:], 1)
	binary.LittleEndian.PutUint32(data[24:], 8000)
	binary.LittleEndian.PutUint32(data[28:], 16000)
	binary.LittleEndian.PutUint16(data[32:], 2)
	binary.LittleEndian.PutUint16(data[34:], 16)
	copy(data[36:], "data")
	binary.LittleEndian.PutUint32(data[40:], uint32(2*n))
	for i := 0; i < n; i++ {
		binary.LittleEndian.PutUint16(data[44+2*i:], uint16(level))
	}
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

var (
	testPromptsOnce sync.Once
	testPromptsVal  *media.Prompts
	testPromptsErr  error
)

func testPrompts(t testing.TB) *media.Prompts {
	t.Helper()
	testPromptsOnce.Do(func() {
		dir, err := os.MkdirTemp("", "sip-prompts-")
		if err != nil {
			testPromptsErr = err
			return
		}
		for name, lvl := range promptLevels {
			d := 300 * time.Millisecond
			if l, ok := promptLengths[name]; ok {
				d = l
			}
			writeWAV(t, filepath.Join(dir, name+".wav"), lvl, d)
		}
		testPromptsVal, testPromptsErr = media.LoadPrompts(dir)
		_ = os.RemoveAll(dir)
	})
	if testPromptsErr != nil {
		t.Fatal(testPromptsErr)
	}
	return testPromptsVal
}

// testLogger logs to t.Log until the test ends (then drops lines), at Warn unless
// SIPTEST_LOG=debug|info.
func testLogger(t testing.TB) *slog.Logger {
	lvl := slog.LevelWarn
	switch os.Getenv("SIPTEST_LOG") {
	case "debug":
		lvl = slog.LevelDebug
	case "info":
		lvl = slog.LevelInfo
	}
	w := &tWriter{t: t}
	t.Cleanup(func() { w.done.Store(true) })
	return slog.New(slog.NewTextHandler(w, &slog.HandlerOptions{Level: lvl}))
}

type tWriter struct {
	t    testing.TB
	mu   sync.Mutex
	done atomic.Bool
}

func (w *tWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.done.Load() {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

var _ io.Writer = (*tWriter)(nil)

// fakeRouter records intents and returns a fixed decision.
type fakeRouter struct {
	mu        sync.Mutex
	decision  routing.Decision
	fallbacks map[string]routing.Decision // by rule name
	calls     []CallInfo
	intents   []routing.Intent
	got       chan routing.Intent
}

func newFakeRouter(d routing.Decision) *fakeRouter {
	return &fakeRouter{decision: d, got: make(chan routing.Intent, 16)}
}

func (r *fakeRouter) Decide(ctx context.Context, call CallInfo, intent routing.Intent) routing.Decision {
	r.mu.Lock()
	r.calls = append(r.calls, call)
	r.intents = append(r.intents, intent)
	d := r.decision
	r.mu.Unlock()
	select {
	case r.got <- intent:
	default:
	}
	return d
}

func (r *fakeRouter) Fallback(ctx context.Context, call CallInfo, rule string) routing.Decision {
	r.mu.Lock()
	defer r.mu.Unlock()
	if d, ok := r.fallbacks[rule]; ok {
		return d
	}
	return routing.Decision{Action: routing.ActionNone, Reason: routing.ReasonNoRule}
}

func (r *fakeRouter) wait(t testing.TB, timeout time.Duration) (routing.Intent, CallInfo) {
	t.Helper()
	select {
	case in := <-r.got:
		r.mu.Lock()
		defer r.mu.Unlock()
		return in, r.calls[len(r.calls)-1]
	case <-time.After(timeout):
		t.Fatal("router got no intent")
	}
	return routing.Intent{}, CallInfo{}
}

// fakeLookup answers after delay (honouring ctx).
type fakeLookup struct {
	delay  time.Duration
	result lookup.Result
	mu     sync.Mutex
	asked  []string
}

func (l *fakeLookup) Lookup(ctx context.Context, callerID string) lookup.Result {
	l.mu.Lock()
	l.asked = append(l.asked, callerID)
	l.mu.Unlock()
	t := time.NewTimer(l.delay)
	defer t.Stop()
	select {
	case <-t.C:
		return l.result
	case <-ctx.Done():
		return lookup.Result{Status: lookup.StatusError, Reason: "cancelled"}
	}
}

var portBase atomic.Int32

// testEnv is a running server with its port allocator and a phone.
type testEnv struct {
	t     testing.TB
	srv   *Server
	ports *media.PortAllocator
	phone *phone.UA
	udp   string // "127.0.0.1:port"
	tcp   string
	check func() // a benchmark attack's own assertion, run before the hang-up
}

func defaultTestConfig() Config {
	return Config{
		Listen:      []string{"udp://127.0.0.1:0", "tcp://127.0.0.1:0"},
		MenuTimeout: 5 * time.Second,
		AnswerWait:  200 * time.Millisecond,
		// Tests place calls back to back from one address; the per-source call
		// rate has tests of its own.
		InviteRate:  1000,
		InviteBurst: 1000,
	}
}

func newEnv(t testing.TB, cfg Config, opts ...Option) *testEnv {
	t.Helper()
	// Each env gets its own slice of RTP ports so quarantined ports of one test
	// never starve the next.
	base := 30000 + int(portBase.Add(1)%40)*500
	ports, err := media.NewPortAllocator(base, base+499, 200*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	all := append([]Option{WithLogger(testLogger(t)), WithPorts(ports), WithPrompts(testPrompts(t))}, opts...)
	srv, err := NewServer(cfg, all...)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Start(ctx); err != nil {
		t.Fatal(err)
	}
	e := &testEnv{t: t, srv: srv, ports: ports}
	for _, a := range srv.Addrs() {
		if strings.HasPrefix(a, "udp://") {
			e.udp = strings.TrimPrefix(a, "udp://")
		}
		if strings.HasPrefix(a, "tcp://") {
			e.tcp = strings.TrimPrefix(a, "tcp://")
		}
	}
	e.phone = e.newPhone("udp")
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Errorf("server close: %v", err)
		}
	})
	return e
}

func (e *testEnv) newPhone(transport string) *phone.UA {
	e.t.Helper()
	p, err := phone.NewUA(phone.UAConfig{Transport: transport, Logger: testLogger(e.t)})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { _ = p.Close() })
	return p
}

func (e *testEnv) target(transport string) string {
	if transport == "tcp" {
		return fmt.Sprintf("sip:100@%s;transport=tcp", e.tcp)
	}
	return fmt.Sprintf("sip:100@%s", e.udp)
}

// call places a call from p and waits for the final response.
func (e *testEnv) call(p *phone.UA, o phone.InviteOptions) (*phone.Outgoing, *gosip.Response) {
	e.t.Helper()
	if o.Target == "" {
		o.Target = e.target("udp")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := p.Invite(ctx, o)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(c.Close)
	res, err := c.WaitFinal(ctx)
	if err != nil {
		e.t.Fatal(err)
	}
	return c, res
}

// answered places a call that must be answered 200.
func (e *testEnv) answered(o phone.InviteOptions) *phone.Outgoing {
	e.t.Helper()
	c, res := e.call(e.phone, o)
	if res.StatusCode != 200 {
		e.t.Fatalf("invite: got %d %s, want 200", res.StatusCode, res.Reason)
	}
	if !o.NoAutoAck {
		// Wait until the ACK is processed (the call is in the menu).
		eventually(e.t, 5*time.Second, "call confirmed", func() bool {
			for _, s := range e.srv.Registry().List() {
				if s.SIPCallID == c.CallID {
					return s.State != StateAnswered && s.State != StateRinging
				}
			}
			return false
		})
	}
	return c
}

// onlyCall returns the single live call's snapshot.
func (e *testEnv) onlyCall() CallSnapshot {
	e.t.Helper()
	list := e.srv.Registry().List()
	if len(list) != 1 {
		e.t.Fatalf("registry has %d calls, want 1", len(list))
	}
	return list[0]
}

// eventually retries cond every 20ms until timeout.
func eventually(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", timeout, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitIdle waits until no call or outbound leg is live, no port is allocated
// and every goroutine the calls started has ended (a leak check per scenario that
// holds while other tests run in parallel).
func (e *testEnv) waitIdle() {
	e.t.Helper()
	eventually(e.t, 10*time.Second, "no calls, legs, ports or call goroutines", func() bool {
		return e.srv.Registry().Count() == 0 && e.ports.InUse() == 0 && e.srv.legs.count() == 0 &&
			e.srv.background.Load() == 0
	})
}

func waitGoroutines(t testing.TB, baseline int, slack int) {
	t.Helper()
	deadline := time.Now().Add(8 * time.Second)
	n := runtime.NumGoroutine()
	for n > baseline+slack {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			buf = buf[:runtime.Stack(buf, true)]
			t.Fatalf("goroutines: %d, baseline %d (+%d)\n%s", n, baseline, slack, buf)
		}
		time.Sleep(50 * time.Millisecond)
		n = runtime.NumGoroutine()
	}
}

func ctxT(t testing.TB, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

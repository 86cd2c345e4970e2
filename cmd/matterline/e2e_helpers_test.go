package main

// Helpers of the end-to-end tests (e2e_test.go): each test starts the whole
// server in-process with serve, on loopback with ephemeral SIP and HTTP ports,
// a temporary database, the sandbox Clio and its own RTP port range, and drives
// it with the scripted phones of package phone and the HTTP API.

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/events"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
)

// The sandbox Clio's caller (configs/demo/clio.json) and the number of Felix
// Dubinsky's rule in these tests.
const (
	e2eCaller     = "+12175552171"
	e2eCallerName = "Ada Quist"
	e2eFelix      = "+12175550101"
	// e2eWait bounds every wait of a step; e2eServeLimit a whole server's life.
	e2eWait       = 15 * time.Second
	e2eServeLimit = 80 * time.Second
)

// e2eRTPBase hands each server of this test binary its own RTP range (30000 up,
// away from the defaults 10000-20000 that the demo tests use); the allocator
// also skips ports another process holds.
var e2eRTPBase atomic.Int32

func e2eRTPPorts() string {
	lo := 30000 + int(e2eRTPBase.Add(1)%150)*200
	return fmt.Sprintf("%d-%d", lo, lo+198)
}

// e2eOptions shape one test server; zero values mean defaults.
type e2eOptions struct {
	token         string // http.token; default e2eToken
	outboundProxy string // sip.outbound_proxy; default an unused loopback port
	hepAddress    string
	hepAgentID    uint32
	drainTimeout  time.Duration
	// shortPrompts replaces every prompt but the greeting with a 400 ms tone, so
	// transfers and messages do not wait for seconds of speech.
	shortPrompts bool
	// configure changes the configuration last (before validation).
	configure func(*config.Config)
}

// e2eServer is a running server of one test.
type e2eServer struct {
	t      *testing.T
	a      *app
	cfg    *config.Config
	logs   *lockedBuffer // the server's log (stdio err)
	cancel context.CancelCauseFunc
	served chan error // serve's result, once
	target string     // sip:demo@127.0.0.1:PORT (UDP)
	sipUDP string     // 127.0.0.1:PORT
	base   string     // http://127.0.0.1:PORT
	token  string
	clio   *cliotest.Server // the sandbox Clio
}

// startE2E starts a server and stops it (hang up now) at the end of the test.
func startE2E(t *testing.T, o e2eOptions) *e2eServer {
	t.Helper()
	dir := t.TempDir()
	def := config.Default()
	cfg := &def
	cfg.SIP.Listen = []string{"udp://127.0.0.1:0"}
	cfg.SIP.TrustedSources = []string{"127.0.0.0/8"}
	cfg.SIP.OutboundProxy = o.outboundProxy
	if cfg.SIP.OutboundProxy == "" {
		cfg.SIP.OutboundProxy = "sip:127.0.0.1:9"
	}
	cfg.SIP.ServiceNumber = "+12175550100"
	cfg.Media.RTPPorts = e2eRTPPorts()
	cfg.HTTP.Listen = "127.0.0.1:0"
	if o.token == "" {
		// State-changing routes never open without a token: every test
		// server has one.
		o.token = e2eToken
	}
	cfg.HTTP.Token = o.token
	cfg.Store.Path = filepath.Join(dir, "matterline.db")
	cfg.Transfer.MessagesDir = filepath.Join(dir, "messages")
	cfg.Firm.TimeZone = "UTC"
	cfg.HEP.Address = o.hepAddress
	if o.hepAgentID != 0 {
		cfg.HEP.AgentID = o.hepAgentID
	}
	cfg.DrainTimeout = config.Duration(10 * time.Second)
	if o.drainTimeout > 0 {
		cfg.DrainTimeout = config.Duration(o.drainTimeout)
	}
	if o.shortPrompts {
		cfg.Media.PromptsDir = shortPrompts(t, filepath.Join(dir, "prompts"))
	}
	logs := &lockedBuffer{}
	log := newLogger(cfg.Log, logs)
	clioSrv, err := startDemoClioServer(cfg, log)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(clioSrv.Close)
	if o.configure != nil {
		o.configure(cfg)
	}
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancelCause(context.Background())
	ctx, cancelLimit := context.WithTimeout(ctx, e2eServeLimit)
	s := &e2eServer{t: t, cfg: cfg, logs: logs, cancel: cancel, served: make(chan error, 1), token: o.token, clio: clioSrv}
	ready := make(chan *app, 1)
	go func() {
		s.served <- serve(ctx, stdio{out: io.Discard, err: logs}, cfg, "", func(a *app) { ready <- a })
	}()
	select {
	case s.a = <-ready:
	case err := <-s.served:
		cancelLimit()
		t.Fatalf("serve returned before it was ready: %v\nlog:\n%s", err, logs.String())
	case <-time.After(e2eWait):
		cancelLimit()
		t.Fatalf("server not ready within %s\nlog:\n%s", e2eWait, logs.String())
	}
	t.Cleanup(func() {
		cancel(errors.New("test over"))
		select {
		case <-s.served:
		case <-time.After(20 * time.Second):
			t.Errorf("serve did not return within 20s after the test")
		}
		cancelLimit()
		if t.Failed() {
			t.Logf("server log:\n%s", logs.String())
		}
	})
	for _, addr := range s.a.sip.Addrs() {
		if hp, ok := strings.CutPrefix(addr, "udp://"); ok {
			s.sipUDP = hp
			s.target = "sip:demo@" + hp
		}
	}
	if s.target == "" {
		t.Fatalf("no UDP listener in %v", s.a.sip.Addrs())
	}
	s.base = "http://" + s.a.HTTPAddr()
	return s
}

// shortPrompts writes a prompts directory in which every prompt but the greeting
// is a 400 ms 700 Hz tone, and returns it.
func shortPrompts(t *testing.T, dir string) string {
	t.Helper()
	if err := os.Mkdir(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	samples := make([]int16, 3200) // 400 ms at 8 kHz
	for i := range samples {
		samples[i] = int16(8000 * math.Sin(2*math.Pi*700*float64(i)/8000))
	}
	wav := media.EncodeWAV(samples)
	for _, name := range media.BuiltinPrompts() {
		if name == media.PromptGreeting {
			continue
		}
		if err := os.WriteFile(filepath.Join(dir, name+".wav"), wav, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// do sends an API request (with the token when the server has one and auth is
// true) and returns the status and body.
func (s *e2eServer) do(method, path string, body any, auth bool) (int, []byte) {
	s.t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			s.t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, s.base+path, rd)
	if err != nil {
		s.t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if auth && s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		s.t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		s.t.Fatalf("%s %s: reading the body: %v", method, path, err)
	}
	return res.StatusCode, b
}

// api is do with the token, failing the test unless the status is want.
func (s *e2eServer) api(method, path string, body any, want int, out any) {
	s.t.Helper()
	code, b := s.do(method, path, body, true)
	if code != want {
		s.t.Fatalf("%s %s: status %d, want %d; body %s", method, path, code, want, b)
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			s.t.Fatalf("%s %s: %v in %s", method, path, err, b)
		}
	}
}

// addRule creates a rule through POST /v1/rules.
func (s *e2eServer) addRule(rule map[string]any) {
	s.t.Helper()
	s.api("POST", "/v1/rules", rule, http.StatusCreated, nil)
}

// apiCall is GET /v1/calls/{id} as a voice agent reads it.
type apiCallJSON struct {
	ID     string `json:"id"`
	Caller string `json:"caller"`
	State  string `json:"state"`
	Lookup struct {
		Status  string `json:"status"`
		Contact *struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"contact"`
		Matter *struct {
			ID            int64  `json:"id"`
			DisplayNumber string `json:"display_number"`
		} `json:"matter"`
		Staff *struct {
			ID   int64  `json:"id"`
			Name string `json:"name"`
		} `json:"responsible_staff"`
	} `json:"lookup"`
}

// waitCall polls GET /v1/calls until the single call of this server is in the
// menu with its lookup done, and returns it.
func (s *e2eServer) waitCall() apiCallJSON {
	s.t.Helper()
	var last []apiCallJSON
	deadline := time.Now().Add(e2eWait)
	for time.Now().Before(deadline) {
		var list struct {
			Calls []apiCallJSON `json:"calls"`
		}
		s.api("GET", "/v1/calls", nil, http.StatusOK, &list)
		last = list.Calls
		if len(list.Calls) == 1 && list.Calls[0].State == "in_menu" && list.Calls[0].Lookup.Status != "pending" {
			return list.Calls[0]
		}
		time.Sleep(20 * time.Millisecond)
	}
	s.t.Fatalf("no call in the menu with its lookup done within %s; last list %+v", e2eWait, last)
	return apiCallJSON{}
}

// waitIdle waits until the server has no call left.
func (s *e2eServer) waitIdle() {
	s.t.Helper()
	waitFor(s.t, "no call left", func() bool { return s.a.sip.Registry().Count() == 0 })
}

// record waits for the call record of the SIP Call-ID.
func (s *e2eServer) record(sipCallID string) records.CallRecord {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	rec, err := waitRecord(ctx, s.a.calls, sipCallID)
	if err != nil {
		s.t.Fatal(err)
	}
	return rec
}

// waitServed waits at most d for serve to return and returns how long it took.
func (s *e2eServer) waitServed(d time.Duration) (time.Duration, error) {
	start := time.Now()
	select {
	case err := <-s.served:
		s.served <- err // for the cleanup
		return time.Since(start), err
	case <-time.After(d):
		s.t.Fatalf("serve did not return within %s", d)
		return 0, nil
	}
}

// netipMust parses "ip:port".
func netipMust(t *testing.T, s string) netip.AddrPort {
	t.Helper()
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		t.Fatal(err)
	}
	return ap
}

// waitFor polls cond every 20 ms until it holds, failing the test after e2eWait.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(e2eWait)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for: %s", e2eWait, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// newE2ECaller starts a caller phone closed at the end of the test.
func newE2ECaller(t *testing.T, from, name string, acceptRefer bool, onEvent func(phone.Event)) *phone.Caller {
	t.Helper()
	c, err := phone.NewCaller(phone.CallerConfig{From: from, DisplayName: name, AcceptRefer: acceptRefer,
		OnEvent: onEvent})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// dial places a call to the server and hears the greeting start.
func (s *e2eServer) dial(c *phone.Caller) *phone.Call {
	s.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), e2eWait)
	defer cancel()
	call, err := c.Dial(ctx, s.target, phone.DialOptions{})
	if err != nil {
		s.t.Fatalf("dial %s: %v", s.target, err)
	}
	if _, err := call.Listen(ctx, phone.Sound{For: 300 * time.Millisecond}); err != nil {
		s.t.Fatalf("greeting not heard: %v", err)
	}
	return call
}

// eventLog collects phone events for assertions.
type eventLog struct {
	mu  sync.Mutex
	evs []phone.Event
}

func (l *eventLog) add(e phone.Event) {
	l.mu.Lock()
	l.evs = append(l.evs, e)
	l.mu.Unlock()
}

// find returns the first event of kind, if any.
func (l *eventLog) find(kind phone.EventKind) (phone.Event, bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for _, e := range l.evs {
		if e.Kind == kind {
			return e, true
		}
	}
	return phone.Event{}, false
}

// sseStream reads GET /v1/events.
type sseStream struct {
	cancel context.CancelFunc
	evs    chan events.Event
}

// subscribe opens the event stream and returns once the server has subscribed
// (its first comment arrived).
func (s *e2eServer) subscribe() *sseStream {
	s.t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	req, err := http.NewRequestWithContext(ctx, "GET", s.base+"/v1/events", nil)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	if s.token != "" {
		req.Header.Set("Authorization", "Bearer "+s.token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		s.t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		res.Body.Close()
		cancel()
		s.t.Fatalf("GET /v1/events: status %d", res.StatusCode)
	}
	st := &sseStream{cancel: cancel, evs: make(chan events.Event, 64)}
	started := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer res.Body.Close()
		defer close(st.evs)
		sc := bufio.NewScanner(res.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		var typ, data string
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			switch {
			case strings.HasPrefix(line, ":"):
				once.Do(func() { close(started) })
			case strings.HasPrefix(line, "event: "):
				typ = strings.TrimPrefix(line, "event: ")
			case strings.HasPrefix(line, "data: "):
				data = strings.TrimPrefix(line, "data: ")
			case line == "" && data != "":
				var e events.Event
				if err := json.Unmarshal([]byte(data), &e); err == nil && e.Type.String() == typ {
					st.evs <- e
				} else {
					st.evs <- events.Event{CallID: "bad event " + typ + " " + data}
				}
				typ, data = "", ""
			}
		}
	}()
	s.t.Cleanup(func() {
		cancel()
		<-done
	})
	select {
	case <-started:
	case <-time.After(e2eWait):
		s.t.Fatal("event stream did not start")
	}
	return st
}

// next returns the next event, failing after e2eWait.
func (st *sseStream) next(t *testing.T) events.Event {
	t.Helper()
	select {
	case e, ok := <-st.evs:
		if !ok {
			t.Fatal("event stream ended")
		}
		return e
	case <-time.After(e2eWait):
		t.Fatalf("no event within %s", e2eWait)
	}
	return events.Event{}
}

// sipOptions sends an out-of-dialog OPTIONS over UDP to addr and returns the
// response's status code.
func sipOptions(t *testing.T, addr string) int {
	t.Helper()
	conn, err := net.Dial("udp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	local := conn.LocalAddr().String()
	msg := "OPTIONS sip:" + addr + " SIP/2.0\r\n" +
		"Via: SIP/2.0/UDP " + local + ";branch=z9hG4bK" + fmt.Sprint(time.Now().UnixNano()) + ";rport\r\n" +
		"Max-Forwards: 70\r\n" +
		"From: <sip:probe@" + local + ">;tag=e2e\r\n" +
		"To: <sip:" + addr + ">\r\n" +
		"Call-ID: e2e-options-" + fmt.Sprint(time.Now().UnixNano()) + "\r\n" +
		"CSeq: 1 OPTIONS\r\n" +
		"Content-Length: 0\r\n\r\n"
	if _, err := conn.Write([]byte(msg)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4096)
	_ = conn.SetReadDeadline(time.Now().Add(5 * time.Second))
	for {
		n, err := conn.Read(buf)
		if err != nil {
			t.Fatalf("OPTIONS: no response: %v", err)
		}
		var code int
		if _, err := fmt.Sscanf(string(buf[:n]), "SIP/2.0 %d", &code); err == nil && code >= 200 {
			return code
		}
	}
}

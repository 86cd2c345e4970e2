package clio

import (
	"bytes"
	"context"
	"log/slog"
	"net/http"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/store"
)

const testToken = "demo-token"

// clock is a settable test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Now()} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// syncBuffer is a bytes.Buffer safe for a logger and a reader.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

func demoFixture(t testing.TB) *cliotest.Fixture {
	t.Helper()
	fx, err := cliotest.DemoFixture()
	if err != nil {
		t.Fatal(err)
	}
	return fx
}

// testEnv is a lookup Service wired to a fake Clio and a fresh database.
type testEnv struct {
	srv     *cliotest.Server
	storage *Storage
	client  *Client
	svc     *Service
	clock   *clock
	logs    *syncBuffer
	dbPath  string
}

type envOpts struct {
	fake    cliotest.Options
	auth    func(e *testEnv) Authorizer
	svc     func(o *ServiceOptions)
	dbPath  string
	timeout time.Duration // per request
}

func newTestEnv(t testing.TB, fx *cliotest.Fixture, eo envOpts) *testEnv {
	t.Helper()
	if fx == nil {
		fx = demoFixture(t)
	}
	e := &testEnv{clock: newClock(), logs: &syncBuffer{}}
	e.srv = cliotest.NewServer(t, fx, eo.fake)
	e.dbPath = eo.dbPath
	if e.dbPath == "" {
		e.dbPath = filepath.Join(t.TempDir(), "matterline.db")
	}
	db, err := store.Open(e.dbPath)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if e.storage, err = OpenStorage(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	var auth Authorizer = StaticToken(testToken)
	if eo.auth != nil {
		auth = eo.auth(e)
	}
	e.client, err = NewClient(ClientOptions{BaseURL: e.srv.URL, Auth: auth, HTTPClient: e.srv.Client(),
		RequestTimeout: cmpOrDur(eo.timeout, time.Second), Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	o := ServiceOptions{Client: e.client, Storage: e.storage, Now: e.clock.Now,
		Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))}
	if eo.svc != nil {
		eo.svc(&o)
	}
	e.svc = NewService(o)
	return e
}

func cmpOrDur(a, b time.Duration) time.Duration {
	if a > 0 {
		return a
	}
	return b
}

func (e *testEnv) contactsRequests() int { return e.srv.RequestsTo("/api/v4/contacts") }

var _ http.Handler = (*cliotest.Fake)(nil)

package writeback

import (
	"bytes"
	"context"
	"database/sql"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

// The sandbox Clio (configs/demo/clio.json): Ada Quist, her open matter and its
// responsible staff member.
const (
	adaID     = 1001
	matterID  = 101
	felixID   = 501
	demoToken = "demo-token"
)

type env struct {
	t      *testing.T
	fake   *cliotest.Server
	client *clio.Client
	budget *clio.Budget
	db     *sql.DB
	dbPath string
	outbox *Outbox
	logs   *syncBuffer
	hc     *http.Client
	cmu    sync.Mutex
	counts map[string]int // "kind/state" -> items
}

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

func newEnv(t *testing.T, o ...cliotest.Options) *env {
	t.Helper()
	e := &env{t: t, fake: cliotest.NewServer(t, demoFixture(t), o...), logs: &syncBuffer{}, counts: map[string]int{}}
	e.budget = clio.NewBudget(clio.BudgetOptions{})
	e.hc = &http.Client{Transport: e.budget.Transport(nil)}
	var err error
	e.client, err = clio.NewClient(clio.ClientOptions{BaseURL: e.fake.URL, Auth: clio.StaticToken(demoToken), HTTPClient: e.hc})
	if err != nil {
		t.Fatal(err)
	}
	e.dbPath = filepath.Join(t.TempDir(), "matterline.db")
	e.open()
	return e
}

func (e *env) open() {
	e.t.Helper()
	db, err := store.Open(e.dbPath)
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	e.db = db
	if e.outbox, err = Open(context.Background(), db, nil); err != nil {
		e.t.Fatal(err)
	}
}

// worker starts a worker with fast retries; it is closed at the end of the test.
func (e *env) worker(mod ...func(*Options)) *Worker {
	e.t.Helper()
	o := Options{Outbox: e.outbox, Client: e.client, Budget: e.budget,
		Logger: slog.New(slog.NewTextHandler(e.logs, nil)), BaseBackoff: 20 * time.Millisecond,
		MaxBackoff: 200 * time.Millisecond, Idle: 50 * time.Millisecond,
		Count: func(k Kind, state string) {
			e.cmu.Lock()
			e.counts[k.String()+"/"+state]++
			e.cmu.Unlock()
		}}
	for _, m := range mod {
		m(&o)
	}
	w := NewWorker(o)
	w.Start()
	e.t.Cleanup(func() { w.Close() })
	return w
}

func (e *env) count(kind Kind, state string) int {
	e.cmu.Lock()
	defer e.cmu.Unlock()
	return e.counts[kind.String()+"/"+state]
}

// settled waits until no item is pending and returns the items, oldest first.
func (e *env) settled() []Item {
	e.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		items, err := e.outbox.List(context.Background(), 0)
		if err != nil {
			e.t.Fatal(err)
		}
		pending := false
		for _, it := range items {
			pending = pending || it.State == StatePending
		}
		if !pending {
			for i, j := 0, len(items)-1; i < j; i, j = i+1, j-1 {
				items[i], items[j] = items[j], items[i]
			}
			return items
		}
		if time.Now().After(deadline) {
			e.t.Fatalf("items still pending: %+v\nlog:\n%s", items, e.logs.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
}

var allOn = Settings{Communication: true, TimeEntry: true, Task: true, Document: true, TaskPriority: "Normal", TaskDueDays: 1}

var felixRule = &routing.Rule{Name: "felix", StaffName: "Felix Dubinsky", StaffID: felixID, Mode: routing.ModeWarm}

// bridged is Ada's warm-bridged call with Felix: 3 m 12 s of talk.
func bridged(id string) Facts {
	start := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)
	return Facts{
		Record: records.CallRecord{ID: id, CallID: "sip-" + id, Start: start, Answer: start.Add(5 * time.Second),
			End: start.Add(5*time.Second + 192*time.Second), Caller: "+12175552171", Called: "100",
			ContactID: adaID, MatterID: matterID, StaffID: felixID, Rule: "felix", Mode: routing.ModeWarm,
			Outcome: records.OutcomeBridged, EndReason: records.EndCallerBye},
		ContactName: "Ada Quist", MatterNumber: "00101-Quist", StaffID: felixID, StaffName: "Felix Dubinsky",
		Rule: felixRule,
	}
}

// message is Ada's call nobody answered, with a message left; the WAV is
// written in dir.
func message(t *testing.T, id string) (Facts, []byte) {
	t.Helper()
	f := bridged(id)
	f.Record.Answer = f.Record.Start.Add(time.Second)
	f.Record.Outcome = records.OutcomeMessage
	samples := make([]int16, 8000)
	for i := range samples {
		samples[i] = int16(i * 7)
	}
	wav := media.EncodeWAV(samples)
	path := filepath.Join(t.TempDir(), id+".wav")
	if err := os.WriteFile(path, wav, 0o600); err != nil {
		t.Fatal(err)
	}
	f.Message = &records.Message{ID: 1, CallID: id, Duration: 9 * time.Second, File: filepath.Base(path)}
	f.MessagePath = path
	return f, wav
}

func (e *env) enqueue(w *Worker, f Facts, s Settings) {
	e.t.Helper()
	if err := w.Enqueue(context.Background(), Plan(f, s)); err != nil {
		e.t.Fatal(err)
	}
}

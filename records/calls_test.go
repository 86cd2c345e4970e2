package records

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

func openTestDB(t *testing.T) *sql.DB {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func newCallStore(t *testing.T) (*CallStore, *sql.DB) {
	t.Helper()
	db := openTestDB(t)
	s, err := NewCallStore(context.Background(), db)
	if err != nil {
		t.Fatal(err)
	}
	return s, db
}

var t0 = time.Date(2026, 11, 24, 16, 0, 5, 123_000_000, time.UTC)

func sampleCall() CallRecord {
	return CallRecord{
		ID:          "c-0001",
		CallID:      "a84b4c76e66710@pbx.example",
		Start:       t0,
		Answer:      t0.Add(400 * time.Millisecond),
		End:         t0.Add(95 * time.Second),
		Caller:      "+12175552171",
		Called:      "+12175550100",
		Lookup:      lookup.StatusFound,
		ContactID:   1001,
		MatterID:    2002,
		StaffID:     501,
		Intents:     []string{"responsible"},
		Rule:        "felix",
		Mode:        routing.ModeWarm,
		Destination: "+12175550199",
		Reason:      routing.ReasonMatched,
		Outcome:     OutcomeBridged,
		EndReason:   EndCallerBye,
	}
}

func TestCallRoundTrip(t *testing.T) {
	ctx := context.Background()
	s, db := newCallStore(t)
	want := sampleCall()
	if err := s.Upsert(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, want.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("round trip:\n got %+v\nwant %+v", got, want)
	}
	// By SIP Call-ID too.
	if got, err := s.Get(ctx, want.CallID); err != nil || got.ID != want.ID {
		t.Fatalf("get by call-id: %+v %v", got, err)
	}
	// Durations are computed and stored for sqlite3 users.
	var ring, talk int64
	if err := db.QueryRow(`SELECT ring_ms, talk_ms FROM call_records`).Scan(&ring, &talk); err != nil {
		t.Fatal(err)
	}
	if ring != 400 || talk != 94_600 {
		t.Fatalf("ring_ms %d talk_ms %d", ring, talk)
	}
	if _, err := s.Get(ctx, "nope"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing call: %v", err)
	}
}

func TestCallMinimalRoundTrip(t *testing.T) {
	// An unanswered call with nothing known: NULL times and ids, empty intents.
	ctx := context.Background()
	s, _ := newCallStore(t)
	want := CallRecord{ID: "c-2", CallID: "x@y", Start: t0, End: t0.Add(3 * time.Second), Outcome: OutcomeNone, EndReason: EndCallerCancel}
	if err := s.Upsert(ctx, want); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "c-2")
	if err != nil {
		t.Fatal(err)
	}
	want.Intents = []string{}
	if !reflect.DeepEqual(got, want) {
		t.Fatalf("got %+v\nwant %+v", got, want)
	}
	if got.RingDuration() != 3*time.Second || got.TalkDuration() != 0 {
		t.Fatalf("ring %v talk %v", got.RingDuration(), got.TalkDuration())
	}
}

func TestUpsertIsIdempotent(t *testing.T) {
	ctx := context.Background()
	s, db := newCallStore(t)
	rec := sampleCall()
	for range 3 {
		if err := s.Upsert(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	rec.Outcome = OutcomeReferred
	rec.Mode = routing.ModeCold
	if err := s.Upsert(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM call_records`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows %d %v", n, err)
	}
	got, err := s.Get(ctx, rec.ID)
	if err != nil || got.Outcome != OutcomeReferred || got.Mode != routing.ModeCold {
		t.Fatalf("after update: %+v %v", got, err)
	}
	// Same SIP Call-ID with another call id (a looped INVITE) is another row.
	rec.ID = "c-0002"
	if err := s.Upsert(ctx, rec); err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT COUNT(*) FROM call_records`).Scan(&n); err != nil || n != 2 {
		t.Fatalf("rows %d %v", n, err)
	}
}

func TestUpsertRefusesInvalid(t *testing.T) {
	ctx := context.Background()
	s, _ := newCallStore(t)
	for name, mut := range map[string]func(*CallRecord){
		"no id":         func(r *CallRecord) { r.ID = "" },
		"no call-id":    func(r *CallRecord) { r.CallID = "" },
		"no start":      func(r *CallRecord) { r.Start = time.Time{} },
		"bad outcome":   func(r *CallRecord) { r.Outcome = 200 },
		"bad end":       func(r *CallRecord) { r.EndReason = 200 },
		"bad mode":      func(r *CallRecord) { r.Mode = 9 },
		"negative clio": func(r *CallRecord) { r.MatterID = -1 },
	} {
		rec := sampleCall()
		mut(&rec)
		if err := s.Upsert(ctx, rec); !errors.Is(err, ErrInvalid) {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestListFilters(t *testing.T) {
	ctx := context.Background()
	s, _ := newCallStore(t)
	outcomes := []Outcome{OutcomeBridged, OutcomeMessage, OutcomeBridged, OutcomeReferred, OutcomeNone}
	for i, o := range outcomes {
		rec := sampleCall()
		rec.ID = string(rune('a' + i))
		rec.Start = t0.Add(time.Duration(i) * time.Hour)
		rec.Answer, rec.End = time.Time{}, rec.Start.Add(time.Minute)
		rec.Outcome = o
		if err := s.Upsert(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	ids := func(recs []CallRecord) string {
		var b []byte
		for _, r := range recs {
			b = append(b, r.ID...)
		}
		return string(b)
	}
	for _, tc := range []struct {
		name string
		f    Filter
		want string
	}{
		{"all newest first", Filter{}, "edcba"},
		{"limit", Filter{Limit: 2}, "ed"},
		{"since inclusive", Filter{Since: t0.Add(2 * time.Hour)}, "edc"},
		{"until exclusive", Filter{Until: t0.Add(2 * time.Hour)}, "ba"},
		{"window", Filter{Since: t0.Add(time.Hour), Until: t0.Add(3 * time.Hour)}, "cb"},
		{"outcome", Filter{Outcome: OutcomeBridged}, "ca"},
		{"outcome and limit", Filter{Outcome: OutcomeBridged, Limit: 1}, "c"},
		{"nothing", Filter{Since: t0.Add(24 * time.Hour)}, ""},
		{"since in another zone", Filter{Since: t0.Add(4 * time.Hour).In(time.FixedZone("CST", -6*3600))}, "e"},
	} {
		got, err := s.List(ctx, tc.f)
		if err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if got == nil || ids(got) != tc.want {
			t.Errorf("%s: got %q want %q", tc.name, ids(got), tc.want)
		}
	}
}

func TestCheckConstraintsRefuseHandWrittenRows(t *testing.T) {
	ctx := context.Background()
	s, db := newCallStore(t)
	if err := s.Upsert(ctx, sampleCall()); err != nil {
		t.Fatal(err)
	}
	for name, q := range map[string]string{
		"outcome":    `UPDATE call_records SET outcome = 'transferred'`,
		"end reason": `UPDATE call_records SET end_reason = 'hung_up'`,
		"lookup":     `UPDATE call_records SET lookup_status = 'maybe'`,
		"mode":       `UPDATE call_records SET mode = 'tepid'`,
		"intents":    `UPDATE call_records SET intents = 'responsible'`,
		"start":      `UPDATE call_records SET start_time = 'yesterday'`,
		"insert": `INSERT INTO call_records (id, sip_call_id, start_time, outcome)
			VALUES ('x', 'y', '2026-11-24T10:00:00.000Z', 'won')`,
		"message file": `INSERT INTO messages (recorded_at, file) VALUES ('2026-11-24T10:00:00.000Z', '../../etc/passwd')`,
	} {
		if _, err := db.ExecContext(ctx, q); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// Every enum value the Go side can write is accepted by the schema.
	for i, o := range append(Outcomes(), OutcomeUnknown) {
		rec := sampleCall()
		rec.ID = "o" + o.String()
		rec.Outcome = o
		rec.EndReason = EndReasons()[i%len(EndReasons())]
		if err := s.Upsert(ctx, rec); err != nil {
			t.Errorf("outcome %s: %v", o, err)
		}
	}
	for _, r := range append(EndReasons(), EndUnknown) {
		rec := sampleCall()
		rec.ID = "e" + r.String()
		rec.EndReason = r
		if err := s.Upsert(ctx, rec); err != nil {
			t.Errorf("end reason %s: %v", r, err)
		}
	}
	for st := lookup.StatusUnknown; st <= lookup.StatusUnconfigured; st++ {
		rec := sampleCall()
		rec.ID = "l" + st.String()
		rec.Lookup = st
		if err := s.Upsert(ctx, rec); err != nil {
			t.Errorf("lookup %s: %v", st, err)
		}
	}
}

func TestHandWrittenRowIsReadable(t *testing.T) {
	// An admin inserting with the sqlite3 shell, relying on defaults and SQLite's
	// own time layout.
	ctx := context.Background()
	s, db := newCallStore(t)
	if _, err := db.ExecContext(ctx, `INSERT INTO call_records (id, sip_call_id, start_time, outcome)
		VALUES ('h1', 'h@x', '2026-11-24 10:00:00', 'failed')`); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, "h1")
	if err != nil {
		t.Fatal(err)
	}
	if !got.Start.Equal(time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)) || got.Outcome != OutcomeFailed || got.Lookup != lookup.StatusUnknown {
		t.Fatalf("%+v", got)
	}
}

func TestCallRecordJSON(t *testing.T) {
	rec := sampleCall()
	b, err := json.Marshal(rec)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]any{
		"id": "c-0001", "sip_call_id": "a84b4c76e66710@pbx.example", "outcome": "bridged",
		"end_reason": "caller_bye", "lookup_status": "found", "mode": "warm",
		"ring_seconds": 0.4, "talk_seconds": 94.6, "contact_id": 1001.0, "decision_reason": "matched",
	} {
		if m[k] != want {
			t.Errorf("%s = %v, want %v", k, m[k], want)
		}
	}
	var back CallRecord
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(back, rec) {
		t.Fatalf("json round trip:\n got %+v\nwant %+v", back, rec)
	}
	// An empty record still has an intents array and no mode or answer.
	b, _ = json.Marshal(CallRecord{ID: "x"})
	m = nil
	_ = json.Unmarshal(b, &m)
	if _, ok := m["answer"]; ok {
		t.Errorf("zero answer marshalled: %s", b)
	}
	if _, ok := m["mode"]; ok {
		t.Errorf("unknown mode marshalled: %s", b)
	}
	if in, ok := m["intents"].([]any); !ok || len(in) != 0 {
		t.Errorf("intents: %s", b)
	}
}

func TestEnumText(t *testing.T) {
	for _, o := range Outcomes() {
		got, err := ParseOutcome(o.String())
		if err != nil || got != o {
			t.Errorf("outcome %v: %v %v", o, got, err)
		}
	}
	for _, r := range EndReasons() {
		got, err := ParseEndReason(r.String())
		if err != nil || got != r {
			t.Errorf("end reason %v: %v %v", r, got, err)
		}
	}
	if o, err := ParseOutcome(""); err != nil || o != OutcomeUnknown {
		t.Errorf("empty outcome: %v %v", o, err)
	}
	if _, err := ParseOutcome("transferred"); !errors.Is(err, ErrInvalid) {
		t.Errorf("bad outcome: %v", err)
	}
	if Outcome(99).String() != "unknown" || EndReason(99).String() != "unknown" {
		t.Error("out of range enums must read unknown")
	}
	var o Outcome
	if err := o.UnmarshalText([]byte("no_answer")); err != nil || o != OutcomeNoAnswer {
		t.Errorf("unmarshal: %v %v", o, err)
	}
}

func TestMigrateTwice(t *testing.T) {
	ctx := context.Background()
	db := openTestDB(t)
	for range 2 {
		if err := Migrate(ctx, db); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := NewMessageStore(ctx, db, t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

func TestSetLookupAndDecision(t *testing.T) {
	var r CallRecord
	r.SetLookup(lookup.Result{
		Status:  lookup.StatusFound,
		Contact: &lookup.Contact{ID: 1, Name: "Ada Quist"},
		Matter:  &lookup.Matter{ID: 2, DisplayNumber: "00101-Quist"},
		Staff:   &lookup.Staff{ID: 3, Name: "Felix Dubinsky"},
	})
	r.SetDecision(routing.Decision{Action: routing.ActionTransfer, Rule: "felix", Mode: routing.ModeCold, Destination: "+12175550199", Reason: routing.ReasonMatched})
	want := CallRecord{Lookup: lookup.StatusFound, ContactID: 1, MatterID: 2, StaffID: 3,
		Rule: "felix", Mode: routing.ModeCold, Destination: "+12175550199", Reason: routing.ReasonMatched}
	if !reflect.DeepEqual(r, want) {
		t.Fatalf("got %+v", r)
	}
	b, _ := json.Marshal(r)
	for _, name := range []string{"Ada", "Quist", "Felix"} {
		if strings.Contains(string(b), name) {
			t.Fatalf("record carries a name: %s", b)
		}
	}
	r.SetLookup(lookup.Result{Status: lookup.StatusNotFound})
	if r.ContactID != 0 || r.MatterID != 0 || r.StaffID != 0 {
		t.Fatalf("ids kept: %+v", r)
	}
}

// Concurrent writes all land, in order per call: the in-progress row first, the
// final record after it, from many goroutines at once (the group commit batches
// them), and a row that fails its check fails alone.
func TestUpsertConcurrentBatches(t *testing.T) {
	ctx := context.Background()
	s, db := newCallStore(t)
	const calls = 400
	var wg sync.WaitGroup
	errs := make(chan error, 2*calls)
	for i := range calls {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rec := sampleCall()
			rec.ID, rec.CallID = fmt.Sprintf("c-%04d", i), fmt.Sprintf("%d@pbx.example", i)
			start := CallRecord{ID: rec.ID, CallID: rec.CallID, Start: rec.Start, Outcome: OutcomeInProgress}
			if err := s.Upsert(ctx, start); err != nil {
				errs <- err
				return
			}
			if i%50 == 7 {
				bad := rec
				bad.Start = time.Date(12000, 1, 1, 0, 0, 0, 0, time.UTC) // refused by the table's CHECK
				if err := s.Upsert(ctx, bad); err == nil {
					errs <- fmt.Errorf("call %d: an invalid row was accepted", i)
				}
			}
			if err := s.Upsert(ctx, rec); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	var finished, total int
	if err := db.QueryRow(`SELECT count(*), count(*) FILTER (WHERE outcome = 'bridged') FROM call_records`).Scan(&total, &finished); err != nil {
		t.Fatal(err)
	}
	if total != calls || finished != calls {
		t.Fatalf("%d rows, %d finished; want %d of each", total, finished, calls)
	}
}

// benchCallStore is a call store on a fresh database file, closed after b.
func benchCallStore(b *testing.B) *CallStore {
	db, err := store.Open(filepath.Join(b.TempDir(), "m.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { db.Close() })
	s, err := NewCallStore(context.Background(), db)
	if err != nil {
		b.Fatal(err)
	}
	return s
}

// BenchmarkUpsertParallel is 32 writers at once per CPU: calls ending together.
func BenchmarkUpsertParallel(b *testing.B) {
	s := benchCallStore(b)
	var n atomic.Int64
	b.SetParallelism(32) // many calls end at once
	b.ReportAllocs()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			rec := sampleCall()
			i := n.Add(1)
			rec.ID, rec.CallID = fmt.Sprintf("c-%d", i), fmt.Sprintf("%d@pbx.example", i)
			if err := s.Upsert(context.Background(), rec); err != nil {
				b.Error(err)
				return
			}
		}
	})
}

// BenchmarkUpsertSerial is one call at a time: every write a batch of one.
func BenchmarkUpsertSerial(b *testing.B) {
	s := benchCallStore(b)
	b.ReportAllocs()
	i := 0
	for b.Loop() {
		rec := sampleCall()
		i++
		rec.ID, rec.CallID = fmt.Sprintf("c-%d", i), fmt.Sprintf("%d@pbx.example", i)
		if err := s.Upsert(context.Background(), rec); err != nil {
			b.Fatal(err)
		}
	}
}

// While the database is locked, waiting writes are bounded: past the queue's
// capacity Upsert refuses at once with ErrQueueFull, and every write that was
// queued still lands once the lock goes.
func TestUpsertQueueBounded(t *testing.T) {
	ctx := context.Background()
	s, db := newCallStore(t)
	s.maxQueue = 3
	lock, err := db.Conn(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer lock.Close()
	if _, err := lock.ExecContext(ctx, "BEGIN IMMEDIATE"); err != nil { // another writer holds the database
		t.Fatal(err)
	}
	write := func(i int) error {
		rec := sampleCall()
		rec.ID, rec.CallID = fmt.Sprintf("c-%d", i), fmt.Sprintf("%d@pbx.example", i)
		wctx, cancel := context.WithTimeout(ctx, 50*time.Millisecond)
		defer cancel()
		return s.Upsert(wctx, rec)
	}
	// The first write is taken by the writer, which waits for the lock; the
	// next three wait in the queue.
	for i := range 4 {
		if err := write(i); !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("write %d while locked: %v, want the caller's deadline", i, err)
		}
		if i == 0 {
			taken := time.Now().Add(5 * time.Second)
			for {
				s.mu.Lock()
				queued := len(s.queue)
				s.mu.Unlock()
				if queued == 0 {
					break
				}
				if time.Now().After(taken) {
					t.Fatal("the writer never took the first write")
				}
				time.Sleep(time.Millisecond)
			}
		}
	}
	if err := write(4); !errors.Is(err, ErrQueueFull) {
		t.Fatalf("write over the queue's capacity: %v, want ErrQueueFull", err)
	}
	if _, err := lock.ExecContext(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	eventually := time.Now().Add(5 * time.Second)
	var n int
	for time.Now().Before(eventually) {
		if err := db.QueryRow(`SELECT count(*) FROM call_records`).Scan(&n); err != nil {
			t.Fatal(err)
		}
		if n == 4 {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if n != 4 {
		t.Fatalf("%d rows after the lock went, want the 4 queued writes", n)
	}
	if err := write(5); err != nil {
		t.Fatalf("write after the lock went: %v", err)
	}
}

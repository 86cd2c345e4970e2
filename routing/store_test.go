package routing

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/store"
)

var testFirm = Firm{TimeZone: "America/New_York", Operator: "+13125550100"}

// syncBuffer is a log sink safe for the Run goroutine and the test.
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

func openTestStore(t *testing.T, opts ...Option) (*Store, string) {
	t.Helper()
	return openTestStoreFirm(t, testFirm, opts...)
}

func openTestStoreFirm(t *testing.T, firm Firm, opts ...Option) (*Store, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "m.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := NewStore(context.Background(), db, firm, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	return st, path
}

// secondConn opens the same file through a separate sql.DB, as the sqlite3 shell
// or another process would.
func secondConn(t *testing.T, path string) *sql.DB {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestMigrateFromEmpty(t *testing.T) {
	st, path := openTestStore(t)
	if n := len(st.Rules().All()); n != 0 {
		t.Fatalf("new store has %d rules", n)
	}
	db := secondConn(t, path)
	var v int
	all, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := db.QueryRow(`SELECT MAX(version) FROM schema_migrations WHERE component = 'routing'`).Scan(&v); err != nil || v != len(all) {
		t.Fatalf("routing migration version = %d, %v", v, err)
	}
	// migrating again is a no-op
	if err := Migrate(context.Background(), db); err != nil {
		t.Fatal(err)
	}
	// CHECK constraints hold for what SQLite can express
	for _, q := range []string{
		`INSERT INTO rules(name, destination, mode) VALUES ('x', '101', 'lukewarm')`,
		`INSERT INTO rules(name, destination, caller_id) VALUES ('x', '101', 'nobody')`,
		`INSERT INTO rules(name, destination, unavailable) VALUES ('x', '101', 'voicemail')`,
		`INSERT INTO rules(name, destination, accept_digit) VALUES ('x', '101', '12')`,
		`INSERT INTO rules(name, destination, extension) VALUES ('x', '101', '1a')`,
		`INSERT INTO rules(name, destination, ring_timeout_s) VALUES ('x', '101', 0)`,
		`INSERT INTO rules(name, destination) VALUES ('', '101')`,
		`INSERT INTO closures(date) VALUES ('25/12/2026')`,
	} {
		if _, err := db.Exec(q); err == nil {
			t.Errorf("accepted: %s", q)
		}
	}
}

func TestStoreCRUD(t *testing.T) {
	ctx := context.Background()
	st, _ := openTestStore(t)
	felix := rule("felix", "+12175550101", func(r *Rule) {
		r.StaffName, r.StaffID, r.Mode, r.Hours, r.Extension = "Felix Dubinsky", 501, ModeWarm, "mon-fri 09:00-17:00", "101"
		r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "reception"}
	})
	if err := st.Put(ctx, felix, false); err == nil || !strings.Contains(err.Error(), `unknown rule "reception"`) {
		t.Fatalf("fallback to a missing rule: %v", err)
	}
	if err := st.Put(ctx, rule("reception", "100", nil), false); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, felix, false); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, felix, false); err == nil || !strings.Contains(err.Error(), "duplicate name") {
		t.Fatalf("duplicate: %v", err)
	}
	if err := st.Put(ctx, rule("other", "102", func(r *Rule) { r.Extension = "101" }), false); err == nil || !strings.Contains(err.Error(), `extension: 101 is already used by rule "felix"`) {
		t.Fatalf("duplicate extension: %v", err)
	}
	got, ok := st.Rules().Lookup("FELIX")
	if !ok || got.Rule != felix || !got.Valid() {
		t.Fatalf("Lookup = %+v %v", got, ok)
	}
	felix.Mode = ModeCold
	if err := st.Put(ctx, felix, true); err != nil {
		t.Fatal(err)
	}
	if got, _ := st.Rules().Lookup("felix"); got.Rule.Mode != ModeCold {
		t.Fatalf("update lost: %+v", got.Rule)
	}
	if err := st.Delete(ctx, "reception"); err == nil || !strings.Contains(err.Error(), "fallback of rule") {
		t.Fatalf("delete a fallback target: %v", err)
	}
	if err := st.Delete(ctx, "felix"); err != nil {
		t.Fatal(err)
	}
	if err := st.Delete(ctx, "felix"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete twice: %v", err)
	}
	if added, err := st.AddClosure(ctx, Closure{Date: "2026-12-25", Note: "Christmas"}); err != nil || !added {
		t.Fatal(added, err)
	}
	if added, err := st.AddClosure(ctx, Closure{Date: "2026-12-25", Note: "Christmas Day"}); err != nil || added {
		t.Fatal(added, err)
	}
	if c := st.Rules().Closures(); len(c) != 1 || c[0].Note != "Christmas Day" {
		t.Fatalf("closures = %+v", c)
	}
	if _, err := st.AddClosure(ctx, Closure{Date: "2026-02-30"}); err == nil || !strings.Contains(err.Error(), "date: bad date") {
		t.Fatalf("bad date: %v", err)
	}
	if err := st.DeleteClosure(ctx, "2026-12-25"); err != nil {
		t.Fatal(err)
	}
	if err := st.DeleteClosure(ctx, "2026-12-25"); !errors.Is(err, ErrNotFound) {
		t.Fatalf("delete closure twice: %v", err)
	}
}

func waitFor(t *testing.T, within time.Duration, cond func() bool) time.Duration {
	t.Helper()
	start := time.Now()
	for time.Since(start) < within {
		if cond() {
			return time.Since(start)
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("condition not met within %v", within)
	return 0
}

func TestStorePicksUpOtherConnection(t *testing.T) {
	var logs syncBuffer
	st, path := openTestStore(t, WithLogger(slog.New(slog.NewTextHandler(&logs, nil))))
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- st.Run(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Error(err)
		}
	}()
	other := secondConn(t, path)
	if _, err := other.Exec(`INSERT INTO rules (name, staff_name, staff_id, destination) VALUES ('felix', 'Felix Dubinsky', 501, '+12175550101')`); err != nil {
		t.Fatal(err)
	}
	took := waitFor(t, 2*time.Second, func() bool { _, ok := st.Rules().Lookup("felix"); return ok })
	t.Logf("insert seen after %v", took)
	d := st.Decide(lookup.Result{Status: lookup.StatusFound, Staff: &lookup.Staff{ID: 501}}, Intent{Kind: IntentResponsible}, time.Now())
	if d.Action != ActionTransfer || d.Rule != "felix" {
		t.Fatalf("decision after reload: %+v", d)
	}

	// A row with an impossible zone is loaded, reported once, skipped; the rest work.
	if _, err := other.Exec(`INSERT INTO rules (name, destination, time_zone) VALUES ('moon', '102', 'Mars/Olympus_Mons')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { _, ok := st.Rules().Lookup("moon"); return ok })
	moon, _ := st.Rules().Lookup("moon")
	if moon.Valid() || !strings.Contains(moon.Err.Error(), `tz: unknown IANA time zone "Mars/Olympus_Mons"`) {
		t.Fatalf("moon = %+v", moon)
	}
	if d := Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: "moon"}, st.Rules(), time.Now()); d.Reason != ReasonRuleInvalid {
		t.Fatalf("moon decision: %+v", d)
	}
	// an unrelated change reloads again but does not repeat the warning
	if _, err := other.Exec(`INSERT INTO closures (date, note) VALUES ('2026-12-25', 'Christmas')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return len(st.Rules().Closures()) == 1 })

	// Writes to other tables of the same file (call records, the Clio cache) move
	// data_version but must not reload the rules.
	before := st.Rules()
	if _, err := other.Exec(`CREATE TABLE unrelated (x INTEGER); INSERT INTO unrelated VALUES (1)`); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 5; i++ {
		if _, err := other.Exec(`INSERT INTO unrelated VALUES (?)`, i); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
	}
	if st.Rules() != before {
		t.Fatal("a write to an unrelated table reloaded the rules")
	}
	if n := strings.Count(logs.String(), `row="rule moon"`); n != 1 {
		t.Fatalf("moon reported %d times, want 1:\n%s", n, logs.String())
	}
	// a bad closure date that passes the CHECK is reported, not fatal
	if _, err := other.Exec(`INSERT INTO closures (date) VALUES ('2026-02-30')`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { return len(st.Rules().InvalidClosures()) == 1 })
	// fixing the row is noticed
	if _, err := other.Exec(`UPDATE rules SET time_zone = 'Europe/London' WHERE name = 'moon'`); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 2*time.Second, func() bool { m, _ := st.Rules().Lookup("moon"); return m.Valid() })
	if !strings.Contains(logs.String(), "no longer invalid") {
		t.Errorf("fix not logged:\n%s", logs.String())
	}
}

// TestConcurrentReloadAndDecide runs with -race: decisions on snapshots while
// another connection writes and the store reloads.
func TestConcurrentReloadAndDecide(t *testing.T) {
	st, path := openTestStore(t, WithPollInterval(10*time.Millisecond))
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error, 1)
	go func() { runDone <- st.Run(ctx) }()
	other := secondConn(t, path)
	if _, err := other.Exec(`INSERT INTO rules (name, staff_id, destination) VALUES ('felix', 501, '101')`); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	stop := make(chan struct{})
	for range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			lk := lookup.Result{Status: lookup.StatusFound, Staff: &lookup.Staff{ID: 501}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				d := Decide(lk, Intent{Kind: IntentResponsible}, st.Rules(), time.Now())
				if d.Action == ActionUnknown {
					t.Error("unknown action")
					return
				}
			}
		}()
	}
	for i := range 30 {
		mode := []string{"cold", "warm"}[i%2]
		if _, err := other.Exec(`UPDATE rules SET mode = ? WHERE name = 'felix'`, mode); err != nil {
			t.Fatal(err)
		}
		if err := st.Reload(context.Background()); err != nil { // a reload racing Run's
			t.Fatal(err)
		}
		time.Sleep(5 * time.Millisecond)
	}
	close(stop)
	wg.Wait()
	cancel()
	if err := <-runDone; err != nil {
		t.Fatal(err)
	}
}

func TestStoreClose(t *testing.T) {
	st, _ := openTestStore(t)
	done := make(chan error, 1)
	go func() { done <- st.Run(context.Background()) }()
	time.Sleep(50 * time.Millisecond)
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("Run did not return after Close")
	}
	if err := st.Close(); err != nil {
		t.Fatal("second Close:", err)
	}
	if err := st.Run(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Run after Close = %v", err)
	}
}

func TestImportExportRoundTrip(t *testing.T) {
	ctx := context.Background()
	st, _ := openTestStore(t)
	file := `rules:
  - name: reception
    to: sip:reception@pbx.example.com
    extension: "100"
    unavailable: hangup
  - name: felix
    staff: Felix Dubinsky
    staff_id: 501
    to: "+12175550101"
    mode: warm
    caller_id: service
    whisper: "Call from {caller_name}, matter {matter}, press 1 to accept"
    accept_digit: "1"
    ring_timeout: 25s
    unavailable: rule:reception
    hours: mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00
    tz: America/Chicago
    enabled: false
closures:
  - date: "2026-12-25"
    note: Christmas
`
	rules, closures, err := ParseDoc([]byte(file), testFirm)
	if err != nil {
		t.Fatal(err)
	}
	res, err := st.Import(ctx, rules, closures, true)
	if err != nil || res.Added != 2 || len(st.Rules().All()) != 0 {
		t.Fatalf("dry run: %+v %v, %d rules stored", res, err, len(st.Rules().All()))
	}
	if _, err := st.Import(ctx, rules, closures, false); err != nil {
		t.Fatal(err)
	}
	out, err := st.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rules2, closures2, err := ParseDoc(out, testFirm)
	if err != nil {
		t.Fatalf("export does not parse: %v\n%s", err, out)
	}
	res, err = st.Import(ctx, rules2, closures2, false)
	if err != nil || res.Unchanged != 2 || res.Added+res.Changed+res.Removed != 0 {
		t.Fatalf("re-import of export: %+v %v", res, err)
	}
	out2, _ := st.Export(ctx)
	if !bytes.Equal(out, out2) {
		t.Fatalf("export not stable:\n%s\n---\n%s", out, out2)
	}
	f, _ := st.Rules().Lookup("felix")
	if f.Rule.Enabled || f.Rule.RingTimeout != 25*time.Second || f.Rule.TimeZone != "America/Chicago" {
		t.Fatalf("felix = %+v", f.Rule)
	}
	// a file without closures keeps them; one that drops a rule removes it
	res, err = st.Import(ctx, rules2[1:], nil, false)
	if err != nil || res.Removed != 1 || res.Closures != -1 || len(st.Rules().Closures()) != 1 {
		t.Fatalf("partial import: %+v %v", res, err)
	}
}

func TestParseDocErrors(t *testing.T) {
	tests := []struct{ file, want string }{
		{"rules:\n  - name: a\n    to: '101'\n    colour: red\n", "field colour not found"},
		{"rules:\n  - name: a\n    to: '101'\n    mode: tepid\n", `rules[0]: rule "a": mode: "tepid" is not cold or warm`},
		{"rules:\n  - name: a\n    to: '101'\n    hours: mon-fri 9-5\n", `rule "a": hours: at position 9`},
		{"rules:\n  - name: a\n    to: '101'\n    tz: Nowhere/City\n", `rule "a": tz: unknown IANA time zone`},
		{"rules:\n  - name: a\n    to: '101'\n    unavailable: rule:b\n", `rule "a": unavailable: unknown rule "b"`},
		{"rules:\n  - {name: a, to: '101', extension: '7'}\n  - {name: b, to: '102', extension: '7'}\n", `rule "b": extension: 7 is already used`},
		{"rules:\n  - {name: a, to: '101'}\n  - {name: a, to: '102'}\n", `rule "a": name: duplicate name`},
		{"rules: []\nclosures:\n  - date: 2026-13-01\n", "closures[0]: bad date"},
		{"", "empty"},
	}
	for _, tt := range tests {
		_, _, err := ParseDoc([]byte(tt.file), testFirm)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDoc(%q) = %v, want %q", tt.file, err, tt.want)
		}
	}
}

package records

import (
	"context"
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/matterline/matterline/store"
)

// startedCall is the row the call path writes at the INVITE.
func startedCall(id string) CallRecord {
	return CallRecord{ID: id, CallID: id + "@pbx.example", Start: t0, Caller: "+12175552171",
		Called: "+12175550100", Outcome: OutcomeInProgress}
}

func TestInProgressRowIsListedThenInterrupted(t *testing.T) {
	ctx := context.Background()
	s, _ := newCallStore(t)
	finished := sampleCall()
	if err := s.Upsert(ctx, finished); err != nil {
		t.Fatal(err)
	}
	if err := s.Upsert(ctx, startedCall("c-live")); err != nil {
		t.Fatal(err)
	}

	live, err := s.List(ctx, Filter{Outcome: OutcomeInProgress})
	if err != nil {
		t.Fatal(err)
	}
	if len(live) != 1 || live[0].ID != "c-live" || !live[0].End.IsZero() || live[0].EndReason != EndUnknown {
		t.Fatalf("in progress: %+v", live)
	}
	if live[0].RingDuration() != 0 || live[0].TalkDuration() != 0 {
		t.Fatalf("in progress durations: ring %v talk %v", live[0].RingDuration(), live[0].TalkDuration())
	}

	for i, want := range []int64{1, 0} { // the second run finds nothing left: idempotent
		n, err := s.MarkInterrupted(ctx)
		if err != nil || n != want {
			t.Fatalf("run %d: MarkInterrupted = %d, %v; want %d", i+1, n, err, want)
		}
		got, err := s.Get(ctx, "c-live")
		if err != nil {
			t.Fatal(err)
		}
		if got.Outcome != OutcomeInterrupted || got.EndReason != EndInterrupted || !got.End.IsZero() ||
			!got.Start.Equal(t0) || got.Caller != "+12175552171" {
			t.Fatalf("run %d: interrupted row: %+v", i+1, got)
		}
		other, err := s.Get(ctx, finished.ID)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(other, finished) {
			t.Fatalf("run %d: finished row changed:\n got %+v\nwant %+v", i+1, other, finished)
		}
	}
	if live, err := s.List(ctx, Filter{Outcome: OutcomeInProgress}); err != nil || len(live) != 0 {
		t.Fatalf("still in progress: %+v %v", live, err)
	}
	if gone, err := s.List(ctx, Filter{Outcome: OutcomeInterrupted}); err != nil || len(gone) != 1 {
		t.Fatalf("interrupted: %+v %v", gone, err)
	}
}

func TestFinalRecordWins(t *testing.T) {
	ctx := context.Background()
	s, db := newCallStore(t)
	final := sampleCall()
	start := startedCall(final.ID)
	start.CallID = final.CallID

	// In order: the final record replaces the row written at the INVITE.
	for _, rec := range []CallRecord{start, final} {
		if err := s.Upsert(ctx, rec); err != nil {
			t.Fatal(err)
		}
	}
	// Late: an in-progress write landing after the final one changes nothing.
	if err := s.Upsert(ctx, start); err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, final.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, final) {
		t.Fatalf("row:\n got %+v\nwant %+v", got, final)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM call_records`).Scan(&n); err != nil || n != 1 {
		t.Fatalf("rows %d %v", n, err)
	}
	if n, err := s.MarkInterrupted(ctx); err != nil || n != 0 {
		t.Fatalf("MarkInterrupted on a finished call = %d, %v", n, err)
	}
}

func TestMigrationKeepsV1Rows(t *testing.T) {
	// A database written by a release with only migration 1 upgrades in place.
	ctx := context.Background()
	db := openTestDB(t)
	m, err := Migrations()
	if err != nil {
		t.Fatal(err)
	}
	if err := store.Migrate(ctx, db, Component, m[:1]); err != nil {
		t.Fatal(err)
	}
	// The row as a v1 release wrote it (the store's own Upsert knows later columns).
	want := sampleCall()
	if _, err := db.ExecContext(ctx, `INSERT INTO call_records (id, sip_call_id, start_time, answer_time,
		end_time, caller, called, lookup_status, contact_id, matter_id, staff_id, intents, rule, mode,
		destination, decision_reason, outcome, end_reason, ring_ms, talk_ms)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`,
		want.ID, want.CallID, formatTime(want.Start), formatTime(want.Answer), formatTime(want.End),
		want.Caller, want.Called, want.Lookup.String(), want.ContactID, want.MatterID, want.StaffID,
		`["responsible"]`, want.Rule, want.Mode.String(), want.Destination, string(want.Reason),
		want.Outcome.String(), want.EndReason.String(), want.RingDuration().Milliseconds(),
		want.TalkDuration().Milliseconds()); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO call_records (id, sip_call_id, start_time, outcome)
		VALUES ('x', 'y', '2026-11-24T10:00:00.000Z', 'in_progress')`); err == nil {
		t.Fatal("v1 schema accepted in_progress")
	}

	s, err := NewCallStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	got, err := s.Get(ctx, want.ID)
	if err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after migration: %+v %v", got, err)
	}
	var ringMS, talkMS int64
	if err := db.QueryRow(`SELECT ring_ms, talk_ms FROM call_records WHERE id = ?`, want.ID).Scan(&ringMS, &talkMS); err != nil ||
		ringMS != want.RingDuration().Milliseconds() || talkMS != want.TalkDuration().Milliseconds() {
		t.Fatalf("durations %d %d %v", ringMS, talkMS, err)
	}
	rec := startedCall("c-new")
	rec.Start = t0.Add(time.Hour)
	if err := s.Upsert(ctx, rec); err != nil {
		t.Fatal(err)
	}
	var idx int
	if err := db.QueryRow(`SELECT COUNT(*) FROM sqlite_master WHERE type = 'index' AND tbl_name = 'call_records'
		AND name IN ('call_records_start', 'call_records_outcome_start', 'call_records_id')`).Scan(&idx); err != nil || idx != 3 {
		t.Fatalf("indexes %d %v", idx, err)
	}
}

func TestUnfinishedRecordJSON(t *testing.T) {
	for _, tc := range []struct {
		rec                CallRecord
		outcome, endReason string
	}{
		{startedCall("c-live"), "in_progress", "unknown"},
		{func() CallRecord {
			r := startedCall("c-lost")
			r.Outcome, r.EndReason = OutcomeInterrupted, EndInterrupted
			return r
		}(), "interrupted", "interrupted"},
	} {
		b, err := json.Marshal(tc.rec)
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(b, &m); err != nil {
			t.Fatal(err)
		}
		if _, ok := m["end"]; ok || m["outcome"] != tc.outcome || m["end_reason"] != tc.endReason ||
			m["ring_seconds"] != 0.0 || m["talk_seconds"] != 0.0 {
			t.Errorf("%s: %s", tc.rec.ID, b)
		}
		var back CallRecord
		if err := json.Unmarshal(b, &back); err != nil || back.Outcome != tc.rec.Outcome ||
			back.EndReason != tc.rec.EndReason {
			t.Errorf("%s: round trip %+v %v", tc.rec.ID, back, err)
		}
	}
}

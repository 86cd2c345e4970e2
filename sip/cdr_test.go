package sip

import (
	"context"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
)

// A call has its row from the INVITE on (in progress, no end), so a crash cannot
// make it vanish; the record written when it ends replaces that row.
func TestCallRecordFromInviteToEnd(t *testing.T) {
	t.Parallel()
	cdr := &memCDR{}
	e := newEnv(t, defaultTestConfig(), WithCallRecords(cdr))
	c := e.answered(phone.InviteOptions{From: testCaller})
	e.waitState(c.CallID, StateInMenu)
	live := e.onlyCall()

	// The row is written off the call's goroutine: it may land just after the 200.
	var rows []records.CallRecord
	eventually(t, 2*time.Second, "the call's row", func() bool {
		rows = cdr.rows(c.CallID)
		return len(rows) > 0
	})
	if len(rows) != 1 {
		t.Fatalf("%d rows while the call is in the menu, want 1: %+v", len(rows), rows)
	}
	r := rows[0]
	if r.ID != live.ID || !r.Start.Equal(live.Started) || r.Caller != testCaller || r.Called != "100" ||
		r.Outcome != records.OutcomeInProgress || r.EndReason != records.EndUnknown || !r.End.IsZero() {
		t.Errorf("row in the menu = %+v", r)
	}

	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	rec := cdr.wait(t, c.CallID)
	if rec.ID != live.ID || rec.Outcome != records.OutcomeNone || rec.EndReason != records.EndCallerBye ||
		rec.End.IsZero() || rec.Answer.IsZero() {
		t.Errorf("final record = %+v", rec)
	}
	e.waitIdle()
	if rows := cdr.rows(c.CallID); len(rows) != 1 || rows[0].Outcome != records.OutcomeNone {
		t.Errorf("rows after the call = %+v", rows)
	}
}

// slowCDR is a database slow on the row written at the INVITE: that write takes
// delay (or hangs until its deadline). Unlike records.CallStore it keeps whatever
// comes last, so only the call's own ordering can make the final record win.
type slowCDR struct {
	delay time.Duration
	mu    sync.Mutex
	byID  map[string]records.CallRecord
}

func (s *slowCDR) Upsert(ctx context.Context, rec records.CallRecord) error {
	if rec.Outcome == records.OutcomeInProgress {
		select {
		case <-time.After(s.delay):
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.byID[rec.ID] = rec
	return nil
}

// A slow or stuck first write delays neither the answer nor the final record, and
// the final record is what stays.
func TestCallRecordSlowStart(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct {
		name  string
		delay time.Duration
	}{
		{"late", 500 * time.Millisecond}, // lands after the call ended, before its deadline
		{"stuck", time.Hour},             // never lands
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			cdr := &slowCDR{delay: tc.delay, byID: map[string]records.CallRecord{}}
			e := newEnv(t, defaultTestConfig(), WithCallRecords(cdr))
			start := time.Now()
			c := e.answered(phone.InviteOptions{From: testCaller})
			if d := time.Since(start); d >= 400*time.Millisecond {
				t.Errorf("answered after %v with the record write slow", d)
			}
			id := e.onlyCall().ID
			if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
				t.Fatal(err)
			}
			e.waitIdle() // every call goroutine, the record writes included, is over
			cdr.mu.Lock()
			defer cdr.mu.Unlock()
			rec, ok := cdr.byID[id]
			if len(cdr.byID) != 1 || !ok || rec.Outcome != records.OutcomeNone ||
				rec.EndReason != records.EndCallerBye || rec.End.IsZero() {
				t.Errorf("records = %+v", cdr.byID)
			}
		})
	}
}

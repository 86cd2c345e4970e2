package main

// Clio write-back (package writeback) wired into serve: the call records, the
// messages and the lookups of calls are tapped; at a call's final record its
// items are planned and enqueued (an SQLite insert, never a Clio request), and
// the worker sends them in the background.

import (
	"context"
	"database/sql"
	"log/slog"
	"path/filepath"
	"sync"
	"time"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/metrics"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/sip"
	"github.com/matterline/matterline/writeback"
)

// maxCallNotes bounds the per-call notes kept until the call's final record.
const maxCallNotes = 4096

type writebackDeps struct {
	cfg     *config.Config
	db      *sql.DB
	clio    *clioDeps
	budget  *clio.Budget
	rules   *routing.Store
	metrics *metrics.Metrics
	log     *slog.Logger
}

// writebackTap is write-back in a running server; nil when it is off.
type writebackTap struct {
	d        writebackDeps
	worker   *writeback.Worker
	settings writeback.Settings

	mu    sync.Mutex
	notes map[string]*callNote
	order []string // call ids, oldest first, to bound notes
}

// callNote is what a call's record lacks: the names from its lookup and its message.
type callNote struct {
	lookup  lookup.Result
	msg     *records.Message
	msgPath string
}

// startWriteback starts the outbox worker when any clio.writeback key is on
// and Clio is configured; it returns nil (a valid, inert tap) otherwise.
func startWriteback(ctx context.Context, d writebackDeps) (*writebackTap, error) {
	c := d.cfg.Clio.Writeback
	if !c.Any() {
		return nil, nil
	}
	if d.clio == nil || d.clio.client == nil {
		d.log.Warn("clio.writeback is on but Clio is not configured: nothing is written back")
		return nil, nil
	}
	ob, err := writeback.Open(ctx, d.db, nil)
	if err != nil {
		return nil, err
	}
	loc, err := routing.LoadZone(d.cfg.Firm.TimeZone)
	if err != nil {
		loc = time.UTC
	}
	t := &writebackTap{d: d, notes: map[string]*callNote{}, settings: writeback.Settings{
		Communication: c.Communication, TimeEntry: c.TimeEntry, Task: c.Task, Document: c.Document,
		NonBillable: c.NonBillable, TaskPriority: c.TaskPriority, TaskDueDays: c.TaskDueDays, Location: loc,
	}}
	t.worker = writeback.NewWorker(writeback.Options{Outbox: ob, Client: d.clio.client, Budget: d.budget,
		Logger: d.log, Count: func(k writeback.Kind, state string) { d.metrics.ClioWriteback(k.String(), state) }})
	t.worker.Start()
	if n, err := ob.Counts(ctx); err == nil && n[writeback.StatePending] > 0 {
		d.log.Info("clio write-back resumes pending items", "pending", n[writeback.StatePending])
	}
	d.log.Info("clio write-back on", "communication", c.Communication, "time_entry", c.TimeEntry,
		"task", c.Task, "document", c.Document, "reserve", d.budget.Reserve())
	return t, nil
}

// Close stops the worker (pending items stay for the next start).
func (t *writebackTap) Close() {
	if t != nil {
		t.worker.Close()
	}
}

func (t *writebackTap) note(callID string) *callNote {
	n := t.notes[callID]
	if n == nil {
		n = &callNote{}
		t.notes[callID] = n
		t.order = append(t.order, callID)
		for len(t.order) > maxCallNotes {
			delete(t.notes, t.order[0])
			t.order = t.order[1:]
		}
	}
	return n
}

func (t *writebackTap) take(callID string) callNote {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.notes[callID]
	delete(t.notes, callID)
	if n == nil {
		return callNote{}
	}
	return *n
}

// callEnded plans and enqueues the items of a call's final record.
func (t *writebackTap) callEnded(rec records.CallRecord) {
	n := t.take(rec.ID)
	f := writeback.Facts{Record: rec, Message: n.msg, MessagePath: n.msgPath}
	if c := n.lookup.Contact; c != nil {
		f.ContactName = c.Name
	}
	if m := n.lookup.Matter; m != nil {
		f.MatterNumber = m.DisplayNumber
	}
	if s := n.lookup.Staff; s != nil {
		f.StaffID, f.StaffName = s.ID, s.Name
	}
	if rec.Rule != "" {
		if st, ok := t.d.rules.Rules().Lookup(rec.Rule); ok {
			r := st.Rule
			f.Rule = &r
		}
	}
	items := writeback.Plan(f, t.settings)
	if len(items) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	if err := t.worker.Enqueue(ctx, items); err != nil {
		t.d.log.Error("clio write-back not queued", "call_id", rec.ID, "err", err)
	}
}

// recorder taps the call records (returns next itself when write-back is off).
func (t *writebackTap) recorder(next sip.CallRecorder) sip.CallRecorder {
	if t == nil {
		return next
	}
	return wbRecorder{next: next, t: t}
}

type wbRecorder struct {
	next sip.CallRecorder
	t    *writebackTap
}

func (r wbRecorder) Upsert(ctx context.Context, rec records.CallRecord) error {
	err := r.next.Upsert(ctx, rec)
	if err == nil && rec.Outcome != records.OutcomeInProgress {
		r.t.callEnded(rec)
	}
	return err
}

// messages taps stored messages (returns next itself when write-back is off).
func (t *writebackTap) messages(next *records.MessageStore) sip.MessageStore {
	if t == nil {
		return next
	}
	return wbMessages{MessageStore: next, t: t}
}

type wbMessages struct {
	*records.MessageStore
	t *writebackTap
}

func (m wbMessages) Add(ctx context.Context, msg records.Message) (records.Message, error) {
	stored, err := m.MessageStore.Add(ctx, msg)
	if err == nil && stored.CallID != "" {
		path, perr := m.MessageStore.Path(stored)
		if perr != nil {
			path = filepath.Join(m.MessageStore.Dir(), stored.File)
		}
		m.t.mu.Lock()
		n := m.t.note(stored.CallID)
		n.msg, n.msgPath = &stored, path
		m.t.mu.Unlock()
	}
	return stored, err
}

// observer taps lookups for the names the record does not keep.
func (t *writebackTap) observer(next observer) sip.Observer {
	if t == nil {
		return next
	}
	return wbObserver{observer: next, t: t}
}

type wbObserver struct {
	observer
	t *writebackTap
}

func (o wbObserver) LookupDone(callID string, res lookup.Result, took time.Duration) {
	o.observer.LookupDone(callID, res, took)
	o.t.mu.Lock()
	o.t.note(callID).lookup = res
	o.t.mu.Unlock()
}

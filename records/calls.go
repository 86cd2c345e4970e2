package records

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"runtime/pprof"
	"strings"
	"sync"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/routing"
)

// CallRecord is one call as it is kept (a CDR): first a row written at the INVITE
// (OutcomeInProgress, no End), then the full record when the call ends, replacing it.
// It holds Clio ids, never names: names change and are the firm's confidential
// data, ids are enough to open the contact or matter in Clio.
type CallRecord struct {
	// ID is matterline's call id (the one in /v1/calls/{id} and the logs).
	ID string `json:"id"`
	// CallID is the SIP Call-ID of the caller's leg.
	CallID string `json:"sip_call_id"`

	Start  time.Time `json:"start"`
	Answer time.Time `json:"answer,omitzero"` // zero: never answered
	End    time.Time `json:"end,omitzero"`    // zero: end unknown (in progress or interrupted)

	// Caller and Called are the caller's number (From / P-Asserted-Identity) and the
	// dialled number (Request-URI user), as received.
	Caller string `json:"caller"`
	Called string `json:"called"`

	Lookup    lookup.Status `json:"lookup_status"`
	ContactID int64         `json:"contact_id,omitempty"`
	MatterID  int64         `json:"matter_id,omitempty"`
	StaffID   int64         `json:"staff_id,omitempty"`

	// Intents are the transfer requests of the call in order, in routing's text
	// form: "responsible", "operator", "rule:NAME", "extension:N", "staff:NAME".
	Intents []string `json:"intents"`
	// Rule, Mode and Destination are those of the last decision that transferred
	// (or tried to); Reason is that decision's routing.Reason.
	Rule        string         `json:"rule,omitempty"`
	Mode        routing.Mode   `json:"mode,omitzero"`
	Destination string         `json:"destination,omitempty"`
	Reason      routing.Reason `json:"decision_reason,omitempty"`

	Outcome   Outcome   `json:"outcome"`
	EndReason EndReason `json:"end_reason"`

	// Agent: the call was offered to the voice-AI agent (agent.mode); AgentMS is
	// how long the caller was bridged to it; AgentTransfer the intent of the
	// transfer it asked for and matterline accepted ("" = none).
	Agent         bool   `json:"agent,omitempty"`
	AgentMS       int64  `json:"agent_ms,omitempty"`
	AgentTransfer string `json:"agent_transfer,omitempty"`
}

// SetLookup copies the lookup status and the Clio ids (never the names) of res.
func (r *CallRecord) SetLookup(res lookup.Result) {
	r.Lookup = res.Status
	r.ContactID, r.MatterID, r.StaffID = 0, 0, 0
	if res.Contact != nil {
		r.ContactID = res.Contact.ID
	}
	if res.Matter != nil {
		r.MatterID = res.Matter.ID
	}
	if res.Staff != nil {
		r.StaffID = res.Staff.ID
	}
}

// SetDecision copies the rule, mode, destination and reason of a routing decision.
func (r *CallRecord) SetDecision(d routing.Decision) {
	r.Rule, r.Mode, r.Destination, r.Reason = d.Rule, d.Mode, d.Destination, d.Reason
}

// RingDuration is how long the caller waited before the call was answered: Answer
// minus Start, or End minus Start for a call that was never answered.
func (r CallRecord) RingDuration() time.Duration {
	switch {
	case !r.Answer.IsZero():
		return nonNegative(r.Answer.Sub(r.Start))
	case !r.End.IsZero():
		return nonNegative(r.End.Sub(r.Start))
	}
	return 0
}

// TalkDuration is how long the call was connected: End minus Answer, zero for a call
// never answered.
func (r CallRecord) TalkDuration() time.Duration {
	if r.Answer.IsZero() || r.End.IsZero() {
		return 0
	}
	return nonNegative(r.End.Sub(r.Answer))
}

func nonNegative(d time.Duration) time.Duration { return max(d, 0) }

// MarshalJSON adds the computed ring_seconds and talk_seconds.
func (r CallRecord) MarshalJSON() ([]byte, error) {
	type plain CallRecord // no methods: no recursion
	if r.Intents == nil {
		r.Intents = []string{}
	}
	return json.Marshal(struct {
		plain
		Mode        string  `json:"mode,omitempty"`
		RingSeconds float64 `json:"ring_seconds"`
		TalkSeconds float64 `json:"talk_seconds"`
	}{plain(r), r.Mode.String(), roundSeconds(r.RingDuration()), roundSeconds(r.TalkDuration())})
}

// UnmarshalJSON reads what MarshalJSON writes (the computed durations are ignored).
func (r *CallRecord) UnmarshalJSON(b []byte) error {
	type plain CallRecord
	var v struct {
		plain
		Mode string `json:"mode"`
	}
	if err := json.Unmarshal(b, &v); err != nil {
		return err
	}
	m, err := parseMode(v.Mode)
	if err != nil {
		return err
	}
	*r = CallRecord(v.plain)
	r.Mode = m
	return nil
}

func roundSeconds(d time.Duration) float64 { return float64(d.Milliseconds()) / 1000 }

func parseMode(s string) (routing.Mode, error) {
	switch s {
	case "":
		return routing.ModeUnknown, nil
	case routing.ModeCold.String():
		return routing.ModeCold, nil
	case routing.ModeWarm.String():
		return routing.ModeWarm, nil
	}
	return routing.ModeUnknown, fmt.Errorf("%w: unknown mode %q (want cold or warm)", ErrInvalid, s)
}

// Filter selects call records. Zero fields do not filter.
type Filter struct {
	// Since and Until bound the start time: Since <= start < Until.
	Since, Until time.Time
	// Outcome keeps only records with this outcome (zero: all).
	Outcome Outcome
	// Limit caps the number of records (newest first); zero or less means no cap.
	Limit int
}

// CallStore reads and writes call records. It is safe for concurrent use.
//
// Writes are group-committed: an Upsert joins the queue and, when no writer is
// running, starts one; the writer commits everything queued in one transaction,
// again and again, and ends when the queue is empty. One call alone is written
// at once, as before; under load (two writes per call, thousands of calls a
// second) one commit serves many calls, and no goroutine or timer is left
// running when the calls stop.
type CallStore struct {
	db     *sql.DB
	upsert *sql.Stmt // prepared once: parsing the statement cost more than running it

	mu       sync.Mutex
	queue    []*upsertReq
	writing  bool
	maxQueue int // defaultMaxQueue; tests shrink it
}

// upsert is one queued write: the statement's arguments and where its result goes.
type upsertReq struct {
	id   string
	args []any
	done chan error // buffered: the writer never waits for the caller
}

// maxBatch bounds one transaction, so a long queue cannot hold SQLite's write
// lock (and readers of the API) for long.
const maxBatch = 256

// defaultMaxQueue bounds the writes waiting for the database (about 1 KB
// each): a database that stays locked while calls go on ending refuses new
// writes at once instead of holding every record in memory.
const defaultMaxQueue = 10000

// ErrQueueFull is Upsert's refusal while defaultMaxQueue writes already wait.
var ErrQueueFull = errors.New("records: write queue full (the database is not keeping up)")

// batchTimeout bounds one batch's transaction.
const batchTimeout = 10 * time.Second

// NewCallStore migrates the records tables in db and returns a store on it. The
// caller keeps ownership of db.
func NewCallStore(ctx context.Context, db *sql.DB) (*CallStore, error) {
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	st, err := db.PrepareContext(ctx, upsertSQL)
	if err != nil {
		return nil, fmt.Errorf("records: prepare call upsert: %w", err)
	}
	return &CallStore{db: db, upsert: st, maxQueue: defaultMaxQueue}, nil
}

const callColumns = `id, sip_call_id, start_time, answer_time, end_time, caller, called,
	lookup_status, contact_id, matter_id, staff_id, intents, rule, mode, destination,
	decision_reason, outcome, end_reason, agent, agent_ms, agent_transfer`

const upsertSQL = `INSERT INTO call_records (` + callColumns + `, ring_ms, talk_ms)
		VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)
		ON CONFLICT (sip_call_id, id) DO UPDATE SET
			start_time=excluded.start_time, answer_time=excluded.answer_time,
			end_time=excluded.end_time, caller=excluded.caller, called=excluded.called,
			lookup_status=excluded.lookup_status, contact_id=excluded.contact_id,
			matter_id=excluded.matter_id, staff_id=excluded.staff_id,
			intents=excluded.intents, rule=excluded.rule, mode=excluded.mode,
			destination=excluded.destination, decision_reason=excluded.decision_reason,
			outcome=excluded.outcome, end_reason=excluded.end_reason,
			ring_ms=excluded.ring_ms, talk_ms=excluded.talk_ms,
			agent=excluded.agent, agent_ms=excluded.agent_ms, agent_transfer=excluded.agent_transfer
		WHERE excluded.outcome <> 'in_progress' OR call_records.outcome = 'in_progress'`

// Upsert writes rec as the one row of its call. Writing the same call (same ID and
// CallID) again replaces the row, so a retried write is harmless; an in-progress
// record never replaces a finished one, so the row written at the INVITE cannot
// overwrite the final record however late it lands. Writes reach the database in
// the order of the Upsert calls. When ctx ends first, Upsert returns its error
// and the write may still land.
func (s *CallStore) Upsert(ctx context.Context, rec CallRecord) error {
	if err := rec.validate(); err != nil {
		return err
	}
	intents := rec.Intents
	if intents == nil {
		intents = []string{}
	}
	ij, err := json.Marshal(intents)
	if err != nil {
		return fmt.Errorf("records: encode intents: %w", err)
	}
	u := &upsertReq{id: rec.ID, done: make(chan error, 1), args: []any{
		rec.ID, rec.CallID, formatTime(rec.Start), nullTime(rec.Answer), nullTime(rec.End),
		rec.Caller, rec.Called, rec.Lookup.String(), nullID(rec.ContactID), nullID(rec.MatterID),
		nullID(rec.StaffID), string(ij), rec.Rule, rec.Mode.String(), rec.Destination,
		string(rec.Reason), rec.Outcome.String(), rec.EndReason.String(),
		rec.Agent, max(rec.AgentMS, 0), rec.AgentTransfer,
		rec.RingDuration().Milliseconds(), rec.TalkDuration().Milliseconds()}}
	s.mu.Lock()
	if len(s.queue) >= s.maxQueue {
		s.mu.Unlock()
		return fmt.Errorf("records: write call %s: %w", rec.ID, ErrQueueFull)
	}
	s.queue = append(s.queue, u)
	lead := !s.writing
	s.writing = true
	s.mu.Unlock()
	if lead {
		go s.drain()
	}
	select {
	case err := <-u.done:
		return err
	case <-ctx.Done():
		return fmt.Errorf("records: write call %s: %w", rec.ID, ctx.Err())
	}
}

// drain commits the queue batch by batch until it is empty. One runs at a time.
func (s *CallStore) drain() {
	// Not one of the goroutines of the call that started it (leak checks follow
	// pprof labels).
	pprof.SetGoroutineLabels(context.Background())
	for {
		s.mu.Lock()
		n := min(len(s.queue), maxBatch)
		if n == 0 {
			s.writing = false
			s.mu.Unlock()
			return
		}
		batch := make([]*upsertReq, n)
		copy(batch, s.queue)
		s.queue = append(s.queue[:0], s.queue[n:]...)
		s.mu.Unlock()
		s.commit(batch)
	}
}

// commit writes one batch: alone, a plain statement; more, one transaction in
// which a failing row fails alone and a failed commit fails them all.
func (s *CallStore) commit(batch []*upsertReq) {
	ctx, cancel := context.WithTimeout(context.Background(), batchTimeout)
	defer cancel()
	fail := func(u *upsertReq, err error) { u.done <- fmt.Errorf("records: write call %s: %w", u.id, err) }
	if len(batch) == 1 {
		u := batch[0]
		if _, err := s.upsert.ExecContext(ctx, u.args...); err != nil {
			fail(u, err)
			return
		}
		u.done <- nil
		return
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		for _, u := range batch {
			fail(u, err)
		}
		return
	}
	stmt := tx.StmtContext(ctx, s.upsert)
	errs := make([]error, len(batch))
	for i, u := range batch {
		_, errs[i] = stmt.ExecContext(ctx, u.args...)
	}
	_ = stmt.Close()
	if err := tx.Commit(); err != nil {
		for _, u := range batch {
			fail(u, err)
		}
		return
	}
	for i, u := range batch {
		if errs[i] != nil {
			fail(u, errs[i])
		} else {
			u.done <- nil
		}
	}
}

// MarkInterrupted turns every in-progress row into an interrupted one (outcome and
// end reason interrupted) and returns how many it changed. Their end time stays
// unknown (NULL): matterline cannot tell when a call it lost ended. Only matterline
// serve calls it, on start and before it takes calls: any row still in progress then
// was left by a run that stopped without ending its calls. Running it again changes
// nothing.
func (s *CallStore) MarkInterrupted(ctx context.Context) (int64, error) {
	res, err := s.db.ExecContext(ctx, `UPDATE call_records SET outcome = ?, end_reason = ?
		WHERE outcome = ?`,
		OutcomeInterrupted.String(), EndInterrupted.String(), OutcomeInProgress.String())
	if err != nil {
		return 0, fmt.Errorf("records: mark interrupted calls: %w", err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return 0, fmt.Errorf("records: mark interrupted calls: %w", err)
	}
	return n, nil
}

func (rec CallRecord) validate() error {
	switch {
	case rec.ID == "":
		return fmt.Errorf("%w: call record without a call id", ErrInvalid)
	case rec.CallID == "":
		return fmt.Errorf("%w: call record %s without a sip call-id", ErrInvalid, rec.ID)
	case rec.Start.IsZero():
		return fmt.Errorf("%w: call record %s without a start time", ErrInvalid, rec.ID)
	case rec.ContactID < 0 || rec.MatterID < 0 || rec.StaffID < 0:
		return fmt.Errorf("%w: call record %s has a negative clio id", ErrInvalid, rec.ID)
	case int(rec.Outcome) >= len(outcomeNames):
		return fmt.Errorf("%w: call record %s has outcome %d", ErrInvalid, rec.ID, rec.Outcome)
	case int(rec.EndReason) >= len(endReasonNames):
		return fmt.Errorf("%w: call record %s has end reason %d", ErrInvalid, rec.ID, rec.EndReason)
	}
	switch rec.Mode {
	case routing.ModeUnknown, routing.ModeCold, routing.ModeWarm:
		return nil
	}
	return fmt.Errorf("%w: call record %s has mode %d", ErrInvalid, rec.ID, rec.Mode)
}

// Get returns the record of the call whose matterline id or SIP Call-ID is id (the
// newest if several share a Call-ID). No such call is ErrNotFound.
func (s *CallStore) Get(ctx context.Context, id string) (CallRecord, error) {
	row := s.db.QueryRowContext(ctx, `SELECT `+callColumns+` FROM call_records
		WHERE id = ? OR sip_call_id = ? ORDER BY (id = ?) DESC, start_time DESC LIMIT 1`, id, id, id)
	rec, err := scanCall(row)
	if errors.Is(err, sql.ErrNoRows) {
		return CallRecord{}, fmt.Errorf("records: call %q %w", id, ErrNotFound)
	}
	if err != nil {
		return CallRecord{}, fmt.Errorf("records: read call %q: %w", id, err)
	}
	return rec, nil
}

// List returns the records that match f, newest first.
func (s *CallStore) List(ctx context.Context, f Filter) ([]CallRecord, error) {
	var (
		where []string
		args  []any
	)
	if !f.Since.IsZero() {
		where = append(where, "start_time >= ?")
		args = append(args, formatTime(f.Since))
	}
	if !f.Until.IsZero() {
		where = append(where, "start_time < ?")
		args = append(args, formatTime(f.Until))
	}
	if f.Outcome != OutcomeUnknown {
		where = append(where, "outcome = ?")
		args = append(args, f.Outcome.String())
	}
	q := `SELECT ` + callColumns + ` FROM call_records`
	if len(where) > 0 {
		q += " WHERE " + strings.Join(where, " AND ")
	}
	q += " ORDER BY start_time DESC, seq DESC"
	if f.Limit > 0 {
		q += " LIMIT ?"
		args = append(args, f.Limit)
	}
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("records: list calls: %w", err)
	}
	defer rows.Close()
	out := []CallRecord{}
	for rows.Next() {
		rec, err := scanCall(rows)
		if err != nil {
			return nil, fmt.Errorf("records: list calls: %w", err)
		}
		out = append(out, rec)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("records: list calls: %w", err)
	}
	return out, nil
}

type scanner interface{ Scan(dest ...any) error }

func scanCall(sc scanner) (CallRecord, error) {
	var (
		rec                          CallRecord
		start                        string
		answer, end                  sql.NullString
		status, intents, mode        string
		reason, outcome, endReason   string
		contactID, matterID, staffID sql.NullInt64
	)
	if err := sc.Scan(&rec.ID, &rec.CallID, &start, &answer, &end, &rec.Caller, &rec.Called,
		&status, &contactID, &matterID, &staffID, &intents, &rec.Rule, &mode, &rec.Destination,
		&reason, &outcome, &endReason, &rec.Agent, &rec.AgentMS, &rec.AgentTransfer); err != nil {
		return CallRecord{}, err
	}
	var err error
	if rec.Start, err = parseTime(start); err != nil {
		return CallRecord{}, err
	}
	if rec.Answer, err = parseNullTime(answer); err != nil {
		return CallRecord{}, err
	}
	if rec.End, err = parseNullTime(end); err != nil {
		return CallRecord{}, err
	}
	rec.Lookup = lookup.ParseStatus(status)
	rec.ContactID, rec.MatterID, rec.StaffID = contactID.Int64, matterID.Int64, staffID.Int64
	if err := json.Unmarshal([]byte(intents), &rec.Intents); err != nil {
		return CallRecord{}, fmt.Errorf("call %s: bad intents: %w", rec.ID, err)
	}
	if rec.Mode, err = parseMode(mode); err != nil {
		return CallRecord{}, err
	}
	rec.Reason = routing.Reason(reason)
	if rec.Outcome, err = ParseOutcome(outcome); err != nil {
		return CallRecord{}, err
	}
	if rec.EndReason, err = ParseEndReason(endReason); err != nil {
		return CallRecord{}, err
	}
	return rec, nil
}

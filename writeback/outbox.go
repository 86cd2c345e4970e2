package writeback

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/matterline/matterline/store"
)

// Component is the name the outbox migrations are recorded under.
const Component = "writeback"

// ErrNotFound is an outbox id that does not exist.
var ErrNotFound = errors.New("writeback: no such outbox item")

// ErrNotFailed is a retry of an item that is not failed.
var ErrNotFailed = errors.New("writeback: only a failed item can be retried")

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations returns the embedded schema migrations in order (append-only).
func Migrations() ([]string, error) {
	m, err := store.ReadMigrations(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("writeback: %w", err)
	}
	return m, nil
}

// Item is one outbox row. Its JSON is the `matterline clio outbox --json` item:
// {"id","call_id","kind","state","attempts","clio_id","error"}.
type Item struct {
	ID       int64  `json:"id"`
	CallID   string `json:"call_id"`
	Kind     Kind   `json:"kind"`
	State    State  `json:"state"`
	Attempts int    `json:"attempts"`
	// ClioID is the id of the record written (0 until done; null in JSON).
	ClioID int64  `json:"clio_id"`
	Error  string `json:"error"`

	NextAt   time.Time `json:"-"`
	Created  time.Time `json:"-"`
	Updated  time.Time `json:"-"`
	Payload  Payload   `json:"-"`
	Progress Progress  `json:"-"`
}

// MarshalJSON prints clio_id as null until the item is done.
func (it Item) MarshalJSON() ([]byte, error) {
	type plain Item
	var id *int64
	if it.ClioID != 0 {
		id = &it.ClioID
	}
	return json.Marshal(struct {
		plain
		ClioID *int64 `json:"clio_id"`
	}{plain(it), id})
}

// Progress is what a multi-step item (a document) has done so far, kept so a
// retry resumes instead of starting over.
type Progress struct {
	DocumentID int64               `json:"document_id,omitempty"`
	UUID       string              `json:"uuid,omitempty"`
	PutURL     string              `json:"put_url,omitempty"`
	PutHeaders []map[string]string `json:"put_headers,omitempty"`
	CreatedAt  time.Time           `json:"created_at,omitzero"`
	Uploaded   bool                `json:"uploaded,omitempty"`
}

// Outbox is the SQLite outbox. It is safe for concurrent use.
type Outbox struct {
	db  *sql.DB
	now func() time.Time
}

// Open migrates the outbox table in db and returns the outbox; the caller keeps
// ownership of db. now may be nil (time.Now).
func Open(ctx context.Context, db *sql.DB, now func() time.Time) (*Outbox, error) {
	m, err := Migrations()
	if err != nil {
		return nil, err
	}
	if err := store.Migrate(ctx, db, Component, m); err != nil {
		return nil, fmt.Errorf("writeback: %w", err)
	}
	if now == nil {
		now = time.Now
	}
	return &Outbox{db: db, now: now}, nil
}

const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

func parseTime(s string) time.Time {
	for _, l := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999"} {
		if t, err := time.Parse(l, strings.TrimSpace(s)); err == nil {
			return t.UTC()
		}
	}
	return time.Time{}
}

// Enqueue stores the items of one call as pending, due now. An item whose
// (call, kind) is already in the outbox is left alone, so enqueueing a call
// twice is harmless. It returns the items actually added.
func (o *Outbox) Enqueue(ctx context.Context, items []Item) ([]Item, error) {
	tx, err := o.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, fmt.Errorf("writeback: enqueue: %w", err)
	}
	defer tx.Rollback()
	now := formatTime(o.now())
	var added []Item
	for _, it := range items {
		pj, err := json.Marshal(it.Payload)
		if err != nil {
			return nil, fmt.Errorf("writeback: encode payload: %w", err)
		}
		res, err := tx.ExecContext(ctx, `INSERT INTO clio_outbox (call_id, kind, state, next_at, payload, created_at, updated_at)
			VALUES (?, ?, 'pending', ?, ?, ?, ?) ON CONFLICT (call_id, kind) DO NOTHING`,
			it.CallID, it.Kind.String(), now, string(pj), now, now)
		if err != nil {
			return nil, fmt.Errorf("writeback: enqueue %s of call %s: %w", it.Kind, it.CallID, err)
		}
		if n, _ := res.RowsAffected(); n == 1 {
			it.ID, _ = res.LastInsertId()
			it.State = StatePending
			added = append(added, it)
		}
	}
	if err := tx.Commit(); err != nil {
		return nil, fmt.Errorf("writeback: enqueue: %w", err)
	}
	return added, nil
}

const itemColumns = `id, call_id, kind, state, attempts, next_at, clio_id, error, payload, progress, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanItem(sc scanner) (Item, error) {
	var (
		it                                   Item
		kind, state, next, pj, prog, cr, upd string
		clioID                               sql.NullInt64
	)
	if err := sc.Scan(&it.ID, &it.CallID, &kind, &state, &it.Attempts, &next, &clioID, &it.Error, &pj, &prog, &cr, &upd); err != nil {
		return Item{}, err
	}
	it.Kind, _ = ParseKind(kind)
	it.State, _ = ParseState(state)
	it.NextAt, it.Created, it.Updated = parseTime(next), parseTime(cr), parseTime(upd)
	it.ClioID = clioID.Int64
	if err := json.Unmarshal([]byte(pj), &it.Payload); err != nil {
		return Item{}, fmt.Errorf("writeback: item %d: bad payload: %w", it.ID, err)
	}
	if err := json.Unmarshal([]byte(prog), &it.Progress); err != nil {
		return Item{}, fmt.Errorf("writeback: item %d: bad progress: %w", it.ID, err)
	}
	return it, nil
}

// List returns every item, newest first; limit <= 0 means all.
func (o *Outbox) List(ctx context.Context, limit int) ([]Item, error) {
	q := `SELECT ` + itemColumns + ` FROM clio_outbox ORDER BY id DESC`
	var args []any
	if limit > 0 {
		q += ` LIMIT ?`
		args = append(args, limit)
	}
	rows, err := o.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("writeback: list: %w", err)
	}
	defer rows.Close()
	out := []Item{}
	for rows.Next() {
		it, err := scanItem(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, it)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("writeback: list: %w", err)
	}
	return out, nil
}

// Get returns one item.
func (o *Outbox) Get(ctx context.Context, id int64) (Item, error) {
	it, err := scanItem(o.db.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM clio_outbox WHERE id = ?`, id))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, fmt.Errorf("%w: %d", ErrNotFound, id)
	}
	if err != nil {
		return Item{}, fmt.Errorf("writeback: read item %d: %w", id, err)
	}
	return it, nil
}

// Retry puts a failed item back to pending, due now, with its error and
// progress cleared (attempts are kept; a document starts over). Only failed
// items can be retried.
func (o *Outbox) Retry(ctx context.Context, id int64) (Item, error) {
	res, err := o.db.ExecContext(ctx, `UPDATE clio_outbox SET state = 'pending', error = '', progress = '{}', next_at = ?, updated_at = ?
		WHERE id = ? AND state = 'failed'`, formatTime(o.now()), formatTime(o.now()), id)
	if err != nil {
		return Item{}, fmt.Errorf("writeback: retry %d: %w", id, err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		it, err := o.Get(ctx, id)
		if err != nil {
			return Item{}, err
		}
		return it, fmt.Errorf("%w: item %d is %s", ErrNotFailed, id, it.State)
	}
	return o.Get(ctx, id)
}

// next returns the oldest pending item due at now whose call's communication is
// not itself still pending (time entries and documents link to it).
func (o *Outbox) next(ctx context.Context, now time.Time) (Item, bool, error) {
	it, err := scanItem(o.db.QueryRowContext(ctx, `SELECT `+itemColumns+` FROM clio_outbox o
		WHERE state = 'pending' AND next_at <= ? AND (kind = 'communication' OR NOT EXISTS (
			SELECT 1 FROM clio_outbox c WHERE c.call_id = o.call_id AND c.kind = 'communication' AND c.state = 'pending'))
		ORDER BY next_at, id LIMIT 1`, formatTime(now)))
	if errors.Is(err, sql.ErrNoRows) {
		return Item{}, false, nil
	}
	if err != nil {
		return Item{}, false, fmt.Errorf("writeback: next item: %w", err)
	}
	return it, true, nil
}

// nextDue is the earliest next_at of a pending item (zero: none pending).
func (o *Outbox) nextDue(ctx context.Context) (time.Time, error) {
	var s sql.NullString
	if err := o.db.QueryRowContext(ctx, `SELECT MIN(next_at) FROM clio_outbox WHERE state = 'pending'`).Scan(&s); err != nil {
		return time.Time{}, fmt.Errorf("writeback: next due: %w", err)
	}
	if !s.Valid {
		return time.Time{}, nil
	}
	return parseTime(s.String), nil
}

// communicationOf returns the state and Clio id of a call's communication item
// (StateUnknown when it has none).
func (o *Outbox) communicationOf(ctx context.Context, callID string) (State, int64, error) {
	var state string
	var id sql.NullInt64
	err := o.db.QueryRowContext(ctx, `SELECT state, clio_id FROM clio_outbox WHERE call_id = ? AND kind = 'communication'`,
		callID).Scan(&state, &id)
	if errors.Is(err, sql.ErrNoRows) {
		return StateUnknown, 0, nil
	}
	if err != nil {
		return StateUnknown, 0, fmt.Errorf("writeback: communication of %s: %w", callID, err)
	}
	st, _ := ParseState(state)
	return st, id.Int64, nil
}

// update writes an item's outcome of one send.
func (o *Outbox) update(ctx context.Context, it Item) error {
	prog, err := json.Marshal(it.Progress)
	if err != nil {
		return fmt.Errorf("writeback: encode progress: %w", err)
	}
	var clioID any
	if it.ClioID != 0 {
		clioID = it.ClioID
	}
	_, err = o.db.ExecContext(ctx, `UPDATE clio_outbox SET state = ?, attempts = ?, next_at = ?, clio_id = ?, error = ?,
		progress = ?, updated_at = ? WHERE id = ?`,
		it.State.String(), it.Attempts, formatTime(it.NextAt), clioID, it.Error, string(prog), formatTime(o.now()), it.ID)
	if err != nil {
		return fmt.Errorf("writeback: update item %d: %w", it.ID, err)
	}
	return nil
}

// Counts returns the number of items per state.
func (o *Outbox) Counts(ctx context.Context) (map[State]int, error) {
	rows, err := o.db.QueryContext(ctx, `SELECT state, COUNT(*) FROM clio_outbox GROUP BY state`)
	if err != nil {
		return nil, fmt.Errorf("writeback: count: %w", err)
	}
	defer rows.Close()
	out := map[State]int{}
	for rows.Next() {
		var s string
		var n int
		if err := rows.Scan(&s, &n); err != nil {
			return nil, fmt.Errorf("writeback: count: %w", err)
		}
		st, _ := ParseState(s)
		out[st] = n
	}
	return out, rows.Err()
}

package routing

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/store"
)

//go:embed migrations/*.sql
var migrationFS embed.FS

// Component is the name routing's migrations are recorded under.
const Component = "routing"

// Errors of the store.
var (
	ErrNotFound = errors.New("not found")
	ErrClosed   = errors.New("routing: store closed")
)

// Migrations returns the embedded schema migrations in order.
func Migrations() ([]string, error) {
	m, err := store.ReadMigrations(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("routing: %w", err)
	}
	return m, nil
}

// Migrate applies routing's migrations to db.
func Migrate(ctx context.Context, db *sql.DB) error {
	m, err := Migrations()
	if err != nil {
		return fmt.Errorf("routing: read migrations: %w", err)
	}
	return store.Migrate(ctx, db, Component, m)
}

// Store keeps the rules in SQLite and serves the current snapshot. Run polls for
// changes made by any connection; Rules is cheap and safe from any goroutine.
type Store struct {
	db   *sql.DB
	firm Firm
	log  *slog.Logger
	poll time.Duration

	snap atomic.Pointer[RuleSet]

	mu      sync.Mutex // guards closed, stop, running and reported
	closed  bool
	stop    chan struct{}
	running sync.WaitGroup
	// reported is the invalid rule/closure reasons last logged, so a bad row is
	// logged once per change, not once per reload.
	reported map[string]string
}

// Option configures a Store.
type Option func(*Store)

// WithLogger sets the logger (default: discard).
func WithLogger(l *slog.Logger) Option { return func(s *Store) { s.log = l } }

// WithPollInterval sets how often Run checks for changes (default 500ms).
func WithPollInterval(d time.Duration) Option {
	return func(s *Store) {
		if d > 0 {
			s.poll = d
		}
	}
}

// NewStore migrates db, loads the first snapshot and returns the store. It does
// not poll until Run is called.
func NewStore(ctx context.Context, db *sql.DB, firm Firm, opts ...Option) (*Store, error) {
	if _, err := policyOf(firm); err != nil {
		return nil, err
	}
	s := &Store{
		db:       db,
		firm:     firm,
		log:      slog.New(slog.DiscardHandler),
		poll:     500 * time.Millisecond,
		stop:     make(chan struct{}),
		reported: map[string]string{},
	}
	for _, o := range opts {
		o(s)
	}
	if err := Migrate(ctx, db); err != nil {
		return nil, err
	}
	if err := s.Reload(ctx); err != nil {
		return nil, err
	}
	return s, nil
}

// Rules returns the current snapshot. It never returns nil.
func (s *Store) Rules() *RuleSet { return s.snap.Load() }

// Decide routes intent on the current snapshot (see the package function).
func (s *Store) Decide(lk lookup.Result, in Intent, now time.Time) Decision {
	return Decide(lk, in, s.Rules(), now)
}

// Fallback resolves a rule's rule:NAME chain on the current snapshot (see the
// package function).
func (s *Store) Fallback(from string, now time.Time) Decision {
	return Fallback(s.Rules(), from, now)
}

// DB returns the database the store reads.
func (s *Store) DB() *sql.DB { return s.db }

// Reload reads all rules and closures and swaps in a new snapshot. Invalid rows
// are logged once per change.
func (s *Store) Reload(ctx context.Context) error {
	rules, err := s.ListRules(ctx)
	if err != nil {
		return err
	}
	closures, err := s.ListClosures(ctx)
	if err != nil {
		return err
	}
	set, err := NewRuleSet(rules, closures, s.firm)
	if err != nil {
		return err
	}
	old := s.snap.Swap(set)
	s.report(set, old == nil)
	return nil
}

func (s *Store) report(set *RuleSet, first bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := map[string]string{}
	for _, st := range set.Invalid() {
		now["rule "+st.Rule.Name] = st.Err.Error()
	}
	for _, st := range set.InvalidClosures() {
		now["closure "+st.Closure.Date] = st.Err.Error()
	}
	for key, reason := range now {
		if s.reported[key] != reason {
			s.log.Warn("routing: skipping invalid row", "row", key, "reason", reason)
		}
	}
	for key := range s.reported {
		if _, still := now[key]; !still {
			s.log.Info("routing: row no longer invalid", "row", key)
		}
	}
	s.reported = now
	n := len(set.entries)
	s.log.Info("routing: rules loaded", "rules", n-len(set.Invalid()), "invalid", len(set.Invalid()), "closures", len(set.closures), "first", first)
}

// Run polls PRAGMA data_version on one dedicated connection (the value is per
// connection and changes when another connection commits) and reloads on
// change. It returns nil when ctx is done or Close is called. A failed reload is
// logged and retried on the next poll; the old snapshot stays in use. Run holds
// one connection of db's pool for its whole life, so the pool must allow at
// least two.
func (s *Store) Run(ctx context.Context) error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return ErrClosed
	}
	s.running.Add(1)
	s.mu.Unlock()
	defer s.running.Done()

	conn, err := s.db.Conn(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return fmt.Errorf("routing: watch connection: %w", err)
	}
	defer conn.Close()
	// data_version moves on any commit by another connection (call records, the
	// Clio cache); rules_version moves only when rules or closures change.
	var lastData, lastRules int64 = -1, -1
	version := func() (int64, error) {
		var dv, rv int64
		if err := conn.QueryRowContext(ctx, "PRAGMA data_version").Scan(&dv); err != nil {
			return 0, err
		}
		if dv == lastData {
			return lastRules, nil
		}
		lastData = dv
		err := conn.QueryRowContext(ctx, "SELECT version FROM rules_version WHERE id = 1").Scan(&rv)
		return rv, err
	}
	last, err := version()
	if err != nil && ctx.Err() == nil {
		s.log.Warn("routing: data_version", "err", err)
	}
	// a change may have landed between NewStore's load and the first version read
	dirty := true
	t := time.NewTicker(s.poll)
	defer t.Stop()
	for {
		if dirty {
			if err := s.Reload(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				s.log.Warn("routing: reload failed, keeping the previous rules", "err", err)
			} else {
				dirty = false
			}
		}
		select {
		case <-ctx.Done():
			return nil
		case <-s.stop:
			return nil
		case <-t.C:
		}
		v, err := version()
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			s.log.Warn("routing: data_version", "err", err)
			continue
		}
		lastRules = v
		if v != last {
			last, dirty = v, true
		}
	}
}

// Close stops Run and waits for it to return. It is idempotent; it does not
// close the database, which the caller owns.
func (s *Store) Close() error {
	s.mu.Lock()
	if !s.closed {
		s.closed = true
		close(s.stop)
	}
	s.mu.Unlock()
	s.running.Wait()
	return nil
}

const ruleColumns = `name, staff_name, staff_id, destination, mode, caller_id, message, message_audio,
	whisper, accept_digit, ring_timeout_s, unavailable, extension, hours, time_zone, enabled,
	writeback_time_entry, writeback_non_billable, writeback_task_priority, srtp`

// ListRules reads every rule row, sorted by name. Values that do not parse
// (possible only when CHECK constraints were bypassed) come back as unknown enums
// that validation rejects.
func (s *Store) ListRules(ctx context.Context) ([]Rule, error) {
	return listRules(ctx, s.db)
}

// Statuses reads every rule row and validates the rows as a set under the
// store's firm settings, so the result is current even before the next reload
// (rows written with the sqlite3 shell). Sorted by name.
func (s *Store) Statuses(ctx context.Context) ([]RuleStatus, error) {
	rules, err := s.ListRules(ctx)
	if err != nil {
		return nil, err
	}
	set, err := NewRuleSet(rules, nil, s.firm)
	if err != nil {
		return nil, err
	}
	return set.All(), nil
}

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

func listRules(ctx context.Context, q querier) ([]Rule, error) {
	rows, err := q.QueryContext(ctx, `SELECT `+ruleColumns+` FROM rules ORDER BY name`)
	if err != nil {
		return nil, fmt.Errorf("routing: list rules: %w", err)
	}
	defer rows.Close()
	var out []Rule
	for rows.Next() {
		var (
			r                           Rule
			staffID                     sql.NullInt64
			ext                         sql.NullString
			mode, cid, unavail          string
			ringS                       int64
			enabled                     int64
			staffName, msg, audio, whis sql.NullString
			digit, hours, tz            sql.NullString
			wbTime, wbBill, wbPrio      sql.NullString
			srtp                        sql.NullString
		)
		if err := rows.Scan(&r.Name, &staffName, &staffID, &r.Destination, &mode, &cid, &msg, &audio,
			&whis, &digit, &ringS, &unavail, &ext, &hours, &tz, &enabled, &wbTime, &wbBill, &wbPrio, &srtp); err != nil {
			return nil, fmt.Errorf("routing: read rule: %w", err)
		}
		r.StaffName, r.StaffID, r.Extension = staffName.String, staffID.Int64, ext.String
		r.Message, r.MessageAudio, r.Whisper = msg.String, audio.String, whis.String
		r.AcceptDigit, r.Hours, r.TimeZone = digit.String, hours.String, tz.String
		r.Mode, _ = ParseMode(mode)
		r.CallerID, _ = ParseCallerID(cid)
		r.Unavailable, _ = ParseUnavailable(unavail)
		r.RingTimeout = time.Duration(ringS) * time.Second
		r.Enabled = enabled != 0
		r.Writeback.TimeEntry, _ = parseToggle(wbTime.String)
		r.Writeback.NonBillable, _ = parseToggle(wbBill.String)
		r.Writeback.TaskPriority = wbPrio.String
		r.SRTP, _ = parseToggle(srtp.String)
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("routing: list rules: %w", err)
	}
	return out, nil
}

func ruleArgs(r Rule) []any {
	var staffID, ext any
	if r.StaffID != 0 {
		staffID = r.StaffID
	}
	if r.Extension != "" {
		ext = r.Extension
	}
	enabled := 0
	if r.Enabled {
		enabled = 1
	}
	return []any{r.Name, r.StaffName, staffID, r.Destination, r.Mode.String(), r.CallerID.String(),
		r.Message, r.MessageAudio, r.Whisper, r.AcceptDigit, int64(r.RingTimeout / time.Second),
		r.Unavailable.String(), ext, r.Hours, r.TimeZone, enabled,
		r.Writeback.TimeEntry.String(), r.Writeback.NonBillable.String(), r.Writeback.TaskPriority, r.SRTP.String()}
}

const insertRule = `INSERT INTO rules (` + ruleColumns + `) VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?)`

// Put validates r against the other rules and inserts it, or replaces the rule
// with the same name when replace is true. The check and the write run in one
// transaction.
func (s *Store) Put(ctx context.Context, r Rule, replace bool) error {
	return s.change(ctx, func(rules []Rule) ([]Rule, error) {
		for i := range rules {
			if nameKey(rules[i].Name) == nameKey(r.Name) {
				if !replace {
					return nil, &FieldError{Rule: r.Name, Field: "name", Err: errors.New("duplicate name: the rule exists (use rules set)")}
				}
				rules[i] = r
				return rules, nil
			}
		}
		if replace {
			return nil, fmt.Errorf("rule %q: %w", r.Name, ErrNotFound)
		}
		return append(rules, r), nil
	})
}

// Delete removes the rule name; it fails when another rule falls back to it.
func (s *Store) Delete(ctx context.Context, name string) error {
	return s.change(ctx, func(rules []Rule) ([]Rule, error) {
		for i := range rules {
			if nameKey(rules[i].Name) == nameKey(name) {
				for _, o := range rules {
					if o.Unavailable.Kind == UnavailableRule && nameKey(o.Unavailable.Rule) == nameKey(name) && nameKey(o.Name) != nameKey(name) {
						return nil, fmt.Errorf("rule %q is the unavailable fallback of rule %q; change that first", rules[i].Name, o.Name)
					}
				}
				return append(rules[:i:i], rules[i+1:]...), nil
			}
		}
		return nil, fmt.Errorf("rule %q: %w", name, ErrNotFound)
	})
}

// change applies edit to the full rule list in a transaction, validates the
// rules the edit touched (rules that were already invalid may stay so) and
// writes the difference.
func (s *Store) change(ctx context.Context, edit func([]Rule) ([]Rule, error)) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("routing: begin: %w", err)
	}
	defer tx.Rollback()
	before, err := listRules(ctx, tx)
	if err != nil {
		return err
	}
	after, err := edit(append([]Rule(nil), before...))
	if err != nil {
		return err
	}
	if err := validateChange(before, after, s.firm); err != nil {
		return err
	}
	if err := writeDiff(ctx, tx, before, after); err != nil {
		return err
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("routing: commit: %w", err)
	}
	return s.Reload(ctx)
}

// validateChange fails when a rule that is new or changed in after is invalid,
// or when a rule that was valid in before became invalid (a dangling fallback).
func validateChange(before, after []Rule, firm Firm) error {
	pol, err := policyOf(firm)
	if err != nil {
		return err
	}
	old := map[string]Rule{}
	wasValid := map[string]bool{}
	for i, c := range checkSet(before, pol) {
		old[nameKey(before[i].Name)] = before[i]
		wasValid[nameKey(before[i].Name)] = c.err == nil
	}
	var errs []error
	for i, c := range checkSet(after, pol) {
		if c.err == nil {
			continue
		}
		k := nameKey(after[i].Name)
		prev, existed := old[k]
		if !existed || prev != after[i] || wasValid[k] {
			errs = append(errs, c.err)
		}
	}
	return errors.Join(errs...)
}

func writeDiff(ctx context.Context, q querier, before, after []Rule) error {
	keep := map[string]Rule{}
	for _, r := range after {
		keep[nameKey(r.Name)] = r
	}
	old := map[string]Rule{}
	for _, r := range before {
		old[nameKey(r.Name)] = r
		if _, ok := keep[nameKey(r.Name)]; !ok {
			if _, err := q.ExecContext(ctx, `DELETE FROM rules WHERE name = ?`, r.Name); err != nil {
				return fmt.Errorf("routing: delete rule %q: %w", r.Name, err)
			}
		}
	}
	// Free unique extensions and staff ids of changed rules first so that two
	// rules can swap them within one change.
	for _, r := range after {
		if o, ok := old[nameKey(r.Name)]; ok && o != r {
			if _, err := q.ExecContext(ctx, `UPDATE rules SET extension = NULL, staff_id = NULL WHERE name = ?`, o.Name); err != nil {
				return fmt.Errorf("routing: update rule %q: %w", r.Name, err)
			}
		}
	}
	for _, r := range after {
		o, ok := old[nameKey(r.Name)]
		if ok && o == r {
			continue
		}
		if ok {
			if _, err := q.ExecContext(ctx, `DELETE FROM rules WHERE name = ?`, o.Name); err != nil {
				return fmt.Errorf("routing: update rule %q: %w", r.Name, err)
			}
		}
		if _, err := q.ExecContext(ctx, insertRule, ruleArgs(r)...); err != nil {
			return fmt.Errorf("routing: write rule %q: %w", r.Name, err)
		}
	}
	return nil
}

// ListClosures reads every closure row sorted by date (bad dates included; the
// snapshot drops them).
func (s *Store) ListClosures(ctx context.Context) ([]Closure, error) {
	return listClosures(ctx, s.db)
}

func listClosures(ctx context.Context, q querier) ([]Closure, error) {
	rows, err := q.QueryContext(ctx, `SELECT date, note FROM closures ORDER BY date`)
	if err != nil {
		return nil, fmt.Errorf("routing: list closures: %w", err)
	}
	defer rows.Close()
	var out []Closure
	for rows.Next() {
		var c Closure
		var note sql.NullString
		if err := rows.Scan(&c.Date, &note); err != nil {
			return nil, fmt.Errorf("routing: read closure: %w", err)
		}
		c.Note = note.String
		out = append(out, c)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("routing: list closures: %w", err)
	}
	return out, nil
}

// AddClosure adds a closure or updates the note of an existing one; it reports
// whether the date was new.
func (s *Store) AddClosure(ctx context.Context, c Closure) (added bool, err error) {
	d, err := ParseDate(c.Date)
	if err != nil {
		return false, &FieldError{Field: "date", Err: err}
	}
	if err := checkText(c.Note); err != nil {
		return false, &FieldError{Field: "note", Err: err}
	}
	res, err := s.db.ExecContext(ctx, `INSERT INTO closures (date, note) VALUES (?, ?) ON CONFLICT (date) DO NOTHING`, d, c.Note)
	if err != nil {
		return false, fmt.Errorf("routing: add closure: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 1 {
		return true, s.Reload(ctx)
	}
	if _, err := s.db.ExecContext(ctx, `UPDATE closures SET note = ? WHERE date = ?`, c.Note, d); err != nil {
		return false, fmt.Errorf("routing: update closure: %w", err)
	}
	return false, s.Reload(ctx)
}

// DeleteClosure removes the closure on date.
func (s *Store) DeleteClosure(ctx context.Context, date string) error {
	d, err := ParseDate(date)
	if err != nil {
		d = date // let a hand-made bad row be removed too
	}
	res, err := s.db.ExecContext(ctx, `DELETE FROM closures WHERE date = ?`, d)
	if err != nil {
		return fmt.Errorf("routing: delete closure: %w", err)
	}
	if n, _ := res.RowsAffected(); n == 0 {
		return fmt.Errorf("closure %s: %w", date, ErrNotFound)
	}
	return s.Reload(ctx)
}

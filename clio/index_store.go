package clio

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/matterline/matterline/store"
)

// indexMigrations are the phone index's tables (component "clio_index",
// append-only). gen is the sync generation that last wrote a row: a full pass
// deletes what it did not see.
var indexMigrations = []string{
	`CREATE TABLE clio_index_contacts (
		id INTEGER PRIMARY KEY,
		name TEXT NOT NULL,
		phones TEXT NOT NULL,
		gen INTEGER NOT NULL
	);
	CREATE TABLE clio_index_phones (
		number TEXT NOT NULL,
		contact_id INTEGER NOT NULL REFERENCES clio_index_contacts(id) ON DELETE CASCADE,
		ext TEXT NOT NULL DEFAULT '',
		raw TEXT NOT NULL,
		PRIMARY KEY (number, contact_id, ext)
	);
	CREATE INDEX clio_index_phones_contact ON clio_index_phones(contact_id);
	CREATE TABLE clio_index_matters (
		id INTEGER PRIMARY KEY,
		client_id INTEGER NOT NULL,
		matter TEXT NOT NULL,
		gen INTEGER NOT NULL
	);
	CREATE INDEX clio_index_matters_client ON clio_index_matters(client_id);
	CREATE TABLE clio_index_state (
		key TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
}

// storedContact is a contact row of the index.
type storedContact struct {
	ID     int64
	Name   string
	Phones []indexPhone
}

type indexStore struct {
	db     *sql.DB
	sealer *Sealer
}

func openIndexStore(ctx context.Context, st *Storage) (*indexStore, error) {
	if err := store.Migrate(ctx, st.db, "clio_index", indexMigrations); err != nil {
		return nil, fmt.Errorf("clio index: %w", err)
	}
	return &indexStore{db: st.db, sealer: st.sealer}, nil
}

func (s *indexStore) loadAll(ctx context.Context) ([]storedContact, []Matter, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id, name, phones FROM clio_index_contacts ORDER BY id`)
	if err != nil {
		return nil, nil, fmt.Errorf("clio index: load contacts: %w", err)
	}
	var cs []storedContact
	for rows.Next() {
		var c storedContact
		var phones string
		if err := rows.Scan(&c.ID, &c.Name, &phones); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("clio index: load contacts: %w", err)
		}
		if err := json.Unmarshal([]byte(phones), &c.Phones); err != nil {
			rows.Close()
			return nil, nil, fmt.Errorf("clio index: contact %d phones: %w", c.ID, err)
		}
		cs = append(cs, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, nil, fmt.Errorf("clio index: load contacts: %w", err)
	}
	rows, err = s.db.QueryContext(ctx, `SELECT matter FROM clio_index_matters ORDER BY id`)
	if err != nil {
		return nil, nil, fmt.Errorf("clio index: load matters: %w", err)
	}
	defer rows.Close()
	var ms []Matter
	for rows.Next() {
		var raw string
		var m Matter
		if err := rows.Scan(&raw); err != nil {
			return nil, nil, fmt.Errorf("clio index: load matters: %w", err)
		}
		if err := json.Unmarshal([]byte(raw), &m); err != nil {
			return nil, nil, fmt.Errorf("clio index: matter: %w", err)
		}
		if m.Client == nil {
			continue
		}
		ms = append(ms, m)
	}
	return cs, ms, rows.Err()
}

// write applies one change in one transaction: contacts and matters upserted
// (marked gen), contact and matter ids deleted, and the sync state saved when
// it is not nil (a page and its cursor are stored together, so an interrupted
// sync resumes exactly after the last stored page).
func (s *indexStore) write(ctx context.Context, cs []storedContact, ms []Matter, delContacts, delMatters []int64,
	gen int64, state *IndexSyncState) error {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("clio index: write: %w", err)
	}
	defer tx.Rollback()
	for _, c := range cs {
		phones, err := json.Marshal(c.Phones)
		if err != nil {
			return fmt.Errorf("clio index: encode phones: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO clio_index_contacts (id, name, phones, gen) VALUES (?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET name=excluded.name, phones=excluded.phones, gen=excluded.gen`,
			c.ID, c.Name, string(phones), gen); err != nil {
			return fmt.Errorf("clio index: write contact: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM clio_index_phones WHERE contact_id = ?`, c.ID); err != nil {
			return fmt.Errorf("clio index: write phones: %w", err)
		}
		for _, p := range c.Phones {
			if p.Number == "" {
				continue
			}
			if _, err := tx.ExecContext(ctx, `INSERT OR IGNORE INTO clio_index_phones (number, contact_id, ext, raw)
				VALUES (?,?,?,?)`, p.Number, c.ID, p.Ext, p.Raw); err != nil {
				return fmt.Errorf("clio index: write phones: %w", err)
			}
		}
	}
	for _, m := range ms {
		raw, err := json.Marshal(m)
		if err != nil {
			return fmt.Errorf("clio index: encode matter: %w", err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO clio_index_matters (id, client_id, matter, gen) VALUES (?,?,?,?)
			ON CONFLICT(id) DO UPDATE SET client_id=excluded.client_id, matter=excluded.matter, gen=excluded.gen`,
			m.ID, m.Client.ID, string(raw), gen); err != nil {
			return fmt.Errorf("clio index: write matter: %w", err)
		}
	}
	for _, id := range delContacts {
		if _, err := tx.ExecContext(ctx, `DELETE FROM clio_index_contacts WHERE id = ?`, id); err != nil {
			return fmt.Errorf("clio index: delete contact: %w", err)
		}
	}
	for _, id := range delMatters {
		if _, err := tx.ExecContext(ctx, `DELETE FROM clio_index_matters WHERE id = ?`, id); err != nil {
			return fmt.Errorf("clio index: delete matter: %w", err)
		}
	}
	if state != nil {
		if err := putState(ctx, tx, syncStateKey, state); err != nil {
			return err
		}
	}
	if err := tx.Commit(); err != nil {
		return fmt.Errorf("clio index: commit: %w", err)
	}
	return nil
}

// prune deletes the rows a completed full pass of generation gen did not see,
// saves state, and returns the deleted ids.
func (s *indexStore) prune(ctx context.Context, gen int64, state *IndexSyncState) (contacts, matters []int64, err error) {
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return nil, nil, fmt.Errorf("clio index: prune: %w", err)
	}
	defer tx.Rollback()
	ids := func(q string) ([]int64, error) {
		rows, err := tx.QueryContext(ctx, q, gen)
		if err != nil {
			return nil, err
		}
		defer rows.Close()
		var out []int64
		for rows.Next() {
			var id int64
			if err := rows.Scan(&id); err != nil {
				return nil, err
			}
			out = append(out, id)
		}
		return out, rows.Err()
	}
	if contacts, err = ids(`SELECT id FROM clio_index_contacts WHERE gen < ?`); err != nil {
		return nil, nil, fmt.Errorf("clio index: prune: %w", err)
	}
	if matters, err = ids(`SELECT id FROM clio_index_matters WHERE gen < ?`); err != nil {
		return nil, nil, fmt.Errorf("clio index: prune: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM clio_index_contacts WHERE gen < ?`, gen); err != nil {
		return nil, nil, fmt.Errorf("clio index: prune: %w", err)
	}
	if _, err := tx.ExecContext(ctx, `DELETE FROM clio_index_matters WHERE gen < ?`, gen); err != nil {
		return nil, nil, fmt.Errorf("clio index: prune: %w", err)
	}
	if err := putState(ctx, tx, syncStateKey, state); err != nil {
		return nil, nil, err
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, fmt.Errorf("clio index: prune: %w", err)
	}
	return contacts, matters, nil
}

const (
	syncStateKey = "sync"
	hooksKey     = "webhooks"
)

type execer interface {
	ExecContext(ctx context.Context, q string, args ...any) (sql.Result, error)
}

func putState(ctx context.Context, db execer, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return fmt.Errorf("clio index: encode %s: %w", key, err)
	}
	if _, err := db.ExecContext(ctx, `INSERT INTO clio_index_state (key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, key, string(raw)); err != nil {
		return fmt.Errorf("clio index: save %s: %w", key, err)
	}
	return nil
}

func (s *indexStore) getState(ctx context.Context, key string, v any) error {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM clio_index_state WHERE key = ?`, key).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("clio index: load %s: %w", key, err)
	}
	if err := json.Unmarshal([]byte(raw), v); err != nil {
		return fmt.Errorf("clio index: decode %s: %w", key, err)
	}
	return nil
}

// SyncPhase is where a full pass is.
type SyncPhase string

const (
	PhaseIdle     SyncPhase = ""         // no pass in progress
	PhaseContacts SyncPhase = "contacts" // paging through every contact
	PhaseMatters  SyncPhase = "matters"  // paging through the matters whose status counts
)

// IndexSyncState is the progress of the index's syncs, stored with every page so
// that an interrupted pass resumes from its cursor.
type IndexSyncState struct {
	// Gen is the generation of the pass in progress (or of the last one).
	Gen   int64     `json:"gen"`
	Phase SyncPhase `json:"phase,omitempty"`
	// Next is the cursor: the meta.paging.next URL of the last stored page.
	Next      string    `json:"next,omitempty"`
	Contacts  int       `json:"contacts"`
	Matters   int       `json:"matters"`
	Requests  int       `json:"requests"`
	StartedAt time.Time `json:"started_at,omitzero"`
	// CompleteGen is the generation of the last completed pass (0: never).
	CompleteGen int64     `json:"complete_gen"`
	CompletedAt time.Time `json:"completed_at,omitzero"`
	// PolledAt is the updated_since watermark of the next poll.
	PolledAt time.Time `json:"polled_at,omitzero"`
}

func (s *indexStore) loadSyncState(ctx context.Context) (IndexSyncState, error) {
	var st IndexSyncState
	err := s.getState(ctx, syncStateKey, &st)
	return st, err
}

// SyncState returns the stored sync progress.
func (ix *Index) SyncState(ctx context.Context) (IndexSyncState, error) {
	return ix.st.loadSyncState(ctx)
}

package records

import (
	"context"
	"database/sql"
	"embed"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/matterline/matterline/store"
)

// Component is the name under which the records migrations are registered in
// schema_migrations.
const Component = "records"

// ErrNotFound is returned by Get and Delete when no row has the id.
var ErrNotFound = errors.New("not found")

// ErrInvalid wraps every refusal of a record or filter that cannot be stored.
var ErrInvalid = errors.New("records: invalid")

//go:embed migrations/*.sql
var migrationFS embed.FS

// Migrations returns the embedded schema migrations, in order. They are
// append-only: a released file is never edited, a change is a new file.
func Migrations() ([]string, error) {
	m, err := store.ReadMigrations(migrationFS, "migrations")
	if err != nil {
		return nil, fmt.Errorf("records: %w", err)
	}
	return m, nil
}

// Migrate creates or upgrades the records tables in db. It is safe to call more
// than once and from both stores; NewCallStore and NewMessageStore call it.
func Migrate(ctx context.Context, db *sql.DB) error {
	m, err := Migrations()
	if err != nil {
		return err
	}
	if err := store.Migrate(ctx, db, Component, m); err != nil {
		return fmt.Errorf("records: %w", err)
	}
	return nil
}

// timeLayout is how times are stored: UTC, fixed width, milliseconds, so that text
// order is time order and SQLite's date functions read it.
const timeLayout = "2006-01-02T15:04:05.000Z"

func formatTime(t time.Time) string { return t.UTC().Format(timeLayout) }

// nullTime stores the zero time as NULL.
func nullTime(t time.Time) sql.NullString {
	if t.IsZero() {
		return sql.NullString{}
	}
	return sql.NullString{String: formatTime(t), Valid: true}
}

// parseTime reads a stored time; rows written by hand with the sqlite3 shell may use
// any of SQLite's usual layouts.
func parseTime(s string) (time.Time, error) {
	s = strings.TrimSpace(s)
	for _, layout := range []string{time.RFC3339Nano, "2006-01-02 15:04:05.999999999", "2006-01-02T15:04:05.999999999", "2006-01-02"} {
		if t, err := time.Parse(layout, s); err == nil {
			return t.UTC(), nil
		}
	}
	return time.Time{}, fmt.Errorf("records: bad stored time %q", s)
}

func parseNullTime(ns sql.NullString) (time.Time, error) {
	if !ns.Valid || ns.String == "" {
		return time.Time{}, nil
	}
	return parseTime(ns.String)
}

// nullID stores an absent (zero) Clio id as NULL.
func nullID(id int64) sql.NullInt64 {
	return sql.NullInt64{Int64: id, Valid: id != 0}
}

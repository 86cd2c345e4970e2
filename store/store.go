// Package store opens matterline's SQLite database (modernc.org/sqlite, pure Go) and
// applies the schema migrations that each package embeds. One file holds rules,
// Clio tokens and cache, call records and messages; every package owns its own
// tables and registers its own migrations under its own component name.
package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io/fs"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"sort"
	"time"

	_ "modernc.org/sqlite" // registers the "sqlite" driver
)

// ErrMigration wraps a failed schema migration.
var ErrMigration = errors.New("store: migration failed")

// Open opens (creating if needed) the database file at path with WAL journaling, a
// busy timeout and foreign keys on. A new file is created with mode 0600 because it
// holds OAuth tokens; an existing file that others can read is tightened to 0600.
func Open(path string) (*sql.DB, error) {
	if path == "" {
		return nil, errors.New("store: empty database path")
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("store: create directory: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	st, err := f.Stat()
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("store: stat %s: %w", path, err)
	}
	if st.Mode().Perm()&0o077 != 0 {
		if err := os.Chmod(path, 0o600); err != nil {
			return nil, fmt.Errorf("store: chmod %s: %w", path, err)
		}
	}
	q := url.Values{}
	q.Add("_pragma", "busy_timeout(5000)")
	q.Add("_pragma", "journal_mode(WAL)")
	q.Add("_pragma", "foreign_keys(ON)")
	q.Add("_pragma", "synchronous(NORMAL)")
	q.Set("_time_format", "sqlite")
	db, err := sql.Open("sqlite", "file:"+path+"?"+q.Encode())
	if err != nil {
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := db.PingContext(ctx); err != nil {
		db.Close()
		return nil, fmt.Errorf("store: open %s: %w", path, err)
	}
	// WAL and SHM side files inherit the umask; keep them private too.
	for _, side := range []string{path + "-wal", path + "-shm"} {
		if _, err := os.Stat(side); err == nil {
			_ = os.Chmod(side, 0o600)
		}
	}
	return db, nil
}

// ReadMigrations returns the .sql files of dir in fsys (a package's embedded
// migrations directory), in name order: the list Migrate takes.
func ReadMigrations(fsys fs.FS, dir string) ([]string, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.sql"))
	if err != nil {
		return nil, fmt.Errorf("list migrations: %w", err)
	}
	sort.Strings(names)
	out := make([]string, 0, len(names))
	for _, n := range names {
		b, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("read migration %s: %w", n, err)
		}
		out = append(out, string(b))
	}
	return out, nil
}

// Migrate applies, in order and each in its own transaction, the migrations of one
// component that the database has not seen yet. Migration i (0-based) is recorded as
// version i+1 in schema_migrations; migrations are append-only.
func Migrate(ctx context.Context, db *sql.DB, component string, migrations []string) error {
	if _, err := db.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (
		component TEXT NOT NULL,
		version INTEGER NOT NULL,
		applied_at TEXT NOT NULL DEFAULT (strftime('%Y-%m-%dT%H:%M:%fZ','now')),
		PRIMARY KEY (component, version))`); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMigration, component, err)
	}
	var have int
	if err := db.QueryRowContext(ctx,
		`SELECT COALESCE(MAX(version),0) FROM schema_migrations WHERE component=?`, component).Scan(&have); err != nil {
		return fmt.Errorf("%w: %s: %v", ErrMigration, component, err)
	}
	for i := have; i < len(migrations); i++ {
		tx, err := db.BeginTx(ctx, nil)
		if err != nil {
			return fmt.Errorf("%w: %s v%d: %v", ErrMigration, component, i+1, err)
		}
		if _, err := tx.ExecContext(ctx, migrations[i]); err != nil {
			tx.Rollback()
			return fmt.Errorf("%w: %s v%d: %v", ErrMigration, component, i+1, err)
		}
		if _, err := tx.ExecContext(ctx,
			`INSERT INTO schema_migrations(component, version) VALUES(?, ?)`, component, i+1); err != nil {
			tx.Rollback()
			return fmt.Errorf("%w: %s v%d: %v", ErrMigration, component, i+1, err)
		}
		if err := tx.Commit(); err != nil {
			return fmt.Errorf("%w: %s v%d: %v", ErrMigration, component, i+1, err)
		}
	}
	return nil
}

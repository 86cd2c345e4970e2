package store

import (
	"context"
	"os"
	"path/filepath"
	"testing"
)

func TestOpenCreates0600AndMigrates(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "m.db")
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v, want 0600", st.Mode().Perm())
	}
	var mode string
	if err := db.QueryRow(`PRAGMA journal_mode`).Scan(&mode); err != nil || mode != "wal" {
		t.Fatalf("journal_mode %q %v", mode, err)
	}
	ctx := context.Background()
	m := []string{`CREATE TABLE a(x INTEGER)`, `ALTER TABLE a ADD COLUMN y TEXT`}
	if err := Migrate(ctx, db, "t", m); err != nil {
		t.Fatal(err)
	}
	// Applying again is a no-op; adding one applies only the new one.
	if err := Migrate(ctx, db, "t", append(m, `CREATE TABLE b(z INTEGER)`)); err != nil {
		t.Fatal(err)
	}
	var n int
	if err := db.QueryRow(`SELECT COUNT(*) FROM schema_migrations WHERE component='t'`).Scan(&n); err != nil || n != 3 {
		t.Fatalf("versions %d %v", n, err)
	}
	if err := Migrate(ctx, db, "bad", []string{`CREATE TABLE`}); err == nil {
		t.Fatal("bad migration accepted")
	}
}

func TestOpenTightensLoosePermissions(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.db")
	if err := os.WriteFile(path, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	db, err := Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
	st, _ := os.Stat(path)
	if st.Mode().Perm() != 0o600 {
		t.Fatalf("mode %v", st.Mode().Perm())
	}
}

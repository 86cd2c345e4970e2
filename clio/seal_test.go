package clio

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/store"
)

const (
	sealAccess  = "access-SECRET-0123456789abcdef"
	sealRefresh = "refresh-SECRET-fedcba9876543210"
)

func testKey(b byte) []byte { return bytes.Repeat([]byte{b}, 32) }

func testSealer(t *testing.T, key, old []byte) *Sealer {
	t.Helper()
	s, err := NewSealer(key, old)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// openSealDB opens a fresh database file; storages over it share the rows.
func openSealDB(t *testing.T) (*sql.DB, string) {
	t.Helper()
	path := filepath.Join(t.TempDir(), "matterline.db")
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db, path
}

func storageWith(t *testing.T, db *sql.DB, s *Sealer) *Storage {
	t.Helper()
	st, err := OpenStorage(context.Background(), db, WithSealer(s))
	if err != nil {
		t.Fatal(err)
	}
	return st
}

func saveTestToken(t *testing.T, st *Storage) {
	t.Helper()
	err := st.SaveToken(context.Background(), StoredToken{Region: RegionUS, AccessToken: sealAccess,
		RefreshToken: sealRefresh, Expiry: time.Unix(2e9, 0), AccountID: 7, AccountName: "Ada"})
	if err != nil {
		t.Fatal(err)
	}
}

// rawTokens reads the stored columns as they are in the database.
func rawTokens(t *testing.T, db *sql.DB) (access, refresh string) {
	t.Helper()
	if err := db.QueryRow(`SELECT access_token, refresh_token FROM clio_tokens WHERE id = 1`).
		Scan(&access, &refresh); err != nil {
		t.Fatal(err)
	}
	return access, refresh
}

func TestSealedTokensNotInDatabase(t *testing.T) {
	db, path := openSealDB(t)
	st := storageWith(t, db, testSealer(t, testKey(1), nil))
	saveTestToken(t, st)

	access, refresh := rawTokens(t, db)
	for _, v := range []string{access, refresh} {
		if !strings.HasPrefix(v, sealPrefix+st.sealer.KeyID()+":") {
			t.Errorf("stored value %q lacks the version and key id prefix", v)
		}
		if strings.Contains(v, "SECRET") {
			t.Errorf("stored value holds the token: %q", v)
		}
	}
	// The file itself (and its WAL) holds no token bytes.
	db.Exec(`PRAGMA wal_checkpoint(TRUNCATE)`)
	for _, p := range []string{path, path + "-wal"} {
		b, err := os.ReadFile(p)
		if err != nil && !errors.Is(err, os.ErrNotExist) {
			t.Fatal(err)
		}
		if bytes.Contains(b, []byte(sealAccess)) || bytes.Contains(b, []byte(sealRefresh)) {
			t.Errorf("%s holds a token in plain text", filepath.Base(p))
		}
	}
	// A random nonce per write: the same token seals differently.
	saveTestToken(t, st)
	if a2, _ := rawTokens(t, db); a2 == access {
		t.Error("two writes of the same token gave the same sealed value")
	}
}

func TestSealRoundTrip(t *testing.T) {
	db, _ := openSealDB(t)
	st := storageWith(t, db, testSealer(t, testKey(1), nil))
	saveTestToken(t, st)
	got, err := st.LoadToken(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	if got.AccessToken != sealAccess || got.RefreshToken != sealRefresh || got.AccountName != "Ada" || got.Region != RegionUS {
		t.Errorf("round trip = %+v", got)
	}
	// An empty refresh token stays empty.
	if err := st.SaveToken(context.Background(), StoredToken{Region: RegionUS, AccessToken: sealAccess}); err != nil {
		t.Fatal(err)
	}
	if _, r := rawTokens(t, db); r != "" {
		t.Errorf("empty refresh token stored as %q", r)
	}
	if got, err := st.LoadToken(context.Background()); err != nil || got.RefreshToken != "" || got.AccessToken != sealAccess {
		t.Errorf("load = %+v, %v", got, err)
	}
}

func TestSealWrongKey(t *testing.T) {
	db, _ := openSealDB(t)
	saveTestToken(t, storageWith(t, db, testSealer(t, testKey(1), nil)))

	for name, s := range map[string]*Sealer{
		"other key": testSealer(t, testKey(2), nil),
		"no key":    nil,
	} {
		t.Run(name, func(t *testing.T) {
			_, err := storageWith(t, db, s).LoadToken(context.Background())
			if !errors.Is(err, ErrTokensSealed) {
				t.Fatalf("err = %v, want ErrTokensSealed", err)
			}
			msg := err.Error()
			if !strings.Contains(msg, "reconnect or set the old key") {
				t.Errorf("message %q does not say what to do", msg)
			}
			if strings.Contains(msg, sealAccess) || strings.Contains(msg, sealRefresh) {
				t.Errorf("message leaks the token: %q", msg)
			}
		})
	}

	// A tampered value with the right key id does not authenticate.
	access, _ := rawTokens(t, db)
	b := []byte(access)
	b[len(b)-2] ^= 'A' ^ 'B'
	if b[len(b)-2] == access[len(access)-2] {
		b[len(b)-2] = 'C'
	}
	if _, err := db.Exec(`UPDATE clio_tokens SET access_token = ?`, string(b)); err != nil {
		t.Fatal(err)
	}
	if _, err := storageWith(t, db, testSealer(t, testKey(1), nil)).LoadToken(context.Background()); !errors.Is(err, ErrTokensSealed) {
		t.Errorf("tampered: err = %v", err)
	}
}

func TestSealRotation(t *testing.T) {
	db, _ := openSealDB(t)
	ctx := context.Background()
	saveTestToken(t, storageWith(t, db, testSealer(t, testKey(1), nil)))

	// New key, old key kept for reading.
	rot := storageWith(t, db, testSealer(t, testKey(2), testKey(1)))
	got, err := rot.LoadToken(ctx)
	if err != nil || got.AccessToken != sealAccess || got.RefreshToken != sealRefresh {
		t.Fatalf("load with old key = %+v, %v", got, err)
	}
	// The next write seals with the new key.
	if err := rot.SaveToken(ctx, got); err != nil {
		t.Fatal(err)
	}
	newID := rot.sealer.KeyID()
	if a, r := rawTokens(t, db); !strings.HasPrefix(a, sealPrefix+newID+":") || !strings.HasPrefix(r, sealPrefix+newID+":") {
		t.Errorf("after write: %q %q not sealed with the new key", a, r)
	}
	// Now the new key alone opens them; the old alone does not.
	if _, err := storageWith(t, db, testSealer(t, testKey(2), nil)).LoadToken(ctx); err != nil {
		t.Errorf("new key alone: %v", err)
	}
	if _, err := storageWith(t, db, testSealer(t, testKey(1), nil)).LoadToken(ctx); !errors.Is(err, ErrTokensSealed) {
		t.Errorf("old key alone: err = %v", err)
	}
}

func TestResealAfterRotation(t *testing.T) {
	db, _ := openSealDB(t)
	ctx := context.Background()
	saveTestToken(t, storageWith(t, db, testSealer(t, testKey(1), nil)))
	rot := storageWith(t, db, testSealer(t, testKey(2), testKey(1)))
	if done, err := rot.Reseal(ctx); err != nil || !done {
		t.Fatalf("reseal = %v, %v", done, err)
	}
	if done, err := rot.Reseal(ctx); err != nil || done {
		t.Errorf("second reseal = %v, %v; want nothing to do", done, err)
	}
	if _, err := storageWith(t, db, testSealer(t, testKey(2), nil)).LoadToken(ctx); err != nil {
		t.Errorf("new key alone after reseal: %v", err)
	}
	// Without a token or a key: nothing to do.
	if err := rot.DeleteToken(ctx); err != nil {
		t.Fatal(err)
	}
	if done, err := rot.Reseal(ctx); err != nil || done {
		t.Errorf("reseal without token = %v, %v", done, err)
	}
	if done, err := storageWith(t, db, nil).Reseal(ctx); err != nil || done {
		t.Errorf("reseal without key = %v, %v", done, err)
	}
}

func TestSealLegacyPlainRow(t *testing.T) {
	db, _ := openSealDB(t)
	ctx := context.Background()
	plain := storageWith(t, db, nil)
	saveTestToken(t, plain)
	if a, _ := rawTokens(t, db); a != sealAccess {
		t.Fatalf("without a key the token is stored as %q, want plain text", a)
	}

	sealed := storageWith(t, db, testSealer(t, testKey(1), nil))
	got, err := sealed.LoadToken(ctx)
	if err != nil || got.AccessToken != sealAccess || got.RefreshToken != sealRefresh {
		t.Fatalf("legacy row with a key = %+v, %v", got, err)
	}
	if err := sealed.SaveToken(ctx, got); err != nil {
		t.Fatal(err)
	}
	if a, r := rawTokens(t, db); !isSealed(a) || !isSealed(r) {
		t.Errorf("legacy row not sealed at the next write: %q %q", a, r)
	}
	if got, err := sealed.LoadToken(ctx); err != nil || got.AccessToken != sealAccess {
		t.Errorf("after sealing: %+v, %v", got, err)
	}
}

func TestSealerFromEnv(t *testing.T) {
	key := testKey(3)
	b64, hx := base64.StdEncoding.EncodeToString(key), hex.EncodeToString(key)
	want := testSealer(t, key, nil).KeyID()
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }

	for name, v := range map[string]string{"base64": b64, "hex": hx, "base64 newline": b64 + "\n",
		"raw url base64": base64.RawURLEncoding.EncodeToString(key)} {
		s, err := SealerFromEnv(env(map[string]string{EnvSecretKey: v}))
		if err != nil || s == nil || s.KeyID() != want {
			t.Errorf("%s: sealer %v, %v", name, s, err)
		}
	}
	if s, err := SealerFromEnv(env(nil)); s != nil || err != nil {
		t.Errorf("no key: %v, %v", s, err)
	}
	_, err := SealerFromEnv(env(map[string]string{EnvSecretKey: "too-short-secret"}))
	if err == nil || strings.Contains(err.Error(), "too-short-secret") {
		t.Errorf("bad key: err = %v (must not echo the value)", err)
	}

	// systemd credentials, with the old key beside the new one.
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, CredentialSecretKey), []byte(b64+"\n"), 0o600)
	os.WriteFile(filepath.Join(dir, CredentialKeyOld), []byte(hex.EncodeToString(testKey(4))), 0o600)
	s, err := SealerFromEnv(env(map[string]string{"CREDENTIALS_DIRECTORY": dir}))
	if err != nil || s == nil || s.KeyID() != want || s.old == nil || s.old.id != testSealer(t, testKey(4), nil).KeyID() {
		t.Errorf("credentials: %+v, %v", s, err)
	}
	// The environment wins over the credential.
	s, err = SealerFromEnv(env(map[string]string{"CREDENTIALS_DIRECTORY": dir, EnvSecretKey: hex.EncodeToString(testKey(5))}))
	if err != nil || s.KeyID() == want {
		t.Errorf("env over credential: %v, %v", s, err)
	}
}

package clio

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/store"
)

// migrations are the clio component's tables (append-only).
var migrations = []string{
	`CREATE TABLE clio_tokens (
		id INTEGER PRIMARY KEY CHECK (id = 1),
		region TEXT NOT NULL,
		access_token TEXT NOT NULL,
		refresh_token TEXT NOT NULL DEFAULT '',
		token_type TEXT NOT NULL DEFAULT 'bearer',
		expiry_unix INTEGER NOT NULL DEFAULT 0,
		account_id INTEGER NOT NULL DEFAULT 0,
		account_name TEXT NOT NULL DEFAULT '',
		updated_unix INTEGER NOT NULL
	);
	CREATE TABLE clio_lookup_cache (
		number TEXT PRIMARY KEY,
		result TEXT NOT NULL,
		fetched_unix_ms INTEGER NOT NULL,
		expires_unix_ms INTEGER NOT NULL
	);
	CREATE TABLE clio_state (
		key TEXT PRIMARY KEY,
		value TEXT NOT NULL
	);`,
}

// Storage keeps the clio tables in matterline's SQLite database: the OAuth
// tokens (one connection), the lookup cache and the last status.
type Storage struct {
	db     *sql.DB
	sealer *Sealer // nil: tokens are written in plain text
}

// StorageOption configures OpenStorage.
type StorageOption func(*Storage)

// WithSealer seals the access and refresh tokens with s on every write and opens
// sealed ones on read (nil: plain text, as before sealing existed).
func WithSealer(s *Sealer) StorageOption {
	return func(st *Storage) { st.sealer = s }
}

// OpenStorage applies the clio migrations to db.
func OpenStorage(ctx context.Context, db *sql.DB, opts ...StorageOption) (*Storage, error) {
	if err := store.Migrate(ctx, db, "clio", migrations); err != nil {
		return nil, fmt.Errorf("clio: storage: %w", err)
	}
	s := &Storage{db: db}
	for _, o := range opts {
		o(s)
	}
	return s, nil
}

// Sealed reports whether tokens are sealed when written.
func (s *Storage) Sealed() bool { return s.sealer != nil }

// StoredToken is the saved OAuth connection. It holds secrets: never log it.
type StoredToken struct {
	Region       Region
	AccessToken  string
	RefreshToken string
	TokenType    string
	Expiry       time.Time // zero = unknown
	AccountID    int64
	AccountName  string
	Updated      time.Time
}

// LoadToken returns the stored token, or ErrNotConnected, or ErrTokensSealed
// when the tokens are sealed with a key this Storage does not hold. Plain-text
// rows (written before sealing) are read as they are.
func (s *Storage) LoadToken(ctx context.Context) (StoredToken, error) {
	t, _, err := s.loadToken(ctx)
	return t, err
}

// loadToken is LoadToken that also reports whether the row should be re-sealed:
// a token in plain text while a key is set, or sealed with the old key.
func (s *Storage) loadToken(ctx context.Context) (StoredToken, bool, error) {
	var t StoredToken
	var region string
	var exp, upd int64
	err := s.db.QueryRowContext(ctx, `SELECT region, access_token, refresh_token, token_type,
		expiry_unix, account_id, account_name, updated_unix FROM clio_tokens WHERE id = 1`).
		Scan(&region, &t.AccessToken, &t.RefreshToken, &t.TokenType, &exp, &t.AccountID, &t.AccountName, &upd)
	if errors.Is(err, sql.ErrNoRows) {
		return StoredToken{}, false, ErrNotConnected
	}
	if err != nil {
		return StoredToken{}, false, fmt.Errorf("clio: load token: %w", err)
	}
	stale := s.stale(t.AccessToken) || s.stale(t.RefreshToken)
	if t.AccessToken, err = s.sealer.open("access_token", t.AccessToken); err != nil {
		return StoredToken{}, false, err
	}
	if t.RefreshToken, err = s.sealer.open("refresh_token", t.RefreshToken); err != nil {
		return StoredToken{}, false, err
	}
	t.Region = Region(region)
	if exp > 0 {
		t.Expiry = time.Unix(exp, 0)
	}
	t.Updated = time.Unix(upd, 0)
	return t, stale, nil
}

// stale reports whether stored value v is not sealed with the current key.
func (s *Storage) stale(v string) bool {
	if s.sealer == nil || v == "" {
		return false
	}
	return !strings.HasPrefix(v, sealPrefix+s.sealer.cur.id+":")
}

// Reseal rewrites the stored tokens sealed with the current key (after a key
// rotation, or to seal a row written in plain text). It reports whether the row
// was rewritten; without a key or a token it does nothing.
func (s *Storage) Reseal(ctx context.Context) (bool, error) {
	if s.sealer == nil {
		return false, nil
	}
	t, stale, err := s.loadToken(ctx)
	if errors.Is(err, ErrNotConnected) || (err == nil && !stale) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, s.SaveToken(ctx, t)
}

// SaveToken replaces the stored token, sealing the access and refresh tokens
// when the Storage has a key.
func (s *Storage) SaveToken(ctx context.Context, t StoredToken) error {
	access, refresh := t.AccessToken, t.RefreshToken
	if s.sealer != nil {
		var err error
		if access, err = s.sealer.seal("access_token", access); err != nil {
			return err
		}
		if refresh, err = s.sealer.seal("refresh_token", refresh); err != nil {
			return err
		}
	}
	var exp int64
	if !t.Expiry.IsZero() {
		exp = t.Expiry.Unix()
	}
	if t.Updated.IsZero() {
		t.Updated = time.Now()
	}
	_, err := s.db.ExecContext(ctx, `INSERT INTO clio_tokens (id, region, access_token, refresh_token,
		token_type, expiry_unix, account_id, account_name, updated_unix) VALUES (1,?,?,?,?,?,?,?,?)
		ON CONFLICT(id) DO UPDATE SET region=excluded.region, access_token=excluded.access_token,
		refresh_token=excluded.refresh_token, token_type=excluded.token_type, expiry_unix=excluded.expiry_unix,
		account_id=excluded.account_id, account_name=excluded.account_name, updated_unix=excluded.updated_unix`,
		string(t.Region), access, refresh, cmpOr(t.TokenType, "bearer"), exp,
		t.AccountID, t.AccountName, t.Updated.Unix())
	if err != nil {
		return fmt.Errorf("clio: save token: %w", err)
	}
	return nil
}

// DeleteToken removes the stored token (disconnect).
func (s *Storage) DeleteToken(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM clio_tokens`); err != nil {
		return fmt.Errorf("clio: delete token: %w", err)
	}
	return nil
}

// cacheEntry is a cached lookup result.
type cacheEntry struct {
	Result  lookup.Result
	Fetched time.Time
	Expires time.Time
}

func (s *Storage) cacheGet(ctx context.Context, number string) (cacheEntry, bool, error) {
	var raw string
	var f, e int64
	err := s.db.QueryRowContext(ctx, `SELECT result, fetched_unix_ms, expires_unix_ms
		FROM clio_lookup_cache WHERE number = ?`, number).Scan(&raw, &f, &e)
	if errors.Is(err, sql.ErrNoRows) {
		return cacheEntry{}, false, nil
	}
	if err != nil {
		return cacheEntry{}, false, fmt.Errorf("clio: cache get: %w", err)
	}
	var ce cacheEntry
	if err := json.Unmarshal([]byte(raw), &ce.Result); err != nil {
		return cacheEntry{}, false, fmt.Errorf("clio: cache decode: %w", err)
	}
	ce.Fetched, ce.Expires = time.UnixMilli(f), time.UnixMilli(e)
	return ce, true, nil
}

func (s *Storage) cachePut(ctx context.Context, number string, ce cacheEntry) error {
	r := ce.Result
	r.Cached = false
	raw, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("clio: cache encode: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO clio_lookup_cache (number, result, fetched_unix_ms, expires_unix_ms)
		VALUES (?,?,?,?) ON CONFLICT(number) DO UPDATE SET result=excluded.result,
		fetched_unix_ms=excluded.fetched_unix_ms, expires_unix_ms=excluded.expires_unix_ms`,
		number, string(raw), ce.Fetched.UnixMilli(), ce.Expires.UnixMilli())
	if err != nil {
		return fmt.Errorf("clio: cache put: %w", err)
	}
	return nil
}

// ClearCache deletes every cached lookup (after disconnect or a data fix).
func (s *Storage) ClearCache(ctx context.Context) error {
	if _, err := s.db.ExecContext(ctx, `DELETE FROM clio_lookup_cache`); err != nil {
		return fmt.Errorf("clio: clear cache: %w", err)
	}
	return nil
}

// CacheSize counts cached lookups.
func (s *Storage) CacheSize(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM clio_lookup_cache`).Scan(&n); err != nil {
		return 0, fmt.Errorf("clio: cache size: %w", err)
	}
	return n, nil
}

// State is what `clio status` shows of the last contact with Clio, kept across
// processes (the CLI reads what the server wrote).
type State struct {
	LastError   string    `json:"last_error,omitempty"`
	LastErrorAt time.Time `json:"last_error_at,omitzero"`
	LastOKAt    time.Time `json:"last_ok_at,omitzero"`
	Rate        Rate      `json:"rate"`
	RetryUntil  time.Time `json:"retry_until,omitzero"`
}

const stateKey = "status"

// LoadState returns the saved state (zero when none).
func (s *Storage) LoadState(ctx context.Context) (State, error) {
	var raw string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM clio_state WHERE key = ?`, stateKey).Scan(&raw)
	if errors.Is(err, sql.ErrNoRows) {
		return State{}, nil
	}
	if err != nil {
		return State{}, fmt.Errorf("clio: load state: %w", err)
	}
	var st State
	if err := json.Unmarshal([]byte(raw), &st); err != nil {
		return State{}, fmt.Errorf("clio: decode state: %w", err)
	}
	return st, nil
}

// SaveState stores st.
func (s *Storage) SaveState(ctx context.Context, st State) error {
	raw, err := json.Marshal(st)
	if err != nil {
		return fmt.Errorf("clio: encode state: %w", err)
	}
	_, err = s.db.ExecContext(ctx, `INSERT INTO clio_state (key, value) VALUES (?, ?)
		ON CONFLICT(key) DO UPDATE SET value = excluded.value`, stateKey, string(raw))
	if err != nil {
		return fmt.Errorf("clio: save state: %w", err)
	}
	return nil
}

package main

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/store"
)

const sealedTok = "demo-token"

func b64Key(b byte) string { return base64.StdEncoding.EncodeToString(bytes.Repeat([]byte{b}, 32)) }

// seedToken stores an OAuth token for the demo fake in c's database, sealed with
// key (base64) or in plain text when key is "".
func (c *clioCLI) seedToken(key string) {
	c.t.Helper()
	db, err := store.Open(filepath.Join(c.dir, "m.db"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	var sealer *clio.Sealer
	if key != "" {
		k, _ := clio.DecodeKey(key)
		if sealer, err = clio.NewSealer(k, nil); err != nil {
			c.t.Fatal(err)
		}
	}
	st, err := clio.OpenStorage(context.Background(), db, clio.WithSealer(sealer))
	if err != nil {
		c.t.Fatal(err)
	}
	if err := st.SaveToken(context.Background(), clio.StoredToken{Region: clio.RegionUS, AccessToken: sealedTok,
		RefreshToken: "demo-refresh", Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
		c.t.Fatal(err)
	}
}

func (c *clioCLI) rawAccess() string {
	c.t.Helper()
	db, err := store.Open(filepath.Join(c.dir, "m.db"))
	if err != nil {
		c.t.Fatal(err)
	}
	defer db.Close()
	var v string
	if err := db.QueryRow(`SELECT access_token FROM clio_tokens`).Scan(&v); err != nil {
		c.t.Fatal(err)
	}
	return v
}

// status runs `clio status --json`; it exits 1 when not connected, after printing.
func (c *clioCLI) status() clioStatusJSON {
	c.t.Helper()
	out, errs, code := c.run(context.Background(), "clio", "status", "--json")
	var st clioStatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		c.t.Fatalf("exit %d: %v\n%s%s", code, err, out, errs)
	}
	if (code == 0) != st.Connected {
		c.t.Fatalf("exit %d with connected=%v\n%s%s", code, st.Connected, out, errs)
	}
	return st
}

func TestClioSealedTokensCLI(t *testing.T) {
	c := newClioCLI(t, "")
	c.seedToken(b64Key(1))
	if strings.Contains(c.rawAccess(), sealedTok) {
		t.Fatal("sealed row holds the token")
	}

	t.Setenv(clio.EnvSecretKey, b64Key(1))
	if st := c.status(); !st.Connected || st.Mode != "oauth" || !st.TokensSealed || st.TokenError != "" {
		t.Errorf("right key: %+v", st)
	}
	if out := c.ok("clio", "lookup", "+12175552171", "--json"); !strings.Contains(out, `"found"`) {
		t.Errorf("lookup with sealed tokens: %s", out)
	}

	// Another key: not a crash, not a failure to start, a clear error.
	t.Setenv(clio.EnvSecretKey, b64Key(2))
	st := c.status()
	if st.Connected || !strings.Contains(st.TokenError, "reconnect or set the old key") {
		t.Errorf("wrong key: %+v", st)
	}
	if _, errs, code := c.run(context.Background(), "clio", "reseal"); code != 1 || !strings.Contains(errs, "sealed with another key") {
		t.Errorf("reseal with the wrong key: %d %s", code, errs)
	}

	// Rotation: new key, old key for reading; reseal; then the new key alone.
	t.Setenv(clio.EnvSecretKeyOld, b64Key(1))
	if out := c.ok("clio", "reseal"); !strings.Contains(out, "sealed with the current key") {
		t.Errorf("reseal: %s", out)
	}
	t.Setenv(clio.EnvSecretKeyOld, "")
	if st := c.status(); !st.Connected || st.TokenError != "" {
		t.Errorf("new key after rotation: %+v", st)
	}

	// A bad key is a startup error that does not echo it.
	t.Setenv(clio.EnvSecretKey, "not-a-key-value")
	if _, errs, code := c.run(context.Background(), "clio", "status"); code == 0 || !strings.Contains(errs, "32 bytes") || strings.Contains(errs, "not-a-key-value") {
		t.Errorf("bad key: %d %s", code, errs)
	}

	// Unreadable tokens can still be deleted.
	t.Setenv(clio.EnvSecretKey, b64Key(3))
	if out, errs, code := c.run(context.Background(), "clio", "disconnect"); code != 0 || !strings.Contains(out, "disconnected") || !strings.Contains(errs, "not revoked") {
		t.Errorf("disconnect with the wrong key: %d %s %s", code, out, errs)
	}
	if st := c.status(); st.Connected || st.TokenError != "" {
		t.Errorf("after disconnect: %+v", st)
	}
}

func TestClioLegacyPlainTokensSealed(t *testing.T) {
	c := newClioCLI(t, "")
	c.seedToken("")
	if c.rawAccess() != sealedTok {
		t.Fatal("seed without a key is not plain text")
	}
	if st := c.status(); !st.Connected || st.TokensSealed {
		t.Errorf("plain, no key: %+v", st)
	}
	t.Setenv(clio.EnvSecretKey, b64Key(1))
	if st := c.status(); !st.Connected || !st.TokensSealed {
		t.Errorf("plain row with a key: %+v", st)
	}
	if raw := c.rawAccess(); strings.Contains(raw, sealedTok) || !strings.HasPrefix(raw, "mlseal1:") {
		t.Errorf("plain row not sealed once a key is set: %q", raw)
	}
}

func TestWarnExposedSecrets(t *testing.T) {
	c := newClioCLI(t, "  client_secret: demo-client-secret\n")
	for _, tc := range []struct {
		perm int
		warn bool
	}{{0o644, true}, {0o640, true}, {0o600, false}} {
		if err := chmod(c.cfg, tc.perm); err != nil {
			t.Fatal(err)
		}
		var logs bytes.Buffer
		warnExposedSecrets(newLogger(config.Log{Level: "info"}, &logs), c.cfg)
		got := logs.String()
		if tc.warn != strings.Contains(got, "readable by other users") {
			t.Errorf("mode %o: logs %q", tc.perm, got)
		}
		if tc.warn && !strings.Contains(got, "clio.client_secret") {
			t.Errorf("mode %o: warning does not name the key: %q", tc.perm, got)
		}
		if strings.Contains(got, "demo-client-secret") {
			t.Errorf("mode %o: warning logs the secret", tc.perm)
		}
	}
}

func chmod(path string, perm int) error { return os.Chmod(path, os.FileMode(perm)) }

// seedDBToken stores an OAuth token in the database at path, sealed with key
// (base64, "" = plain text).
func seedDBToken(t *testing.T, path, key string) {
	t.Helper()
	c := &clioCLI{t: t, dir: filepath.Dir(path)}
	if filepath.Base(path) != "m.db" {
		t.Fatalf("seed path %s", path)
	}
	c.seedToken(key)
}

func TestServeTokenSealingWarnings(t *testing.T) {
	t.Setenv(clio.EnvSecretKeyOld, "")
	t.Setenv("CREDENTIALS_DIRECTORY", "")
	t.Setenv("MATTERLINE_CLIO_ACCESS_TOKEN", "")
	oauth := func(key string) func(*config.Config) {
		return func(cfg *config.Config) {
			cfg.Clio.AccessToken = "" // stored OAuth tokens, not the demo's static one
			cfg.Store.Path = filepath.Join(filepath.Dir(cfg.Store.Path), "m.db")
			seedDBToken(t, cfg.Store.Path, key)
		}
	}
	t.Run("no key", func(t *testing.T) {
		t.Setenv(clio.EnvSecretKey, "")
		s := startE2E(t, e2eOptions{configure: oauth("")})
		if !strings.Contains(s.logs.String(), "stored unsealed") {
			t.Errorf("no warning about unsealed tokens:\n%s", s.logs.String())
		}
	})
	t.Run("wrong key", func(t *testing.T) {
		t.Setenv(clio.EnvSecretKey, b64Key(2))
		s := startE2E(t, e2eOptions{configure: oauth(b64Key(1))})
		logs := s.logs.String()
		if !strings.Contains(logs, "reconnect or set the old key") || strings.Contains(logs, "stored unsealed") {
			t.Errorf("wrong key: logs\n%s", logs)
		}
		if strings.Contains(logs, sealedTok) || strings.Contains(logs, "demo-refresh") {
			t.Error("a token reached the log")
		}
	})
}

package config

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestExposedSecrets(t *testing.T) {
	const withSecrets = "clio:\n  client_secret: cs-VALUE\nhttp:\n  token: tok-VALUE\nsip:\n  outbound_auth:\n    password: pw-VALUE\n"
	cases := []struct {
		name string
		yaml string
		perm os.FileMode
		want []string
	}{
		{"world readable with secrets", withSecrets, 0o644, []string{"clio.client_secret", "http.token", "sip.outbound_auth.password"}},
		{"group readable", "hep:\n  password: x\n", 0o640, []string{"hep.password"}},
		{"owner only", withSecrets, 0o600, nil},
		{"world readable without secrets", "http:\n  listen: 127.0.0.1:8080\n", 0o644, nil},
		{"empty secret", "http:\n  agent_token: \"\"\n", 0o644, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := filepath.Join(t.TempDir(), "matterline.yaml")
			if err := os.WriteFile(p, []byte(tc.yaml), 0o600); err != nil {
				t.Fatal(err)
			}
			if err := os.Chmod(p, tc.perm); err != nil { // not subject to umask
				t.Fatal(err)
			}
			keys, perm, err := ExposedSecrets(p)
			if err != nil {
				t.Fatal(err)
			}
			if perm != tc.perm {
				t.Errorf("perm = %o, want %o", perm, tc.perm)
			}
			if !slices.Equal(keys, tc.want) {
				t.Errorf("keys = %v, want %v", keys, tc.want)
			}
			for _, k := range keys {
				if strings.Contains(k, "VALUE") {
					t.Errorf("a key carries a value: %q", k)
				}
			}
		})
	}
	if _, _, err := ExposedSecrets(filepath.Join(t.TempDir(), "missing.yaml")); err == nil {
		t.Error("missing file: no error")
	}
}

// Every secret with an environment override is one SecretKeys knows.
func TestSecretKeysCoverEnv(t *testing.T) {
	c := Default()
	c.applyEnv(func(k string) string {
		if k == "MATTERLINE_CLIO_CLIENT_ID" {
			return "" // an id, not a secret
		}
		return "set"
	})
	n := 0
	for _, v := range SecretKeys(&c) {
		if v == "set" {
			n++
		}
	}
	if n != 6 {
		t.Errorf("%d secret keys follow the environment, want 6", n)
	}
}

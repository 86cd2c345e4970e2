package config

import (
	"fmt"
	"io/fs"
	"os"
	"slices"
)

// SecretKeys are the configuration keys that hold secrets. Each may instead come
// from the environment (MATTERLINE_CLIO_CLIENT_SECRET and so on), which keeps it
// out of the file.
func SecretKeys(c *Config) map[string]string {
	return map[string]string{
		"clio.client_secret":         c.Clio.ClientSecret,
		"clio.access_token":          c.Clio.AccessToken,
		"http.token":                 c.HTTP.Token,
		"http.agent_token":           c.HTTP.AgentToken,
		"hep.password":               c.HEP.Password,
		"sip.outbound_auth.password": c.SIP.OutboundAuth.Password,
	}
}

// ExposedSecrets reports the secret keys set in the configuration file at path
// when the file may be read by its group or by others (mode & 0o044), with the
// file's permission bits. It returns no keys for a file only its owner can read
// or one that holds no secret. It never returns a secret's value.
func ExposedSecrets(path string) (keys []string, perm fs.FileMode, err error) {
	fi, err := os.Stat(path)
	if err != nil {
		return nil, 0, fmt.Errorf("config file: %w", err)
	}
	perm = fi.Mode().Perm()
	if perm&0o044 == 0 {
		return nil, perm, nil
	}
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, perm, fmt.Errorf("config file: %w", err)
	}
	var c Config
	if err := Parse(data, &c); err != nil {
		return nil, perm, err
	}
	for k, v := range SecretKeys(&c) {
		if v != "" {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	return keys, perm, nil
}

package clio

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
)

// Environment variables and systemd credential names of the key that seals the
// stored OAuth tokens (see docs/clio.md, "Tokens at rest").
const (
	EnvSecretKey        = "MATTERLINE_SECRET_KEY"
	EnvSecretKeyOld     = "MATTERLINE_SECRET_KEY_OLD"
	CredentialSecretKey = "matterline-secret-key"
	CredentialKeyOld    = "matterline-secret-key-old"
)

// sealPrefix starts every sealed value: "mlseal1:KEYID:BASE64(nonce|ciphertext)".
// The version lets the format change; KEYID (the first 4 bytes of SHA-256 of the
// key, hex) picks the key without trying each one.
const sealPrefix = "mlseal1:"

// ErrTokensSealed means the stored tokens are sealed with a key matterline does
// not have (none set, or another one).
var ErrTokensSealed = errors.New("clio tokens sealed with another key: reconnect or set the old key")

// sealKey is one AES-256-GCM key.
type sealKey struct {
	id   string
	aead cipher.AEAD
}

// Sealer seals and opens the stored OAuth tokens with AES-256-GCM (random
// 96-bit nonce per value, the column name as additional data). It seals with
// its current key and opens with the current or the old one (rotation).
type Sealer struct {
	cur *sealKey
	old *sealKey // may be nil
}

// NewSealer returns a Sealer with key (32 bytes) and, when not nil, old, a key
// that only opens.
func NewSealer(key, old []byte) (*Sealer, error) {
	cur, err := newSealKey(key)
	if err != nil {
		return nil, err
	}
	s := &Sealer{cur: cur}
	if old != nil {
		if s.old, err = newSealKey(old); err != nil {
			return nil, fmt.Errorf("old key: %w", err)
		}
	}
	return s, nil
}

func newSealKey(key []byte) (*sealKey, error) {
	if len(key) != 32 {
		return nil, fmt.Errorf("secret key: want 32 bytes, got %d", len(key))
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secret key: %w", err)
	}
	sum := sha256.Sum256(key)
	return &sealKey{id: hex.EncodeToString(sum[:4]), aead: aead}, nil
}

// KeyID is the current key's id as written in sealed values (not secret).
func (s *Sealer) KeyID() string { return s.cur.id }

// SealerFromEnv reads the key from MATTERLINE_SECRET_KEY, else from the systemd
// credential $CREDENTIALS_DIRECTORY/matterline-secret-key, and the old key from
// MATTERLINE_SECRET_KEY_OLD or the credential matterline-secret-key-old. A key is
// 32 bytes written as base64 or hex. It returns nil, nil when no key is set. Errors
// never contain the key.
func SealerFromEnv(getenv func(string) string) (*Sealer, error) {
	key, err := readKey(getenv, EnvSecretKey, CredentialSecretKey)
	if err != nil || key == nil {
		return nil, err
	}
	old, err := readKey(getenv, EnvSecretKeyOld, CredentialKeyOld)
	if err != nil {
		return nil, err
	}
	return NewSealer(key, old)
}

func readKey(getenv func(string) string, env, cred string) ([]byte, error) {
	text, from := getenv(env), env
	if text == "" {
		dir := getenv("CREDENTIALS_DIRECTORY")
		if dir == "" {
			return nil, nil
		}
		p := filepath.Join(dir, cred)
		b, err := os.ReadFile(p)
		if errors.Is(err, os.ErrNotExist) {
			return nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("secret key credential: %w", err)
		}
		text, from = string(b), p
	}
	key, err := DecodeKey(text)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", from, err)
	}
	return key, nil
}

// DecodeKey decodes a 32-byte key written as hex (64 digits) or base64
// (standard or URL alphabet, padded or not). Surrounding space is ignored.
func DecodeKey(text string) ([]byte, error) {
	text = strings.TrimSpace(text)
	if len(text) == 64 {
		if b, err := hex.DecodeString(text); err == nil {
			return b, nil
		}
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(text); err == nil && len(b) == 32 {
			return b, nil
		}
	}
	return nil, errors.New("secret key must be 32 bytes written as base64 or hex (openssl rand -base64 32)")
}

// isSealed reports whether a stored value is sealed (else it is legacy plain text).
func isSealed(v string) bool { return strings.HasPrefix(v, sealPrefix) }

// seal returns v sealed with the current key; column binds it to its column.
// The empty string stays empty (no refresh token).
func (s *Sealer) seal(column, v string) (string, error) {
	if v == "" {
		return "", nil
	}
	nonce := make([]byte, s.cur.aead.NonceSize(), s.cur.aead.NonceSize()+len(v)+s.cur.aead.Overhead())
	if _, err := rand.Read(nonce); err != nil {
		return "", fmt.Errorf("clio: seal: random nonce: %w", err)
	}
	out := s.cur.aead.Seal(nonce, nonce, []byte(v), []byte(column))
	return sealPrefix + s.cur.id + ":" + base64.RawStdEncoding.EncodeToString(out), nil
}

// open returns the plain value of a stored one: sealed values are opened with
// the key their id names, others are returned as they are (rows written before
// sealing). s may be nil (no key).
func (s *Sealer) open(column, v string) (string, error) {
	if !isSealed(v) {
		return v, nil
	}
	id, body, ok := strings.Cut(strings.TrimPrefix(v, sealPrefix), ":")
	if !ok || id == "" {
		return "", fmt.Errorf("clio: %s: malformed sealed value", column)
	}
	if s == nil {
		return "", fmt.Errorf("%w (no %s set)", ErrTokensSealed, EnvSecretKey)
	}
	var k *sealKey
	switch id {
	case s.cur.id:
		k = s.cur
	case keyID(s.old):
		k = s.old
	default:
		return "", fmt.Errorf("%w (sealed with key id %s)", ErrTokensSealed, id)
	}
	raw, err := base64.RawStdEncoding.DecodeString(body)
	if err != nil || len(raw) < k.aead.NonceSize() {
		// Our key id on a body that does not even decode: altered like one that
		// does not authenticate, and just as impossible to open.
		return "", fmt.Errorf("%w (%s is not a sealed value)", ErrTokensSealed, column)
	}
	n := k.aead.NonceSize()
	plain, err := k.aead.Open(nil, raw[:n], raw[n:], []byte(column))
	if err != nil {
		// Same key id but the value does not authenticate: altered, or a key
		// whose id collides. Either way this key cannot open it.
		return "", fmt.Errorf("%w (%s does not authenticate)", ErrTokensSealed, column)
	}
	return string(plain), nil
}

func keyID(k *sealKey) string {
	if k == nil {
		return ""
	}
	return k.id
}

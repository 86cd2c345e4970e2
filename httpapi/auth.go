package httpapi

import (
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
)

// MinTokenLen is the shortest token CheckListen accepts for an address beyond
// loopback.
const MinTokenLen = 16

// CheckListen refuses to serve the API on addr ("host:port") beyond loopback
// without a token of at least MinTokenLen characters: the API transfers and ends
// calls and shows clients' names. Loopback addresses and "localhost" are always
// allowed; an empty host (all interfaces) or any other host needs the token.
// The server calls it at start-up with http.listen and http.token.
func CheckListen(addr, token string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("httpapi: listen address %q: %w", addr, err)
	}
	if isLoopback(host) {
		return nil
	}
	if token == "" {
		return fmt.Errorf("%w: %s is reachable from the network; set http.token (or MATTERLINE_HTTP_TOKEN) or listen on 127.0.0.1", ErrInsecureListen, addr)
	}
	if len(token) < MinTokenLen {
		return fmt.Errorf("%w: the token must be at least %d characters to listen on %s", ErrInsecureListen, MinTokenLen, addr)
	}
	return nil
}

func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.WithZone("").IsLoopback()
}

// authenticate requires the bearer token on h when one is configured
// (RFC 6750 §2.1 Authorization header; 401 with a WWW-Authenticate: Bearer
// challenge, §3, and error="invalid_token" when a wrong token was sent).
func (s *Server) authenticate(h http.Handler) http.Handler {
	if s.opts.Token == "" {
		return h
	}
	want := sha256.Sum256([]byte(s.opts.Token))
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		scheme, token, ok := strings.Cut(r.Header.Get("Authorization"), " ")
		if !ok || !strings.EqualFold(scheme, "Bearer") {
			w.Header().Set("WWW-Authenticate", `Bearer realm="matterline"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "a bearer token is required")
			return
		}
		// Hashing first makes the comparison constant-time in the token
		// length too.
		got := sha256.Sum256([]byte(strings.TrimSpace(token)))
		if subtle.ConstantTimeCompare(got[:], want[:]) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="matterline", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "invalid bearer token")
			return
		}
		h.ServeHTTP(w, r)
	})
}

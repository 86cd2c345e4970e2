package httpapi

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strconv"
	"strings"
)

// MinTokenLen is the shortest token CheckListen accepts for an address beyond
// loopback.
const MinTokenLen = 16

// CheckListen refuses to serve the API on addr ("host:port") beyond loopback
// without a token of at least MinTokenLen characters: the API transfers and ends
// calls and shows clients' names. Loopback addresses and "localhost" are always
// allowed; an empty host (all interfaces) or any other host needs the token.
// The server calls it at start-up with http.listen and http.token (and again
// with http.agent_token when that is set, for its length).
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
	host = strings.TrimSuffix(host, ".")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(host)
	return err == nil && ip.WithZone("").Unmap().IsLoopback()
}

// scope is what a request may do, from its credentials and where it came from.
type scope uint8

const (
	scopeNone  scope = iota // nothing beyond open routes
	scopeRead               // no token configured, loopback client: read-only routes
	scopeAgent              // the agent token: read calls and events, transfer to existing rules
	scopeAdmin              // the admin token (or http.loopback_open from loopback): everything
)

func (s scope) String() string {
	switch s {
	case scopeRead:
		return "read"
	case scopeAgent:
		return "agent"
	case scopeAdmin:
		return "admin"
	}
	return "none"
}

// access is what a route requires.
type access uint8

const (
	accessUnknown access = iota
	accessOpen           // anyone whose Host header is accepted (/healthz)
	accessLocal          // loopback clients without a token, others with any token (/metrics)
	accessAgent          // the agent or the admin token
	accessAdmin          // the admin token
	accessDebug          // the admin token itself: never opened by http.loopback_open (pprof)
)

// guard is the authorization of one route and method.
type guard struct {
	access access
	// readOnly: the route changes nothing, so a loopback client may use it
	// when no token is configured at all.
	readOnly bool
	// queryToken: the admin token may also come as ?token= (a page opened in
	// a browser, which cannot send an Authorization header).
	queryToken bool
}

type ctxKey uint8

const (
	scopeKey ctxKey = iota
	localKey
)

// requestScope is the scope the guard granted the request.
func requestScope(r *http.Request) scope {
	s, _ := r.Context().Value(scopeKey).(scope)
	return s
}

// tokenHash is the SHA-256 of a configured token; hashing first makes the
// comparison constant-time in the token length too.
type tokenHash struct {
	sum [sha256.Size]byte
	set bool
}

func hashToken(t string) tokenHash {
	if t == "" {
		return tokenHash{}
	}
	return tokenHash{sum: sha256.Sum256([]byte(t)), set: true}
}

// match reports whether presented is this token, in constant time.
func (h tokenHash) match(presented [sha256.Size]byte) bool {
	eq := subtle.ConstantTimeCompare(presented[:], h.sum[:]) == 1
	return eq && h.set
}

// scopeOf returns the scope of a presented token (scopeNone when it is
// neither). Both comparisons always run.
func (s *Server) scopeOf(token string) scope {
	got := sha256.Sum256([]byte(token))
	admin := s.admin.match(got)
	agent := s.agent.match(got)
	switch {
	case admin:
		return scopeAdmin
	case agent:
		return scopeAgent
	}
	return scopeNone
}

// allows reports whether scope sc may use a route requiring a (and, for
// scopeRead, only a read-only one).
func (sc scope) allows(g guard) bool {
	switch g.access {
	case accessOpen:
		return true
	case accessLocal, accessAgent:
		return sc >= scopeAgent || (sc == scopeRead && g.readOnly)
	case accessAdmin:
		return sc == scopeAdmin || (sc == scopeRead && g.readOnly)
	case accessDebug:
		return sc == scopeAdmin
	}
	return false
}

// protect wraps h with the authorization g. Tokens come as
// "Authorization: Bearer TOKEN" (RFC 6750 §2.1); a missing or wrong one
// answers 401 with a WWW-Authenticate challenge (§3, error="invalid_token"
// for a wrong one), a valid one of too small a scope 403 (insufficient_scope,
// §3.1).
func (s *Server) protect(g guard, h http.Handler) http.Handler {
	if g.access == accessOpen {
		return h
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		sc, ok := s.authorize(w, r, g)
		if !ok {
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), scopeKey, sc)))
	})
}

// authorize answers the error itself when it returns false.
func (s *Server) authorize(w http.ResponseWriter, r *http.Request, g guard) (scope, bool) {
	token, sent, malformed := bearer(r)
	if !sent && g.queryToken {
		if t := r.URL.Query().Get("token"); t != "" {
			token, sent = t, true
		}
	}
	if sent {
		sc := s.scopeOf(token)
		if sc == scopeNone {
			w.Header().Set("WWW-Authenticate", `Bearer realm="matterline", error="invalid_token"`)
			writeError(w, http.StatusUnauthorized, "unauthorized", "invalid bearer token")
			return sc, false
		}
		if !sc.allows(g) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="matterline", error="insufficient_scope"`)
			writeError(w, http.StatusForbidden, "forbidden", "the "+sc.String()+" token does not allow this; it needs the admin token")
			return sc, false
		}
		return sc, true
	}
	local := isLocal(r)
	switch {
	case malformed:
		// An Authorization header that is not a bearer token: never
		// treated as no credentials.
	case local && g.access == accessLocal:
		return scopeRead, true
	case local && s.opts.LoopbackOpen && g.access != accessDebug:
		return scopeAdmin, true
	case local && !s.admin.set && !s.agent.set && scopeRead.allows(g):
		return scopeRead, true
	}
	w.Header().Set("WWW-Authenticate", `Bearer realm="matterline"`)
	msg := "a bearer token is required"
	if !g.readOnly && !s.admin.set {
		msg = "a bearer token is required: this route changes state and no admin token (http.token) is configured"
	}
	writeError(w, http.StatusUnauthorized, "unauthorized", msg)
	return scopeNone, false
}

// bearer returns the token of an "Authorization: Bearer TOKEN" header. sent is
// false without the header; malformed is true for another scheme or no token.
func bearer(r *http.Request) (token string, sent, malformed bool) {
	v := r.Header.Get("Authorization")
	if v == "" {
		return "", false, false
	}
	scheme, token, ok := strings.Cut(v, " ")
	token = strings.TrimSpace(token)
	if !ok || !strings.EqualFold(scheme, "Bearer") || token == "" {
		return "", false, true
	}
	return token, true, false
}

// isLocal reports whether the request came from a loopback address and named
// a loopback host (hostGuard marks it): a request through a reverse proxy on
// this machine that uses an http.allowed_hosts name is not local.
func isLocal(r *http.Request) bool {
	if loopHost, _ := r.Context().Value(localKey).(bool); !loopHost {
		return false
	}
	ap, err := netip.ParseAddrPort(r.RemoteAddr)
	return err == nil && ap.Addr().WithZone("").Unmap().IsLoopback()
}

// hostGuard answers 421 Misdirected Request (RFC 9110 §15.5.20) to a request
// whose Host header is not one of: a loopback name or address (localhost,
// 127.0.0.0/8, ::1) with the port the request arrived on, the address the
// request arrived on (or http.listen), or a name of Options.AllowedHosts.
// A web page that rebinds its own DNS name to 127.0.0.1 sends its own name as
// Host, so it never reaches the routes (DNS rebinding).
func (s *Server) hostGuard(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		loop, ok := s.hostAllowed(r)
		if !ok {
			writeError(w, http.StatusMisdirectedRequest, "misdirected_request",
				"host "+strconv.Quote(r.Host)+" is not served here; add it to http.allowed_hosts if it is this server's name")
			return
		}
		h.ServeHTTP(w, r.WithContext(context.WithValue(r.Context(), localKey, loop)))
	})
}

// hostAllowed reports whether r's Host is accepted, and whether it is a
// loopback name or address.
func (s *Server) hostAllowed(r *http.Request) (loopback, ok bool) {
	name, port := splitHost(r.Host)
	if name == "" {
		return false, false
	}
	for _, a := range s.allowed {
		if strings.EqualFold(a.name, name) && (a.port == "" || a.port == port) {
			return false, true
		}
	}
	// The address the request arrived on, else the configured listen address.
	local := s.opts.Listen
	if la, ok := r.Context().Value(http.LocalAddrContextKey).(net.Addr); ok {
		local = la.String()
	}
	lhost, lport, err := net.SplitHostPort(local)
	if err != nil {
		return false, false
	}
	if port == "" {
		port = "80"
	}
	if port != lport {
		return false, false
	}
	if isLoopback(name) {
		return true, true
	}
	if ip, err := netip.ParseAddr(name); err == nil {
		if lip, err := netip.ParseAddr(lhost); err == nil && lip.WithZone("").Unmap() == ip.WithZone("").Unmap() {
			return false, true
		}
	}
	return false, false
}

// hostName is one entry of Options.AllowedHosts.
type hostName struct{ name, port string }

func parseAllowedHosts(list []string) []hostName {
	var out []hostName
	for _, h := range list {
		name, port := splitHost(strings.TrimSpace(h))
		if name != "" {
			out = append(out, hostName{name: name, port: port})
		}
	}
	return out
}

// splitHost splits a Host header value ("name", "name:port", "[v6]:port",
// "[v6]") into a lower-case name without brackets or a trailing dot, and the
// port ("" when absent).
func splitHost(hostport string) (name, port string) {
	if h, p, err := net.SplitHostPort(hostport); err == nil {
		name, port = h, p
	} else {
		name = strings.TrimSuffix(strings.TrimPrefix(hostport, "["), "]")
	}
	return strings.TrimSuffix(strings.ToLower(name), "."), port
}

package cliotest

import (
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// authorize is GET /oauth/authorize: the fake approves at once (or declines with
// DeclineAuthorize) and redirects to redirect_uri with code and state.
func (f *Fake) authorize(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	if q.Get("response_type") != "code" {
		http.Error(w, "response_type must be code", http.StatusBadRequest)
		return
	}
	if _, ok := f.client(q.Get("client_id")); !ok {
		http.Error(w, "unknown client_id", http.StatusBadRequest)
		return
	}
	ru, err := url.Parse(q.Get("redirect_uri"))
	if err != nil || ru.Scheme == "" || ru.Host == "" {
		http.Error(w, "bad redirect_uri", http.StatusBadRequest)
		return
	}
	back := ru.Query()
	if st := q.Get("state"); st != "" {
		back.Set("state", st)
	}
	if f.Faults().DeclineAuthorize {
		if q.Get("redirect_on_decline") != "true" {
			http.Error(w, "access denied", http.StatusForbidden)
			return
		}
		back.Set("error", "access_denied")
	} else {
		code := randomToken("code-")
		f.mu.Lock()
		f.codes[code] = codeInfo{clientID: q.Get("client_id"), redirect: q.Get("redirect_uri"), expires: f.opt.Now().Add(10 * time.Minute)}
		f.mu.Unlock()
		back.Set("code", code)
	}
	ru.RawQuery = back.Encode()
	http.Redirect(w, r, ru.String(), http.StatusFound)
}

func (f *Fake) client(id string) (OAuthClient, bool) {
	for _, c := range f.fx.Clients {
		if c.ID == id && id != "" {
			return c, true
		}
	}
	return OAuthClient{}, false
}

func oauthError(w http.ResponseWriter, status int, code, desc string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]string{"error": code, "error_description": desc})
}

// token is POST /oauth/token with client credentials in the form body (or Basic).
func (f *Fake) token(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	if err := r.ParseForm(); err != nil {
		oauthError(w, http.StatusBadRequest, "invalid_request", "bad form")
		return
	}
	id, secret := r.PostForm.Get("client_id"), r.PostForm.Get("client_secret")
	if u, p, ok := r.BasicAuth(); ok {
		id, secret = u, p
	}
	c, ok := f.client(id)
	if !ok || c.Secret != secret {
		oauthError(w, http.StatusUnauthorized, "invalid_client", "client authentication failed")
		return
	}
	resp, oerr := f.grant(r.PostForm, id)
	if oerr != nil {
		oauthError(w, oerr.status, oerr.code, oerr.desc)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	_ = json.NewEncoder(w).Encode(resp)
}

type grantError struct {
	status     int
	code, desc string
}

// grant runs an authorization_code or refresh_token grant for client id.
func (f *Fake) grant(form url.Values, id string) (map[string]any, *grantError) {
	now := f.opt.Now()
	f.mu.Lock()
	defer f.mu.Unlock()
	resp := map[string]any{"token_type": "bearer", "expires_in": int(f.opt.TokenLifetime / time.Second), "scope": ""}
	switch form.Get("grant_type") {
	case "authorization_code":
		ci, ok := f.codes[form.Get("code")]
		delete(f.codes, form.Get("code"))
		if !ok || now.After(ci.expires) || ci.clientID != id || ci.redirect != form.Get("redirect_uri") {
			return nil, &grantError{http.StatusBadRequest, "invalid_grant", "the authorization code is invalid or expired"}
		}
		at, rt := randomToken("at-"), randomToken("rt-")
		f.access[at] = tokenInfo{expires: now.Add(f.opt.TokenLifetime), refresh: rt}
		f.refresh[rt] = true
		resp["access_token"], resp["refresh_token"] = at, rt
	case "refresh_token":
		rt := form.Get("refresh_token")
		if !f.refresh[rt] {
			return nil, &grantError{http.StatusBadRequest, "invalid_grant", "the refresh token is invalid"}
		}
		at := randomToken("at-")
		if f.faults.RotateRefreshTokens {
			delete(f.refresh, rt)
			rt = randomToken("rt-")
			f.refresh[rt] = true
			resp["refresh_token"] = rt
		}
		f.access[at] = tokenInfo{expires: now.Add(f.opt.TokenLifetime), refresh: rt}
		resp["access_token"] = at
	default:
		return nil, &grantError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be authorization_code or refresh_token"}
	}
	return resp, nil
}

// deauthorize is POST /oauth/deauthorize with the bearer token: it revokes the
// token and its refresh token.
func (f *Fake) deauthorize(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		oauthError(w, http.StatusMethodNotAllowed, "invalid_request", "POST only")
		return
	}
	tok, ok := bearer(r)
	f.mu.Lock()
	info, known := f.access[tok]
	if ok && known {
		delete(f.access, tok)
		delete(f.refresh, info.refresh)
	}
	f.mu.Unlock()
	if !ok || !known {
		oauthError(w, http.StatusUnauthorized, "invalid_token", "the access token is invalid")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte("{}\n"))
}

func bearer(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	if len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		return strings.TrimSpace(h[7:]), true
	}
	return "", false
}

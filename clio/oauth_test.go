package clio

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/lookup"
)

const (
	demoClientID     = "demo-client-id"
	demoClientSecret = "demo-client-secret"
)

// oauthEnv is a testEnv whose client authorizes through a Connection.
type oauthEnv struct {
	*testEnv
	conn    *Connection
	handler *OAuthHandler
	cb      *httptest.Server
}

func newOAuthEnv(t *testing.T, fake cliotest.Options) *oauthEnv {
	t.Helper()
	oe := &oauthEnv{}
	oe.cb = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { oe.handler.ServeHTTP(w, r) }))
	t.Cleanup(oe.cb.Close)
	oe.testEnv = newTestEnv(t, nil, envOpts{fake: fake, auth: func(e *testEnv) Authorizer {
		var err error
		oe.conn, err = NewConnection(ConnectionOptions{BaseURL: e.srv.URL, ClientID: demoClientID, ClientSecret: demoClientSecret,
			RedirectURL: oe.cb.URL + CallbackPath, Storage: e.storage, HTTPClient: e.srv.Client(), Now: e.clock.Now,
			Logger: slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))})
		if err != nil {
			t.Fatal(err)
		}
		return oe.conn
	}})
	oe.handler = &OAuthHandler{Conn: oe.conn, Client: oe.client, Logger: slog.New(slog.NewTextHandler(oe.logs, nil))}
	return oe
}

// connect runs the browser side: start -> Clio authorize -> callback.
func (oe *oauthEnv) connect(t *testing.T) (int, string) {
	t.Helper()
	resp, err := http.Get(oe.cb.URL + StartPath)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}

func TestOAuthConnectFlow(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	code, body := oe.connect(t)
	if code != 200 || !strings.Contains(body, "Morgan Reyes (user 506)") {
		t.Fatalf("callback %d %s", code, body)
	}
	ctx := context.Background()
	tok, err := oe.storage.LoadToken(ctx)
	if err != nil || tok.AccessToken == "" || tok.RefreshToken == "" || tok.AccountID != 506 || tok.Region != RegionUS {
		t.Fatalf("stored %+v %v", tok.AccountID, err)
	}
	if tok.Expiry.Before(time.Now().Add(29 * 24 * time.Hour)) {
		t.Errorf("expiry %v ignores expires_in", tok.Expiry)
	}
	// The token endpoint got the client credentials in the form body.
	tr := oe.srv.LastRequest("/oauth/token")
	if tr == nil || tr.Header.Get("Authorization") != "" {
		t.Fatalf("token request used Basic auth or was not made")
	}
	// The authorize request carried state and redirect_on_decline.
	aq := oe.srv.LastRequest("/oauth/authorize").URL.Query()
	if aq.Get("state") == "" || aq.Get("redirect_on_decline") != "true" || aq.Get("client_id") != demoClientID ||
		aq.Get("redirect_uri") != oe.cb.URL+CallbackPath || aq.Has("scope") {
		t.Errorf("authorize query %v", aq)
	}
	if r := oe.svc.Lookup(ctx, "+12175552171"); r.Status != lookup.StatusFound {
		t.Fatalf("lookup after connect: %+v", r)
	}
	// Tokens persist: a new Connection on the same storage uses them.
	conn2, _ := NewConnection(ConnectionOptions{BaseURL: oe.srv.URL, Storage: oe.storage})
	if at, err := conn2.AccessToken(ctx); err != nil || at != tok.AccessToken {
		t.Fatalf("reloaded token mismatch: %v", err)
	}
	// Secrets never reach the log.
	assertNoSecrets(t, oe.logs.String(), tok.AccessToken, tok.RefreshToken, demoClientSecret)
}

func assertNoSecrets(t *testing.T, logs string, secrets ...string) {
	t.Helper()
	for _, s := range secrets {
		if s != "" && strings.Contains(logs, s) {
			t.Errorf("secret %q in logs:\n%s", s, logs)
		}
	}
}

func TestOAuthState(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	get := func(q string) int {
		resp, err := http.Get(oe.cb.URL + CallbackPath + "?" + q)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	if c := get("code=x&state=forged"); c != 400 {
		t.Errorf("forged state: %d", c)
	}
	u, _ := oe.handler.Begin()
	st := mustQuery(t, u).Get("state")
	if c := get("error=access_denied&state=" + st); c != 400 {
		t.Errorf("denied: %d", c)
	}
	if c := get("code=x&state=" + st); c != 400 {
		t.Errorf("reused state: %d", c)
	}
	// Decline on the authorize page comes back as access_denied.
	oe.srv.SetFaults(cliotest.Faults{DeclineAuthorize: true})
	var got error
	oe.handler.OnDone = func(_ *User, err error) { got = err }
	if code, _ := oe.connect(t); code != 400 || !errors.Is(got, ErrAccessDenied) {
		t.Errorf("decline: %d %v", code, got)
	}
	if _, err := oe.storage.LoadToken(context.Background()); !errors.Is(err, ErrNotConnected) {
		t.Errorf("token stored after decline: %v", err)
	}
}

func mustQuery(t *testing.T, raw string) url.Values {
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	return u.Query()
}

func TestOAuthRefreshOn401KeepsRefreshToken(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	oe.connect(t)
	ctx := context.Background()
	before, _ := oe.storage.LoadToken(ctx)
	oe.srv.ExpireAccessTokens()
	r := oe.svc.Lookup(ctx, "+12175552171")
	if r.Status != lookup.StatusFound {
		t.Fatalf("401 then refresh: %+v", r)
	}
	after, _ := oe.storage.LoadToken(ctx)
	if after.AccessToken == before.AccessToken {
		t.Error("access token not replaced")
	}
	if after.RefreshToken != before.RefreshToken {
		t.Error("refresh response without refresh_token lost the old one")
	}
	if after.AccountID != 506 {
		t.Error("account lost on refresh")
	}
	assertNoSecrets(t, oe.logs.String(), before.AccessToken, after.AccessToken, after.RefreshToken, demoClientSecret)
}

func TestOAuthRefreshRotation(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	oe.connect(t)
	ctx := context.Background()
	before, _ := oe.storage.LoadToken(ctx)
	oe.srv.SetFaults(cliotest.Faults{RotateRefreshTokens: true})
	oe.srv.ExpireAccessTokens()
	if r := oe.svc.Lookup(ctx, "+12175552171"); r.Status != lookup.StatusFound {
		t.Fatalf("%+v", r)
	}
	after, _ := oe.storage.LoadToken(ctx)
	valid := oe.srv.RefreshTokens()
	if after.RefreshToken == before.RefreshToken || len(valid) != 1 || valid[0] != after.RefreshToken {
		t.Fatalf("rotated refresh token not stored")
	}
}

func TestOAuthRefreshBeforeExpiry(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{TokenLifetime: time.Hour})
	oe.connect(t)
	ctx := context.Background()
	before, _ := oe.storage.LoadToken(ctx)
	oe.clock.Advance(59 * time.Minute)
	tokens := oe.srv.RequestsTo("/oauth/token")
	if _, err := oe.conn.AccessToken(ctx); err != nil {
		t.Fatal(err)
	}
	after, _ := oe.storage.LoadToken(ctx)
	if oe.srv.RequestsTo("/oauth/token") != tokens+1 || after.AccessToken == before.AccessToken {
		t.Fatal("token near expiry was not refreshed")
	}
}

func TestOAuthRefreshFails(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	oe.connect(t)
	ctx := context.Background()
	// Revoke everything at the fake: the 401 refresh gets invalid_grant.
	tok, _ := oe.storage.LoadToken(ctx)
	req, _ := http.NewRequest("POST", oe.srv.URL+"/oauth/deauthorize", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	r := oe.svc.Lookup(ctx, "+12175552171")
	if r.Status != lookup.StatusError || r.Reason != ReasonAuthNeeded {
		t.Fatalf("%+v", r)
	}
	if n := oe.srv.RequestsTo("/api/v4/contacts"); n != 1 {
		t.Errorf("contacts requests %d: refresh must be tried once, not retried", n)
	}
}

func TestOAuthDisconnect(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	oe.connect(t)
	ctx := context.Background()
	if err := oe.conn.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := oe.storage.LoadToken(ctx); !errors.Is(err, ErrNotConnected) {
		t.Fatalf("token left after disconnect: %v", err)
	}
	if len(oe.srv.RefreshTokens()) != 0 {
		t.Error("refresh token not revoked at Clio")
	}
}

// TestOAuthConnectElsewhere: a server whose Connection had no tokens at start
// answers unconfigured, then uses tokens another Connection stored (the CLI or
// the server's own handler) without a restart; a disconnect done elsewhere makes
// it unconfigured again after the 401.
func TestOAuthConnectElsewhere(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	ctx := context.Background()
	if r := oe.svc.Lookup(ctx, "+12175552171"); r.Status != lookup.StatusUnconfigured || r.Reason != ReasonNotConnected {
		t.Fatalf("before connect: %+v", r)
	}
	other, _ := NewConnection(ConnectionOptions{BaseURL: oe.srv.URL, ClientID: demoClientID, ClientSecret: demoClientSecret,
		RedirectURL: oe.cb.URL + CallbackPath, Storage: oe.storage, HTTPClient: oe.srv.Client()})
	oe.handler.Conn = other
	if code, _ := oe.connect(t); code != 200 {
		t.Fatalf("connect %d", code)
	}
	if r := oe.svc.LookupWith(ctx, "+12175552171", LookupOptions{NoCache: true}); r.Status != lookup.StatusFound {
		t.Fatalf("after connect elsewhere: %+v", r)
	}
	if err := other.Disconnect(ctx); err != nil {
		t.Fatal(err)
	}
	if r := oe.svc.LookupWith(ctx, "+12175552171", LookupOptions{NoCache: true}); r.Status != lookup.StatusUnconfigured {
		t.Fatalf("after disconnect elsewhere: %+v", r)
	}
	if st := oe.svc.Stats(); st.Breaker != BreakerClosed {
		t.Errorf("not connected counted as a Clio failure: %v", st.Breaker)
	}
}

func TestOAuthExpiredAndRefreshRevoked(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{TokenLifetime: time.Hour})
	oe.connect(t)
	ctx := context.Background()
	oe.srv.UpdateFaults(func(f *cliotest.Faults) { f.RotateRefreshTokens = true })
	// Rotate at the fake behind the Connection's back: its refresh token is now invalid.
	tok, _ := oe.storage.LoadToken(ctx)
	form := url.Values{"grant_type": {"refresh_token"}, "refresh_token": {tok.RefreshToken},
		"client_id": {demoClientID}, "client_secret": {demoClientSecret}}
	resp, err := http.PostForm(oe.srv.URL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	oe.clock.Advance(2 * time.Hour)
	r := oe.svc.Lookup(ctx, "+12175552171")
	if r.Status != lookup.StatusError || r.Reason != ReasonAuthNeeded {
		t.Fatalf("%+v", r)
	}
	if oe.srv.RequestsTo("/api/v4/contacts") != 0 {
		t.Error("an expired token was sent to Clio")
	}
}

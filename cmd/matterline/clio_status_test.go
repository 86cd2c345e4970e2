package main

import (
	"context"
	"encoding/json"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
)

const (
	goodStatic  = "demo-token-0123456789"
	wrongStatic = "wrong-token-9876543210"
)

// noToken fails when any output holds a token or a masked one ("****abcd": status
// shows no part of a secret).
func noToken(t *testing.T, out string, tokens ...string) {
	t.Helper()
	for _, tok := range tokens {
		if strings.Contains(out, tok) {
			t.Errorf("output shows token %q:\n%s", tok, out)
		}
	}
	if strings.Contains(out, "****") {
		t.Errorf("output shows a masked secret:\n%s", out)
	}
}

func TestClioStatusGoodTokenCLI(t *testing.T) {
	c := newClioCLI(t, "  access_token: "+goodStatic+"\n  client_id: demo-client-id\n  client_secret: demo-client-secret\n")
	c.srv.AddToken(goodStatic)
	c.ok("clio", "lookup", "+12175552171") // 2 requests: contacts, matters

	before := c.srv.Requests()
	out, errs, code := c.run(context.Background(), "clio", "status")
	if code != 0 {
		t.Fatalf("exit %d\n%s%s", code, out, errs)
	}
	if n := c.srv.Requests() - before; n != 1 || c.srv.RequestsTo("/api/v4/users/who_am_i") != 1 {
		t.Errorf("status made %d requests, want one who_am_i", n)
	}
	q := c.srv.LastRequest("/api/v4/users/who_am_i").URL.Query()
	if q.Get("fields") != "id,name,email" {
		t.Errorf("who_am_i query %v", q)
	}
	for _, re := range []string{
		`connected:\s+yes\n`,
		`clio user:\s+Morgan Reyes \(id 506, admin@quist-law\.example\)\n`,
		`region:\s+us \(configured; requests go to http://127\.0\.0\.1:\d+/api/v4/, not a Clio host\)\n`,
		`token:\s+static, from clio\.access_token in the config file\n`,
		`token expiry:\s+unknown \(a static token is never refreshed by matterline\)\n`,
		// 50 a window: the lookup's 2 and this check.
		`rate limit:\s+47 of 50 requests left, window resets in \d+s \(\d{4}-\d\d-\d\dT[\d:]+Z\)\n`,
		`last lookup success:\s+\d{4}-`,
		`cached lookups:\s+1\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
	noToken(t, out+errs, goodStatic, "demo-client-secret")

	// The same token from the environment.
	t.Setenv("MATTERLINE_CLIO_ACCESS_TOKEN", goodStatic)
	st := c.status()
	if st.Token.Source != "env" || !st.Connected {
		t.Errorf("env token: %+v", st)
	}
	if out := c.ok("clio", "status"); !strings.Contains(out, "static, from MATTERLINE_CLIO_ACCESS_TOKEN") {
		t.Errorf("env token text:\n%s", out)
	}
}

func TestClioStatusJSONShapeCLI(t *testing.T) {
	c := newClioCLI(t, "  access_token: "+goodStatic+"\n")
	c.srv.AddToken(goodStatic)
	out := c.ok("clio", "status", "--json")
	noToken(t, out, goodStatic)
	var m map[string]any
	if err := json.Unmarshal([]byte(out), &m); err != nil {
		t.Fatal(err)
	}
	keys := func(v any) []string {
		obj, _ := v.(map[string]any)
		var ks []string
		for k := range obj {
			ks = append(ks, k)
		}
		slices.Sort(ks)
		return ks
	}
	want := map[string][]string{
		"":           {"api_url", "cache_entries", "check", "client_secret_set", "connected", "mode", "rate_limit", "region", "token", "tokens_sealed", "user"},
		"user":       {"email", "id", "name"},
		"token":      {"expires_at", "expiry", "source"},
		"rate_limit": {"from", "limit", "remaining", "reset", "seen_at"},
	}
	for k, w := range want {
		v := any(m)
		if k != "" {
			v = m[k]
		}
		if got := keys(v); !slices.Equal(got, w) {
			t.Errorf("keys of %q: %v, want %v", k, got, w)
		}
	}
	var st clioStatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil {
		t.Fatal(err)
	}
	u, r := st.User, st.RateLimit
	if !st.Connected || st.Check != "ok" || st.Mode != "static_token" || st.Region != "us" || st.APIURL != c.srv.URL+"/api/v4/" ||
		u == nil || *u != (statusUserJSON{ID: 506, Name: "Morgan Reyes", Email: "admin@quist-law.example"}) ||
		st.Token.Source != "config" || st.Token.Expiry != "unknown" || st.Token.ExpiresAt != nil ||
		r == nil || r.From != "check" || r.Limit != 50 || r.Remaining != 49 || !r.Reset.After(time.Now()) {
		t.Errorf("status %s", out)
	}
}

func TestClioStatusWrongTokenCLI(t *testing.T) {
	c := newClioCLI(t, "  access_token: "+wrongStatic+"\n")
	out, errs, code := c.run(context.Background(), "clio", "status")
	if code != 1 {
		t.Fatalf("exit %d, want 1\n%s%s", code, out, errs)
	}
	if !regexp.MustCompile(`connected:\s+no \(token rejected: invalid_token: The access token provided is expired`).MatchString(out) ||
		!strings.Contains(errs, "token rejected: invalid_token") || strings.Contains(out, "clio user:") ||
		!strings.Contains(out, "Clio does not accept clio.access_token") {
		t.Errorf("text:\n%s%s", out, errs)
	}
	if strings.Contains(out+errs, "authorization_needed") || strings.Contains(out+errs, "authorization needed") {
		t.Errorf("a rejected static token reported as authorization needed:\n%s%s", out, errs)
	}
	if n := c.srv.RequestsTo("/api/v4/users/who_am_i"); n != 1 {
		t.Errorf("%d who_am_i requests, want 1 (a static token is not retried)", n)
	}
	noToken(t, out+errs, wrongStatic)

	out, errs, code = c.run(context.Background(), "clio", "status", "--json")
	var st clioStatusJSON
	if err := json.Unmarshal([]byte(out), &st); err != nil || code != 1 {
		t.Fatalf("exit %d %v\n%s%s", code, err, out, errs)
	}
	if st.Connected || st.Check != "token_rejected" || !strings.HasPrefix(st.Error, "token rejected: invalid_token: ") ||
		st.User != nil || st.RateLimit != nil || st.Token.Source != "config" {
		t.Errorf("json %s", out)
	}
	noToken(t, out+errs, wrongStatic)
}

func TestClioStatusOAuthCLI(t *testing.T) {
	c := newClioCLI(t, "  client_id: demo-client-id\n  client_secret: demo-client-secret\n")
	c.seedToken("") // access token demo-token, expiring in 24 h
	st := c.status()
	if !st.Connected || st.Mode != "oauth" || st.Token.Source != "oauth" || st.Token.ExpiresAt == nil ||
		st.Token.ExpiresAt.Sub(time.Now().Add(24*time.Hour)).Abs() > time.Minute ||
		st.Token.Expiry != st.Token.ExpiresAt.Format(time.RFC3339) || st.Token.Refreshed || !st.Token.HasRefreshToken ||
		st.User == nil || st.User.ID != 506 {
		t.Errorf("oauth: %+v", st)
	}
	out := c.ok("clio", "status")
	for _, re := range []string{
		`token:\s+OAuth, stored in the database by ` + "`matterline clio connect`" + `\n`,
		`token expiry:\s+` + regexp.QuoteMeta(st.Token.Expiry) + ` \(in 23h\)\n`,
		`clio user:\s+Morgan Reyes \(id 506, admin@quist-law\.example\)\n`,
	} {
		if !regexp.MustCompile(re).MatchString(out) {
			t.Errorf("status lacks %s:\n%s", re, out)
		}
	}
	noToken(t, out, sealedTok, "demo-refresh")

	// Clio rejects the access token and the refresh token is unknown to it: one
	// refresh, then "token rejected" with Clio's reason, exit 1.
	c.srv.ExpireAccessTokens()
	refreshes := c.srv.RequestsTo("/oauth/token")
	out, errs, code := c.run(context.Background(), "clio", "status")
	if code != 1 || !strings.Contains(out, "token rejected: invalid_token") || !strings.Contains(out, "run `matterline clio connect` again") ||
		!strings.Contains(errs, "token rejected") || strings.Contains(out+errs, "authorization_needed") {
		t.Errorf("rejected oauth token: exit %d\n%s%s", code, out, errs)
	}
	if n := c.srv.RequestsTo("/oauth/token") - refreshes; n != 1 {
		t.Errorf("%d refresh attempts, want 1", n)
	}
	if !regexp.MustCompile(`token expiry:\s+` + regexp.QuoteMeta(st.Token.Expiry)).MatchString(out) {
		t.Errorf("expiry not shown when rejected:\n%s", out)
	}
	noToken(t, out+errs, sealedTok, "demo-refresh")
}

func TestClioStatusNotConnectedCLI(t *testing.T) {
	c := newClioCLI(t, "")
	out, errs, code := c.run(context.Background(), "clio", "status")
	if code != 1 || !regexp.MustCompile(`connected:\s+no \(clio not connected\)`).MatchString(out) ||
		!strings.Contains(out, "run `matterline clio connect`") || !strings.Contains(out, "clio.access_token") ||
		!strings.Contains(errs, "not connected") {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if c.srv.Requests() != 0 {
		t.Errorf("%d requests without a token", c.srv.Requests())
	}
	if st := c.status(); st.Check != "not_connected" || st.Token.Source != "none" || st.User != nil {
		t.Errorf("json %+v", st)
	}
}

func TestClioStatusUnreachableCLI(t *testing.T) {
	c := newClioCLI(t, "  access_token: "+goodStatic+"\n")
	c.srv.AddToken(goodStatic)
	c.srv.SetFaults(cliotest.Faults{Down: true})
	out, errs, code := c.run(context.Background(), "clio", "status")
	host := strings.TrimPrefix(c.srv.URL, "http://")
	if code != 1 || !strings.Contains(out, "could not reach clio at "+host) || !strings.Contains(errs, "could not reach clio at "+host) {
		t.Errorf("exit %d\n%s%s", code, out, errs)
	}
	if st := c.status(); st.Check != "unreachable" || st.Connected {
		t.Errorf("json %+v", st)
	}
	noToken(t, out+errs, goodStatic)
}

package clio

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
)

func TestWhoAmI(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	me, resp, err := e.client.Users.WhoAmI(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// fields=id,name,email: the fixture user also has a phone number, which must
	// not come back.
	if me.ID != 506 || me.Name != "Morgan Reyes" || me.Email != "admin@quist-law.example" || me.PhoneNumber != "" {
		t.Errorf("user %+v", me)
	}
	req := e.srv.LastRequest("/api/v4/users/who_am_i")
	if req == nil {
		t.Fatal("no who_am_i request")
	}
	if req.URL.Path != "/api/v4/users/who_am_i.json" || req.URL.RawQuery != "fields="+url.QueryEscape(WhoAmIFields) {
		t.Errorf("request %s?%s", req.URL.Path, req.URL.RawQuery)
	}
	if req.Header.Get("Authorization") != "Bearer "+testToken {
		t.Error("no bearer token")
	}
	if e.srv.Requests() != 1 {
		t.Errorf("%d requests, want 1", e.srv.Requests())
	}
	if !resp.Rate.Known || resp.Rate.Limit != 50 || resp.Rate.Remaining != 49 || resp.Rate.Reset.Before(time.Now()) {
		t.Errorf("rate %+v", resp.Rate)
	}
}

func TestWhoAmIRejected(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{auth: func(*testEnv) Authorizer { return StaticToken("wrong-token") }})
	me, resp, err := e.client.Users.WhoAmI(context.Background())
	var ae *APIError
	if me != nil || !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized || ae.Type != "invalid_token" ||
		!strings.Contains(ae.Message, "expired, revoked") || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("user %v err %#v", me, err)
	}
	// A static token cannot refresh: one request, no retry.
	if n := e.srv.RequestsTo("/api/v4/users/who_am_i"); n != 1 {
		t.Errorf("%d requests, want 1", n)
	}
	if resp == nil || resp.StatusCode != 401 || !resp.Rate.Known || resp.Rate.Limit != 50 {
		t.Errorf("401 response %+v", resp)
	}
}

// TestWhoAmIRejectedRefreshFails: an OAuth token Clio rejects, whose refresh is
// refused too, still reports Clio's 401 reason first.
func TestWhoAmIRejectedRefreshFails(t *testing.T) {
	oe := newOAuthEnv(t, cliotest.Options{})
	if code, body := oe.connect(t); code != 200 {
		t.Fatalf("connect %d %s", code, body)
	}
	ctx := context.Background()
	tok, _ := oe.storage.LoadToken(ctx)
	req, _ := http.NewRequest("POST", oe.srv.URL+"/oauth/deauthorize", nil)
	req.Header.Set("Authorization", "Bearer "+tok.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	refreshes := oe.srv.RequestsTo("/oauth/token")
	_, _, err = oe.client.Users.WhoAmI(ctx)
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 401 || ae.Type != "invalid_token" || !errors.Is(err, ErrUnauthorized) {
		t.Fatalf("err %#v", err)
	}
	if !strings.Contains(err.Error(), "refresh failed") || !strings.Contains(err.Error(), "invalid_grant") {
		t.Errorf("refresh failure not reported: %v", err)
	}
	if n := oe.srv.RequestsTo("/oauth/token") - refreshes; n != 1 {
		t.Errorf("%d refresh attempts, want 1", n)
	}
	if classify(err) != ReasonAuthNeeded {
		t.Errorf("lookups classify it as %s", classify(err))
	}
}

func TestWhoAmIRateLimited(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{fake: cliotest.Options{RateLimit: 1, RateWindow: 30 * time.Second}})
	ctx := context.Background()
	if _, _, err := e.client.Users.WhoAmI(ctx); err != nil {
		t.Fatal(err)
	}
	me, resp, err := e.client.Users.WhoAmI(ctx)
	var rl *RateLimitError
	if me != nil || !errors.As(err, &rl) || !errors.Is(err, ErrRateLimited) {
		t.Fatalf("user %v err %v", me, err)
	}
	ra, _ := time.ParseDuration(resp.Header.Get("Retry-After") + "s")
	if resp.StatusCode != 429 || ra <= 0 || ra > 30*time.Second || rl.RetryAfter != ra {
		t.Errorf("status %d Retry-After %q, RetryAfter %s", resp.StatusCode, resp.Header.Get("Retry-After"), rl.RetryAfter)
	}
	if !resp.Rate.Known || resp.Rate.Remaining != 0 || resp.Rate.Limit != 1 {
		t.Errorf("rate %+v", resp.Rate)
	}
}

func TestWhoAmIUnreachable(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	e.srv.SetFaults(cliotest.Faults{Down: true})
	_, resp, err := e.client.Users.WhoAmI(context.Background())
	var ue *url.Error
	var ae *APIError
	if err == nil || !errors.As(err, &ue) || errors.As(err, &ae) || resp != nil {
		t.Fatalf("resp %v err %#v", resp, err)
	}
}

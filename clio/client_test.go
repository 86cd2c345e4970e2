package clio

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
)

func TestEndpoints(t *testing.T) {
	for region, host := range map[Region]string{RegionUS: "app.clio.com", RegionCA: "ca.app.clio.com",
		RegionEU: "eu.app.clio.com", RegionAU: "au.app.clio.com"} {
		ep, err := EndpointsFor(region, "")
		if err != nil || ep.API != "https://"+host+"/api/v4/" || ep.TokenURL != "https://"+host+"/oauth/token" ||
			ep.AuthURL != "https://"+host+"/oauth/authorize" || ep.Deauthorize != "https://"+host+"/oauth/deauthorize" {
			t.Errorf("%s: %+v %v", region, ep, err)
		}
	}
	ep, err := EndpointsFor(RegionEU, "http://127.0.0.1:9999/")
	if err != nil || ep.API != "http://127.0.0.1:9999/api/v4/" || ep.TokenURL != "http://127.0.0.1:9999/oauth/token" {
		t.Errorf("base url: %+v %v", ep, err)
	}
	if _, err := EndpointsFor("xx", ""); err == nil {
		t.Error("unknown region accepted")
	}
	if _, err := ParseRegion("EU"); err != nil {
		t.Error(err)
	}
}

func resp(status int, header http.Header, body string) *http.Response {
	if header == nil {
		header = http.Header{}
	}
	return &http.Response{StatusCode: status, Header: header, Body: io.NopCloser(strings.NewReader(body))}
}

func TestCheckResponse(t *testing.T) {
	tests := []struct {
		name   string
		r      *http.Response
		status int
		typ    string
		unauth bool
		retry  time.Duration
	}{
		{"ok", resp(200, nil, "{}"), 0, "", false, 0},
		{"invalid fields", resp(400, nil, `{"error":{"type":"InvalidFields","message":"unknown field: foo"}}`), 400, "InvalidFields", false, 0},
		{"forbidden", resp(403, nil, `{"error":{"type":"ForbiddenError","message":"no"}}`), 403, "ForbiddenError", false, 0},
		{"argument", resp(422, nil, `{"error":{"type":"ArgumentError","message":"x"}}`), 422, "ArgumentError", false, 0},
		{"oauth 401", resp(401, nil, `{"error":"invalid_token","error_description":"expired"}`), 401, "invalid_token", true, 0},
		{"bare 401", resp(401, nil, ``), 401, "", true, 0},
		{"500 html", resp(500, nil, `<html>oops</html>`), 500, "", false, 0},
		{"429", resp(429, http.Header{"Retry-After": {"17"}}, `{"error":{"type":"whatever"}}`), 0, "", false, 17 * time.Second},
		{"429 no header", resp(429, nil, ``), 0, "", false, 0},
	}
	for _, tt := range tests {
		err := CheckResponse(tt.r)
		if tt.name == "ok" {
			if err != nil {
				t.Errorf("ok: %v", err)
			}
			continue
		}
		if errors.Is(err, ErrUnauthorized) != tt.unauth {
			t.Errorf("%s: Is(ErrUnauthorized) = %v", tt.name, !tt.unauth)
		}
		var rl *RateLimitError
		if errors.As(err, &rl) {
			if rl.RetryAfter != tt.retry || !errors.Is(err, ErrRateLimited) {
				t.Errorf("%s: %+v", tt.name, rl)
			}
			continue
		}
		var ae *APIError
		if !errors.As(err, &ae) || ae.Status != tt.status || ae.Type != tt.typ {
			t.Errorf("%s: %#v", tt.name, err)
		}
		if err.Error() != strings.ToLower(err.Error()[:1])+err.Error()[1:] {
			t.Errorf("%s: capitalized error %q", tt.name, err)
		}
	}
}

func TestClientRequests(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	ctx := context.Background()
	users, r, err := e.client.Users.List(ctx, ListOptions{})
	if err != nil || len(users) != 6 || r.NextPage != "" {
		t.Fatalf("users %d %v", len(users), err)
	}
	q := e.srv.LastRequest("/api/v4/users").URL.Query()
	if q.Get("limit") != "2000" || q.Get("fields") != UserFields {
		t.Errorf("users query %v", q)
	}
	if r.Header.Get("X-API-VERSION") != DefaultAPIVersion || !r.Rate.Known || r.Rate.Limit != 50 {
		t.Errorf("response headers %v rate %+v", r.Header, r.Rate)
	}
	// fields errors come back typed.
	_, _, err = e.client.Contacts.List(ctx, ContactListOptions{ListOptions: ListOptions{Fields: "id,phone_numbers{default_number}"}})
	var ae *APIError
	if !errors.As(err, &ae) || ae.Status != 400 || ae.Type != "InvalidFields" {
		t.Errorf("bad fields: %v", err)
	}
	// A next URL on another host is never followed (the token would leak).
	if _, _, err := e.client.Contacts.ListNext(ctx, "https://evil.example/api/v4/contacts.json?page_token=x"); !errors.Is(err, ErrBadResponse) {
		t.Errorf("foreign next url: %v", err)
	}
	me, _, err := e.client.Users.WhoAmI(ctx)
	if err != nil || me.ID != 506 || me.Name != "Morgan Reyes" {
		t.Errorf("who_am_i %+v %v", me, err)
	}
	if p := e.srv.LastRequest("/api/v4/users/who_am_i").URL.Path; p != "/api/v4/users/who_am_i.json" {
		t.Errorf("who_am_i path %s", p)
	}
}

func TestClientOversized(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{timeout: 5 * time.Second})
	e.srv.SetFaults(cliotest.Faults{Oversized: true})
	_, _, err := e.client.Contacts.List(context.Background(), ContactListOptions{Query: "2171"})
	if !errors.Is(err, ErrBodyTooLarge) || !errors.Is(err, ErrBadResponse) {
		t.Fatalf("oversized: %v", err)
	}
}

// FuzzDecodeList feeds Clio-shaped JSON bodies to the decoding the client does.
func FuzzDecodeList(f *testing.F) {
	seeds := []string{
		`{"data":[{"id":1001,"name":"Ada Quist","type":"Person","phone_numbers":[{"number":"(217) 555-2171","name":"Work"}]}],"meta":{"paging":{"next":"https://app.clio.com/api/v4/contacts.json?page_token=abc"},"records":3}}`,
		`{"data":[],"meta":{"paging":{}}}`,
		`{"data":[{"id":101,"display_number":"00101-Quist","status":"Open","updated_at":"2026-11-20T15:04:05Z","responsible_staff":null,"responsible_attorney":{"id":502,"name":"M","email":"","phone_number":""}}],"meta":{"paging":{}}}`,
		`{"data":[{"id":12,"name":"Ada Qu`,
		`{"data":{"id":506,"name":"Morgan"}}`,
		`{"error":{"type":"InvalidFields","message":"x"}}`,
		`null`, `[]`, `{"data":[{"id":"1"}]}`,
	}
	for _, s := range seeds {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var c listBody[Contact]
		if json.Unmarshal(b, &c) == nil {
			s := &Service{o: ServiceOptions{DefaultCountry: "US", Match: MatchFull}}
			s.matchContacts(c.Data, "+12175552171")
			_ = c.nextPage()
		}
		var m listBody[Matter]
		if json.Unmarshal(b, &m) == nil {
			for i := range m.Data {
				for _, fld := range []StaffField{StaffResponsibleStaff, StaffResponsibleAttorney, StaffOriginatingAttorney} {
					_ = fld.of(&m.Data[i])
				}
			}
		}
		_ = CheckResponse(resp(400, nil, string(b)))
		_ = CheckResponse(resp(401, nil, string(b)))
	})
}

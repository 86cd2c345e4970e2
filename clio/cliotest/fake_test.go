package cliotest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"testing"
	"time"
)

func testFixture() *Fixture {
	return &Fixture{
		Clients: []OAuthClient{{ID: "cid", Secret: "csecret"}},
		Tokens:  []string{"tok"},
		WhoAmI:  7,
		Users:   []User{{ID: 7, Name: "Felix Dubinsky", Email: "felix@example.com", PhoneNumber: "217-555-0101"}},
		Contacts: []Contact{
			{ID: 1, FirstName: "Ada", LastName: "Quist", Phones: []Phone{{Number: "(217) 555-2171", Name: "Work"}}},
			{ID: 2, Type: "Company", Name: "Prairie Grain", Addresses: []Address{{Street: "2171 Industrial Pkwy"}}},
			{ID: 3, FirstName: "Marcus", LastName: "Bell", Emails: []Email{{Address: "MARCUS2171@example.com"}}},
			{ID: 4, FirstName: "Elena", LastName: "Voss", CompanyID: 2},
		},
		Matters: []Matter{
			{ID: 10, DisplayNumber: "00010-Quist", Status: "open", ClientID: 1, ResponsibleStaffID: 7},
			{ID: 11, DisplayNumber: "00011-Quist", Status: "Closed", ClientID: 1},
		},
	}
}

type reply struct {
	status int
	header http.Header
	body   map[string]any
	raw    string
}

func get(t *testing.T, s *Server, path, tok string) reply {
	t.Helper()
	req, _ := http.NewRequest("GET", s.URL+path, nil)
	if tok != "" {
		req.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func ids(r reply) []float64 {
	var out []float64
	data, _ := r.body["data"].([]any)
	for _, d := range data {
		out = append(out, d.(map[string]any)["id"].(float64))
	}
	return out
}

func TestFakeContactsQuery(t *testing.T) {
	s := NewServer(t, testFixture())
	for _, tt := range []struct {
		q    string
		want int
	}{
		{"query=2171", 3}, {"query=marcus2171", 1}, {"query=ADA", 1}, {"query=prairie", 2},
		{"query=2171&type=Company", 1}, {"query=2171&type=Person", 2}, {"", 4}, {"query=2171&bogus=1", 3},
	} {
		r := get(t, s, "/api/v4/contacts.json?fields=id&"+tt.q, "tok")
		if r.status != 200 || len(ids(r)) != tt.want {
			t.Errorf("%s: %d %v", tt.q, r.status, ids(r))
		}
	}
	// Without .json too.
	if r := get(t, s, "/api/v4/contacts?fields=id,name", "tok"); r.status != 200 || len(ids(r)) != 4 {
		t.Errorf("no .json: %d", r.status)
	}
	if s.RequestsTo("/api/v4/contacts.json") != 9 {
		t.Errorf("count %d", s.RequestsTo("/api/v4/contacts"))
	}
}

func TestFakeFields(t *testing.T) {
	s := NewServer(t, testFixture())
	r := get(t, s, "/api/v4/contacts.json?query=ada", "tok")
	d := r.body["data"].([]any)[0].(map[string]any)
	if len(d) != 2 || d["id"] == nil || d["etag"] == nil {
		t.Errorf("without fields: %v", d)
	}
	r = get(t, s, "/api/v4/contacts.json?query=ada&fields=id,name,phone_numbers{number,name}", "tok")
	d = r.body["data"].([]any)[0].(map[string]any)
	ph := d["phone_numbers"].([]any)[0].(map[string]any)
	if d["name"] != "Ada Quist" || ph["number"] != "(217) 555-2171" || len(ph) != 2 {
		t.Errorf("nested: %v", d)
	}
	for _, bad := range []string{"id,nope", "phone_numbers{default_number}", "phone_numbers{number{x}}", "id{x}", "phone_numbers{number"} {
		r := get(t, s, "/api/v4/contacts.json?fields="+url.QueryEscape(bad), "tok")
		errObj, _ := r.body["error"].(map[string]any)
		if r.status != 400 || errObj["type"] != "InvalidFields" {
			t.Errorf("%s: %d %s", bad, r.status, r.raw)
		}
	}
	r = get(t, s, "/api/v4/contacts.json?query=elena&fields=company{name}", "tok")
	if c := r.body["data"].([]any)[0].(map[string]any)["company"].(map[string]any); c["name"] != "Prairie Grain" {
		t.Errorf("company %v", c)
	}
}

func TestFakeMatters(t *testing.T) {
	s := NewServer(t, testFixture())
	f := "&fields=" + url.QueryEscape("id,status,responsible_staff{id,name},responsible_attorney{id,name}")
	r := get(t, s, "/api/v4/matters.json?client_id=1&status=open"+f, "tok")
	data := r.body["data"].([]any)
	m := data[0].(map[string]any)
	if len(data) != 1 || m["status"] != "Open" || m["responsible_staff"].(map[string]any)["name"] != "Felix Dubinsky" || m["responsible_attorney"] != nil {
		t.Errorf("open: %s", r.raw)
	}
	if r := get(t, s, "/api/v4/matters.json?client_id=1&status=open,closed"+f, "tok"); len(ids(r)) != 2 {
		t.Errorf("comma list: %v", ids(r))
	}
	if r := get(t, s, "/api/v4/matters.json?client_id=1"+f, "tok"); len(ids(r)) != 2 {
		t.Errorf("no status: %v", ids(r))
	}
	if r := get(t, s, "/api/v4/matters.json?status=Open"+f, "tok"); r.status != 422 {
		t.Errorf("capitalized status accepted: %d", r.status)
	}
}

func TestFakePaging(t *testing.T) {
	fx := testFixture()
	for i := range 5 {
		fx.Contacts = append(fx.Contacts, Contact{ID: int64(100 + i), FirstName: "P", LastName: "Zzpage"})
	}
	s := NewServer(t, fx)
	next := "/api/v4/contacts.json?fields=id&limit=2&query=zzpage"
	var got []float64
	for pages := 0; next != ""; pages++ {
		if pages > 5 {
			t.Fatal("paging does not end")
		}
		r := get(t, s, next, "tok")
		got = append(got, ids(r)...)
		paging := r.body["meta"].(map[string]any)["paging"].(map[string]any)
		n, _ := paging["next"].(string)
		if n != "" && !strings.HasPrefix(n, s.URL+"/api/v4/contacts.json?") {
			t.Fatalf("next not absolute: %s", n)
		}
		next = strings.TrimPrefix(n, s.URL)
	}
	if len(got) != 5 || got[0] != 100 || got[4] != 104 {
		t.Errorf("paged ids %v", got)
	}
	for _, l := range []string{"0", "201", "x"} {
		if r := get(t, s, "/api/v4/contacts.json?fields=id&limit="+l, "tok"); r.status != 422 {
			t.Errorf("limit %s: %d", l, r.status)
		}
	}
	if r := get(t, s, "/api/v4/users.json?fields=id&limit=2000", "tok"); r.status != 200 {
		t.Errorf("users limit 2000: %d", r.status)
	}
}

func TestFakeAuthAndRateLimit(t *testing.T) {
	s := NewServer(t, testFixture(), Options{RateLimit: 2})
	r := get(t, s, "/api/v4/users/who_am_i.json?fields=id,name", "nope")
	if r.status != 401 || r.body["error"] != "invalid_token" || r.body["error_description"] == nil {
		t.Errorf("bad token: %d %s", r.status, r.raw)
	}
	// Every API response carries the rate headers, a 401 too; a bad token does
	// not use the good token's window.
	if r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Remaining") != "1" || r.header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("401 rate headers: %v", r.header)
	}
	r = get(t, s, "/api/v4/users/who_am_i.json?fields=id,name", "tok")
	if r.status != 200 || r.body["data"].(map[string]any)["name"] != "Felix Dubinsky" || r.header.Get("X-RateLimit-Remaining") != "1" ||
		r.header.Get("X-RateLimit-Limit") != "2" || r.header.Get("X-RateLimit-Reset") == "" {
		t.Errorf("who_am_i: %d %v %s", r.status, r.header, r.raw)
	}
	get(t, s, "/api/v4/users.json", "tok")
	r = get(t, s, "/api/v4/users.json", "tok")
	if r.status != 429 || r.header.Get("Retry-After") == "" || r.header.Get("X-RateLimit-Remaining") != "0" {
		t.Errorf("429: %d %v", r.status, r.header)
	}
}

func TestFakeWhoAmIFields(t *testing.T) {
	s := NewServer(t, testFixture())
	r := get(t, s, "/api/v4/users/who_am_i.json?fields=id,name,email", "tok")
	want := map[string]any{"id": float64(7), "name": "Felix Dubinsky", "email": "felix@example.com"}
	if r.status != 200 || !reflect.DeepEqual(r.body["data"], want) {
		t.Errorf("fields=id,name,email: %d %s", r.status, r.raw)
	}
	// Without fields: id and etag only; the path works without .json too.
	r = get(t, s, "/api/v4/users/who_am_i", "tok")
	if data, _ := r.body["data"].(map[string]any); r.status != 200 || len(data) != 2 || data["id"] != float64(7) || data["etag"] == nil {
		t.Errorf("no fields: %d %s", r.status, r.raw)
	}
	r = get(t, s, "/api/v4/users/who_am_i.json?fields=id,password", "tok")
	if e, _ := r.body["error"].(map[string]any); r.status != 400 || e["type"] != "InvalidFields" {
		t.Errorf("unknown field: %d %s", r.status, r.raw)
	}
}

func TestFakeRateWindowResets(t *testing.T) {
	now := time.Now()
	s := NewServer(t, testFixture(), Options{RateLimit: 1, Now: func() time.Time { return now }})
	get(t, s, "/api/v4/users.json", "tok")
	if r := get(t, s, "/api/v4/users.json", "tok"); r.status != 429 {
		t.Fatalf("%d", r.status)
	}
	now = now.Add(61 * time.Second)
	if r := get(t, s, "/api/v4/users.json", "tok"); r.status != 200 {
		t.Fatalf("after window: %d", r.status)
	}
}

func postForm(t *testing.T, s *Server, form url.Values) reply {
	t.Helper()
	resp, err := s.Client().PostForm(s.URL+"/oauth/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func TestFakeOAuth(t *testing.T) {
	s := NewServer(t, testFixture())
	c := s.Client()
	c.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	resp, err := c.Get(s.URL + "/oauth/authorize?response_type=code&client_id=cid&state=st1&redirect_uri=" +
		url.QueryEscape("http://127.0.0.1:1/cb"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	loc, _ := url.Parse(resp.Header.Get("Location"))
	code := loc.Query().Get("code")
	if resp.StatusCode != 302 || loc.Query().Get("state") != "st1" || code == "" || loc.Path != "/cb" {
		t.Fatalf("authorize: %d %s", resp.StatusCode, loc)
	}
	base := url.Values{"client_id": {"cid"}, "client_secret": {"csecret"}}
	with := func(kv ...string) url.Values {
		v := url.Values{}
		for k, vs := range base {
			v[k] = vs
		}
		for i := 0; i < len(kv); i += 2 {
			v.Set(kv[i], kv[i+1])
		}
		return v
	}
	if r := postForm(t, s, with("grant_type", "authorization_code", "code", code, "redirect_uri", "http://127.0.0.1:1/cb", "client_secret", "bad")); r.status != 401 || r.body["error"] != "invalid_client" {
		t.Errorf("invalid_client: %d %s", r.status, r.raw)
	}
	r := postForm(t, s, with("grant_type", "authorization_code", "code", code, "redirect_uri", "http://127.0.0.1:1/cb"))
	rt, _ := r.body["refresh_token"].(string)
	if r.status != 200 || r.body["access_token"] == nil || rt == "" || r.body["token_type"] != "bearer" || r.body["expires_in"] == nil {
		t.Fatalf("exchange: %d %s", r.status, r.raw)
	}
	if r := postForm(t, s, with("grant_type", "authorization_code", "code", code, "redirect_uri", "http://127.0.0.1:1/cb")); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Errorf("code reuse: %d %s", r.status, r.raw)
	}
	r = postForm(t, s, with("grant_type", "refresh_token", "refresh_token", rt))
	if r.status != 200 || r.body["refresh_token"] != nil {
		t.Errorf("refresh (no rotation): %s", r.raw)
	}
	at := r.body["access_token"].(string)
	if g := get(t, s, "/api/v4/users/who_am_i.json?fields=id", at); g.status != 200 {
		t.Errorf("refreshed token rejected: %d", g.status)
	}
	s.SetFaults(Faults{RotateRefreshTokens: true})
	r = postForm(t, s, with("grant_type", "refresh_token", "refresh_token", rt))
	if nrt, _ := r.body["refresh_token"].(string); nrt == "" || nrt == rt {
		t.Errorf("rotation: %s", r.raw)
	}
	if r := postForm(t, s, with("grant_type", "refresh_token", "refresh_token", rt)); r.status != 400 || r.body["error"] != "invalid_grant" {
		t.Errorf("old refresh token after rotation: %d", r.status)
	}
}

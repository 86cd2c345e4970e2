package clio

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/lookup"
)

func TestLookupDemo(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	tests := []struct {
		name, caller string
		status       lookup.Status
		reason       string
		contact      int64
		matter       int64
		staff        int64
	}{
		{"ada found", "+12175552171", lookup.StatusFound, ReasonMatched, 1001, 101, 501},
		// Calvin Marsh (312-555-2171), Quentin Ash (415) and the companies whose
		// address or email holds 2171 share the query with Ada.
		{"same last four other area", "sip:3125552171@pbx", lookup.StatusFound, ReasonMatched, 1002, 103, 503},
		{"last four shared but no full match", "+16185552171", lookup.StatusNotFound, ReasonNoMatch, 0, 0, 0},
		{"company client from its own number", "2175553480", lookup.StatusFound, ReasonMatched, 1004, 104, 504},
		{"company address digits ignored", "+12175559000", lookup.StatusFound, ReasonNoOpenMatter, 1003, 0, 0},
		{"closed ignored, null staff falls back to attorney", "+12175550142", lookup.StatusFound, ReasonMatched, 1005, 106, 502},
		{"family same staff", "+12175557788", lookup.StatusFound, ReasonSharedSameStaff, 1006, 107, 501},
		{"family different staff", "+12175556060", lookup.StatusAmbiguous, ReasonSeveralContacts, 0, 0, 0},
		{"pending not counted", "+12175558123", lookup.StatusFound, ReasonNoOpenMatter, 1010, 0, 0},
		{"recent matter wins", "+13125550199", lookup.StatusFound, ReasonMatched, 1011, 113, 504},
		{"extension hash company", "+12175554400", lookup.StatusFound, ReasonMatched, 1012, 114, 503},
		{"no staff at all", "+12175554242", lookup.StatusFound, ReasonNoStaff, 1020, 118, 0},
		{"international", "+442079460958", lookup.StatusFound, ReasonMatched, 1013, 115, 502},
		{"withheld", "anonymous", lookup.StatusNotFound, "withheld", 0, 0, 0},
		{"too short", "101", lookup.StatusNotFound, "too_short", 0, 0, 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := e.srv.Requests()
			r := e.svc.Lookup(context.Background(), tt.caller)
			if r.Status != tt.status || r.Reason != tt.reason {
				t.Fatalf("got %v/%s, want %v/%s (%+v)", r.Status, r.Reason, tt.status, tt.reason, r)
			}
			if got := idOf(r.Contact); got != tt.contact {
				t.Errorf("contact %d, want %d", got, tt.contact)
			}
			if got := matterID(r); got != tt.matter {
				t.Errorf("matter %d, want %d", got, tt.matter)
			}
			if got := staffID(r); got != tt.staff {
				t.Errorf("staff %d, want %d", got, tt.staff)
			}
			if tt.reason == "withheld" || tt.reason == "too_short" {
				if e.srv.Requests() != before {
					t.Errorf("withheld/short caller ID made %d requests", e.srv.Requests()-before)
				}
			}
		})
	}
}

func idOf(c *lookup.Contact) int64 {
	if c == nil {
		return 0
	}
	return c.ID
}

func TestLookupAdaContract(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	r := e.svc.Lookup(context.Background(), "+12175552171")
	b, _ := r.MarshalContract()
	want := `{"status":"found","contact":{"id":1001,"name":"Ada Quist"},"matter":{"id":101,"display_number":"00101-Quist"},"responsible_staff":{"id":501,"name":"Felix Dubinsky"}}`
	if string(b) != want {
		t.Fatalf("contract\n got %s\nwant %s", b, want)
	}
	if r.Staff.Email == "" || r.Staff.Phone == "" {
		t.Errorf("staff email/phone missing: %+v", r.Staff)
	}
}

// TestLookupRequests asserts the path and query of both requests.
func TestLookupRequests(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{svc: func(o *ServiceOptions) {
		o.MatterStatus = []MatterStatus{MatterOpen, MatterPending}
	}})
	r := e.svc.Lookup(context.Background(), "+12175558123")
	if r.Status != lookup.StatusFound || r.Matter == nil || r.Matter.ID != 111 {
		t.Fatalf("pending matter not found with matter_status open,pending: %+v", r)
	}
	cr := e.srv.LastRequest("/api/v4/contacts")
	if cr.URL.Path != "/api/v4/contacts.json" {
		t.Errorf("contacts path %q", cr.URL.Path)
	}
	q := cr.URL.Query()
	if q.Get("query") != "8123" || q.Get("fields") != "id,name,type,phone_numbers{number,name}" ||
		q.Has("type") || q.Get("order") != "id(asc)" || q.Get("limit") != "200" {
		t.Errorf("contacts query %v", q)
	}
	if cr.Header.Get("X-API-VERSION") == "" || cr.Header.Get("Authorization") != "Bearer "+testToken {
		t.Errorf("headers %v", cr.Header)
	}
	mr := e.srv.LastRequest("/api/v4/matters")
	mq := mr.URL.Query()
	if mr.URL.Path != "/api/v4/matters.json" || mq.Get("client_id") != "1010" || mq.Get("status") != "open,pending" {
		t.Errorf("matters request %s %v", mr.URL.Path, mq)
	}
	for _, f := range []string{"display_number", "status", "updated_at", "responsible_staff{id,name,email,phone_number}",
		"responsible_attorney{id,name,email,phone_number}"} {
		if !strings.Contains(mq.Get("fields"), f) {
			t.Errorf("matters fields %q lacks %s", mq.Get("fields"), f)
		}
	}
}

func TestLookupStaffPreferenceAndPolicy(t *testing.T) {
	// Attorney first: Ada's matter 101 has attorney 502.
	e := newTestEnv(t, nil, envOpts{svc: func(o *ServiceOptions) {
		o.StaffPreference = []StaffField{StaffResponsibleAttorney, StaffResponsibleStaff}
	}})
	if r := e.svc.Lookup(context.Background(), "+12175552171"); staffID(r) != 502 {
		t.Errorf("attorney preference: staff %d, want 502", staffID(r))
	}
	// Staff only: Byrne's open matter has no responsible staff.
	e = newTestEnv(t, nil, envOpts{svc: func(o *ServiceOptions) { o.StaffPreference = []StaffField{StaffResponsibleStaff} }})
	if r := e.svc.Lookup(context.Background(), "+12175550142"); r.Reason != ReasonNoStaff || r.Matter.ID != 106 {
		t.Errorf("staff only: %+v", r)
	}
	// Policy first: Alvarez's lowest-id open matter 112 (staff 503).
	e = newTestEnv(t, nil, envOpts{svc: func(o *ServiceOptions) { o.MatterPolicy = PolicyFirst }})
	if r := e.svc.Lookup(context.Background(), "+13125550199"); matterID(r) != 112 || staffID(r) != 503 {
		t.Errorf("policy first: %+v", r)
	}
}

func TestLookupLast4OptIn(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{svc: func(o *ServiceOptions) { o.Match = MatchLast4 }})
	// Ada, Calvin Marsh and Quentin Ash share 2171: ambiguous under last4.
	if r := e.svc.Lookup(context.Background(), "+16185552171"); r.Status != lookup.StatusAmbiguous {
		t.Errorf("last4: %+v", r)
	}
}

// pagedFixture has n contacts sharing 2171 before the one with the caller's number.
func pagedFixture(n int) *cliotest.Fixture {
	fx := &cliotest.Fixture{Tokens: []string{testToken}, Users: []cliotest.User{{ID: 7, Name: "Staff Seven"}}}
	for i := range n {
		fx.Contacts = append(fx.Contacts, cliotest.Contact{ID: int64(i + 1), FirstName: "Other", LastName: fmt.Sprint(i),
			Phones: []cliotest.Phone{{Number: fmt.Sprintf("(%03d) 555-2171", 300+i%600)}}})
	}
	fx.Contacts = append(fx.Contacts, cliotest.Contact{ID: int64(n + 1), FirstName: "Last", LastName: "Page",
		Phones: []cliotest.Phone{{Number: "+1 217 555 2171"}}})
	fx.Matters = []cliotest.Matter{{ID: 1, DisplayNumber: "00001-Page", Status: "Open", ClientID: int64(n + 1), ResponsibleStaffID: 7}}
	return fx
}

func TestLookupPaging(t *testing.T) {
	e := newTestEnv(t, pagedFixture(450), envOpts{})
	r := e.svc.Lookup(context.Background(), "+12175552171")
	if r.Status != lookup.StatusFound || idOf(r.Contact) != 451 || staffID(r) != 7 {
		t.Fatalf("paged: %+v", r)
	}
	if n := e.contactsRequests(); n != 3 {
		t.Errorf("contacts requests %d, want 3 pages", n)
	}
	if q := e.srv.LastRequest("/api/v4/contacts").URL.Query(); q.Get("page_token") == "" || q.Get("fields") == "" {
		t.Errorf("next page query %v", q)
	}
	// max_pages bounds the paging: the caller is on page 3.
	e = newTestEnv(t, pagedFixture(450), envOpts{svc: func(o *ServiceOptions) { o.MaxPages = 2 }})
	if r := e.svc.Lookup(context.Background(), "+12175552171"); r.Status != lookup.StatusNotFound || r.Reason != ReasonNoMatchTrunc {
		t.Fatalf("max pages: %+v", r)
	}
	if n := e.contactsRequests(); n != 2 {
		t.Errorf("contacts requests %d, want 2", n)
	}
}

func TestLookupFailures(t *testing.T) {
	tests := []struct {
		name   string
		faults cliotest.Faults
		reason string
	}{
		{"500", cliotest.Faults{Fail500: true}, ReasonServerError},
		{"garbage json", cliotest.Faults{Garbage: true}, ReasonBadResponse},
		{"oversized", cliotest.Faults{Oversized: true}, ReasonBadResponse},
		{"timeout", cliotest.Faults{Latency: 500 * time.Millisecond}, ReasonTimeout},
		{"down", cliotest.Faults{Down: true}, ReasonNetwork},
		{"401 without refresh", cliotest.Faults{Unauthorized: 5}, ReasonAuthNeeded},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			timeout := 2 * time.Second
			if tt.faults.Latency > 0 {
				timeout = 100 * time.Millisecond
			}
			e := newTestEnv(t, nil, envOpts{timeout: timeout})
			e.srv.SetFaults(tt.faults)
			r := e.svc.Lookup(context.Background(), "+12175552171")
			if r.Status != lookup.StatusError || r.Reason != tt.reason {
				t.Fatalf("got %v/%s, want error/%s", r.Status, r.Reason, tt.reason)
			}
			// Errors are not cached: the next lookup asks again and succeeds.
			e.srv.SetFaults(cliotest.Faults{})
			if r := e.svc.Lookup(context.Background(), "+12175552171"); r.Status != lookup.StatusFound || r.Cached {
				t.Fatalf("after recovery: %+v", r)
			}
		})
	}
}

func TestLookupRateLimited(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{fake: cliotest.Options{RateLimit: 1}})
	ctx := context.Background()
	// The contacts request uses the one allowed request; matters gets 429.
	r := e.svc.Lookup(ctx, "+12175552171")
	if r.Status != lookup.StatusError || r.Reason != ReasonRateLimited {
		t.Fatalf("got %+v, want error/rate_limited", r)
	}
	st := e.svc.Stats()
	if st.RateLimited != 1 || !st.RetryUntil.After(e.clock.Now()) {
		t.Fatalf("stats %+v", st)
	}
	// While Retry-After runs no request is made.
	before := e.srv.Requests()
	start := time.Now()
	if r := e.svc.Lookup(ctx, "+13125552171"); r.Reason != ReasonRateLimited {
		t.Fatalf("during retry-after: %+v", r)
	}
	if e.srv.Requests() != before || time.Since(start) > 100*time.Millisecond {
		t.Fatalf("a lookup during Retry-After called Clio or waited")
	}
	saved, err := e.storage.LoadState(ctx)
	if err != nil || !saved.RetryUntil.After(time.Now()) || !strings.Contains(saved.LastError, "rate_limited") {
		t.Fatalf("state %+v %v", saved, err)
	}
	e.clock.Advance(2 * time.Minute)
	if r := e.svc.Lookup(ctx, "+13125552171"); r.Reason == ReasonRateLimited && e.srv.Requests() == before {
		t.Fatalf("still paused after Retry-After: %+v", r)
	}
}

func TestLookupBreaker(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{svc: func(o *ServiceOptions) {
		o.BreakerFailures, o.BreakerCooldown = 3, 30*time.Second
	}})
	ctx := context.Background()
	e.srv.SetFaults(cliotest.Faults{Fail500: true})
	for i := range 3 {
		if r := e.svc.Lookup(ctx, "+12175552171"); r.Reason != ReasonServerError {
			t.Fatalf("failure %d: %+v", i, r)
		}
	}
	if st := e.svc.Stats().Breaker; st != BreakerOpen {
		t.Fatalf("breaker %v after 3 failures", st)
	}
	before := e.srv.Requests()
	if r := e.svc.Lookup(ctx, "+12175552171"); r.Status != lookup.StatusError || r.Reason != ReasonCircuitOpen {
		t.Fatalf("open circuit: %+v", r)
	}
	if e.srv.Requests() != before {
		t.Fatal("open circuit still called Clio")
	}
	e.srv.SetFaults(cliotest.Faults{})
	e.clock.Advance(31 * time.Second)
	if st := e.svc.Stats().Breaker; st != BreakerHalfOpen {
		t.Fatalf("breaker %v after cool-down", st)
	}
	if r := e.svc.Lookup(ctx, "+12175552171"); r.Status != lookup.StatusFound {
		t.Fatalf("after cool-down: %+v", r)
	}
	if st := e.svc.Stats().Breaker; st != BreakerClosed {
		t.Fatalf("breaker %v after success", st)
	}
}

func TestLookupCache(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	ctx := context.Background()
	first := e.svc.Lookup(ctx, "+12175552171")
	if first.Cached {
		t.Fatal("first lookup cached")
	}
	before := e.srv.Requests()
	hit := e.svc.Lookup(ctx, "(217) 555-2171")
	if e.srv.Requests() != before {
		t.Fatalf("cache hit made %d requests", e.srv.Requests()-before)
	}
	if !hit.Cached || hit.Status != lookup.StatusFound || hit.Staff.ID != 501 {
		t.Fatalf("hit %+v", hit)
	}
	// not_found is cached for the negative TTL only.
	e.svc.Lookup(ctx, "+16185552171")
	before = e.srv.Requests()
	if r := e.svc.Lookup(ctx, "+16185552171"); !r.Cached || e.srv.Requests() != before {
		t.Fatalf("negative cache: %+v", r)
	}
	e.clock.Advance(3 * time.Minute)
	if r := e.svc.Lookup(ctx, "+16185552171"); r.Cached {
		t.Fatalf("negative entry outlived its TTL: %+v", r)
	}
	// --no-cache asks Clio even with a fresh entry.
	before = e.srv.Requests()
	if r := e.svc.LookupWith(ctx, "+12175552171", LookupOptions{NoCache: true}); r.Cached || e.srv.Requests() == before {
		t.Fatalf("no-cache: %+v", r)
	}
}

func TestLookupCacheSurvivesRestart(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	e.svc.Lookup(context.Background(), "+12175552171")
	e2 := newTestEnv(t, nil, envOpts{dbPath: e.dbPath})
	r := e2.svc.Lookup(context.Background(), "+12175552171")
	if !r.Cached || r.Status != lookup.StatusFound || e2.srv.Requests() != 0 {
		t.Fatalf("after restart: %+v, %d requests", r, e2.srv.Requests())
	}
}

func TestLookupStale(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{svc: func(o *ServiceOptions) { o.RateLimitReserve = 5 }})
	ctx := context.Background()
	e.svc.Lookup(ctx, "+12175552171")
	e.clock.Advance(16 * time.Minute) // past the positive TTL

	// Clio fails: the stale result is served, marked.
	e.srv.SetFaults(cliotest.Faults{Fail500: true})
	r := e.svc.Lookup(ctx, "+12175552171")
	if !r.Cached || r.Status != lookup.StatusFound || r.Reason != "stale_"+ReasonServerError {
		t.Fatalf("stale on failure: %+v", r)
	}
	e.srv.SetFaults(cliotest.Faults{})

	// Rate budget at the reserve: stale served without a request.
	e2 := newTestEnv(t, nil, envOpts{fake: cliotest.Options{RateLimit: 6}, svc: func(o *ServiceOptions) {
		o.RateLimitReserve, o.CacheTTL = 3, time.Second
	}})
	e2.svc.Lookup(ctx, "+12175552171") // 2 requests: remaining 4
	e2.svc.Lookup(ctx, "+13125552171") // 2 more: remaining 2
	e2.clock.Advance(2 * time.Second)  // stale, within the rate window
	if rt := e2.client.Rate(); !rt.Known || rt.Remaining != 2 || rt.Limit != 6 {
		t.Fatalf("rate %+v", rt)
	}
	before := e2.srv.Requests()
	r = e2.svc.Lookup(ctx, "+12175552171")
	if !r.Cached || r.Reason != "stale_"+ReasonRateReserve || e2.srv.Requests() != before {
		t.Fatalf("reserve: %+v (%d requests)", r, e2.srv.Requests()-before)
	}
}

func TestLookupSingleflight(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	e.srv.SetFaults(cliotest.Faults{Latency: 50 * time.Millisecond})
	var wg sync.WaitGroup
	results := make([]lookup.Result, 10)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			results[i] = e.svc.Lookup(context.Background(), "+12175552171")
		}()
	}
	wg.Wait()
	if n := e.contactsRequests(); n != 1 {
		t.Fatalf("10 concurrent lookups made %d contacts requests", n)
	}
	for i, r := range results {
		if r.Status != lookup.StatusFound || r.Staff.ID != 501 {
			t.Fatalf("result %d: %+v", i, r)
		}
	}
}

func TestLookupCallerDeadline(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	e.srv.SetFaults(cliotest.Faults{Latency: 300 * time.Millisecond})
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	start := time.Now()
	r := e.svc.Lookup(ctx, "+12175552171")
	if r.Status != lookup.StatusError || r.Reason != ReasonTimeout || time.Since(start) > 250*time.Millisecond {
		t.Fatalf("caller deadline: %+v after %s", r, time.Since(start))
	}
}

func TestLookupUnconfigured(t *testing.T) {
	svc := NewService(ServiceOptions{})
	r := svc.Lookup(context.Background(), "+12175552171")
	if r.Status != lookup.StatusUnconfigured {
		t.Fatalf("%+v", r)
	}
}

func TestLookupLogsNoNamesOrNumbers(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	e.svc.Lookup(context.Background(), "+12175552171")
	e.srv.SetFaults(cliotest.Faults{Fail500: true})
	e.svc.Lookup(context.Background(), "+13125550199")
	logs := e.logs.String()
	for _, secret := range []string{"Ada", "Quist", "Felix", "2175552171", "3125550199", testToken} {
		if strings.Contains(logs, secret) {
			t.Errorf("log contains %q:\n%s", secret, logs)
		}
	}
	if !strings.Contains(logs, "contact_id=1001") || !strings.Contains(logs, "…2171") {
		t.Errorf("log lacks ids or masked number:\n%s", logs)
	}
}

func TestResultCacheRoundTrip(t *testing.T) {
	r := lookup.Result{Status: lookup.StatusFound, Number: "+1", Contact: &lookup.Contact{ID: 1, Name: "A"}}
	b, _ := json.Marshal(r)
	var back lookup.Result
	if err := json.Unmarshal(b, &back); err != nil || back.Status != lookup.StatusFound || back.Contact.ID != 1 {
		t.Fatalf("%s -> %+v %v", b, back, err)
	}
}

func TestLookupSavedState(t *testing.T) {
	e := newTestEnv(t, nil, envOpts{})
	ctx := context.Background()
	e.srv.SetFaults(cliotest.Faults{Fail500: true})
	e.svc.Lookup(ctx, "+12175552171")
	e.srv.SetFaults(cliotest.Faults{})
	e.clock.Advance(time.Minute)
	e.svc.Lookup(ctx, "+12175552171")
	st, err := e.storage.LoadState(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(st.LastError, "server_error") || !st.LastOKAt.After(st.LastErrorAt) || !st.Rate.Known || st.Rate.Limit != 50 {
		t.Fatalf("state %+v", st)
	}
	// Another process (same database) keeps both.
	other := NewService(ServiceOptions{Client: e.client, Storage: e.storage, Now: e.clock.Now})
	other.Lookup(ctx, "+13125552171")
	if st2, _ := e.storage.LoadState(ctx); st2.LastError != st.LastError || !st2.LastOKAt.Equal(e.clock.Now()) {
		t.Fatalf("state after another process %+v", st2)
	}
}

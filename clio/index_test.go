package clio

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/lookup"
)

// indexEnv is a lookup Service with a phone index over a generated fake Clio.
type indexEnv struct {
	*testEnv
	gen   *cliotest.Generated
	ix    *Index
	plain *Service // the same lookup without index and cache: today's answer
}

func newIndexEnv(t testing.TB, contacts int) *indexEnv {
	t.Helper()
	g := cliotest.Generate(cliotest.GenOptions{Contacts: contacts, Token: testToken})
	// Long timeouts: the reference lookups search 5,000 contacts, slow under -race.
	e := newTestEnv(t, g.Fixture, envOpts{fake: cliotest.Options{RateLimit: 1 << 30}, timeout: 30 * time.Second})
	log := e.svc.log
	ix, err := OpenIndex(context.Background(), IndexOptions{Storage: e.storage, Client: e.client, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	e.svc = NewService(ServiceOptions{Client: e.client, Storage: e.storage, Index: ix, Now: e.clock.Now, Logger: log})
	return &indexEnv{testEnv: e, gen: g, ix: ix, plain: NewService(ServiceOptions{Client: e.client, Now: e.clock.Now, LookupTimeout: time.Minute})}
}

func (e *indexEnv) sync(t testing.TB) SyncResult {
	t.Helper()
	res, err := e.ix.Sync(context.Background(), SyncOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return res
}

func sameAnswer(a, b lookup.Result) bool {
	a.Source, b.Source, a.Cached, b.Cached = 0, 0, false, false
	return a.Status == b.Status && a.Reason == b.Reason && a.Number == b.Number && samePtr(a.Contact, b.Contact) &&
		samePtr(a.Matter, b.Matter) && samePtr(a.Staff, b.Staff)
}

func samePtr[T comparable](a, b *T) bool {
	return (a == nil && b == nil) || (a != nil && b != nil && *a == *b)
}

// 5,000 contacts: the index holds every one, family numbers stay ambiguous, and
// every answer equals the one the lookup gives without the index.
func TestIndexSync5000(t *testing.T) {
	e := newIndexEnv(t, 5000)
	res := e.sync(t)
	if res.Contacts != len(e.gen.Contacts) || e.ix.Stats().Contacts != 5000 {
		t.Fatalf("synced %d contacts (index %d), the fake has %d", res.Contacts, e.ix.Stats().Contacts, len(e.gen.Contacts))
	}
	if res.Requests < 25 {
		t.Errorf("%d requests for 5,000 contacts at 200 a page", res.Requests)
	}
	if len(e.gen.FamilyNumbers) < 20 {
		t.Fatalf("only %d family numbers generated", len(e.gen.FamilyNumbers))
	}
	ctx := context.Background()
	for _, n := range e.gen.FamilyNumbers {
		r := e.svc.Lookup(ctx, n)
		if r.Status != lookup.StatusAmbiguous || r.Source != lookup.SourceIndex {
			t.Fatalf("family number %s: %v %s from %v", n, r.Status, r.Reason, r.Source)
		}
	}
	// The same answers as today's lookup, for families and a sample of others.
	checked := 0
	for _, n := range e.gen.FamilyNumbers[:20] {
		if got, want := e.svc.Lookup(ctx, n), e.plain.LookupWith(ctx, n, LookupOptions{NoCache: true}); !sameAnswer(got, want) {
			t.Errorf("%s: index %+v, clio %+v", n, got, want)
		}
		checked++
	}
	for id := int64(100001); id < 100001+5000; id += 97 {
		n := e.gen.Numbers[id]
		got, want := e.svc.Lookup(ctx, n), e.plain.LookupWith(ctx, n, LookupOptions{NoCache: true})
		if !sameAnswer(got, want) || got.Source != lookup.SourceIndex {
			t.Errorf("%s (contact %d): index %+v, clio %+v", n, id, got, want)
		}
		checked++
	}
	if checked < 60 {
		t.Fatalf("checked %d", checked)
	}
}

// A known caller costs no request to Clio; an unknown number is asked once and
// then learnt.
func TestIndexKnownCallerCostsNoRequest(t *testing.T) {
	e := newIndexEnv(t, 300)
	e.sync(t)
	ctx := context.Background()
	e.srv.ResetCounts()
	for id := int64(100001); id < 100001+300; id++ {
		if r := e.svc.Lookup(ctx, e.gen.Numbers[id]); r.Source != lookup.SourceIndex || r.Status == lookup.StatusNotFound {
			t.Fatalf("contact %d: %+v", id, r)
		}
	}
	if n := e.srv.Requests(); n != 0 {
		t.Fatalf("%d requests to clio for known callers", n)
	}
	// A contact added in Clio without any delivery: asked once, then known.
	e.srv.AddContact(cliotest.Contact{ID: 900001, FirstName: "Nora", LastName: "New", Phones: []cliotest.Phone{{Number: "(217) 555-7788"}}})
	e.srv.AddMatter(cliotest.Matter{ID: 990001, DisplayNumber: "09901-New", Status: "Open", ClientID: 900001, ResponsibleStaffID: 502})
	r := e.svc.Lookup(ctx, "+12175557788")
	if r.Status != lookup.StatusFound || r.Source != lookup.SourceClio || r.Staff == nil || r.Staff.ID != 502 {
		t.Fatalf("new caller: %+v", r)
	}
	before := e.srv.Requests()
	if r := e.svc.Lookup(ctx, "+12175557788"); r.Source != lookup.SourceIndex || r.Contact.ID != 900001 || r.Matter.ID != 990001 {
		t.Fatalf("learnt caller: %+v", r)
	}
	if e.srv.Requests() != before {
		t.Fatal("the learnt caller cost a request")
	}
}

// An interrupted sync resumes from its stored cursor: the pages already stored
// are not fetched again.
func TestIndexSyncResumes(t *testing.T) {
	e := newIndexEnv(t, 1000) // 5 pages of contacts
	ctx, cancel := context.WithCancel(context.Background())
	pages := 0
	_, err := e.ix.Sync(ctx, SyncOptions{Progress: func(p SyncProgress) {
		if pages++; pages == 2 {
			cancel()
		}
	}})
	if err == nil {
		t.Fatal("sync was not interrupted")
	}
	st, _ := e.ix.SyncState(context.Background())
	if st.Phase != PhaseContacts || st.Contacts != 400 || st.Next == "" {
		t.Fatalf("stored progress: %+v", st)
	}
	if e.ix.Ready() {
		t.Fatal("half an index answers lookups")
	}
	e.srv.ResetCounts()
	res := e.sync(t)
	if !res.Resumed || res.Contacts != 1000 {
		t.Fatalf("resumed sync: %+v", res)
	}
	if n := e.srv.RequestsTo("/api/v4/contacts"); n != 3 {
		t.Errorf("resumed sync fetched %d contact pages, want the 3 left", n)
	}
	if e.ix.Stats().Contacts != 1000 || !e.ix.Ready() {
		t.Fatalf("index after resume: %+v", e.ix.Stats())
	}
}

// A contact deleted in Clio leaves the index with the next full pass.
func TestIndexFullPassPrunes(t *testing.T) {
	e := newIndexEnv(t, 250)
	e.sync(t)
	n := e.gen.Numbers[100010]
	if r, ok := e.ix.Lookup(n); !ok || r.Contact == nil {
		t.Fatalf("before: %+v", r)
	}
	e.srv.DeleteContact(100010)
	res := e.sync(t)
	if res.Removed == 0 || res.Resumed {
		t.Fatalf("second pass: %+v", res)
	}
	if r, ok := e.ix.Lookup(n); ok && r.Contact != nil && r.Contact.ID == 100010 {
		t.Fatalf("deleted contact still answers: %+v", r)
	}
}

// webhookEnv adds a running receiver registered with the fake.
func startWebhooks(t *testing.T, e *indexEnv) (*WebhookReceiver, string) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	wr, err := NewWebhookReceiver(ctx, e.ix, WebhookOptions{Logger: e.svc.log})
	if err != nil {
		t.Fatal(err)
	}
	hs := httptest.NewServer(wr)
	t.Cleanup(hs.Close)
	done := make(chan struct{})
	go func() { defer close(done); wr.Run(ctx) }()
	t.Cleanup(func() { cancel(); <-done })
	u := hs.URL + "/webhooks/clio"
	if err := e.ix.EnsureWebhooks(ctx, wr, u); err != nil {
		t.Fatal(err)
	}
	e.srv.WaitHandshakes()
	hooks := e.srv.Hooks()
	if len(hooks) != 2 || hooks[0].Status != "enabled" || hooks[1].Status != "enabled" {
		t.Fatalf("hooks: %+v", hooks)
	}
	return wr, u
}

func waitFor(t *testing.T, within time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(within)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %s", what, within)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// A webhook changing a phone number changes routing within a second.
func TestIndexWebhookChangesRouting(t *testing.T) {
	e := newIndexEnv(t, 200)
	e.sync(t)
	startWebhooks(t, e)
	ctx := context.Background()
	const id = 100003
	old := e.gen.Numbers[id]
	if r := e.svc.Lookup(ctx, old); r.Contact == nil || r.Contact.ID != id {
		t.Fatalf("before: %+v", r)
	}
	e.srv.UpdateContact(id, func(c *cliotest.Contact) {
		c.Phones = []cliotest.Phone{{Number: "+1 (312) 555-0142 ext. 7", Name: "Work"}}
	})
	start := time.Now()
	if n, err := e.srv.Deliver("contact", "updated", id); n != 1 || err != nil {
		t.Fatalf("deliver: %d %v", n, err)
	}
	waitFor(t, time.Second, "new number routes", func() bool {
		r, ok := e.ix.Lookup("+13125550142")
		return ok && r.Contact != nil && r.Contact.ID == id
	})
	t.Logf("routing changed %s after the change", time.Since(start))
	if r := e.svc.Lookup(ctx, "+13125550142"); r.Source != lookup.SourceIndex || r.Contact.ID != id {
		t.Fatalf("new number: %+v", r)
	}
	if r := e.svc.Lookup(ctx, old); r.Contact != nil && r.Contact.ID == id {
		t.Fatalf("old number still finds the contact: %+v", r)
	}
	// Closing the matter: the caller is found without a matter.
	var matter int64
	for _, m := range e.gen.Matters {
		if m.ClientID == id && m.Status == "Open" {
			matter = m.ID
		}
	}
	if matter != 0 {
		e.srv.UpdateMatter(matter, func(m *cliotest.Matter) { m.Status = "Closed" })
		if n, err := e.srv.Deliver("matter", "matter_closed", matter); n != 1 || err != nil {
			t.Fatalf("deliver matter: %d %v", n, err)
		}
		waitFor(t, time.Second, "closed matter leaves", func() bool {
			r, _ := e.ix.Lookup("+13125550142")
			return r.Matter == nil || r.Matter.ID != matter
		})
	}
	// Deleting the contact.
	e.srv.DeleteContact(id)
	if n, err := e.srv.Deliver("contact", "deleted", id); n != 1 || err != nil {
		t.Fatalf("deliver delete: %d %v", n, err)
	}
	waitFor(t, time.Second, "deleted contact leaves", func() bool {
		_, ok := e.ix.Lookup("+13125550142")
		return !ok
	})
}

// Forged and unsigned deliveries are refused with 401; so is a handshake nobody
// asked for.
func TestWebhookForgedSignatureRejected(t *testing.T) {
	e := newIndexEnv(t, 50)
	e.sync(t)
	wr, u := startWebhooks(t, e)
	body := []byte(`{"data":{"id":100001,"name":"Mallory","phone_numbers":[{"number":"+12175550000","name":"Work"}]},"meta":{"event":"updated","webhook_id":9001}}`)
	for _, sig := range []string{"", "00", cliotest.Sign("not-the-secret", body), cliotest.Sign(e.srv.Hooks()[0].Secret, append(body, ' '))} {
		if code, err := cliotest.PostSigned(u, body, sig); err != nil || code != 401 {
			t.Fatalf("signature %q: %d %v", sig, code, err)
		}
	}
	if st := wr.Stats(); st.Rejected != 4 || st.Accepted != 0 {
		t.Fatalf("stats: %+v", st)
	}
	if _, ok := e.ix.Lookup("+12175550000"); ok {
		t.Fatal("a forged delivery changed the index")
	}
	if n := countLines(e.logs.String(), "clio webhook rejected"); n != 1 {
		t.Errorf("rejections logged %d times, want 1 (rate limited)", n)
	}
	// An unsolicited handshake is refused.
	if ok := postHandshake(t, u); ok {
		t.Fatal("an unsolicited handshake was answered")
	}
	// The right secret passes.
	if code, _ := cliotest.PostSigned(u, body, cliotest.Sign(e.srv.Hooks()[0].Secret, body)); code != 200 {
		t.Fatalf("signed delivery: %d", code)
	}
	waitFor(t, time.Second, "signed delivery applied", func() bool { _, ok := e.ix.Lookup("+12175550000"); return ok })
}

// A delivery that never came is caught by the poll.
func TestIndexPollCatchesMissedWebhook(t *testing.T) {
	e := newIndexEnv(t, 200)
	e.sync(t)
	const id = 100007
	e.srv.UpdateContact(id, func(c *cliotest.Contact) { c.Phones = []cliotest.Phone{{Number: "312.555.0199"}} })
	if _, ok := e.ix.Lookup("+13125550199"); ok {
		t.Fatal("known before the poll")
	}
	res, err := e.ix.Poll(context.Background())
	if err != nil || res.Contacts == 0 {
		t.Fatalf("poll: %+v %v", res, err)
	}
	if res.Contacts > 5 {
		t.Errorf("poll read %d contacts: updated_since not applied", res.Contacts)
	}
	r, ok := e.ix.Lookup("+13125550199")
	if !ok || r.Contact.ID != id {
		t.Fatalf("after the poll: %+v %v", r, ok)
	}
}

func TestExtension(t *testing.T) {
	for raw, want := range map[string]string{
		"(217) 555-2171": "", "(217) 555-2171 ext 12": "12", "217-555-2171 x4": "4", "217.555.2171 #55": "55",
		"+1 217-555-2171, 3": "3", "(217) 555-2171 (mobile)": "", "Cell: 217 555 2171 ext. 9": "9", "2171": "",
	} {
		if got := Extension(raw); got != want {
			t.Errorf("Extension(%q) = %q, want %q", raw, got, want)
		}
	}
}

func countLines(s, substr string) int {
	n := 0
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, substr) {
			n++
		}
	}
	return n
}

func postHandshake(t *testing.T, u string) bool {
	t.Helper()
	req, _ := http.NewRequest("POST", u, strings.NewReader("{}"))
	req.Header.Set("X-Hook-Secret", "attacker-secret")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.StatusCode == 200
}

// With the process's shared Budget, a sync waits out a Retry-After window
// that another part of the process saw (write-back's 429) before it sends
// anything, then completes.
func TestIndexSyncWaitsForTheSharedBudget(t *testing.T) {
	e := newIndexEnv(t, 50)
	b := NewBudget(BudgetOptions{})
	e.ix.o.Budget = b
	const pause = 400 * time.Millisecond
	b.NoteRetryAfter(time.Now().Add(pause))
	e.srv.ResetCounts()
	start := time.Now()
	done := make(chan SyncResult, 1)
	go func() { done <- e.sync(t) }()
	time.Sleep(pause / 2)
	if n := e.srv.Requests(); n != 0 {
		t.Errorf("%d requests inside the Retry-After window", n)
	}
	res := <-done
	if took := time.Since(start); took < pause-50*time.Millisecond {
		t.Errorf("sync took %v: it did not wait for the %v window", took, pause)
	}
	if res.Contacts != 50 || !e.ix.Ready() {
		t.Fatalf("sync after the window: %+v", res)
	}
}

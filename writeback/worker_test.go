package writeback

import (
	"bytes"
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/records"
)

// A warm-bridged call gives exactly one communication and one time entry,
// linked, for the staff member who took it, in seconds.
func TestBridgedCallWritesCommunicationAndTimeEntry(t *testing.T) {
	e := newEnv(t)
	w := e.worker()
	e.enqueue(w, bridged("call-1"), allOn)
	e.enqueue(w, bridged("call-1"), allOn) // the same call again: nothing new
	items := e.settled()
	if len(items) != 2 || items[0].Kind != KindCommunication || items[1].Kind != KindTimeEntry {
		t.Fatalf("items = %+v, want a communication and a time entry", items)
	}
	for _, it := range items {
		if it.State != StateDone || it.ClioID == 0 || it.Attempts != 1 {
			t.Errorf("item %+v: want done at the first attempt with a clio id", it)
		}
	}
	comms := e.fake.Communications()
	if len(comms) != 1 {
		t.Fatalf("%d communications, want 1", len(comms))
	}
	c := comms[0]
	if want := "Call from Ada Quist transferred to Felix Dubinsky (warm, 3 m 12 s)"; c.Subject != want {
		t.Errorf("subject %q, want %q", c.Subject, want)
	}
	if c.Type != "PhoneCommunication" || c.Matter == nil || c.Matter.ID != matterID || c.ReceivedAt != "2026-11-24T16:00:00Z" {
		t.Errorf("communication %+v", c)
	}
	if len(c.Senders) != 1 || c.Senders[0] != (cliotest.WriteRef{ID: adaID, Type: "Contact"}) ||
		len(c.Receivers) != 1 || c.Receivers[0] != (cliotest.WriteRef{ID: felixID, Type: "User"}) {
		t.Errorf("senders %+v receivers %+v", c.Senders, c.Receivers)
	}
	if len(c.ExternalProperties) != 1 || c.ExternalProperties[0] != (cliotest.Property{Name: PropertyName, Value: "call-1"}) {
		t.Errorf("external properties %+v", c.ExternalProperties)
	}
	acts := e.fake.Activities()
	if len(acts) != 1 {
		t.Fatalf("%d activities, want 1", len(acts))
	}
	a := acts[0]
	if a.Type != "TimeEntry" || a.Quantity != 192 || a.User == nil || a.User.ID != felixID || a.Communication == nil ||
		a.Communication.ID != c.ID || a.Date != "2026-11-24" || a.NonBillable || a.APIVersion != clio.DefaultAPIVersion {
		t.Errorf("time entry %+v (api version %s)", a, a.APIVersion)
	}
	if n := e.count(KindCommunication, "queued"); n != 1 {
		t.Errorf("queued communications counted %d, want 1", n)
	}
	if e.count(KindCommunication, "done") != 1 || e.count(KindTimeEntry, "done") != 1 {
		t.Errorf("done counts: %v", e.counts)
	}
}

// A left message gives a callback task for the responsible staff member and a
// document on the matter holding exactly the WAV's bytes.
func TestMessageWritesTaskAndDocument(t *testing.T) {
	e := newEnv(t)
	w := e.worker()
	f, wav := message(t, "call-2")
	e.enqueue(w, f, allOn)
	items := e.settled()
	kinds := map[Kind]Item{}
	for _, it := range items {
		kinds[it.Kind] = it
		if it.State != StateDone {
			t.Errorf("item %+v not done", it)
		}
	}
	if len(items) != 3 || kinds[KindTimeEntry].ID != 0 {
		t.Fatalf("items %+v, want communication, task, document", items)
	}
	tasks := e.fake.Tasks()
	if len(tasks) != 1 || tasks[0].Assignee == nil || tasks[0].Assignee.ID != felixID || tasks[0].DueAt != "2026-11-25" ||
		tasks[0].Priority != "Normal" || !strings.Contains(tasks[0].Name, "Ada Quist") || tasks[0].Matter.ID != matterID {
		t.Errorf("tasks %+v", tasks)
	}
	docs := e.fake.Documents()
	if len(docs) != 1 {
		t.Fatalf("%d documents, want 1", len(docs))
	}
	d := docs[0]
	if !bytes.Equal(d.Data, wav) || !d.FullyUploaded || d.Parent.ID != matterID || d.Parent.Type != "Matter" ||
		d.CommunicationID != kinds[KindCommunication].ClioID || d.ContentType != "audio/wav" {
		t.Errorf("document %+v (%d bytes, want %d)", d, len(d.Data), len(wav))
	}
	if s := e.fake.Communications()[0].Subject; !strings.HasPrefix(s, "Message left: call from Ada Quist for Felix Dubinsky") {
		t.Errorf("subject %q", s)
	}
}

// Nobody answered and no message: a callback task, no document, no time entry.
func TestMissedCallWritesTask(t *testing.T) {
	e := newEnv(t)
	w := e.worker()
	f := bridged("call-3")
	f.Record.Answer, f.Record.Outcome = f.Record.Start.Add(time.Second), records.OutcomeNoAnswer
	e.enqueue(w, f, allOn)
	items := e.settled()
	if len(items) != 2 || items[0].Kind != KindCommunication || items[1].Kind != KindTask {
		t.Fatalf("items %+v", items)
	}
	if s := e.fake.Communications()[0].Subject; !strings.HasPrefix(s, "Missed: nobody available") {
		t.Errorf("subject %q", s)
	}
}

// Nothing is written without a contact and a matter, or with write-back off.
func TestPlanNeedsContactAndMatter(t *testing.T) {
	f := bridged("x")
	f.Record.MatterID = 0
	if items := Plan(f, allOn); len(items) != 0 {
		t.Errorf("no matter: %+v", items)
	}
	if items := Plan(bridged("x"), Settings{}); len(items) != 0 {
		t.Errorf("all off: %+v", items)
	}
	f = bridged("x")
	f.Record.Outcome = records.OutcomeNone // no decision
	if items := Plan(f, allOn); len(items) != 0 {
		t.Errorf("no decision: %+v", items)
	}
}

// A 500 answered after Clio applied the POST: the retry finds the
// communication by its external property and posts nothing twice.
func TestRetryAfter500PostsNothingTwice(t *testing.T) {
	e := newEnv(t)
	e.fake.FailAfterApply("communications", 1)
	w := e.worker()
	e.enqueue(w, bridged("call-4"), Settings{Communication: true})
	items := e.settled()
	if len(items) != 1 || items[0].State != StateDone || items[0].Attempts != 2 {
		t.Fatalf("items %+v, want one done at the second attempt", items)
	}
	comms := e.fake.Communications()
	if len(comms) != 1 || items[0].ClioID != comms[0].ID {
		t.Fatalf("communications %+v, want exactly one with the item's id", comms)
	}
	if n := e.fake.RequestsTo("/api/v4/communications"); n != 3 {
		t.Errorf("%d requests to communications, want 3 (GET, POST answered 500, GET that finds it)", n)
	}
}

// A missing permission fails the item at once, naming the permission, and is
// logged once however many items meet it; other kinds go on.
func TestForbiddenFailsOnceNamingPermission(t *testing.T) {
	e := newEnv(t)
	e.fake.SetPermission("communications", false)
	w := e.worker()
	f1, _ := message(t, "call-5")
	f2, _ := message(t, "call-6")
	e.enqueue(w, f1, Settings{Communication: true, Task: true, TaskPriority: "High"})
	e.enqueue(w, f2, Settings{Communication: true, Task: true})
	items := e.settled()
	for _, it := range items {
		switch it.Kind {
		case KindCommunication:
			if it.State != StateFailed || it.Attempts != 1 || !strings.Contains(it.Error, "Clio app lacks Communications read/write") {
				t.Errorf("communication item %+v: want failed at once naming the permission", it)
			}
		case KindTask:
			if it.State != StateDone {
				t.Errorf("task item %+v: want done", it)
			}
		}
	}
	if n := strings.Count(e.logs.String(), "Clio app lacks Communications read/write"); n != 1 {
		t.Errorf("the missing permission was logged %d times, want once:\n%s", n, e.logs.String())
	}
	if e.count(KindCommunication, "failed") != 2 {
		t.Errorf("failed count %v", e.counts)
	}
	// The admin grants the permission and retries one item.
	e.fake.SetPermission("communications", true)
	it, err := e.outbox.Retry(context.Background(), items[0].ID)
	if err != nil || it.State != StatePending || it.Error != "" {
		t.Fatalf("Retry = %+v, %v", it, err)
	}
	if _, err := e.outbox.Retry(context.Background(), items[1].ID); err == nil {
		t.Error("retrying a done item succeeded")
	}
	w.Kick()
	e.settled()
	if n := len(e.fake.Communications()); n != 1 {
		t.Errorf("%d communications after the retry, want 1", n)
	}
	if tasks := e.fake.Tasks(); len(tasks) != 2 || tasks[0].Priority != "High" {
		t.Errorf("tasks %+v", tasks)
	}
}

// Pending items survive a restart: enqueued by one run, sent by the next.
func TestRestartResumesPendingItems(t *testing.T) {
	e := newEnv(t)
	w := NewWorker(Options{Outbox: e.outbox, Client: e.client})
	e.enqueue(w, bridged("call-7"), allOn) // never started: nothing is sent
	w.Close()
	if n := len(e.fake.Communications()); n != 0 {
		t.Fatalf("%d communications before the restart", n)
	}
	e.db.Close()
	e.open() // a new process on the same database file
	e.worker()
	items := e.settled()
	if len(items) != 2 || items[0].State != StateDone || items[1].State != StateDone {
		t.Fatalf("items after restart %+v", items)
	}
	if len(e.fake.Communications()) != 1 || len(e.fake.Activities()) != 1 {
		t.Error("want one communication and one time entry after the restart")
	}
}

// Write-back shares the token's rate budget with lookups and lookups win:
// while a backlog is sent the worker stops at the reserve, so lookups in the
// same window all reach Clio; and after a 429 nothing is sent before its
// Retry-After ends.
func TestRateLimitDelaysWritebackNotLookups(t *testing.T) {
	e := newEnv(t, cliotest.Options{RateLimit: 24, RateWindow: 2 * time.Second})
	svc := clio.NewService(clio.ServiceOptions{Client: e.client})
	w := NewWorker(Options{Outbox: e.outbox, Client: e.client, Budget: e.budget, Idle: 50 * time.Millisecond,
		BaseBackoff: 20 * time.Millisecond})
	t.Cleanup(func() { w.Close() })
	for _, id := range []string{"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"} {
		e.enqueue(w, bridged("storm-"+id), Settings{Communication: true}) // 2 requests each
	}
	// Lookups first use a few of the window, then the backlog starts.
	if r := svc.Lookup(context.Background(), "+12175552171"); r.Status != lookup.StatusFound {
		t.Fatalf("lookup before: %+v", r)
	}
	w.Start()
	deadline := time.Now().Add(5 * time.Second)
	for e.budget.Rate().Remaining > e.budget.Reserve() && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	time.Sleep(100 * time.Millisecond) // the worker now waits for the window
	if rem := e.budget.Rate().Remaining; rem < e.budget.Reserve()-1 {
		t.Errorf("write-back took the window down to %d, below the reserve %d", rem, e.budget.Reserve())
	}
	found := 0
	for range 4 {
		if r := svc.LookupWith(context.Background(), "+12175552171", clio.LookupOptions{NoCache: true}); r.Status == lookup.StatusFound {
			found++
		}
	}
	if found != 4 {
		t.Errorf("%d of 4 lookups found the caller while write-back waited", found)
	}
	// A storm of 429s (the window used up by others): the worker waits out Retry-After.
	for {
		resp, err := e.hc.Do(authed(t, e.fake.URL+"/api/v4/users/who_am_i.json"))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusTooManyRequests {
			break
		}
	}
	until := e.budget.RetryUntil()
	if until.IsZero() {
		t.Fatal("the budget did not see the 429")
	}
	before := e.fake.RequestsTo("/api/v4/communications")
	time.Sleep(time.Until(until) - 200*time.Millisecond)
	if n := e.fake.RequestsTo("/api/v4/communications"); n != before {
		t.Errorf("write-back sent %d requests inside the Retry-After window", n-before)
	}
	items := e.settled()
	for _, it := range items {
		if it.State != StateDone {
			t.Errorf("item %+v not done after the storm", it)
		}
	}
	if n := len(e.fake.Communications()); n != 10 {
		t.Errorf("%d communications, want 10", n)
	}
}

func authed(t *testing.T, url string) *http.Request {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+demoToken)
	return req
}

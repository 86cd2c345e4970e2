package cliotest

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func sendHook(t *testing.T, s *Server, method, path, body string) (int, map[string]any) {
	t.Helper()
	req, _ := http.NewRequest(method, s.URL+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer tok")
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	return resp.StatusCode, m
}

func TestFakeWebhooks(t *testing.T) {
	s := NewServer(t, testFixture())
	var handshakes, deliveries atomic.Int32
	var lastSig atomic.Value
	recv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if sec := r.Header.Get("X-Hook-Secret"); sec != "" {
			handshakes.Add(1)
			w.Header().Set("X-Hook-Secret", sec)
			return
		}
		b, _ := io.ReadAll(r.Body)
		lastSig.Store(r.Header.Get("X-Hook-Signature") + " " + string(b))
		deliveries.Add(1)
	}))
	defer recv.Close()
	exp := time.Now().Add(10 * 24 * time.Hour).UTC().Format(time.RFC3339)
	body := func(url, model, events, fields, expires string) string {
		return `{"data":{"url":"` + url + `","model":"` + model + `","events":` + events + `,"fields":"` + fields + `","expires_at":"` + expires + `"}}`
	}
	for name, tc := range map[string]struct {
		body string
		want int
	}{
		"http non-loopback": {body("http://example.com/h", "contact", `["updated"]`, "id", exp), 422},
		"bad event":         {body(recv.URL, "contact", `["matter_closed"]`, "id", exp), 422},
		"bad model":         {body(recv.URL, "invoice", `["updated"]`, "id", exp), 422},
		"bad fields":        {body(recv.URL, "contact", `["updated"]`, "id,bogus", exp), 422},
		"fields too long":   {body(recv.URL, "contact", `["updated"]`, strings.Repeat("id,", 400), exp), 422},
		"expires too far":   {body(recv.URL, "contact", `["updated"]`, "id", time.Now().Add(40*24*time.Hour).UTC().Format(time.RFC3339)), 422},
		"no data":           {`{}`, 400},
	} {
		if code, _ := sendHook(t, s, "POST", "/api/v4/webhooks.json", tc.body); code != tc.want {
			t.Errorf("%s: %d, want %d", name, code, tc.want)
		}
	}
	s.SetWebhooksPermission(false)
	if code, _ := sendHook(t, s, "POST", "/api/v4/webhooks.json", body(recv.URL, "contact", `["updated"]`, "id,name", exp)); code != 403 {
		t.Fatalf("without the permission: %d", code)
	}
	s.SetWebhooksPermission(true)
	code, m := sendHook(t, s, "POST", "/api/v4/webhooks.json", body(recv.URL, "contact", `["created","updated","deleted"]`, "id,name,phone_numbers{number}", exp))
	if code != 201 {
		t.Fatalf("create: %d %v", code, m)
	}
	s.WaitHandshakes()
	hooks := s.Hooks()
	if len(hooks) != 1 || hooks[0].Status != "enabled" || handshakes.Load() != 1 {
		t.Fatalf("after handshake: %+v", hooks)
	}
	id := hooks[0].ID
	// Renewal.
	later := time.Now().Add(30 * 24 * time.Hour).UTC().Truncate(time.Second)
	if code, _ := sendHook(t, s, "PATCH", "/api/v4/webhooks/"+itoa(id)+".json", `{"data":{"expires_at":"`+later.Format(time.RFC3339)+`"}}`); code != 200 || !s.Hooks()[0].ExpiresAt.Equal(later) {
		t.Fatalf("renew: %d %v", code, s.Hooks()[0].ExpiresAt)
	}
	// A change delivered, signed.
	s.UpdateContact(1, func(c *Contact) { c.Phones = []Phone{{Number: "312-555-0100"}} })
	if n, err := s.Deliver("contact", "updated", 1); n != 1 || err != nil {
		t.Fatalf("deliver: %d %v", n, err)
	}
	sig, payload, _ := strings.Cut(lastSig.Load().(string), " ")
	if sig != Sign(hooks[0].Secret, []byte(payload)) || !strings.Contains(payload, "312-555-0100") || !strings.Contains(payload, `"event":"updated"`) {
		t.Fatalf("delivery: %s %s", sig, payload)
	}
	// updated_since finds the changed contact only.
	r := get(t, s, "/api/v4/contacts.json?fields=id&updated_since="+time.Now().Add(-time.Minute).UTC().Format(time.RFC3339), "tok")
	if got := ids(r); len(got) != 1 || got[0] != 1 {
		t.Fatalf("updated_since: %v", got)
	}
	if code, _ := sendHook(t, s, "DELETE", "/api/v4/webhooks/"+itoa(id)+".json", ""); code != 204 || len(s.Hooks()) != 0 {
		t.Fatalf("delete: %d", code)
	}
}

func itoa(n int64) string { b, _ := json.Marshal(n); return string(b) }

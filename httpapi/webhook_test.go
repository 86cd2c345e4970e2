package httpapi

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// POST /webhooks/clio takes no token (the handler checks the signature), keeps
// the Host check, caps the body, and answers 501 without a receiver.
func TestClioWebhookRoute(t *testing.T) {
	var got []string
	e := newEnvWith(t, func(o *Options) {
		o.Token = testToken
		o.AllowedHosts = []string{"matterline.firm.example"}
		o.MaxBodyBytes = 1024
		o.ClioWebhook = http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			b, err := io.ReadAll(r.Body)
			if err != nil {
				http.Error(w, "too large", http.StatusRequestEntityTooLarge)
				return
			}
			got = append(got, string(b))
			w.WriteHeader(http.StatusOK)
		})
	})
	req := localRequest("POST", ClioWebhookPath, strings.NewReader(`{"data":{}}`))
	req.Host = "matterline.firm.example"
	req.RemoteAddr = "203.0.113.9:443"
	if r := e.serve(req); r.code != 200 || len(got) != 1 {
		t.Fatalf("delivery without a token: %d %q", r.code, r.body)
	}
	req = localRequest("POST", ClioWebhookPath, strings.NewReader(`{}`))
	req.Host = "evil.example"
	if r := e.serve(req); r.code != 421 || len(got) != 1 {
		t.Fatalf("foreign host: %d", r.code)
	}
	req = localRequest("POST", ClioWebhookPath, strings.NewReader(strings.Repeat("x", 2048)))
	if r := e.serve(req); r.code != 413 {
		t.Fatalf("oversized body: %d", r.code)
	}
	if r := e.do(t, "GET", ClioWebhookPath, "", testToken); r.code != 405 {
		t.Fatalf("GET: %d", r.code)
	}
	none := newEnvWith(t, nil)
	if r := none.do(t, "POST", ClioWebhookPath, "{}", ""); r.code != 501 {
		t.Fatalf("without a receiver: %d", r.code)
	}
}

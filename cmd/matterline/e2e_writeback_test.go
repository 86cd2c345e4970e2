package main

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/phone"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/store"
	"github.com/matterline/matterline/writeback"
)

// TestE2EWritebackBridgedCall: with write-back on, Ada's call warm-transferred to
// Felix, who answers, leaves exactly one PhoneCommunication on her matter in the
// sandbox Clio (found by the call id) and one time entry, both done in the outbox.
func TestE2EWritebackBridgedCall(t *testing.T) {
	t.Parallel()
	felix, err := phone.NewCallee(phone.CalleeConfig{Name: "felix", Number: e2eFelix, RingDelay: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = felix.Close() })
	s := startE2E(t, e2eOptions{outboundProxy: "sip:" + felix.Addr().String(), shortPrompts: true, configure: func(c *config.Config) {
		c.IVR.Menu = map[string]string{"1": "responsible"}
		c.Clio.Writeback = config.ClioWriteback{Communication: true, TimeEntry: true, Task: true, Document: true,
			TaskPriority: "Normal", TaskDueDays: 1, Reserve: 10}
	}})
	s.addRule(felixRule("warm"))
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	ada := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	call := s.dial(ada)
	if err := call.SendDTMF(ctx, '1'); err != nil {
		t.Fatal(err)
	}
	answered, err := felix.Next(ctx)
	if err != nil {
		t.Fatalf("felix never answered: %v", err)
	}
	waitFor(t, "the call bridged", func() bool {
		var list struct {
			Calls []apiCallJSON `json:"calls"`
		}
		s.api("GET", "/v1/calls", nil, http.StatusOK, &list)
		return len(list.Calls) == 1 && list.Calls[0].State == "bridged"
	})
	time.Sleep(time.Second) // they talk
	if err := call.Hangup(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-answered.Done():
	case <-ctx.Done():
		t.Fatal("the bridged leg was not hung up")
	}
	s.waitIdle()
	rec := s.record(call.ID())
	if rec.Outcome != records.OutcomeBridged {
		t.Fatalf("record outcome %s, want bridged", rec.Outcome)
	}

	db, err := store.Open(s.cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ob, err := writeback.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	var items []writeback.Item
	waitFor(t, "write-back items done", func() bool {
		items, err = ob.List(ctx, 0)
		if err != nil || len(items) != 2 {
			return false
		}
		for _, it := range items {
			if it.State != writeback.StateDone || it.CallID != rec.ID {
				return false
			}
		}
		return true
	})

	// The sandbox Clio has exactly one communication for this call.
	q := url.Values{"fields": {"id,subject,type,matter"}, "external_property_name": {writeback.PropertyName},
		"external_property_value": {rec.ID}}
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, s.cfg.Clio.BaseURL+"/api/v4/communications.json?"+q.Encode(), nil)
	req.Header.Set("Authorization", "Bearer "+s.cfg.Clio.AccessToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		Data []struct {
			ID      int64  `json:"id"`
			Subject string `json:"subject"`
			Type    string `json:"type"`
			Matter  struct {
				ID int64 `json:"id"`
			} `json:"matter"`
		} `json:"data"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET communications: %d %v", resp.StatusCode, err)
	}
	if len(body.Data) != 1 {
		t.Fatalf("%d communications for the call, want 1", len(body.Data))
	}
	c := body.Data[0]
	if !strings.HasPrefix(c.Subject, "Call from Ada Quist transferred to Felix Dubinsky (warm, ") || c.Type != "PhoneCommunication" ||
		c.Matter.ID != 101 {
		t.Errorf("communication %+v", c)
	}
	for _, it := range items {
		if it.Kind == writeback.KindCommunication && it.ClioID != c.ID {
			t.Errorf("outbox communication id %d, Clio has %d", it.ClioID, c.ID)
		}
	}
	// The metric counts them.
	code, text := s.do("GET", "/metrics", nil, false)
	if code != http.StatusOK {
		t.Fatalf("GET /metrics: %d", code)
	}
	got := parseMetrics(string(text))
	for _, k := range []string{`matterline_clio_writeback_total{kind="communication",state="done"}`,
		`matterline_clio_writeback_total{kind="time_entry",state="done"}`} {
		if got[k] != 1 {
			t.Errorf("%s = %v, want 1", k, got[k])
		}
	}
}

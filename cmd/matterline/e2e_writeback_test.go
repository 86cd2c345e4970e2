package main

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
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

// TestE2EWritebackMessage: nobody answers Ada's warm transfer, she leaves a
// message: the sandbox Clio gets a communication, a callback task for Felix (her
// matter's responsible staff) and the message as a document whose bytes are the
// recorded WAV; no time entry (nobody talked).
func TestE2EWritebackMessage(t *testing.T) {
	t.Parallel()
	nobody, err := phone.NewCallee(phone.CalleeConfig{Name: "nobody", Number: "+12175550109", RingDelay: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = nobody.Close() })
	s := startE2E(t, e2eOptions{outboundProxy: "sip:" + nobody.Addr().String(), shortPrompts: true, configure: func(c *config.Config) {
		c.IVR.Menu = map[string]string{"1": "rule:nobody"}
		c.Transfer.MessageMax = config.Duration(1500 * time.Millisecond)
		c.Transfer.MessageSilence = config.Duration(time.Second)
		c.Clio.Writeback = config.ClioWriteback{Communication: true, TimeEntry: true, Task: true, Document: true,
			TaskPriority: "High", TaskDueDays: 1, Reserve: 10}
	}})
	s.addRule(map[string]any{"name": "nobody", "to": "+12175550109", "mode": "warm", "ring_timeout": "1s",
		"unavailable": "message"})
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	ada := newE2ECaller(t, e2eCaller, e2eCallerName, false, nil)
	call := s.dial(ada)
	if err := call.SendDTMF(ctx, '1'); err != nil {
		t.Fatal(err)
	}
	if err := call.StartVoice(1000); err != nil {
		t.Fatal(err)
	}
	select {
	case <-call.Done():
	case <-ctx.Done():
		t.Fatal("the message call did not end")
	}
	s.waitIdle()
	rec := s.record(call.ID())
	if rec.Outcome != records.OutcomeMessage {
		t.Fatalf("record outcome %s, want message", rec.Outcome)
	}
	waitFor(t, "communication, task and document in the sandbox Clio", func() bool {
		docs := s.clio.Documents()
		return len(s.clio.Communications()) == 1 && len(s.clio.Tasks()) == 1 && len(docs) == 1 && docs[0].FullyUploaded
	})
	if n := len(s.clio.Activities()); n != 0 {
		t.Errorf("%d time entries for a call nobody took, want 0", n)
	}
	task := s.clio.Tasks()[0]
	if task.Assignee == nil || task.Assignee.ID != 501 || task.Priority != "High" || task.Matter == nil || task.Matter.ID != 101 {
		t.Errorf("task %+v (assignee %+v), want Felix (501), High, matter 101", task, task.Assignee)
	}
	var msgs struct {
		Messages []struct {
			ID int64 `json:"id"`
		} `json:"messages"`
	}
	s.api("GET", "/v1/messages", nil, http.StatusOK, &msgs)
	if len(msgs.Messages) != 1 {
		t.Fatalf("messages: %+v", msgs.Messages)
	}
	db, err := store.Open(s.cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ms, err := records.NewMessageStore(ctx, db, s.cfg.Transfer.MessagesDir)
	if err != nil {
		t.Fatal(err)
	}
	m, err := ms.Get(ctx, msgs.Messages[0].ID)
	if err != nil {
		t.Fatal(err)
	}
	path, err := ms.Path(m)
	if err != nil {
		t.Fatal(err)
	}
	wav, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	doc := s.clio.Documents()[0]
	if !bytes.Equal(doc.Data, wav) || doc.ContentType != "audio/wav" || doc.CommunicationID != s.clio.Communications()[0].ID {
		t.Errorf("document: %d bytes (%s, communication %d), want the %d-byte WAV linked to communication %d",
			len(doc.Data), doc.ContentType, doc.CommunicationID, len(wav), s.clio.Communications()[0].ID)
	}
}

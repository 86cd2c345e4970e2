package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/matterline/matterline/store"
	"github.com/matterline/matterline/writeback"
)

// `clio outbox --json` prints the DESIGN.md item shape; `clio outbox retry ID`
// puts a failed item back to pending and refuses others.
func TestCLIClioOutbox(t *testing.T) {
	e := newRecordsEnv(t)
	ctx := context.Background()
	db, err := store.Open(e.db)
	if err != nil {
		t.Fatal(err)
	}
	ob, err := writeback.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Enqueue(ctx, []writeback.Item{
		{CallID: "call-1", Kind: writeback.KindCommunication, Payload: writeback.Payload{MatterID: 101}},
		{CallID: "call-1", Kind: writeback.KindTask, Payload: writeback.Payload{MatterID: 101}},
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`UPDATE clio_outbox SET state = 'failed', attempts = 1,
		error = 'Clio app lacks Communications read/write' WHERE kind = 'communication'`); err != nil {
		t.Fatal(err)
	}
	db.Close()

	code, out, errs := runRecordsCmd(t, "clio", "outbox", "--json", "-config", e.cfg)
	if code != 0 {
		t.Fatalf("clio outbox --json: exit %d: %s", code, errs)
	}
	var items []map[string]any
	if err := json.Unmarshal([]byte(out), &items); err != nil {
		t.Fatalf("output is not a JSON list: %v\n%s", err, out)
	}
	if len(items) != 2 {
		t.Fatalf("%d items, want 2:\n%s", len(items), out)
	}
	want := []string{"attempts", "call_id", "clio_id", "error", "id", "kind", "state"}
	for _, it := range items {
		var keys []string
		for k := range it {
			keys = append(keys, k)
		}
		if len(keys) != len(want) {
			t.Errorf("item keys %v, want %v", keys, want)
		}
		for _, k := range want {
			if _, ok := it[k]; !ok {
				t.Errorf("item %v lacks %q", it, k)
			}
		}
	}
	failed := items[1] // newest first: the task, then the communication
	if failed["kind"] != "communication" || failed["state"] != "failed" || failed["clio_id"] != nil ||
		!strings.Contains(failed["error"].(string), "Communications") {
		t.Errorf("failed item %v", failed)
	}
	code, out, _ = runRecordsCmd(t, "clio", "outbox", "-config", e.cfg)
	if code != 0 || !strings.Contains(out, "communication") || !strings.Contains(out, "failed") {
		t.Errorf("clio outbox: exit %d\n%s", code, out)
	}

	id := "1"
	code, out, errs = runRecordsCmd(t, "clio", "outbox", "retry", id, "-config", e.cfg)
	if code != 0 || !strings.Contains(out, "pending again") {
		t.Fatalf("retry: exit %d: %s %s", code, out, errs)
	}
	code, _, errs = runRecordsCmd(t, "clio", "outbox", "retry", "2", "-config", e.cfg)
	if code == 0 || !strings.Contains(errs, "only failed items") {
		t.Errorf("retry of a pending item: exit %d: %s", code, errs)
	}
	code, _, _ = runRecordsCmd(t, "clio", "outbox", "retry", "x", "-config", e.cfg)
	if code == 0 {
		t.Error("retry x succeeded")
	}
}

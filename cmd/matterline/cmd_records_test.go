package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

// recordsEnv is a temp config whose database and messages folder live in a temp dir.
type recordsEnv struct {
	cfg, db, messages string
}

func newRecordsEnv(t *testing.T) recordsEnv {
	t.Helper()
	dir := t.TempDir()
	e := recordsEnv{
		cfg:      filepath.Join(dir, "matterline.yaml"),
		db:       filepath.Join(dir, "m.db"),
		messages: filepath.Join(dir, "messages"),
	}
	mustCreateDB(t, e.db)
	yaml := fmt.Sprintf("store:\n  path: %q\ntransfer:\n  messages_dir: %q\nfirm:\n  time_zone: UTC\n", e.db, e.messages)
	if err := os.WriteFile(e.cfg, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return e
}

// runRecordsCmd runs one command line and returns exit status, stdout and stderr.
func runRecordsCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	var out, errb bytes.Buffer
	code := run(context.Background(), args, stdio{&out, &errb})
	return code, out.String(), errb.String()
}

func (e recordsEnv) seedCalls(t *testing.T, recs ...records.CallRecord) {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := records.NewCallStore(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := s.Upsert(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
}

// seedMessage records a one-second message and stores it.
func (e recordsEnv) seedMessage(t *testing.T, m records.Message) records.Message {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(e.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	s, err := records.NewMessageStore(ctx, db, e.messages)
	if err != nil {
		t.Fatal(err)
	}
	w, err := s.NewRecording(m.Time, m.CallID)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSamples(make([]int16, 8000)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	m.File, m.Duration = w.Path(), w.Duration()
	m, err = s.Add(ctx, m)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func testCall(id string, start time.Time, outcome records.Outcome) records.CallRecord {
	return records.CallRecord{
		ID: id, CallID: id + "@pbx", Start: start, Answer: start.Add(time.Second), End: start.Add(95 * time.Second),
		Caller: "+12175552171", Called: "+12175550100", Lookup: lookup.StatusFound,
		ContactID: 1001, MatterID: 2002, StaffID: 501, Intents: []string{"responsible"},
		Rule: "felix", Mode: routing.ModeWarm, Outcome: outcome, EndReason: records.EndCallerBye,
	}
}

// callIDs decodes `calls --json` output into the call ids, in order.
func callIDs(t *testing.T, out string) []string {
	t.Helper()
	var recs []records.CallRecord
	if err := json.Unmarshal([]byte(out), &recs); err != nil {
		t.Fatalf("bad json %v:\n%s", err, out)
	}
	ids := []string{}
	for _, r := range recs {
		ids = append(ids, r.ID)
	}
	return ids
}

func TestCallsCommand(t *testing.T) {
	e := newRecordsEnv(t)

	// An empty database: a clear line, or an empty JSON array.
	if code, out, errs := runRecordsCmd(t, "calls", "-config", e.cfg); code != 0 || out != "no call records\n" {
		t.Fatalf("empty: %d %q %q", code, out, errs)
	}
	if code, out, _ := runRecordsCmd(t, "calls", "--json", "-config", e.cfg); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty json: %d %q", code, out)
	}

	now := time.Now().UTC().Truncate(time.Millisecond)
	e.seedCalls(t,
		testCall("call-recent-0001", now.Add(-2*time.Hour), records.OutcomeBridged),
		testCall("call-3days", now.Add(-72*time.Hour), records.OutcomeMessage),
		testCall("call-10days", now.Add(-240*time.Hour), records.OutcomeReferred),
		testCall("call-2025", time.Date(2025, 12, 31, 23, 0, 0, 0, time.UTC), records.OutcomeNoAnswer),
	)

	code, out, errs := runRecordsCmd(t, "calls", "-config", e.cfg)
	if code != 0 {
		t.Fatalf("calls: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 5 || !strings.HasPrefix(lines[0], "TIME") || !strings.Contains(lines[0], "OUTCOME") {
		t.Fatalf("table:\n%s", out)
	}
	for _, want := range []string{"call-rec", "+12175552171", "bridged", "warm", "felix", "caller_bye", "1.0s", "1m34s", now.Add(-2 * time.Hour).Format("2006-01-02 15:04:05")} {
		if !strings.Contains(lines[1], want) {
			t.Errorf("first row lacks %q: %s", want, lines[1])
		}
	}
	if strings.Contains(out, "call-recent-0001") {
		t.Errorf("table shows the whole call id:\n%s", out)
	}

	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"since 24h, flags last", []string{"calls", "--json", "-config", e.cfg, "--since", "24h"}, "call-recent-0001"},
		{"since 7d, config first", []string{"calls", "-config", e.cfg, "-since=7d", "--json"}, "call-recent-0001 call-3days"},
		{"since a date", []string{"calls", "--since", "2026-01-01", "--json", "--config", e.cfg, "--limit", "0"}, "call-recent-0001 call-3days call-10days"},
		{"since an rfc 3339 time", []string{"calls", "--json", "--since", now.Add(-73 * time.Hour).Format(time.RFC3339), "-config", e.cfg}, "call-recent-0001 call-3days"},
		{"until", []string{"calls", "--json", "--until", "2026-01-01", "-config", e.cfg}, "call-2025"},
		{"limit", []string{"calls", "--limit", "2", "-config", e.cfg, "--json"}, "call-recent-0001 call-3days"},
		{"outcome", []string{"calls", "--outcome", "message", "--json", "-config", e.cfg}, "call-3days"},
	} {
		code, out, errs := runRecordsCmd(t, tc.args...)
		if code != 0 {
			t.Errorf("%s: exit %d: %s", tc.name, code, errs)
			continue
		}
		if got := strings.Join(callIDs(t, out), " "); got != tc.want {
			t.Errorf("%s: got %q want %q", tc.name, got, tc.want)
		}
	}

	// JSON carries the full record.
	_, out, _ = runRecordsCmd(t, "calls", "--json", "--limit", "1", "-config", e.cfg)
	var raw []map[string]any
	if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw) != 1 {
		t.Fatalf("json %v: %s", err, out)
	}
	for k, want := range map[string]any{"id": "call-recent-0001", "sip_call_id": "call-recent-0001@pbx", "caller": "+12175552171",
		"outcome": "bridged", "mode": "warm", "lookup_status": "found", "matter_id": 2002.0, "talk_seconds": 94.0} {
		if raw[0][k] != want {
			t.Errorf("json %s = %v, want %v", k, raw[0][k], want)
		}
	}
}

func TestCallsCommandErrors(t *testing.T) {
	e := newRecordsEnv(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"calls", "--since", "yesterday", "-config", e.cfg}, 2, `bad time: "yesterday"`},
		{[]string{"calls", "--since", "-3h", "-config", e.cfg}, 2, "must be positive"},
		{[]string{"calls", "--since", "3x", "-config", e.cfg}, 2, "bad time"},
		{[]string{"calls", "--until", "2026-13-45", "-config", e.cfg}, 2, "--until"},
		{[]string{"calls", "--outcome", "won", "-config", e.cfg}, 2, `unknown outcome "won"`},
		{[]string{"calls", "--limit", "-1", "-config", e.cfg}, 2, "--limit"},
		{[]string{"calls", "extra", "-config", e.cfg}, 2, "no arguments"},
		{[]string{"calls", "--bogus", "-config", e.cfg}, 2, "bogus"},
		{[]string{"calls", "-config", filepath.Join(t.TempDir(), "missing.yaml")}, 1, "missing.yaml"},
	} {
		code, out, errs := runRecordsCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit %d with %q", tc.args, code, errs, out, tc.code, tc.want)
		}
	}
}

func TestMessagesCommand(t *testing.T) {
	e := newRecordsEnv(t)
	if code, out, errs := runRecordsCmd(t, "messages", "list", "-config", e.cfg); code != 0 || out != "no messages\n" {
		t.Fatalf("empty: %d %q %q", code, out, errs)
	}
	if code, out, _ := runRecordsCmd(t, "messages", "-json", "list", "-config", e.cfg); code != 0 || strings.TrimSpace(out) != "[]" {
		t.Fatalf("empty json: %d %q", code, out)
	}
	at := time.Date(2026, 11, 24, 16, 0, 5, 0, time.UTC)
	m1 := e.seedMessage(t, records.Message{Time: at, CallID: "call-1", Caller: "+12175552171", ContactID: 1001, MatterID: 2002, Rule: "felix"})
	m2 := e.seedMessage(t, records.Message{Time: at.Add(time.Hour), CallID: "call-2", Caller: "+13125550000"})

	// list: table, newest first.
	code, out, errs := runRecordsCmd(t, "messages", "-config", e.cfg, "list")
	if code != 0 {
		t.Fatalf("list: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 3 || !strings.HasPrefix(lines[0], "ID") ||
		!strings.HasPrefix(lines[1], strconv.FormatInt(m2.ID, 10)+" ") || !strings.HasPrefix(lines[2], strconv.FormatInt(m1.ID, 10)+" ") {
		t.Fatalf("list:\n%s", out)
	}
	for _, want := range []string{"2026-11-24 16:00:05", "+12175552171", "1001", "2002", "felix", "1.0s", m1.File} {
		if !strings.Contains(lines[2], want) {
			t.Errorf("row lacks %q: %s", want, lines[2])
		}
	}

	// list --json, flags in any order.
	code, out, errs = runRecordsCmd(t, "messages", "list", "--json", "--limit", "1", "--config", e.cfg)
	if code != 0 {
		t.Fatalf("list json: %d %s", code, errs)
	}
	var list []records.Message
	if err := json.Unmarshal([]byte(out), &list); err != nil || len(list) != 1 || list[0].ID != m2.ID {
		t.Fatalf("list json %v: %s", err, out)
	}

	// show: text and JSON with the absolute path of an existing file.
	abs := filepath.Join(e.messages, m1.File)
	code, out, errs = runRecordsCmd(t, "messages", "show", "-config", e.cfg, strconv.FormatInt(m1.ID, 10))
	if code != 0 {
		t.Fatalf("show: %d %s", code, errs)
	}
	for _, want := range []string{"+12175552171", "1001", "2002", "felix", "call-1", "1.0s", abs, "16044 bytes"} {
		if !strings.Contains(out, want) {
			t.Errorf("show lacks %q:\n%s", want, out)
		}
	}
	code, out, errs = runRecordsCmd(t, "messages", "--json", "show", strconv.FormatInt(m1.ID, 10), "-config", e.cfg)
	if code != 0 {
		t.Fatalf("show json: %d %s", code, errs)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(out), &shown); err != nil {
		t.Fatalf("show json %v: %s", err, out)
	}
	if shown["path"] != abs || shown["exists"] != true || shown["file"] != m1.File || shown["duration_seconds"] != 1.0 || shown["caller"] != "+12175552171" {
		t.Fatalf("show json: %s", out)
	}

	// rm: the row and the file go.
	code, out, errs = runRecordsCmd(t, "messages", "rm", strconv.FormatInt(m1.ID, 10), "-config", e.cfg)
	if code != 0 || !strings.Contains(out, "removed message") {
		t.Fatalf("rm: %d %q %s", code, out, errs)
	}
	if _, err := os.Stat(abs); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("recording kept: %v", err)
	}
	code, _, errs = runRecordsCmd(t, "messages", "show", strconv.FormatInt(m1.ID, 10), "-config", e.cfg)
	if code != 1 || !strings.Contains(errs, "not found") {
		t.Fatalf("show after rm: %d %s", code, errs)
	}

	// A missing file: show says so, rm still removes the row.
	os.Remove(filepath.Join(e.messages, m2.File))
	_, out, _ = runRecordsCmd(t, "messages", "show", strconv.FormatInt(m2.ID, 10), "-config", e.cfg)
	if !strings.Contains(out, "(missing)") {
		t.Errorf("show of a missing file:\n%s", out)
	}
	if code, _, errs := runRecordsCmd(t, "messages", "-config", e.cfg, "rm", strconv.FormatInt(m2.ID, 10)); code != 0 {
		t.Fatalf("rm with missing file: %d %s", code, errs)
	}
	if _, out, _ := runRecordsCmd(t, "messages", "list", "-config", e.cfg); out != "no messages\n" {
		t.Fatalf("after rm: %q", out)
	}
	if st, err := os.Stat(e.messages); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("messages folder: %v %v", st, err)
	}
}

func TestMessagesCommandErrors(t *testing.T) {
	e := newRecordsEnv(t)
	for _, tc := range []struct {
		args []string
		code int
		want string
	}{
		{[]string{"messages", "-config", e.cfg}, 2, "missing subcommand"},
		{[]string{"messages", "play", "1", "-config", e.cfg}, 2, `unknown subcommand "play"`},
		{[]string{"messages", "show", "-config", e.cfg}, 2, "wants ID"},
		{[]string{"messages", "rm", "1", "2", "-config", e.cfg}, 2, "wants ID"},
		{[]string{"messages", "show", "abc", "-config", e.cfg}, 2, `bad message ID "abc"`},
		{[]string{"messages", "rm", "0", "-config", e.cfg}, 2, `bad message ID "0"`},
		{[]string{"messages", "list", "x", "-config", e.cfg}, 2, "no arguments"},
		{[]string{"messages", "list", "--since", "soon", "-config", e.cfg}, 2, "--since"},
		{[]string{"messages", "show", "42", "-config", e.cfg}, 1, "message 42 not found"},
		{[]string{"messages", "rm", "42", "-config", e.cfg}, 1, "message 42 not found"},
	} {
		code, out, errs := runRecordsCmd(t, tc.args...)
		if code != tc.code || !strings.Contains(errs, tc.want) || out != "" {
			t.Errorf("%q: exit %d, stderr %q, stdout %q; want exit %d with %q", tc.args, code, errs, out, tc.code, tc.want)
		}
	}
}

func TestParseRecordsTime(t *testing.T) {
	now := time.Date(2026, 11, 24, 12, 0, 0, 0, time.UTC)
	chicago := time.FixedZone("CST", -6*3600)
	for _, tc := range []struct {
		in   string
		want time.Time
	}{
		{"", time.Time{}},
		{"24h", now.Add(-24 * time.Hour)},
		{"90m", now.Add(-90 * time.Minute)},
		{"7d", now.Add(-7 * 24 * time.Hour)},
		{"2w", now.Add(-14 * 24 * time.Hour)},
		{"2026-11-20", time.Date(2026, 11, 20, 0, 0, 0, 0, chicago)},
		{"2026-11-20 09:30", time.Date(2026, 11, 20, 9, 30, 0, 0, chicago)},
		{"2026-11-20T09:30:15", time.Date(2026, 11, 20, 9, 30, 15, 0, chicago)},
		{"2026-11-20T09:30:00Z", time.Date(2026, 11, 20, 9, 30, 0, 0, time.UTC)},
		{"2026-11-20T09:30:00-05:00", time.Date(2026, 11, 20, 14, 30, 0, 0, time.UTC)},
	} {
		got, err := parseRecordsTime(tc.in, now, chicago)
		if err != nil || !got.Equal(tc.want) {
			t.Errorf("%q: got %v %v, want %v", tc.in, got, err, tc.want)
		}
	}
	for _, bad := range []string{"yesterday", "0h", "-2d", "7x", "d", "2026-02-30", "10:00", "1d12h"} {
		if _, err := parseRecordsTime(bad, now, chicago); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestCallsCommandUnfinished(t *testing.T) {
	e := newRecordsEnv(t)
	now := time.Now().UTC().Truncate(time.Millisecond)
	live := records.CallRecord{ID: "call-live-0001", CallID: "live@pbx", Start: now.Add(-time.Minute),
		Caller: "+12175552171", Called: "+12175550100", Outcome: records.OutcomeInProgress}
	lost := live
	lost.ID, lost.CallID, lost.Start = "call-lost-0001", "lost@pbx", now.Add(-2*time.Minute)
	lost.Outcome, lost.EndReason = records.OutcomeInterrupted, records.EndInterrupted
	e.seedCalls(t, live, lost, testCall("call-done-0001", now.Add(-time.Hour), records.OutcomeBridged))

	code, out, errs := runRecordsCmd(t, "calls", "-config", e.cfg)
	if code != 0 {
		t.Fatalf("calls: %d %s", code, errs)
	}
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 4 {
		t.Fatalf("table:\n%s", out)
	}
	// OUTCOME, END, RING, TALK are the last four columns.
	for i, want := range [][]string{
		1: {"in_progress", "-", "-", "-"},
		2: {"interrupted", "interrupted", "-", "-"},
		3: {"bridged", "caller_bye", "1.0s", "1m34s"},
	} {
		if i == 0 {
			continue
		}
		f := strings.Fields(lines[i])
		if got := f[len(f)-4:]; strings.Join(got, " ") != strings.Join(want, " ") {
			t.Errorf("row %d: got %q want %q\n%s", i, got, want, out)
		}
	}
	for outcome, want := range map[string]string{"in_progress": "call-live-0001", "interrupted": "call-lost-0001"} {
		code, out, errs := runRecordsCmd(t, "calls", "--outcome", outcome, "--json", "-config", e.cfg)
		if code != 0 {
			t.Fatalf("--outcome %s: %d %s", outcome, code, errs)
		}
		if got := strings.Join(callIDs(t, out), " "); got != want {
			t.Errorf("--outcome %s: got %q want %q", outcome, got, want)
		}
		var raw []map[string]any
		if err := json.Unmarshal([]byte(out), &raw); err != nil || len(raw) != 1 {
			t.Fatalf("json %v: %s", err, out)
		}
		if _, ok := raw[0]["end"]; ok || raw[0]["outcome"] != outcome {
			t.Errorf("--outcome %s json: %v", outcome, raw[0])
		}
	}
}

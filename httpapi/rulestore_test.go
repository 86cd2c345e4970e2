package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

// storeEnv is the API on a real routing store (SQLite in a temp dir).
func storeEnv(t *testing.T, firm routing.Firm) (*env, *routing.Store) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "m.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if firm.TimeZone == "" {
		firm.TimeZone = "America/Chicago"
	}
	st, err := routing.NewStore(context.Background(), db, firm)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	e := &env{}
	e.srv = New(Options{Token: testToken, Rules: RuleStore{Store: st}, Listen: testListen, Logger: slog.New(slog.DiscardHandler)})
	t.Cleanup(e.srv.Close)
	return e, st
}

func (e *env) patch(t *testing.T, path, body, contentType string) result {
	t.Helper()
	req := localRequest("PATCH", path, strings.NewReader(body))
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	return e.serve(req)
}

func sameJSON(t *testing.T, got, want string) {
	t.Helper()
	var g, w any
	if err := json.Unmarshal([]byte(got), &g); err != nil {
		t.Fatalf("got is not JSON: %v: %s", err, got)
	}
	if err := json.Unmarshal([]byte(want), &w); err != nil {
		t.Fatalf("want is not JSON: %v: %s", err, want)
	}
	if !reflect.DeepEqual(g, w) {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

// The JSON example in docs/rules.md is what GET prints for it, and PUT
// accepts it as it is (read-only members included).
func TestDocsRuleJSONExample(t *testing.T) {
	md, err := os.ReadFile("../docs/rules.md")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile("(?s)<!-- rule-json-example -->\\s*```json\n(.*?)```").FindSubmatch(md)
	if m == nil {
		t.Fatal("docs/rules.md has no <!-- rule-json-example --> json block")
	}
	example := string(m[1])
	e, _ := storeEnv(t, routing.Firm{})
	if r := e.do(t, "POST", "/v1/rules", `{"name":"reception","to":"100"}`, testToken); r.code != 201 {
		t.Fatalf("reception: %d %s", r.code, r.body)
	}
	r := e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", example, testToken)
	if r.code != 200 {
		t.Fatalf("PUT the docs example: %d %s", r.code, r.body)
	}
	sameJSON(t, r.body, example)
	r = e.do(t, "GET", "/v1/rules/felix%20dubinsky", "", testToken)
	if r.code != 200 {
		t.Fatalf("GET: %d %s", r.code, r.body)
	}
	sameJSON(t, r.body, example)
}

func TestRulePutIsFullReplace(t *testing.T) {
	e, _ := storeEnv(t, routing.Firm{})
	r := e.do(t, "POST", "/v1/rules", `{"name":"Felix Dubinsky","to":"101","mode":"warm","hours":"mon-fri 09:00-17:00","whisper":"hi","ring_timeout":"45s"}`, testToken)
	if r.code != 201 || r.hdr.Get("Location") != "/v1/rules/Felix%20Dubinsky" {
		t.Fatalf("create: %d %q %s", r.code, r.hdr.Get("Location"), r.body)
	}
	got := e.do(t, "GET", "/v1/rules/Felix%20Dubinsky", "", testToken)
	// what GET printed goes back unchanged, valid and warnings included
	if r = e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", got.body, testToken); r.code != 200 {
		t.Fatalf("PUT of GET's output: %d %s", r.code, r.body)
	}
	sameJSON(t, r.body, got.body)
	// read-only members are ignored whatever they say
	r = e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", `{"to":"102","mode":"warm","valid":false,"error":"x","warnings":["y"]}`, testToken)
	if m := r.json(t); r.code != 200 || m["valid"] != true || m["error"] != nil || len(m["warnings"].([]any)) != 0 {
		t.Fatalf("read-only members: %d %s", r.code, r.body)
	}
	// omitted members are their defaults: hours, whisper and ring_timeout are gone
	if m := r.json(t); m["name"] != "Felix Dubinsky" || m["hours"] != "" || m["whisper"] != "" || m["ring_timeout"] != "20s" || m["enabled"] != true {
		t.Fatalf("omitted fields not reset: %s", r.body)
	}
	// unknown members: 400 with the field
	r = e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", `{"to":"102","colour":"blue"}`, testToken)
	if m := r.json(t); r.code != 400 || m["error"] != "bad_request" || m["field"] != "colour" {
		t.Fatalf("unknown field: %d %s", r.code, r.body)
	}
	r = e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", `{"to":102}`, testToken)
	if m := r.json(t); r.code != 400 || m["field"] != "to" {
		t.Fatalf("wrong type: %d %s", r.code, r.body)
	}
	// a bad value: 422 with the field
	r = e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", `{"to":"102","mode":"lukewarm"}`, testToken)
	if m := r.json(t); r.code != 422 || m["field"] != "mode" {
		t.Fatalf("bad mode: %d %s", r.code, r.body)
	}
	// the name must match the path, ignoring case (which renames the case)
	if r = e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", `{"name":"Felix","to":"102"}`, testToken); r.code != 400 || r.json(t)["field"] != "name" {
		t.Fatalf("name mismatch: %d %s", r.code, r.body)
	}
	if r = e.do(t, "PUT", "/v1/rules/Felix%20Dubinsky", `{"name":"felix dubinsky","to":"102"}`, testToken); r.code != 200 || r.json(t)["name"] != "felix dubinsky" {
		t.Fatalf("case rename: %d %s", r.code, r.body)
	}
	// PUT creates too, and names may have spaces and punctuation
	if r = e.do(t, "PUT", "/v1/rules/O%27Brien%20%26%20Co.", `{"to":"103"}`, testToken); r.code != 200 || r.json(t)["name"] != "O'Brien & Co." {
		t.Fatalf("create by PUT: %d %s", r.code, r.body)
	}
	if r = e.do(t, "PUT", "/v1/rules/a%2Fb", `{"to":"103"}`, testToken); r.code != 422 || r.json(t)["field"] != "name" {
		t.Fatalf("slash in a name: %d %s", r.code, r.body)
	}
	if r = e.do(t, "DELETE", "/v1/rules/O%27Brien%20%26%20Co.", "", testToken); r.code != 204 {
		t.Fatalf("delete: %d %s", r.code, r.body)
	}
}

func TestRulePatch(t *testing.T) {
	e, _ := storeEnv(t, routing.Firm{})
	r := e.do(t, "POST", "/v1/rules", `{"name":"Felix Dubinsky","to":"101","mode":"warm","hours":"mon-fri 09:00-17:00","whisper":"hi","staff_id":9007199254740993}`, testToken)
	if r.code != 201 {
		t.Fatalf("create: %d %s", r.code, r.body)
	}
	// switching to cold keeps the other fields and now warns about the whisper
	r = e.patch(t, "/v1/rules/Felix%20Dubinsky", `{"mode":"cold"}`, MergePatchType)
	m := r.json(t)
	if r.code != 200 || m["mode"] != "cold" || m["hours"] != "mon-fri 09:00-17:00" || m["whisper"] != "hi" {
		t.Fatalf("patch mode: %d %s", r.code, r.body)
	}
	if w := m["warnings"].([]any); len(w) != 1 || !strings.HasPrefix(w[0].(string), "whisper:") {
		t.Fatalf("warnings = %v", w)
	}
	// large ids survive the merge without float rounding
	if !strings.Contains(r.body, `"staff_id":9007199254740993`) {
		t.Fatalf("staff_id rounded: %s", r.body)
	}
	// null resets to the default; application/json is accepted too
	r = e.patch(t, "/v1/rules/felix%20dubinsky", `{"hours":null,"whisper":null,"enabled":false}`, "application/json; charset=utf-8")
	if m = r.json(t); r.code != 200 || m["hours"] != "" || m["whisper"] != "" || m["enabled"] != false || len(m["warnings"].([]any)) != 0 {
		t.Fatalf("patch nulls: %d %s", r.code, r.body)
	}
	if r = e.patch(t, "/v1/rules/felix%20dubinsky", `{"enabled":null}`, MergePatchType); r.json(t)["enabled"] != true {
		t.Fatalf("enabled null: %s", r.body)
	}
	for _, tt := range []struct {
		path, body, ct string
		code           int
		field          string
	}{
		{"/v1/rules/nobody", `{"mode":"cold"}`, MergePatchType, 404, ""},
		{"/v1/rules/Felix%20Dubinsky", `{"mode":"cold"}`, "text/plain", 415, ""},
		{"/v1/rules/Felix%20Dubinsky", `{"mode":"cold"}`, "", 415, ""},
		{"/v1/rules/Felix%20Dubinsky", `{"colour":"blue"}`, MergePatchType, 400, "colour"},
		{"/v1/rules/Felix%20Dubinsky", `{"name":"Felix"}`, MergePatchType, 400, "name"},
		{"/v1/rules/Felix%20Dubinsky", `{"ring_timeout":"1h"}`, MergePatchType, 422, "ring_timeout"},
		{"/v1/rules/Felix%20Dubinsky", `[]`, MergePatchType, 400, ""},
	} {
		r := e.patch(t, tt.path, tt.body, tt.ct)
		if r.code != tt.code || (tt.field != "" && r.json(t)["field"] != tt.field) {
			t.Errorf("PATCH %s %s (%s): %d %s, want %d %s", tt.path, tt.body, tt.ct, r.code, r.body, tt.code, tt.field)
		}
		if tt.code == 415 && r.hdr.Get("Accept-Patch") != MergePatchType {
			t.Errorf("415 without Accept-Patch")
		}
	}
	// a patch without a name keeps it; name null is the same
	if r = e.patch(t, "/v1/rules/Felix%20Dubinsky", `{"name":null,"to":"102"}`, MergePatchType); r.code != 200 || r.json(t)["name"] != "Felix Dubinsky" {
		t.Fatalf("name null: %d %s", r.code, r.body)
	}
	// PATCH needs the admin token
	req := localRequest("PATCH", "/v1/rules/Felix%20Dubinsky", strings.NewReader(`{"to":"103"}`))
	req.Header.Set("Content-Type", MergePatchType)
	if r := e.serve(req); r.code != http.StatusUnauthorized {
		t.Fatalf("patch without a token: %d", r.code)
	}
}

func TestMergePatchRFC7396(t *testing.T) {
	// the examples of RFC 7396 Appendix A
	for _, tt := range [][3]string{
		{`{"a":"b"}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"b"}`, `{"b":"c"}`, `{"a":"b","b":"c"}`},
		{`{"a":"b"}`, `{"a":null}`, `{}`},
		{`{"a":"b","b":"c"}`, `{"a":null}`, `{"b":"c"}`},
		{`{"a":["b"]}`, `{"a":"c"}`, `{"a":"c"}`},
		{`{"a":"c"}`, `{"a":["b"]}`, `{"a":["b"]}`},
		{`{"a":{"b":"c"}}`, `{"a":{"b":"d","c":null}}`, `{"a":{"b":"d"}}`},
		{`{"a":[{"b":"c"}]}`, `{"a":[1]}`, `{"a":[1]}`},
		{`["a","b"]`, `["c","d"]`, `["c","d"]`},
		{`{"a":"b"}`, `["c"]`, `["c"]`},
		{`{"a":"foo"}`, `null`, `null`},
		{`{"a":"foo"}`, `"bar"`, `"bar"`},
		{`{"e":null}`, `{"a":1}`, `{"e":null,"a":1}`},
		{`[1,2]`, `{"a":"b","c":null}`, `{"a":"b"}`},
		{`{}`, `{"a":{"bb":{"ccc":null}}}`, `{"a":{"bb":{}}}`},
	} {
		got, err := mergePatch(json.RawMessage(tt[0]), json.RawMessage(tt[1]))
		if err != nil {
			t.Fatalf("mergePatch(%s, %s): %v", tt[0], tt[1], err)
		}
		sameJSON(t, string(got), tt[2])
	}
	if _, err := mergePatch(json.RawMessage(`{`), json.RawMessage(`{}`)); err == nil {
		t.Fatal("bad target accepted")
	}
}

// POST and PUT refuse destinations outside routing.allowed_destinations and
// message audio outside the audio directory, naming the field (422).
func TestRuleStoreRefusesDestinationsAndAudio(t *testing.T) {
	dir := t.TempDir()
	audio := filepath.Join(dir, "audio")
	if err := os.Mkdir(audio, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(audio, "felix.wav"), media.EncodeWAV(make([]int16, 800)), 0o644); err != nil {
		t.Fatal(err)
	}
	e, st := storeEnv(t, routing.Firm{TimeZone: "UTC", AllowedDestinations: []string{"+1217555*", "1??"}, AudioDir: audio})
	ctx := context.Background()
	api := RuleStore{Store: st}
	if _, err := api.Create(ctx, json.RawMessage(`{"name":"felix","to":"+12175550101","message_audio":"felix.wav"}`)); err != nil {
		t.Fatalf("allowed rule: %v", err)
	}
	for _, tt := range []struct{ body, field, want string }{
		{`{"name":"x","to":"+19005550123"}`, "to", `matches none of routing.allowed_destinations ["+1217555*" "1??"]`},
		{`{"name":"x","to":"+442071234567"}`, "to", `routing.allowed_destinations`},
		{`{"name":"x","to":"101","message_audio":"/etc/passwd"}`, "message_audio", `"/etc/passwd" is outside the audio directory`},
		{`{"name":"x","to":"101","message_audio":"../m.db"}`, "message_audio", `"../m.db" is outside the audio directory`},
	} {
		r := e.do(t, "POST", "/v1/rules", tt.body, testToken)
		if m := r.json(t); r.code != 422 || m["field"] != tt.field || !strings.Contains(m["message"].(string), tt.want) {
			t.Errorf("POST %s = %d %s, want 422 %s: %q", tt.body, r.code, r.body, tt.field, tt.want)
		}
	}
	_, err := api.Put(ctx, "felix", json.RawMessage(`{"to":"+19005550123"}`))
	var fe *routing.FieldError
	if !errors.As(err, &fe) || fe.Field != "to" {
		t.Errorf("Put premium = %v", err)
	}
	if _, err := api.Create(ctx, json.RawMessage(`{"name":"FELIX","to":"101"}`)); !errors.Is(err, ErrRuleExists) {
		t.Errorf("duplicate = %v", err)
	}
	if _, err := api.Get(ctx, "nobody"); !errors.Is(err, ErrRuleNotFound) {
		t.Errorf("missing = %v", err)
	}
}

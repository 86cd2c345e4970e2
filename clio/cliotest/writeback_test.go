package cliotest

import (
	"bytes"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
)

func send(t *testing.T, s *Server, method, path string, body any, hdr map[string]string) reply {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		rd = bytes.NewReader(b)
	}
	req, _ := http.NewRequest(method, path, rd)
	if !strings.HasPrefix(path, "http") {
		req, _ = http.NewRequest(method, s.URL+path, rd)
		req.Header.Set("Authorization", "Bearer tok")
	}
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	resp, err := s.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	r := reply{status: resp.StatusCode, header: resp.Header, raw: string(b)}
	_ = json.Unmarshal(b, &r.body)
	return r
}

func errType(r reply) string {
	e, _ := r.body["error"].(map[string]any)
	s, _ := e["type"].(string)
	return s
}

func TestFakeCommunications(t *testing.T) {
	s := NewServer(t, testFixture())
	comm := map[string]any{"type": "PhoneCommunication", "subject": "Call", "body": "b", "matter": map[string]any{"id": 10},
		"senders":             []any{map[string]any{"id": 1, "type": "Contact"}},
		"external_properties": []any{map[string]any{"name": "matterline_call_id", "value": "c1"}}}
	if r := send(t, s, "POST", "/api/v4/communications.json", map[string]any{"data": map[string]any{"type": "PhoneCommunication"}}, nil); r.status != 422 || errType(r) != "ArgumentError" || !strings.Contains(r.raw, "body, subject") {
		t.Errorf("missing subject and body: %d %s", r.status, r.raw)
	}
	if r := send(t, s, "POST", "/api/v4/communications.json?fields=id,nope", map[string]any{"data": comm}, nil); r.status != 400 || errType(r) != "InvalidFields" {
		t.Errorf("bad fields: %d %s", r.status, r.raw)
	}
	if r := send(t, s, "POST", "/api/v4/communications.json", map[string]any{"data": comm}, nil); r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	r := get(t, s, "/api/v4/communications.json?fields=id,subject&external_property_name=matterline_call_id&external_property_value=c1", "tok")
	if r.status != 200 || len(ids(r)) != 1 {
		t.Errorf("find by external property: %d %s", r.status, r.raw)
	}
	if r := get(t, s, "/api/v4/communications.json?external_property_name=matterline_call_id&external_property_value=c2", "tok"); len(ids(r)) != 0 {
		t.Errorf("other value found: %s", r.raw)
	}
	s.SetPermission("communications", false)
	if r := get(t, s, "/api/v4/communications.json", "tok"); r.status != 403 || errType(r) != "ForbiddenError" {
		t.Errorf("permission off: %d %s", r.status, r.raw)
	}
}

func TestFakeTasksAndActivities(t *testing.T) {
	s := NewServer(t, testFixture())
	if r := send(t, s, "POST", "/api/v4/tasks.json", map[string]any{"data": map[string]any{"name": "x",
		"assignee": map[string]any{"id": 7, "type": "User"}, "due_at": "2026-11-25T10:00:00Z"}}, nil); r.status != 422 {
		t.Errorf("due_at with a time: %d %s", r.status, r.raw)
	}
	if r := send(t, s, "POST", "/api/v4/tasks.json", map[string]any{"data": map[string]any{"name": "x",
		"assignee": map[string]any{"id": 7, "type": "User"}, "due_at": "2026-11-25", "priority": "High"}}, nil); r.status != 201 {
		t.Errorf("task: %d %s", r.status, r.raw)
	}
	if r := send(t, s, "POST", "/api/v4/activities.json", map[string]any{"data": map[string]any{"type": "TimeEntry", "quantity": 0}}, nil); r.status != 422 {
		t.Errorf("quantity 0: %d %s", r.status, r.raw)
	}
	if r := send(t, s, "POST", "/api/v4/activities.json", map[string]any{"data": map[string]any{"type": "TimeEntry", "quantity": 60,
		"user": map[string]any{"id": 7}, "matter": map[string]any{"id": 10}}}, map[string]string{"X-API-VERSION": "4.0.10"}); r.status != 201 {
		t.Errorf("time entry: %d %s", r.status, r.raw)
	}
	if a := s.Activities(); len(a) != 1 || a[0].APIVersion != "4.0.10" || a[0].Quantity != 60 {
		t.Errorf("activities %+v", a)
	}
	if tk := s.Tasks(); len(tk) != 1 || tk[0].Priority != "High" {
		t.Errorf("tasks %+v", tk)
	}
}

func TestFakeDocumentUpload(t *testing.T) {
	s := NewServer(t, testFixture())
	r := send(t, s, "POST", "/api/v4/documents.json?fields=id,latest_document_version{uuid,put_url,put_headers}",
		map[string]any{"data": map[string]any{"name": "m.wav", "parent": map[string]any{"id": 10, "type": "Matter"}, "content_type": "audio/wav"}}, nil)
	if r.status != 201 {
		t.Fatalf("create: %d %s", r.status, r.raw)
	}
	data := r.body["data"].(map[string]any)
	v := data["latest_document_version"].(map[string]any)
	id, uuid, put := data["id"].(float64), v["uuid"].(string), v["put_url"].(string)
	hdr := map[string]string{}
	for _, h := range v["put_headers"].([]any) {
		hm := h.(map[string]any)
		hdr[hm["name"].(string)] = hm["value"].(string)
	}
	patch := func(u string) reply {
		return send(t, s, "PATCH", "/api/v4/documents/"+jsonNum(id)+".json", map[string]any{"data": map[string]any{"uuid": u, "fully_uploaded": true}}, nil)
	}
	if r := patch(uuid); r.status != 422 || errType(r) != "UploadNotFoundError" {
		t.Errorf("patch before upload: %d %s", r.status, r.raw)
	}
	req, _ := http.NewRequest("PUT", put, strings.NewReader("RIFF"))
	if resp, err := s.Client().Do(req); err != nil || resp.StatusCode != 403 {
		t.Errorf("upload without the put headers: %v %v", resp.StatusCode, err)
	}
	req, _ = http.NewRequest("PUT", put, strings.NewReader("RIFF"))
	for k, v := range hdr {
		req.Header.Set(k, v)
	}
	if resp, err := s.Client().Do(req); err != nil || resp.StatusCode != 200 {
		t.Fatalf("upload: %v %v", resp.StatusCode, err)
	}
	if r := patch("wrong"); r.status != 422 || errType(r) != "UploadNotFoundError" {
		t.Errorf("patch with a wrong uuid: %d %s", r.status, r.raw)
	}
	if r := patch(uuid); r.status != 200 {
		t.Errorf("patch: %d %s", r.status, r.raw)
	}
	if d := s.Documents(); len(d) != 1 || string(d[0].Data) != "RIFF" || !d[0].FullyUploaded {
		t.Errorf("documents %+v", d)
	}
}

func jsonNum(f float64) string { b, _ := json.Marshal(int64(f)); return string(b) }

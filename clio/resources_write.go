package clio

// Write-back resources (shared/CLIO-API.md "Writing back"): communications,
// activities (time entries), tasks and documents. Each needs its own permission
// on the Clio app; a missing one is a 403 ForbiddenError (see Permission).

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"time"
)

// Ref is a reference to a Clio record in a request body: {"id"} or {"id","type"}.
type Ref struct {
	ID   int64  `json:"id"`
	Type string `json:"type,omitempty"`
}

// ExternalProperty is a name/value pair stored on a record (at most 5 per
// record); communications can be found again by one.
type ExternalProperty struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// Communication is a PhoneCommunication (or EmailCommunication) on a matter.
type Communication struct {
	ID                 int64              `json:"id,omitempty"`
	Type               string             `json:"type,omitempty"`
	Subject            string             `json:"subject,omitempty"`
	Body               string             `json:"body,omitempty"`
	ReceivedAt         string             `json:"received_at,omitempty"` // ISO 8601
	Date               string             `json:"date,omitempty"`        // YYYY-MM-DD
	Matter             *Ref               `json:"matter,omitempty"`
	Senders            []Ref              `json:"senders,omitempty"`
	Receivers          []Ref              `json:"receivers,omitempty"`
	ExternalProperties []ExternalProperty `json:"external_properties,omitempty"`
}

// TimeEntry is an activity of type TimeEntry. Quantity is in seconds for the
// API version the client pins (DefaultAPIVersion 4.0.10; versions up to 4.0.3
// read it as hours).
type TimeEntry struct {
	ID            int64  `json:"id,omitempty"`
	Type          string `json:"type,omitempty"` // TimeEntry
	Date          string `json:"date,omitempty"` // YYYY-MM-DD
	Quantity      int64  `json:"quantity"`
	User          *Ref   `json:"user,omitempty"`
	Matter        *Ref   `json:"matter,omitempty"`
	Note          string `json:"note,omitempty"`
	NonBillable   bool   `json:"non_billable"`
	Communication *Ref   `json:"communication,omitempty"`
}

// Task is a task assigned to a user.
type Task struct {
	ID             int64  `json:"id,omitempty"`
	Name           string `json:"name,omitempty"`
	Description    string `json:"description,omitempty"`
	Assignee       *Ref   `json:"assignee,omitempty"`
	DueAt          string `json:"due_at,omitempty"`   // YYYY-MM-DD: a date, not a time
	Priority       string `json:"priority,omitempty"` // High | Normal | Low
	Matter         *Ref   `json:"matter,omitempty"`
	NotifyAssignee bool   `json:"notify_assignee,omitempty"`
}

// Document is the create body of a document; DocumentVersion is what the
// create answers with fields=id,latest_document_version{uuid,put_url,put_headers}.
type Document struct {
	ID              int64            `json:"id,omitempty"`
	Name            string           `json:"name,omitempty"`
	Parent          *Ref             `json:"parent,omitempty"`
	ContentType     string           `json:"content_type,omitempty"`
	CommunicationID int64            `json:"communication_id,omitempty"`
	LatestVersion   *DocumentVersion `json:"latest_document_version,omitempty"`
}

// DocumentVersion carries the signed upload URL of a new document.
type DocumentVersion struct {
	UUID       string             `json:"uuid"`
	PutURL     string             `json:"put_url"`
	PutHeaders []ExternalProperty `json:"put_headers"`
}

// Date formats t as Clio's YYYY-MM-DD.
func Date(t time.Time) string { return t.Format("2006-01-02") }

// CommunicationsService is /api/v4/communications.json.
type CommunicationsService struct{ c *Client }

// Create posts a communication and returns its id.
func (s *CommunicationsService) Create(ctx context.Context, cm Communication) (*Communication, *Response, error) {
	var out itemBody[Communication]
	resp, err := s.c.send(ctx, http.MethodPost, s.c.apiURL("communications.json", url.Values{"fields": {"id"}}), cm, &out)
	if err != nil {
		return nil, resp, err
	}
	return &out.Data, resp, nil
}

// FindByExternalProperty returns the communications carrying the external
// property name=value (at most a page of them).
func (s *CommunicationsService) FindByExternalProperty(ctx context.Context, name, value string) ([]Communication, *Response, error) {
	q := url.Values{"fields": {"id,subject"}, "external_property_name": {name}, "external_property_value": {value}}
	return list[Communication](ctx, s.c, s.c.apiURL("communications.json", q))
}

// ActivitiesService is /api/v4/activities.json.
type ActivitiesService struct{ c *Client }

// CreateTimeEntry posts a TimeEntry activity.
func (s *ActivitiesService) CreateTimeEntry(ctx context.Context, te TimeEntry) (*TimeEntry, *Response, error) {
	te.Type = "TimeEntry"
	var out itemBody[TimeEntry]
	resp, err := s.c.send(ctx, http.MethodPost, s.c.apiURL("activities.json", url.Values{"fields": {"id"}}), te, &out)
	if err != nil {
		return nil, resp, err
	}
	return &out.Data, resp, nil
}

// TasksService is /api/v4/tasks.json.
type TasksService struct{ c *Client }

// Create posts a task.
func (s *TasksService) Create(ctx context.Context, t Task) (*Task, *Response, error) {
	var out itemBody[Task]
	resp, err := s.c.send(ctx, http.MethodPost, s.c.apiURL("tasks.json", url.Values{"fields": {"id"}}), t, &out)
	if err != nil {
		return nil, resp, err
	}
	return &out.Data, resp, nil
}

// DocumentsService is /api/v4/documents.json and the upload it signs.
type DocumentsService struct{ c *Client }

// DocumentCreateFields is what Create asks for: the id and the signed upload.
const DocumentCreateFields = "id,latest_document_version{uuid,put_url,put_headers}"

// Create makes the document record and returns its id and upload URL (step 1).
func (s *DocumentsService) Create(ctx context.Context, d Document) (*Document, *Response, error) {
	var out itemBody[Document]
	resp, err := s.c.send(ctx, http.MethodPost, s.c.apiURL("documents.json", url.Values{"fields": {DocumentCreateFields}}), d, &out)
	if err != nil {
		return nil, resp, err
	}
	if out.Data.ID == 0 || out.Data.LatestVersion == nil || out.Data.LatestVersion.PutURL == "" || out.Data.LatestVersion.UUID == "" {
		return nil, resp, fmt.Errorf("clio: create document: %w: no id or upload url", ErrBadResponse)
	}
	return &out.Data, resp, nil
}

// Upload PUTs data to the version's signed put_url with exactly its put_headers
// (step 2). No bearer token is sent: the URL is signed, and may be another host.
func (s *DocumentsService) Upload(ctx context.Context, v DocumentVersion, data []byte) error {
	ctx, cancel := context.WithTimeout(ctx, max(s.c.requestTimeout, 30*time.Second))
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, v.PutURL, bytes.NewReader(data))
	if err != nil {
		return fmt.Errorf("clio: upload: %w", err)
	}
	for _, h := range v.PutHeaders {
		req.Header.Set(h.Name, h.Value)
	}
	req.ContentLength = int64(len(data))
	hr, err := s.c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("clio: upload: %w", err)
	}
	defer hr.Body.Close()
	if err := CheckResponse(hr); err != nil {
		return fmt.Errorf("clio: upload: %w", err)
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(hr.Body, maxErrorBody))
	return nil
}

// MarkUploaded PATCHes fully_uploaded with the version's uuid (step 3).
// UploadNotFoundError and UploadTimeoutError come back as *APIError.
func (s *DocumentsService) MarkUploaded(ctx context.Context, id int64, uuid string) (*Response, error) {
	body := map[string]any{"uuid": uuid, "fully_uploaded": true}
	path := "documents/" + strconv.FormatInt(id, 10) + ".json"
	return s.c.send(ctx, http.MethodPatch, s.c.apiURL(path, url.Values{"fields": {"id"}}), body, nil)
}

// send encodes v as {"data": v} and sends it with do.
func (c *Client) send(ctx context.Context, method, rawURL string, v any, out any) (*Response, error) {
	body, err := json.Marshal(map[string]any{"data": v})
	if err != nil {
		return nil, fmt.Errorf("clio: encode %s body: %w", method, err)
	}
	return c.do(ctx, method, rawURL, body, out)
}

// Permission names the Clio app permission a write-back resource needs, for
// the message of a 403 ("Clio app lacks Communications read/write").
func Permission(resource string) string {
	switch resource {
	case "communications":
		return "Communications"
	case "activities":
		return "Activities"
	case "tasks":
		return "Tasks"
	case "documents":
		return "Documents"
	}
	return resource
}

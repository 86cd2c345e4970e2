package cliotest

// The write-back endpoints (shared/CLIO-API.md "Writing back"): communications
// (POST, GET by external property), activities (POST TimeEntry), tasks (POST),
// documents (POST with fields, a signed PUT URL served by the fake itself, PATCH
// fully_uploaded). Each resource's permission can be switched off (403
// ForbiddenError), and a POST can be made to fail with 500 after it was applied
// (what makes a naive retry post twice). Stored objects are inspectable.

import (
	"bytes"
	"crypto/subtle"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"
)

// UploadPrefix is the path of the fake's signed document upload URLs.
const UploadPrefix = "/uploads/"

// uploadTTL is how long a signed put_url stays valid (Clio: about 10 minutes).
const uploadTTL = 10 * time.Minute

// maxUpload caps an uploaded document.
const maxUpload = 64 << 20

// WriteRef is a reference in a stored object: {"id","type"}.
type WriteRef struct {
	ID   int64  `json:"id"`
	Type string `json:"type,omitempty"`
}

// Property is a name/value pair: an external property or a put header.
type Property struct {
	Name  string `json:"name"`
	Value string `json:"value"`
}

// StoredCommunication is a communication the fake accepted.
type StoredCommunication struct {
	ID                 int64      `json:"id"`
	Type               string     `json:"type"`
	Subject            string     `json:"subject"`
	Body               string     `json:"body"`
	ReceivedAt         string     `json:"received_at"`
	Date               string     `json:"date"`
	Matter             *WriteRef  `json:"matter"`
	Senders            []WriteRef `json:"senders"`
	Receivers          []WriteRef `json:"receivers"`
	ExternalProperties []Property `json:"external_properties"`
}

// StoredActivity is a TimeEntry the fake accepted. APIVersion is the request's
// X-API-VERSION, which says whether Quantity is seconds (after 4.0.3) or hours.
type StoredActivity struct {
	ID            int64     `json:"id"`
	Type          string    `json:"type"`
	Date          string    `json:"date"`
	Quantity      float64   `json:"quantity"`
	User          *WriteRef `json:"user"`
	Matter        *WriteRef `json:"matter"`
	Note          string    `json:"note"`
	NonBillable   bool      `json:"non_billable"`
	Communication *WriteRef `json:"communication"`
	APIVersion    string    `json:"-"`
}

// StoredTask is a task the fake accepted.
type StoredTask struct {
	ID             int64     `json:"id"`
	Name           string    `json:"name"`
	Description    string    `json:"description"`
	Assignee       *WriteRef `json:"assignee"`
	DueAt          string    `json:"due_at"`
	Priority       string    `json:"priority"`
	Matter         *WriteRef `json:"matter"`
	NotifyAssignee bool      `json:"notify_assignee"`
}

// StoredDocument is a document the fake accepted; Data is the uploaded bytes and
// FullyUploaded is set by the PATCH.
type StoredDocument struct {
	ID              int64     `json:"id"`
	Name            string    `json:"name"`
	Parent          *WriteRef `json:"parent"`
	ContentType     string    `json:"content_type"`
	CommunicationID int64     `json:"communication_id"`
	UUID            string    `json:"-"`
	FullyUploaded   bool      `json:"-"`
	Data            []byte    `json:"-"`

	putSig     string
	putHeaders []Property
	putExpires time.Time
	uploaded   bool
}

// writeStore is the write-back state of a Fake, created on first use.
type writeStore struct {
	nextID     int64
	comms      []*StoredCommunication
	activities []*StoredActivity
	tasks      []*StoredTask
	docs       []*StoredDocument
	denied     map[string]bool // resource -> permission switched off
	failAfter  map[string]int  // resource -> POSTs to answer 500 after applying
}

// ws returns the write-back state; call with f.mu held.
func (f *Fake) ws() *writeStore {
	if f.writes == nil {
		f.writes = &writeStore{nextID: 9000, denied: map[string]bool{}, failAfter: map[string]int{}}
	}
	return f.writes
}

// SetPermission switches the Clio app's permission for a write-back resource
// (communications, activities, tasks, documents) on or off; off answers every
// request to it with 403 ForbiddenError. All are on by default.
func (f *Fake) SetPermission(resource string, allowed bool) {
	f.mu.Lock()
	f.ws().denied[resource] = !allowed
	f.mu.Unlock()
}

// FailAfterApply makes the next n POSTs to resource store their object and then
// answer 500, as a Clio that fails after committing does.
func (f *Fake) FailAfterApply(resource string, n int) {
	f.mu.Lock()
	f.ws().failAfter[resource] = n
	f.mu.Unlock()
}

// Communications returns copies of the stored communications, in creation order.
func (f *Fake) Communications() []StoredCommunication {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copyAll(f.ws().comms)
}

// Activities returns copies of the stored time entries.
func (f *Fake) Activities() []StoredActivity {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copyAll(f.ws().activities)
}

// Tasks returns copies of the stored tasks.
func (f *Fake) Tasks() []StoredTask {
	f.mu.Lock()
	defer f.mu.Unlock()
	return copyAll(f.ws().tasks)
}

// Documents returns copies of the stored documents (with their bytes).
func (f *Fake) Documents() []StoredDocument {
	f.mu.Lock()
	defer f.mu.Unlock()
	out := copyAll(f.ws().docs)
	for i := range out {
		out[i].Data = bytes.Clone(out[i].Data)
	}
	return out
}

func copyAll[T any](in []*T) []T {
	out := make([]T, len(in))
	for i, p := range in {
		out[i] = *p
	}
	return out
}

var (
	communicationSchema = newSchema("id,etag,type,subject,body,received_at,date,created_at,updated_at",
		map[string]*schema{"matter": refSchema, "senders": refSchema, "receivers": refSchema,
			"external_properties": newSchema("id,etag,name,value", nil)})
	activitySchema = newSchema("id,etag,type,date,quantity,note,non_billable,created_at,updated_at",
		map[string]*schema{"user": refSchema, "matter": refSchema, "communication": refSchema})
	taskSchema = newSchema("id,etag,name,description,due_at,priority,notify_assignee,created_at,updated_at",
		map[string]*schema{"assignee": refSchema, "matter": refSchema})
	documentSchema = newSchema("id,etag,name,content_type,created_at,updated_at",
		map[string]*schema{"parent": refSchema, "latest_document_version": newSchema("id,etag,uuid,put_url,put_headers,fully_uploaded", nil)})
	dateOnly = regexp.MustCompile(`^\d{4}-\d{2}-\d{2}$`)
)

// serveWrite answers the write-back resources; false means resource is not one.
// It runs after the bearer check, the rate limit and the injected faults.
func (f *Fake) serveWrite(w http.ResponseWriter, r *http.Request, resource string) bool {
	base, id, _ := strings.Cut(resource, "/")
	switch base {
	case "communications", "activities", "tasks", "documents":
	default:
		return false
	}
	f.mu.Lock()
	denied := f.ws().denied[base]
	f.mu.Unlock()
	if denied {
		writeAPIError(w, http.StatusForbidden, "ForbiddenError",
			"You do not have permission to access "+base+": the application lacks the "+base+" permission")
		return true
	}
	switch {
	case base == "communications" && id == "" && r.Method == http.MethodGet:
		f.listCommunications(w, r)
	case base == "communications" && id == "" && r.Method == http.MethodPost:
		f.createCommunication(w, r)
	case base == "activities" && id == "" && r.Method == http.MethodPost:
		f.createActivity(w, r)
	case base == "tasks" && id == "" && r.Method == http.MethodPost:
		f.createTask(w, r)
	case base == "documents" && id == "" && r.Method == http.MethodPost:
		f.createDocument(w, r)
	case base == "documents" && id != "" && r.Method == http.MethodPatch:
		f.patchDocument(w, r, id)
	default:
		writeAPIError(w, http.StatusNotFound, "NotFound", r.Method+" "+resource+" is not served by the fake")
	}
	return true
}

// decodeData reads {"data": {...}} into v; a bad body is a 400.
func decodeData(w http.ResponseWriter, r *http.Request, v any) bool {
	b, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err == nil {
		err = json.Unmarshal(b, &env)
	}
	if err == nil && len(env.Data) == 0 {
		err = fmt.Errorf("missing data object")
	}
	if err == nil {
		err = json.Unmarshal(env.Data, v)
	}
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "BadRequest", "invalid request body: "+err.Error())
		return false
	}
	return true
}

func argumentError(w http.ResponseWriter, format string, args ...any) {
	writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", fmt.Sprintf(format, args...))
}

// applied finishes a POST: the object is stored; answer 500 when a fault says
// so, else 201 with rec projected to the request's fields (id and etag without).
func (f *Fake) applied(w http.ResponseWriter, base string, rec map[string]any, fs []field) {
	f.mu.Lock()
	fail := f.ws().failAfter[base] > 0
	if fail {
		f.ws().failAfter[base]--
	}
	f.mu.Unlock()
	if fail {
		writeAPIError(w, http.StatusInternalServerError, "InternalServerError", "Something went wrong")
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"data": project(rec, fs)})
}

// checks of references, with f.mu held
func (f *Fake) matterExists(id int64) bool {
	return slices.ContainsFunc(f.fx.Matters, func(m Matter) bool { return m.ID == id })
}

func (f *Fake) refExists(ref WriteRef) bool {
	switch ref.Type {
	case "Contact":
		return f.contactByID(ref.ID) != nil
	case "User":
		return f.users[ref.ID] != nil
	}
	return false
}

func (f *Fake) communicationByID(id int64) *StoredCommunication {
	for _, c := range f.ws().comms {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (f *Fake) nextID() int64 {
	f.ws().nextID++
	return f.ws().nextID
}

func refJSON(r *WriteRef) any {
	if r == nil {
		return nil
	}
	return map[string]any{"id": r.ID, "etag": etag(r.ID), "type": r.Type}
}

func refsJSON(rs []WriteRef) []map[string]any {
	out := make([]map[string]any, len(rs))
	for i := range rs {
		out[i] = refJSON(&rs[i]).(map[string]any)
	}
	return out
}

func commRecord(c *StoredCommunication) map[string]any {
	props := make([]map[string]any, len(c.ExternalProperties))
	for i, p := range c.ExternalProperties {
		props[i] = map[string]any{"id": c.ID*10 + int64(i), "etag": etag(c.ID*10 + int64(i)), "name": p.Name, "value": p.Value}
	}
	return map[string]any{"id": c.ID, "etag": etag(c.ID), "type": c.Type, "subject": c.Subject, "body": c.Body,
		"received_at": c.ReceivedAt, "date": c.Date, "created_at": ts(time.Time{}), "updated_at": ts(time.Time{}),
		"matter": refJSON(c.Matter), "senders": refsJSON(c.Senders), "receivers": refsJSON(c.Receivers),
		"external_properties": props}
}

func (f *Fake) listCommunications(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, communicationSchema)
	if !ok {
		return
	}
	limit, ok := limitOf(w, r, 200, 200)
	if !ok {
		return
	}
	q := r.URL.Query()
	name, value := q.Get("external_property_name"), q.Get("external_property_value")
	f.mu.Lock()
	var recs []map[string]any
	for _, c := range f.ws().comms {
		if name != "" && !slices.ContainsFunc(c.ExternalProperties, func(p Property) bool {
			return p.Name == name && (value == "" || p.Value == value)
		}) {
			continue
		}
		if id := q.Get("matter_id"); id != "" && (c.Matter == nil || strconv.FormatInt(c.Matter.ID, 10) != id) {
			continue
		}
		recs = append(recs, commRecord(c))
	}
	f.mu.Unlock()
	page(w, r, recs, fs, limit)
}

func (f *Fake) createCommunication(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, communicationSchema)
	if !ok {
		return
	}
	var c StoredCommunication
	if !decodeData(w, r, &c) {
		return
	}
	c.ID = 0
	var missing []string
	for name, v := range map[string]string{"type": c.Type, "subject": c.Subject, "body": c.Body} {
		if strings.TrimSpace(v) == "" {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		slices.Sort(missing)
		argumentError(w, "%s can't be blank", strings.Join(missing, ", "))
		return
	}
	if c.Type != "PhoneCommunication" && c.Type != "EmailCommunication" {
		argumentError(w, "type must be PhoneCommunication or EmailCommunication, got %q", c.Type)
		return
	}
	if len(c.ExternalProperties) > 5 {
		argumentError(w, "at most 5 external properties per record")
		return
	}
	if c.ReceivedAt != "" {
		if _, err := time.Parse(time.RFC3339, c.ReceivedAt); err != nil {
			argumentError(w, "received_at is not an ISO 8601 time: %q", c.ReceivedAt)
			return
		}
	}
	f.mu.Lock()
	if c.Matter != nil && !f.matterExists(c.Matter.ID) {
		f.mu.Unlock()
		argumentError(w, "matter %d not found", c.Matter.ID)
		return
	}
	for _, ref := range slices.Concat(c.Senders, c.Receivers) {
		if !f.refExists(ref) {
			f.mu.Unlock()
			argumentError(w, "sender or receiver %s %d not found (type must be Contact or User)", ref.Type, ref.ID)
			return
		}
	}
	c.ID = f.nextID()
	stored := c
	f.ws().comms = append(f.ws().comms, &stored)
	rec := commRecord(&stored)
	f.mu.Unlock()
	f.applied(w, "communications", rec, fs)
}

func (f *Fake) createActivity(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, activitySchema)
	if !ok {
		return
	}
	var a StoredActivity
	if !decodeData(w, r, &a) {
		return
	}
	a.APIVersion = r.Header.Get("X-API-VERSION")
	switch {
	case a.Type != "TimeEntry" && a.Type != "ExpenseEntry":
		argumentError(w, "type must be TimeEntry or ExpenseEntry, got %q", a.Type)
		return
	case a.Quantity <= 0:
		argumentError(w, "quantity must be greater than 0")
		return
	case a.Date != "" && !dateOnly.MatchString(a.Date):
		argumentError(w, "date must be YYYY-MM-DD, got %q", a.Date)
		return
	}
	f.mu.Lock()
	if msg := f.checkActivity(&a); msg != "" {
		f.mu.Unlock()
		argumentError(w, "%s", msg)
		return
	}
	a.ID = f.nextID()
	f.ws().activities = append(f.ws().activities, &a)
	rec := map[string]any{"id": a.ID, "etag": etag(a.ID), "type": a.Type, "date": a.Date, "quantity": a.Quantity,
		"note": a.Note, "non_billable": a.NonBillable, "user": refJSON(a.User), "matter": refJSON(a.Matter),
		"communication": refJSON(a.Communication), "created_at": ts(time.Time{}), "updated_at": ts(time.Time{})}
	f.mu.Unlock()
	f.applied(w, "activities", rec, fs)
}

// checkActivity checks an activity's references (f.mu held) and defaults its
// user to the token's own, as Clio does; "" means fine.
func (f *Fake) checkActivity(a *StoredActivity) string {
	if a.Matter != nil && !f.matterExists(a.Matter.ID) {
		return fmt.Sprintf("matter %d not found", a.Matter.ID)
	}
	if a.User == nil {
		a.User = &WriteRef{ID: f.fx.WhoAmI, Type: "User"}
	} else if f.users[a.User.ID] == nil {
		return fmt.Sprintf("user %d not found", a.User.ID)
	}
	if a.Communication != nil && f.communicationByID(a.Communication.ID) == nil {
		return fmt.Sprintf("communication %d not found", a.Communication.ID)
	}
	return ""
}

func (f *Fake) createTask(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, taskSchema)
	if !ok {
		return
	}
	var t StoredTask
	if !decodeData(w, r, &t) {
		return
	}
	switch {
	case strings.TrimSpace(t.Name) == "":
		argumentError(w, "name can't be blank")
		return
	case t.Assignee == nil:
		argumentError(w, "assignee can't be blank")
		return
	case t.DueAt != "" && !dateOnly.MatchString(t.DueAt):
		argumentError(w, "due_at is a date (YYYY-MM-DD), got %q", t.DueAt)
		return
	case t.Priority != "" && t.Priority != "High" && t.Priority != "Normal" && t.Priority != "Low":
		argumentError(w, "priority must be High, Normal or Low, got %q", t.Priority)
		return
	}
	f.mu.Lock()
	if t.Assignee.Type != "User" && t.Assignee.Type != "Contact" || !f.refExists(*t.Assignee) {
		f.mu.Unlock()
		argumentError(w, "assignee %s %d not found", t.Assignee.Type, t.Assignee.ID)
		return
	}
	if t.Matter != nil && !f.matterExists(t.Matter.ID) {
		f.mu.Unlock()
		argumentError(w, "matter %d not found", t.Matter.ID)
		return
	}
	if t.Priority == "" {
		t.Priority = "Normal"
	}
	t.ID = f.nextID()
	f.ws().tasks = append(f.ws().tasks, &t)
	rec := map[string]any{"id": t.ID, "etag": etag(t.ID), "name": t.Name, "description": t.Description,
		"due_at": t.DueAt, "priority": t.Priority, "notify_assignee": t.NotifyAssignee,
		"assignee": refJSON(t.Assignee), "matter": refJSON(t.Matter), "created_at": ts(time.Time{}), "updated_at": ts(time.Time{})}
	f.mu.Unlock()
	f.applied(w, "tasks", rec, fs)
}

func (f *Fake) createDocument(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, documentSchema)
	if !ok {
		return
	}
	var d StoredDocument
	if !decodeData(w, r, &d) {
		return
	}
	switch {
	case strings.TrimSpace(d.Name) == "":
		argumentError(w, "name can't be blank")
		return
	case d.Parent == nil || (d.Parent.Type != "Matter" && d.Parent.Type != "Contact"):
		argumentError(w, "parent must be {id, type: Matter|Contact}")
		return
	}
	f.mu.Lock()
	if d.Parent.Type == "Matter" && !f.matterExists(d.Parent.ID) || d.Parent.Type == "Contact" && f.contactByID(d.Parent.ID) == nil {
		f.mu.Unlock()
		argumentError(w, "parent %s %d not found", d.Parent.Type, d.Parent.ID)
		return
	}
	if d.CommunicationID != 0 && f.communicationByID(d.CommunicationID) == nil {
		f.mu.Unlock()
		argumentError(w, "communication %d not found", d.CommunicationID)
		return
	}
	d.ID = f.nextID()
	d.UUID = randomToken("")
	d.putSig = randomToken("sig")
	d.putExpires = f.opt.Now().Add(uploadTTL)
	ct := cmpOr(d.ContentType, "application/octet-stream")
	d.putHeaders = []Property{{Name: "Content-Type", Value: ct}, {Name: "x-amz-server-side-encryption", Value: "AES256"}}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	put := url.URL{Scheme: scheme, Host: r.Host, Path: UploadPrefix + d.UUID,
		RawQuery: url.Values{"signature": {d.putSig}, "expires": {strconv.FormatInt(d.putExpires.Unix(), 10)}}.Encode()}
	headers := make([]map[string]any, len(d.putHeaders))
	for i, h := range d.putHeaders {
		headers[i] = map[string]any{"name": h.Name, "value": h.Value}
	}
	f.ws().docs = append(f.ws().docs, &d)
	rec := map[string]any{"id": d.ID, "etag": etag(d.ID), "name": d.Name, "content_type": ct,
		"parent": refJSON(d.Parent), "created_at": ts(time.Time{}), "updated_at": ts(time.Time{}),
		"latest_document_version": map[string]any{"id": d.ID*10 + 1, "etag": etag(d.ID*10 + 1), "uuid": d.UUID,
			"put_url": put.String(), "put_headers": headers, "fully_uploaded": false}}
	f.mu.Unlock()
	f.applied(w, "documents", rec, fs)
}

// upload serves the signed PUT of a document version: the signature must match
// and be unexpired, and every put_header must be sent with exactly its value.
func (f *Fake) upload(w http.ResponseWriter, r *http.Request, uuid string) {
	s3Error := func(status int, code, msg string) {
		w.Header().Set("Content-Type", "application/xml")
		w.WriteHeader(status)
		fmt.Fprintf(w, "<Error><Code>%s</Code><Message>%s</Message></Error>", code, msg)
	}
	if r.Method != http.MethodPut {
		s3Error(http.StatusMethodNotAllowed, "MethodNotAllowed", "only PUT")
		return
	}
	f.mu.Lock()
	var d *StoredDocument
	for _, x := range f.ws().docs {
		if x.UUID == uuid {
			d = x
		}
	}
	if d == nil || subtle.ConstantTimeCompare([]byte(r.URL.Query().Get("signature")), []byte(d.putSig)) != 1 {
		f.mu.Unlock()
		s3Error(http.StatusForbidden, "SignatureDoesNotMatch", "bad signature")
		return
	}
	if !f.opt.Now().Before(d.putExpires) {
		f.mu.Unlock()
		s3Error(http.StatusForbidden, "AccessDenied", "Request has expired")
		return
	}
	for _, h := range d.putHeaders {
		if got := r.Header.Values(h.Name); len(got) != 1 || got[0] != h.Value {
			f.mu.Unlock()
			s3Error(http.StatusForbidden, "SignatureDoesNotMatch", "header "+h.Name+" must be "+h.Value)
			return
		}
	}
	f.mu.Unlock()
	data, err := io.ReadAll(io.LimitReader(r.Body, maxUpload+1))
	if err != nil || len(data) > maxUpload {
		s3Error(http.StatusBadRequest, "IncompleteBody", "body unreadable or too large")
		return
	}
	f.mu.Lock()
	d.Data, d.uploaded = data, true
	f.mu.Unlock()
	w.WriteHeader(http.StatusOK)
}

func (f *Fake) patchDocument(w http.ResponseWriter, r *http.Request, idText string) {
	fs, ok := fieldsOf(w, r, documentSchema)
	if !ok {
		return
	}
	id, err := strconv.ParseInt(idText, 10, 64)
	if err != nil {
		writeAPIError(w, http.StatusNotFound, "NotFound", "no document "+idText)
		return
	}
	var body struct {
		UUID          string `json:"uuid"`
		FullyUploaded *bool  `json:"fully_uploaded"`
	}
	if !decodeData(w, r, &body) {
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	var d *StoredDocument
	for _, x := range f.ws().docs {
		if x.ID == id {
			d = x
		}
	}
	switch {
	case d == nil:
		writeAPIError(w, http.StatusNotFound, "NotFound", "no document "+idText)
		return
	case body.FullyUploaded == nil || !*body.FullyUploaded:
		argumentError(w, "fully_uploaded must be true")
		return
	case body.UUID != d.UUID || !d.uploaded:
		writeAPIError(w, http.StatusUnprocessableEntity, "UploadNotFoundError", "no upload with uuid "+body.UUID)
		return
	}
	d.FullyUploaded = true
	writeJSON(w, map[string]any{"data": project(map[string]any{"id": d.ID, "etag": etag(d.ID), "name": d.Name,
		"content_type": d.ContentType, "parent": refJSON(d.Parent)}, fs)})
}

package cliotest

import (
	"bytes"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Webhooks (CLIO-API.md "Webhooks (§9)"): POST /api/v4/webhooks.json creates a
// hook (validated as documented; 403 without the Webhooks permission; HTTPS
// URLs only, http:// for loopback hosts), after which the fake performs the
// handshake against the URL (POST with X-Hook-Secret; the hook is enabled when
// the answer is 200 and echoes the header). PATCH /api/v4/webhooks/{id}.json
// changes expires_at (and url, events, fields); DELETE removes the hook.
// Deliver sends signed events (X-Hook-Signature: hex HMAC-SHA256 of the body
// with the hook's secret) to the enabled hooks after a change made with
// UpdateContact, AddContact, DeleteContact, UpdateMatter or AddMatter.

// Hook is a registered webhook as the fake holds it.
type Hook struct {
	ID        int64
	URL       string
	Model     string
	Events    []string
	Fields    string
	ExpiresAt time.Time
	// Status is pending (no handshake yet), enabled, or disabled (a delivery
	// answered 410).
	Status string
	Secret string
}

type hookState struct {
	mu      sync.Mutex
	next    int64
	hooks   map[int64]*Hook
	denied  bool
	pending sync.WaitGroup // handshakes in flight
	client  *http.Client
}

var hookEvents = map[string][]string{
	"contact": {"created", "updated", "deleted"},
	"matter":  {"created", "updated", "deleted", "matter_opened", "matter_pended", "matter_closed"},
}

var hookSchemas = map[string]*schema{"contact": contactSchema, "matter": matterSchema}

const (
	maxHookLifetime = 31 * 24 * time.Hour
	defHookLifetime = 3 * 24 * time.Hour
)

func (f *Fake) hookState() *hookState {
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.hooks == nil {
		f.hooks = &hookState{next: 9001, hooks: map[int64]*Hook{}, client: &http.Client{Timeout: 5 * time.Second}}
	}
	return f.hooks
}

// SetWebhooksPermission grants or withdraws the app's Webhooks permission
// (granted by default); without it the webhook endpoints answer 403.
func (f *Fake) SetWebhooksPermission(ok bool) {
	hs := f.hookState()
	hs.mu.Lock()
	hs.denied = !ok
	hs.mu.Unlock()
}

// Hooks returns the registered webhooks, by id.
func (f *Fake) Hooks() []Hook {
	hs := f.hookState()
	hs.mu.Lock()
	defer hs.mu.Unlock()
	out := make([]Hook, 0, len(hs.hooks))
	for _, h := range hs.hooks {
		c := *h
		c.Events = slices.Clone(h.Events)
		out = append(out, c)
	}
	slices.SortFunc(out, func(a, b Hook) int { return int(a.ID - b.ID) })
	return out
}

// WaitHandshakes waits for the handshakes in flight.
func (f *Fake) WaitHandshakes() { f.hookState().pending.Wait() }

// serveWebhooks handles /api/v4/webhooks[/{id}]; it reports false for other
// resources.
func (f *Fake) serveWebhooks(w http.ResponseWriter, r *http.Request, resource string) bool {
	rest, ok := strings.CutPrefix(resource, "webhooks")
	if !ok || (rest != "" && !strings.HasPrefix(rest, "/")) {
		return false
	}
	hs := f.hookState()
	hs.mu.Lock()
	denied := hs.denied
	hs.mu.Unlock()
	if denied {
		writeAPIError(w, http.StatusForbidden, "ForbiddenError", "the application lacks the Webhooks permission")
		return true
	}
	rest = strings.TrimPrefix(rest, "/")
	switch {
	case rest == "" && r.Method == http.MethodPost:
		f.createHook(w, r, hs)
	case rest == "" && r.Method == http.MethodGet:
		hooks := f.Hooks()
		data := make([]map[string]any, len(hooks))
		for i := range hooks {
			data[i] = hookRecord(&hooks[i])
		}
		writeJSON(w, map[string]any{"data": data, "meta": map[string]any{"paging": map[string]any{}, "records": len(data)}})
	case rest != "":
		id, err := strconv.ParseInt(rest, 10, 64)
		if err != nil {
			writeAPIError(w, http.StatusNotFound, "NotFound", "no such webhook")
			return true
		}
		switch r.Method {
		case http.MethodPatch:
			f.patchHook(w, r, hs, id)
		case http.MethodDelete:
			hs.mu.Lock()
			_, found := hs.hooks[id]
			delete(hs.hooks, id)
			hs.mu.Unlock()
			if !found {
				writeAPIError(w, http.StatusNotFound, "NotFound", "no such webhook")
				return true
			}
			w.WriteHeader(http.StatusNoContent)
		default:
			writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
		}
	default:
		writeAPIError(w, http.StatusMethodNotAllowed, "MethodNotAllowed", "method not allowed")
	}
	return true
}

type hookInput struct {
	URL       *string   `json:"url"`
	Model     *string   `json:"model"`
	Events    *[]string `json:"events"`
	Fields    *string   `json:"fields"`
	ExpiresAt *string   `json:"expires_at"`
}

func readHookInput(w http.ResponseWriter, r *http.Request) (hookInput, bool) {
	var body struct {
		Data *hookInput `json:"data"`
	}
	data, err := io.ReadAll(io.LimitReader(r.Body, 64<<10))
	if err != nil || json.Unmarshal(data, &body) != nil || body.Data == nil {
		writeAPIError(w, http.StatusBadRequest, "BadRequest", `body must be {"data": {...}}`)
		return hookInput{}, false
	}
	return *body.Data, true
}

// checkHookURL accepts https URLs, and http ones only for loopback hosts.
func checkHookURL(raw string) error {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" {
		return fmt.Errorf("url is not a valid URL")
	}
	switch u.Scheme {
	case "https":
		return nil
	case "http":
		host := u.Hostname()
		if host == "localhost" {
			return nil
		}
		if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
			return nil
		}
	}
	return fmt.Errorf("url must use https")
}

func (f *Fake) validateHook(h *Hook) error {
	if err := checkHookURL(h.URL); err != nil {
		return err
	}
	allowed, ok := hookEvents[h.Model]
	if !ok {
		return fmt.Errorf("model %q is not supported", h.Model)
	}
	if len(h.Events) == 0 {
		return fmt.Errorf("events must not be empty")
	}
	for _, e := range h.Events {
		if !slices.Contains(allowed, e) {
			return fmt.Errorf("event %q is not valid for model %s", e, h.Model)
		}
	}
	if len(h.Fields) > 1000 {
		return fmt.Errorf("fields is longer than 1000 characters")
	}
	if h.Fields != "" {
		fs, err := parseFields(h.Fields)
		if err == nil {
			err = hookSchemas[h.Model].check(fs)
		}
		if err != nil {
			return err
		}
	}
	now := f.opt.Now()
	if !h.ExpiresAt.After(now) || h.ExpiresAt.Sub(now) > maxHookLifetime {
		return fmt.Errorf("expires_at must be in the future and at most 31 days away")
	}
	return nil
}

func (f *Fake) createHook(w http.ResponseWriter, r *http.Request, hs *hookState) {
	in, ok := readHookInput(w, r)
	if !ok {
		return
	}
	if in.URL == nil || in.Model == nil || in.Events == nil {
		writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", "url, model and events are required")
		return
	}
	h := &Hook{URL: *in.URL, Model: *in.Model, Events: *in.Events, Status: "pending",
		ExpiresAt: f.opt.Now().Add(defHookLifetime).Truncate(time.Second)}
	if in.Fields != nil {
		h.Fields = *in.Fields
	}
	if in.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", "expires_at is not an ISO 8601 time")
			return
		}
		h.ExpiresAt = t
	}
	if err := f.validateHook(h); err != nil {
		writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", err.Error())
		return
	}
	h.Secret = randomToken("whsec_")
	hs.mu.Lock()
	h.ID = hs.next
	hs.next++
	hs.hooks[h.ID] = h
	rec := hookRecord(h)
	hs.pending.Add(1)
	hs.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(http.StatusCreated)
	_ = json.NewEncoder(w).Encode(map[string]any{"data": rec})
	// The handshake follows the creation, as Clio's does.
	go func(id int64, u, secret string) {
		defer hs.pending.Done()
		ok := handshake(hs.client, u, secret)
		hs.mu.Lock()
		if h := hs.hooks[id]; h != nil && ok {
			h.Status = "enabled"
		}
		hs.mu.Unlock()
	}(h.ID, h.URL, h.Secret)
}

// handshake POSTs X-Hook-Secret to u and reports whether the receiver answered
// 200 echoing it.
func handshake(hc *http.Client, u, secret string) bool {
	req, err := http.NewRequest(http.MethodPost, u, strings.NewReader("{}"))
	if err != nil {
		return false
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Hook-Secret", secret)
	resp, err := hc.Do(req)
	if err != nil {
		return false
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode == http.StatusOK && resp.Header.Get("X-Hook-Secret") == secret
}

func (f *Fake) patchHook(w http.ResponseWriter, r *http.Request, hs *hookState, id int64) {
	in, ok := readHookInput(w, r)
	if !ok {
		return
	}
	hs.mu.Lock()
	defer hs.mu.Unlock()
	h := hs.hooks[id]
	if h == nil {
		writeAPIError(w, http.StatusNotFound, "NotFound", "no such webhook")
		return
	}
	upd := *h
	if in.URL != nil {
		upd.URL = *in.URL
	}
	if in.Events != nil {
		upd.Events = *in.Events
	}
	if in.Fields != nil {
		upd.Fields = *in.Fields
	}
	if in.ExpiresAt != nil {
		t, err := time.Parse(time.RFC3339, *in.ExpiresAt)
		if err != nil {
			writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", "expires_at is not an ISO 8601 time")
			return
		}
		upd.ExpiresAt = t
	}
	if err := f.validateHook(&upd); err != nil {
		writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", err.Error())
		return
	}
	*h = upd
	writeJSON(w, map[string]any{"data": hookRecord(h)})
}

func hookRecord(h *Hook) map[string]any {
	return map[string]any{"id": h.ID, "etag": etag(h.ID), "url": h.URL, "model": h.Model, "events": h.Events,
		"fields": h.Fields, "status": h.Status, "expires_at": h.ExpiresAt.UTC().Format(time.RFC3339),
		"created_at": ts(time.Time{}), "updated_at": ts(time.Time{})}
}

// Sign returns the X-Hook-Signature of body under secret: the hex HMAC-SHA256.
func Sign(secret string, body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return hex.EncodeToString(m.Sum(nil))
}

// Deliver sends event ("created", "updated", "deleted", and for matters
// "matter_opened", "matter_pended", "matter_closed") about the contact or
// matter id to every enabled, unexpired hook of model subscribed to it, signed
// with the hook's secret, and returns how many receivers answered 2xx. A
// deleted record is sent as {"id": id}. A 410 answer disables the hook.
func (f *Fake) Deliver(model, event string, id int64) (int, error) {
	hs := f.hookState()
	hs.pending.Wait()
	hs.mu.Lock()
	var targets []Hook
	now := f.opt.Now()
	for _, h := range hs.hooks {
		if h.Model == model && h.Status == "enabled" && now.Before(h.ExpiresAt) && slices.Contains(h.Events, event) {
			targets = append(targets, *h)
		}
	}
	hs.mu.Unlock()
	var firstErr error
	delivered := 0
	for _, h := range targets {
		data, err := f.hookData(model, event, id, h.Fields)
		if err != nil {
			return delivered, err
		}
		body, _ := json.Marshal(map[string]any{"data": data, "meta": map[string]any{"event": event, "webhook_id": h.ID}})
		status, err := postSigned(hs.client, h.URL, body, Sign(h.Secret, body))
		switch {
		case err != nil:
			firstErr = cmpOrErr(firstErr, err)
		case status == http.StatusGone:
			hs.mu.Lock()
			if hh := hs.hooks[h.ID]; hh != nil {
				hh.Status = "disabled"
			}
			hs.mu.Unlock()
		case status >= 200 && status < 400:
			delivered++
		default:
			firstErr = cmpOrErr(firstErr, fmt.Errorf("cliotest: delivery to hook %d answered %d", h.ID, status))
		}
	}
	return delivered, firstErr
}

func cmpOrErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// PostSigned POSTs body to u with the given X-Hook-Signature ("" = none) and
// returns the status: for tests that forge deliveries.
func PostSigned(u string, body []byte, signature string) (int, error) {
	return postSigned(&http.Client{Timeout: 5 * time.Second}, u, body, signature)
}

func postSigned(hc *http.Client, u string, body []byte, sig string) (int, error) {
	req, err := http.NewRequest(http.MethodPost, u, bytes.NewReader(body))
	if err != nil {
		return 0, err
	}
	req.Header.Set("Content-Type", "application/json")
	if sig != "" {
		req.Header.Set("X-Hook-Signature", sig)
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, err
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	return resp.StatusCode, nil
}

// hookData is the data object of a delivery: the record projected on the
// hook's fields (id and etag without fields).
func (f *Fake) hookData(model, event string, id int64, fields string) (map[string]any, error) {
	if event == "deleted" {
		return map[string]any{"id": id}, nil
	}
	var fs []field
	if fields != "" {
		var err error
		if fs, err = parseFields(fields); err != nil {
			return nil, err
		}
	}
	f.dataMu.RLock()
	defer f.dataMu.RUnlock()
	switch model {
	case "contact":
		if c := f.contactByID(id); c != nil {
			return project(f.contactRecord(c), fs), nil
		}
	case "matter":
		for i := range f.fx.Matters {
			if f.fx.Matters[i].ID == id {
				return project(f.matterRecord(&f.fx.Matters[i]), fs), nil
			}
		}
	}
	return nil, fmt.Errorf("cliotest: no %s %d", model, id)
}

// UpdateContact changes contact id with fn (its updated_at becomes now) and
// reports whether it exists. Deliver the "updated" event separately, or not, to
// test a missed delivery.
func (f *Fake) UpdateContact(id int64, fn func(*Contact)) bool {
	f.dataMu.Lock()
	defer f.dataMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.contacts {
		if c.ID == id {
			cp := *c
			cp.Phones = slices.Clone(c.Phones)
			fn(&cp)
			cp.UpdatedAt = f.opt.Now()
			f.contacts[i] = &cp
			return true
		}
	}
	return false
}

// AddContact adds a contact (updated_at now).
func (f *Fake) AddContact(c Contact) {
	f.dataMu.Lock()
	defer f.dataMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	c.UpdatedAt = f.opt.Now()
	f.contacts = append(f.contacts, &c)
}

// DeleteContact removes a contact and reports whether it existed.
func (f *Fake) DeleteContact(id int64) bool {
	f.dataMu.Lock()
	defer f.dataMu.Unlock()
	f.mu.Lock()
	defer f.mu.Unlock()
	for i, c := range f.contacts {
		if c.ID == id {
			f.contacts = slices.Delete(f.contacts, i, i+1)
			return true
		}
	}
	return false
}

// UpdateMatter changes matter id with fn (its updated_at becomes now).
func (f *Fake) UpdateMatter(id int64, fn func(*Matter)) bool {
	f.dataMu.Lock()
	defer f.dataMu.Unlock()
	ms := slices.Clone(f.fx.Matters)
	for i := range ms {
		if ms[i].ID == id {
			fn(&ms[i])
			ms[i].UpdatedAt = f.opt.Now()
			f.fx.Matters = ms
			return true
		}
	}
	return false
}

// AddMatter adds a matter (updated_at now).
func (f *Fake) AddMatter(m Matter) {
	f.dataMu.Lock()
	defer f.dataMu.Unlock()
	m.UpdatedAt = f.opt.Now()
	f.fx.Matters = append(slices.Clone(f.fx.Matters), m)
}

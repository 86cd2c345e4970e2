package cliotest

import (
	"cmp"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"
)

func writeAPIError(w http.ResponseWriter, status int, typ, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"error": map[string]string{"type": typ, "message": msg}})
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

// api serves /api/v4/{resource}: bearer check, rate limit, faults, then the resource.
func (f *Fake) api(w http.ResponseWriter, r *http.Request, resource string) {
	tok, ok := bearer(r)
	now := f.opt.Now()
	f.mu.Lock()
	info, known := f.access[tok]
	valid := ok && known && (info.expires.IsZero() || now.Before(info.expires))
	faults := f.faults
	if valid && f.faults.Unauthorized > 0 {
		f.faults.Unauthorized--
		valid = false
	}
	// Every API response carries the X-RateLimit headers (CLIO-API.md), a 401
	// too: the window is per presented token, valid or not.
	win := f.windows[tok]
	if win == nil || now.Sub(win.start) >= f.opt.RateWindow {
		win = &window{start: now}
		f.windows[tok] = win
	}
	win.used++
	used, reset := win.used, win.start.Add(f.opt.RateWindow)
	fail := faults.Fail500
	if valid && used <= f.opt.RateLimit && f.faults.FailNext > 0 {
		f.faults.FailNext--
		fail = true
	}
	f.mu.Unlock()

	if v := r.Header.Get("X-API-VERSION"); v != "" {
		w.Header().Set("X-API-VERSION", v)
	} else {
		w.Header().Set("X-API-VERSION", f.opt.APIVersion)
	}
	h := w.Header()
	h.Set("X-RateLimit-Limit", strconv.Itoa(f.opt.RateLimit))
	h.Set("X-RateLimit-Remaining", strconv.Itoa(max(f.opt.RateLimit-used, 0)))
	h.Set("X-RateLimit-Reset", strconv.FormatInt(reset.Unix(), 10))
	if !valid {
		oauthError(w, http.StatusUnauthorized, "invalid_token", "The access token provided is expired, revoked, malformed or invalid for other reasons.")
		return
	}
	if used > f.opt.RateLimit {
		secs := int(reset.Sub(now).Round(time.Second) / time.Second)
		h.Set("Retry-After", strconv.Itoa(max(secs, 1)))
		writeAPIError(w, http.StatusTooManyRequests, "RateLimited", "Too many requests")
		return
	}
	switch {
	case fail:
		writeAPIError(w, http.StatusInternalServerError, "InternalServerError", "Something went wrong")
		return
	case faults.Garbage:
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(`{"data":[{"id":12,"name":"Ada Qu`))
		return
	case faults.Oversized:
		writeOversized(w, faults.OversizeBytes)
		return
	}
	f.dataMu.RLock()
	defer f.dataMu.RUnlock()
	if f.serveWebhooks(w, r, resource) {
		return
	}

	if f.serveWrite(w, r, resource) {
		return
	}
	switch resource {
	case "contacts":
		f.listContacts(w, r)
	case "matters":
		f.listMatters(w, r)
	case "users":
		f.listUsers(w, r)
	case "users/who_am_i":
		f.whoAmI(w, r)
	default:
		writeAPIError(w, http.StatusNotFound, "NotFound", "no such resource: "+resource)
	}
}

func writeOversized(w http.ResponseWriter, n int) {
	if n <= 0 {
		n = 5 << 20
	}
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write([]byte(`{"data":[`))
	rec := []byte(`{"id":1,"name":"` + strings.Repeat("x", 1000) + `"},`)
	for written := 0; written < n; written += len(rec) {
		if _, err := w.Write(rec); err != nil {
			return
		}
	}
	_, _ = w.Write([]byte(`{"id":2}],"meta":{"paging":{}}}`))
}

// fieldsOf parses and checks the fields parameter; nil means none given.
func fieldsOf(w http.ResponseWriter, r *http.Request, s *schema) ([]field, bool) {
	raw, given := r.URL.Query()["fields"]
	if !given {
		return nil, true
	}
	fs, err := parseFields(strings.Join(raw, ","))
	if err == nil {
		err = s.check(fs)
	}
	if err != nil {
		writeAPIError(w, http.StatusBadRequest, "InvalidFields", err.Error())
		return nil, false
	}
	if fs == nil {
		fs = []field{}
	}
	return fs, true
}

func limitOf(w http.ResponseWriter, r *http.Request, def, maxLimit int) (int, bool) {
	s := r.URL.Query().Get("limit")
	if s == "" {
		return def, true
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 || n > maxLimit {
		writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", fmt.Sprintf("limit must be between 1 and %d", maxLimit))
		return 0, false
	}
	return n, true
}

// page writes one page of recs (already filtered and ordered) with cursor paging:
// page_token is opaque; meta.paging.next is an absolute URL, absent on the last page.
func page(w http.ResponseWriter, r *http.Request, recs []map[string]any, fs []field, limit int) {
	off := 0
	if tok := r.URL.Query().Get("page_token"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		n, err2 := strconv.Atoi(strings.TrimPrefix(string(b), "o:"))
		if err != nil || err2 != nil || n < 0 || !strings.HasPrefix(string(b), "o:") {
			writeAPIError(w, http.StatusBadRequest, "ArgumentError", "invalid page_token")
			return
		}
		off = min(n, len(recs))
	}
	end := min(off+limit, len(recs))
	data := make([]map[string]any, 0, end-off)
	for _, rec := range recs[off:end] {
		data = append(data, project(rec, fs))
	}
	paging := map[string]any{}
	if end < len(recs) {
		q := r.URL.Query()
		q.Set("page_token", base64.RawURLEncoding.EncodeToString([]byte("o:"+strconv.Itoa(end))))
		scheme := "http"
		if r.TLS != nil {
			scheme = "https"
		}
		u := url.URL{Scheme: scheme, Host: r.Host, Path: r.URL.Path, RawQuery: q.Encode()}
		paging["next"] = u.String()
	}
	writeJSON(w, map[string]any{"data": data, "meta": map[string]any{"paging": paging, "records": len(recs)}})
}

func ts(t time.Time) any {
	if t.IsZero() {
		return "2026-01-05T09:00:00Z"
	}
	return t.UTC().Format(time.RFC3339)
}

// updatedSince reads the updated_since filter (ISO 8601); zero when absent.
func updatedSince(w http.ResponseWriter, r *http.Request) (time.Time, bool) {
	s := r.URL.Query().Get("updated_since")
	if s == "" {
		return time.Time{}, true
	}
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", "updated_since must be an ISO 8601 time")
		return time.Time{}, false
	}
	return t, true
}

// updatedAt is a record's updated_at as ts shows it (a zero time reads as the
// fixture's base date).
func updatedAt(t time.Time) time.Time {
	if t.IsZero() {
		return time.Date(2026, 1, 5, 9, 0, 0, 0, time.UTC)
	}
	return t
}

func etag(id int64) string { return fmt.Sprintf(`"%d-1"`, id) }

func (f *Fake) contactByID(id int64) *Contact {
	for _, c := range f.contacts {
		if c.ID == id {
			return c
		}
	}
	return nil
}

func (f *Fake) contactRecord(c *Contact) map[string]any {
	phones := make([]map[string]any, len(c.Phones))
	var primaryPhone, primaryEmail any
	for i, p := range c.Phones {
		phones[i] = map[string]any{"id": c.ID*100 + int64(i), "etag": etag(c.ID*100 + int64(i)), "number": p.Number, "name": p.Name, "primary": p.Primary}
		if p.Primary || primaryPhone == nil {
			primaryPhone = p.Number
		}
	}
	emails := make([]map[string]any, len(c.Emails))
	for i, e := range c.Emails {
		emails[i] = map[string]any{"id": c.ID*100 + int64(i), "etag": etag(c.ID*100 + int64(i)), "address": e.Address, "name": e.Name, "primary": e.Primary}
		if e.Primary || primaryEmail == nil {
			primaryEmail = e.Address
		}
	}
	addrs := make([]map[string]any, len(c.Addresses))
	for i, a := range c.Addresses {
		addrs[i] = map[string]any{"id": c.ID*100 + int64(i), "etag": etag(c.ID*100 + int64(i)), "street": a.Street, "city": a.City,
			"province": a.Province, "postal_code": a.PostalCode, "country": a.Country, "name": a.Name, "primary": i == 0}
	}
	var company any
	if co := f.contactByID(c.CompanyID); co != nil && c.CompanyID != 0 {
		company = map[string]any{"id": co.ID, "etag": etag(co.ID), "name": co.displayName(), "type": co.Type}
	}
	return map[string]any{
		"id": c.ID, "etag": etag(c.ID), "name": c.displayName(), "first_name": c.FirstName, "last_name": c.LastName,
		"title": c.Title, "type": cmpOr(c.Type, "Person"), "primary_phone_number": primaryPhone,
		"primary_email_address": primaryEmail, "created_at": ts(time.Time{}), "updated_at": ts(c.UpdatedAt),
		"phone_numbers": phones, "email_addresses": emails, "addresses": addrs, "company": company,
	}
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// searchText is what `query` matches: names, title, emails, addresses, phone
// strings as typed, company name, related matter names.
func (f *Fake) searchText(c *Contact, matters map[int64][]string) string {
	parts := []string{c.displayName(), c.FirstName, c.LastName, c.Title}
	for _, p := range c.Phones {
		parts = append(parts, p.Number)
	}
	for _, e := range c.Emails {
		parts = append(parts, e.Address)
	}
	for _, a := range c.Addresses {
		parts = append(parts, a.Street, a.City, a.Province, a.PostalCode, a.Country)
	}
	if co := f.contactByID(c.CompanyID); co != nil && c.CompanyID != 0 {
		parts = append(parts, co.displayName())
	}
	parts = append(parts, matters[c.ID]...)
	return strings.ToLower(strings.Join(parts, "\x00"))
}

func (f *Fake) listContacts(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, contactSchema)
	if !ok {
		return
	}
	limit, ok := limitOf(w, r, 200, 200)
	if !ok {
		return
	}
	q := r.URL.Query()
	typ := q.Get("type")
	if typ != "" && typ != "Person" && typ != "Company" {
		writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", "type must be Person or Company")
		return
	}
	needle := strings.ToLower(strings.TrimSpace(q.Get("query")))
	since, ok := updatedSince(w, r)
	if !ok {
		return
	}
	// Related matter names, by client (once per request, not per contact).
	matterText := map[int64][]string{}
	for _, m := range f.fx.Matters {
		matterText[m.ClientID] = append(matterText[m.ClientID], m.DisplayNumber, m.Description)
	}
	var recs []map[string]any
	f.mu.Lock()
	cs := slices.Clone(f.contacts)
	f.mu.Unlock()
	slices.SortFunc(cs, func(a, b *Contact) int { return cmp.Compare(a.ID, b.ID) })
	if q.Get("order") == "id(desc)" {
		slices.Reverse(cs)
	}
	for _, c := range cs {
		if typ != "" && cmpOr(c.Type, "Person") != typ {
			continue
		}
		if needle != "" && !strings.Contains(f.searchText(c, matterText), needle) {
			continue
		}
		if !since.IsZero() && updatedAt(c.UpdatedAt).Before(since) {
			continue
		}
		recs = append(recs, f.contactRecord(c))
	}
	page(w, r, recs, fs, limit)
}

func userRecord(u *User) map[string]any {
	if u == nil {
		return nil
	}
	enabled := true
	if u.Enabled != nil {
		enabled = *u.Enabled
	}
	return map[string]any{
		"id": u.ID, "etag": etag(u.ID), "name": u.Name, "first_name": u.FirstName, "last_name": u.LastName,
		"email": u.Email, "phone_number": u.PhoneNumber, "enabled": enabled,
		"subscription_type": cmpOr(u.SubscriptionType, "NonAttorney"),
		"created_at":        ts(time.Time{}), "updated_at": ts(time.Time{}),
	}
}

func (f *Fake) userRef(id int64) any {
	if id == 0 {
		return nil
	}
	if r := userRecord(f.users[id]); r != nil {
		return r
	}
	return nil
}

func (f *Fake) matterRecord(m *Matter) map[string]any {
	var client any
	if c := f.contactByID(m.ClientID); c != nil {
		client = map[string]any{"id": c.ID, "etag": etag(c.ID), "name": c.displayName(), "type": cmpOr(c.Type, "Person")}
	}
	status := strings.ToUpper(m.Status[:min(1, len(m.Status))]) + strings.ToLower(m.Status[min(1, len(m.Status)):])
	return map[string]any{
		"id": m.ID, "etag": etag(m.ID), "display_number": m.DisplayNumber, "description": m.Description,
		"status": status, "open_date": "2026-01-05", "close_date": nil,
		"created_at": ts(time.Time{}), "updated_at": ts(m.UpdatedAt), "client": client,
		"responsible_staff": f.userRef(m.ResponsibleStaffID), "responsible_attorney": f.userRef(m.ResponsibleAttorneyID),
		"originating_attorney": f.userRef(m.OriginatingAttorneyID),
	}
}

func (f *Fake) listMatters(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, matterSchema)
	if !ok {
		return
	}
	limit, ok := limitOf(w, r, 200, 200)
	if !ok {
		return
	}
	q := r.URL.Query()
	var statuses []string
	if s := q.Get("status"); s != "" {
		for _, st := range strings.Split(s, ",") {
			if st != "open" && st != "pending" && st != "closed" {
				writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", fmt.Sprintf("invalid status %q (open, pending, closed)", st))
				return
			}
			statuses = append(statuses, st)
		}
	}
	idFilter := func(key string) (int64, bool) {
		s := q.Get(key)
		if s == "" {
			return 0, true
		}
		n, err := strconv.ParseInt(s, 10, 64)
		if err != nil {
			writeAPIError(w, http.StatusUnprocessableEntity, "ArgumentError", key+" must be an id")
			return 0, false
		}
		return n, true
	}
	clientID, ok1 := idFilter("client_id")
	staffID, ok2 := idFilter("responsible_staff_id")
	attID, ok3 := idFilter("responsible_attorney_id")
	if !ok1 || !ok2 || !ok3 {
		return
	}
	since, ok := updatedSince(w, r)
	if !ok {
		return
	}
	ms := make([]*Matter, 0, len(f.fx.Matters))
	for i := range f.fx.Matters {
		m := &f.fx.Matters[i]
		switch {
		case clientID != 0 && m.ClientID != clientID,
			staffID != 0 && m.ResponsibleStaffID != staffID,
			attID != 0 && m.ResponsibleAttorneyID != attID,
			statuses != nil && !slices.Contains(statuses, strings.ToLower(m.Status)),
			!since.IsZero() && updatedAt(m.UpdatedAt).Before(since):
			continue
		}
		ms = append(ms, m)
	}
	slices.SortFunc(ms, func(a, b *Matter) int { return cmp.Compare(a.ID, b.ID) })
	if q.Get("order") == "updated_at(desc)" {
		slices.SortStableFunc(ms, func(a, b *Matter) int { return b.UpdatedAt.Compare(a.UpdatedAt) })
	}
	recs := make([]map[string]any, len(ms))
	for i, m := range ms {
		recs[i] = f.matterRecord(m)
	}
	page(w, r, recs, fs, limit)
}

func (f *Fake) listUsers(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, userSchema)
	if !ok {
		return
	}
	limit, ok := limitOf(w, r, 200, 2000)
	if !ok {
		return
	}
	us := slices.Clone(f.fx.Users)
	slices.SortFunc(us, func(a, b User) int { return cmp.Compare(a.ID, b.ID) })
	recs := make([]map[string]any, len(us))
	for i := range us {
		recs[i] = userRecord(&us[i])
	}
	page(w, r, recs, fs, limit)
}

func (f *Fake) whoAmI(w http.ResponseWriter, r *http.Request) {
	fs, ok := fieldsOf(w, r, userSchema)
	if !ok {
		return
	}
	u := f.users[f.fx.WhoAmI]
	if u == nil {
		u = &User{ID: f.fx.WhoAmI, Name: "Clio User"}
	}
	writeJSON(w, map[string]any{"data": project(userRecord(u), fs)})
}

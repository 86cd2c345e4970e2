package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"mime"
	"net/http"
	"net/url"
	"strings"
)

// Rule objects travel in the shape of routing.RuleJSON: the writable fields of
// routing.RuleDoc plus the read-only "valid", "error" and "warnings", which
// input ignores.
//
//   - POST /v1/rules creates a rule (201, Location: /v1/rules/NAME).
//   - PUT /v1/rules/{name} is a full replace (or a create): the body is what
//     GET returns, and an omitted or null field means its documented default
//     (for example no "hours": always open; no "mode": cold), not "keep".
//   - PATCH /v1/rules/{name} is a JSON merge patch (RFC 7396) of what GET
//     returns: members present replace, null resets a field to its default,
//     absent ones keep their value. The result is validated as a PUT body.
//
// A "name" in a PUT body or in a patched rule must equal the path's name
// ignoring case (a different spelling of case renames the rule's case); rules
// are not renamed through the API. Names may contain spaces and other
// characters that must be percent-encoded in the path (/v1/rules/Felix%20Dubinsky).

// Media types a PATCH body may have.
const (
	MergePatchType = "application/merge-patch+json" // RFC 7396 §4
	jsonType       = "application/json"
)

func (s *Server) listRules(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rules == nil {
		notImplemented(w, "rules")
		return
	}
	rules, err := s.opts.Rules.List(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if rules == nil {
		rules = []json.RawMessage{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"rules": rules})
}

func (s *Server) getRule(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rules == nil {
		notImplemented(w, "rules")
		return
	}
	rule, err := s.opts.Rules.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

// createRule answers 201 with the stored rule and its Location.
func (s *Server) createRule(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rules == nil {
		notImplemented(w, "rules")
		return
	}
	body, ok := s.readObject(w, r)
	if !ok {
		return
	}
	rule, err := s.opts.Rules.Create(r.Context(), body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if name := ruleName(rule); name != "" {
		w.Header().Set("Location", "/v1/rules/"+url.PathEscape(name))
	}
	writeJSON(w, http.StatusCreated, rule)
}

// putRule creates or replaces the rule named in the path.
func (s *Server) putRule(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rules == nil {
		notImplemented(w, "rules")
		return
	}
	body, ok := s.readObject(w, r)
	if !ok {
		return
	}
	s.replaceRule(w, r, body)
}

// patchRule applies a JSON merge patch (RFC 7396) to the stored rule and
// stores the result as putRule would. A rule deleted between the read and the
// write is created again from the patched copy.
func (s *Server) patchRule(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rules == nil {
		notImplemented(w, "rules")
		return
	}
	mt, _, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != MergePatchType && mt != jsonType) {
		w.Header().Set("Accept-Patch", MergePatchType)
		writeError(w, http.StatusUnsupportedMediaType, "unsupported_media_type",
			"a rule patch is a JSON merge patch: Content-Type "+MergePatchType+" (or "+jsonType+")")
		return
	}
	patch, ok := s.readObject(w, r)
	if !ok {
		return
	}
	cur, err := s.opts.Rules.Get(r.Context(), r.PathValue("name"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	merged, err := mergePatch(cur, patch)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	s.replaceRule(w, r, merged)
}

// replaceRule stores body as the whole rule named in the path.
func (s *Server) replaceRule(w http.ResponseWriter, r *http.Request, body json.RawMessage) {
	name := r.PathValue("name")
	if n, ok := bodyName(body); ok && !strings.EqualFold(n, name) {
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "bad_request", Field: "name",
			Message: "the rule name in the body differs from the one in the path (rules are not renamed through the API: create the new one, then delete the old)"})
		return
	}
	rule, err := s.opts.Rules.Put(r.Context(), name, body)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, rule)
}

func (s *Server) deleteRule(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rules == nil {
		notImplemented(w, "rules")
		return
	}
	if err := s.opts.Rules.Delete(r.Context(), r.PathValue("name")); err != nil {
		s.fail(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// mergePatch applies patch to target as RFC 7396 §2 says: an object patch
// merges member by member (null removes the member), anything else replaces
// the target. Numbers keep their text (no float rounding of large ids).
func mergePatch(target, patch json.RawMessage) (json.RawMessage, error) {
	var t, p any
	if err := decodeNumbers(target, &t); err != nil {
		return nil, err
	}
	if err := decodeNumbers(patch, &p); err != nil {
		return nil, err
	}
	return json.Marshal(mergeValue(t, p))
}

func mergeValue(target, patch any) any {
	p, ok := patch.(map[string]any)
	if !ok {
		return patch
	}
	t, ok := target.(map[string]any)
	if !ok {
		t = map[string]any{}
	}
	for k, v := range p {
		if v == nil {
			delete(t, k)
			continue
		}
		t[k] = mergeValue(t[k], v)
	}
	return t
}

func decodeNumbers(b []byte, v any) error {
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.UseNumber()
	if err := dec.Decode(v); err != nil {
		return errors.Join(errors.New("httpapi: merge patch"), err)
	}
	return nil
}

// bodyName returns the "name" member of a rule object when it is present (and
// not null).
func bodyName(rule json.RawMessage) (string, bool) {
	var v struct {
		Name *json.RawMessage `json:"name"`
	}
	if json.Unmarshal(rule, &v) != nil || v.Name == nil {
		return "", false
	}
	var name string
	if json.Unmarshal(*v.Name, &name) != nil {
		return "\x00not a string", true // never equals a path name
	}
	return name, true
}

func ruleName(rule json.RawMessage) string {
	n, _ := bodyName(rule)
	return n
}

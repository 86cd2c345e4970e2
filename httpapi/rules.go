package httpapi

import (
	"encoding/json"
	"net/http"
	"net/url"
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

// putRule creates or replaces the rule named in the path. A "name" in the body
// must match the path.
func (s *Server) putRule(w http.ResponseWriter, r *http.Request) {
	if s.opts.Rules == nil {
		notImplemented(w, "rules")
		return
	}
	body, ok := s.readObject(w, r)
	if !ok {
		return
	}
	name := r.PathValue("name")
	if n, ok := bodyName(body); ok && n != name {
		s.fail(w, r, &ValidationError{Field: "name", Message: "the rule name in the body differs from the one in the path"})
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

// bodyName returns the "name" member of a rule object when it is present.
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

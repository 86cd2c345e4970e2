package httpapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	"github.com/matterline/matterline/routing"
)

// Errors the consumed interfaces return (wrapped or not) so the API can answer
// with the right status.
var (
	// ErrCallNotFound: no call with that id (404 not_found).
	ErrCallNotFound = errors.New("httpapi: call not found")
	// ErrCallState: the call cannot do this now, for example a transfer before
	// it is answered or while another transfer runs (409 conflict).
	ErrCallState = errors.New("httpapi: call is not in a state that allows this")
	// ErrRuleNotFound: no rule with that name (404 not_found).
	ErrRuleNotFound = errors.New("httpapi: rule not found")
	// ErrRuleExists: creating a rule whose name is taken (409 conflict).
	ErrRuleExists = errors.New("httpapi: rule already exists")
	// ErrInsecureListen: CheckListen refused an address.
	ErrInsecureListen = errors.New("httpapi: listening beyond loopback needs a token")
)

// ValidationError is a rejected rule (or other input): Field names the JSON
// field at fault. The API answers 422 unprocessable with {"field": Field}, as
// it does for a *routing.FieldError; a routing.FieldError wrapping
// routing.ErrUnknownField or routing.ErrWrongType (the body's shape is wrong)
// answers 400 bad_request with the field.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return "invalid rule: " + e.Message
	}
	return fmt.Sprintf("invalid %s: %s", e.Field, e.Message)
}

// errorBody is the JSON error object.
type errorBody struct {
	Error    string        `json:"error"`
	Message  string        `json:"message"`
	Field    string        `json:"field,omitempty"`
	Reason   string        `json:"reason,omitempty"`
	Decision *decisionJSON `json:"decision,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	h := w.Header()
	h.Set("Content-Type", "application/json; charset=utf-8")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, status int, code, msg string) {
	writeJSON(w, status, errorBody{Error: code, Message: msg})
}

func notFound(w http.ResponseWriter, r *http.Request) {
	writeError(w, http.StatusNotFound, "not_found", "no such route: "+r.URL.Path)
}

func notImplemented(w http.ResponseWriter, what string) {
	writeError(w, http.StatusNotImplemented, "not_implemented", what+" is not available on this server")
}

func methodNotAllowed(allow []string) http.Handler {
	list := strings.Join(allow, ", ")
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Allow", list)
		writeError(w, http.StatusMethodNotAllowed, "method_not_allowed", r.Method+" not allowed; allowed: "+list)
	})
}

// fail answers with the status that err maps to. Unknown errors are logged and
// answered 500 internal without their text, which may hold internal details.
func (s *Server) fail(w http.ResponseWriter, r *http.Request, err error) {
	var verr *ValidationError
	var ferr *routing.FieldError
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &verr):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: "unprocessable", Message: verr.Error(), Field: verr.Field})
	case errors.As(err, &ferr) && (errors.Is(err, routing.ErrUnknownField) || errors.Is(err, routing.ErrWrongType)):
		// the shape of the body is wrong, not a value in it
		writeJSON(w, http.StatusBadRequest, errorBody{Error: "bad_request", Message: "invalid rule object: " + ferr.Error(), Field: ferr.Field})
	case errors.As(err, &ferr):
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{Error: "unprocessable", Message: err.Error(), Field: ferr.Field})
	case errors.Is(err, ErrCallNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no call with id "+r.PathValue("id"))
	case errors.Is(err, ErrRuleNotFound):
		writeError(w, http.StatusNotFound, "not_found", "no rule named "+r.PathValue("name"))
	case errors.Is(err, ErrCallState):
		writeError(w, http.StatusConflict, "conflict", "the call cannot do this in its current state")
	case errors.Is(err, ErrRuleExists):
		writeError(w, http.StatusConflict, "conflict", "a rule with that name already exists")
	case errors.As(err, &tooLarge):
		writeError(w, http.StatusRequestEntityTooLarge, "too_large", fmt.Sprintf("request body larger than %d bytes", tooLarge.Limit))
	default:
		s.opts.Logger.Error("httpapi: request failed", "method", r.Method, "path", r.URL.Path, "err", err)
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// decode reads a JSON object body into v, rejecting unknown fields, trailing
// data and bodies over the cap. It answers the error itself and returns false.
func (s *Server) decode(w http.ResponseWriter, r *http.Request, v any) bool {
	body := http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes)
	dec := json.NewDecoder(body)
	dec.DisallowUnknownFields()
	err := dec.Decode(v)
	if err == nil {
		if dec.Decode(&struct{}{}) != io.EOF {
			err = errors.New("trailing data after the JSON object")
		}
	}
	return s.bodyError(w, r, err)
}

// readObject reads a body that must be one JSON object, without interpreting it.
func (s *Server) readObject(w http.ResponseWriter, r *http.Request) (json.RawMessage, bool) {
	b, err := io.ReadAll(http.MaxBytesReader(w, r.Body, s.opts.MaxBodyBytes))
	if err == nil {
		trimmed := strings.TrimSpace(string(b))
		if !json.Valid(b) || !strings.HasPrefix(trimmed, "{") {
			err = errors.New("body must be a JSON object")
		}
	}
	if !s.bodyError(w, r, err) {
		return nil, false
	}
	return json.RawMessage(b), true
}

func (s *Server) bodyError(w http.ResponseWriter, r *http.Request, err error) bool {
	if err == nil {
		return true
	}
	var tooLarge *http.MaxBytesError
	switch {
	case errors.As(err, &tooLarge):
		s.fail(w, r, err)
	case errors.Is(err, io.EOF):
		writeError(w, http.StatusBadRequest, "bad_request", "empty body: a JSON object is required")
	default:
		writeError(w, http.StatusBadRequest, "bad_request", "invalid JSON body: "+err.Error())
	}
	return false
}

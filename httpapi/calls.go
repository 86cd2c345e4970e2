package httpapi

import (
	"errors"
	"net/http"
	"strconv"
	"strings"

	"github.com/matterline/matterline/routing"
)

func (s *Server) listCalls(w http.ResponseWriter, r *http.Request) {
	if s.opts.Calls == nil {
		notImplemented(w, "calls")
		return
	}
	calls, err := s.opts.Calls.List(r.Context())
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if calls == nil {
		calls = []Call{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"calls": calls})
}

func (s *Server) getCall(w http.ResponseWriter, r *http.Request) {
	if s.opts.Calls == nil {
		notImplemented(w, "calls")
		return
	}
	c, err := s.opts.Calls.Get(r.Context(), r.PathValue("id"))
	if err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, c)
}

// transferRequest is the body of POST /v1/calls/{id}/transfer: exactly one of
// target ("responsible", "operator", "rule:NAME", "staff:NAME",
// "extension:N"), rule (a rule name) or staff (a staff name). Only an intent is
// accepted, never a destination: destinations come from admin rules alone.
type transferRequest struct {
	Target string `json:"target"`
	Rule   string `json:"rule"`
	Staff  string `json:"staff"`
}

func (req transferRequest) intent() (routing.Intent, string) {
	n := 0
	for _, v := range []string{req.Target, req.Rule, req.Staff} {
		if strings.TrimSpace(v) != "" {
			n++
		}
	}
	if n != 1 {
		return routing.Intent{}, `give exactly one of "target", "rule" or "staff"`
	}
	switch {
	case strings.TrimSpace(req.Rule) != "":
		return routing.Intent{Kind: routing.IntentRule, Arg: strings.TrimSpace(req.Rule)}, ""
	case strings.TrimSpace(req.Staff) != "":
		return routing.Intent{Kind: routing.IntentStaff, Arg: strings.TrimSpace(req.Staff)}, ""
	}
	in, err := routing.ParseIntent(req.Target)
	if err != nil {
		return routing.Intent{}, `unknown target: want "responsible", "operator", "rule:NAME", "staff:NAME" or "extension:N"`
	}
	return in, ""
}

// transfer answers 202 with the decision when routing decided to transfer (the
// outcome arrives later as a transfer_result event), 422 with the decision and
// its reason when routing says unavailable or none, 409 when the call cannot be
// transferred now, 404 for an unknown call.
func (s *Server) transfer(w http.ResponseWriter, r *http.Request) {
	if s.opts.Calls == nil {
		notImplemented(w, "calls")
		return
	}
	var req transferRequest
	if !s.decode(w, r, &req) {
		return
	}
	intent, msg := req.intent()
	if msg != "" {
		writeError(w, http.StatusBadRequest, "bad_request", msg)
		return
	}
	if requestScope(r) == scopeAgent && !s.agentMayTransfer(w, r, intent) {
		return
	}
	d, err := s.opts.Calls.Transfer(r.Context(), r.PathValue("id"), intent)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	dj := toDecisionJSON(d)
	switch d.Action {
	case routing.ActionTransfer:
		writeJSON(w, http.StatusAccepted, dj)
	case routing.ActionUnavailable, routing.ActionNone:
		writeJSON(w, http.StatusUnprocessableEntity, errorBody{
			Error:    "unprocessable",
			Message:  "routing did not transfer: " + string(d.Reason),
			Reason:   string(d.Reason),
			Decision: &dj,
		})
	default:
		s.opts.Logger.Error("httpapi: transfer returned a decision without an action", "call", r.PathValue("id"))
		writeError(w, http.StatusInternalServerError, "internal", "internal error")
	}
}

// agentMayTransfer checks an agent token's transfer: the intent is already
// never a destination (transferRequest has no such field); a rule intent must
// name a rule that exists (404 not_found otherwise), so the agent cannot probe
// or use anything but the admins' rules. It answers the error itself.
func (s *Server) agentMayTransfer(w http.ResponseWriter, r *http.Request, in routing.Intent) bool {
	if in.Kind != routing.IntentRule {
		return true
	}
	if s.opts.Rules == nil {
		writeError(w, http.StatusForbidden, "forbidden", "the agent token may transfer to existing rules only, and no rule store is available")
		return false
	}
	if _, err := s.opts.Rules.Get(r.Context(), in.Arg); err != nil {
		if errors.Is(err, ErrRuleNotFound) {
			writeError(w, http.StatusNotFound, "not_found", "no rule named "+strconv.Quote(in.Arg))
			return false
		}
		s.fail(w, r, err)
		return false
	}
	return true
}

func (s *Server) hangup(w http.ResponseWriter, r *http.Request) {
	if s.opts.Calls == nil {
		notImplemented(w, "calls")
		return
	}
	if err := s.opts.Calls.Hangup(r.Context(), r.PathValue("id")); err != nil {
		s.fail(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, map[string]string{"id": r.PathValue("id"), "status": "ending"})
}

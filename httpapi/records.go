package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"
)

// Limits of the ?limit= query parameter.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// listQuery reads ?since= (RFC 3339 time, or a Go duration such as "24h"
// meaning that long ago) and ?limit= (1..MaxListLimit).
func (s *Server) listQuery(r *http.Request) (since time.Time, limit int, err error) {
	q := r.URL.Query()
	limit = DefaultListLimit
	if v := q.Get("limit"); v != "" {
		n, perr := strconv.Atoi(v)
		if perr != nil || n < 1 || n > MaxListLimit {
			return since, 0, fmt.Errorf("limit must be a number from 1 to %d", MaxListLimit)
		}
		limit = n
	}
	if v := q.Get("since"); v != "" {
		if t, perr := time.Parse(time.RFC3339, v); perr == nil {
			since = t
		} else if d, derr := time.ParseDuration(v); derr == nil && d > 0 {
			since = s.opts.Now().Add(-d)
		} else {
			return since, 0, fmt.Errorf("since must be an RFC 3339 time (2026-11-24T09:00:00Z) or a duration (24h)")
		}
	}
	return since, limit, nil
}

func (s *Server) listCDR(w http.ResponseWriter, r *http.Request) {
	if s.opts.CDR == nil {
		notImplemented(w, "call records")
		return
	}
	since, limit, err := s.listQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	recs, err := s.opts.CDR.List(r.Context(), since, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if recs == nil {
		recs = []CallRecord{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"records": recs})
}

func (s *Server) listMessages(w http.ResponseWriter, r *http.Request) {
	if s.opts.Messages == nil {
		notImplemented(w, "messages")
		return
	}
	since, limit, err := s.listQuery(r)
	if err != nil {
		writeError(w, http.StatusBadRequest, "bad_request", err.Error())
		return
	}
	msgs, err := s.opts.Messages.List(r.Context(), since, limit)
	if err != nil {
		s.fail(w, r, err)
		return
	}
	if msgs == nil {
		msgs = []Message{}
	}
	writeJSON(w, http.StatusOK, map[string]any{"messages": msgs})
}

package httpapi

import (
	"fmt"
	"net/http"
	"strconv"
	"time"

	"github.com/matterline/matterline/internal/timeflag"
)

// Limits of the ?limit= query parameter.
const (
	DefaultListLimit = 100
	MaxListLimit     = 1000
)

// listQuery reads ?since= (any form of timeflag.Parse: RFC 3339, a firm-local
// "2026-11-24 10:00" or "2026-11-24" in Options.Zone, or an age such as "90m",
// "24h", "7d", "2w" meaning that long ago) and ?limit= (1..MaxListLimit).
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
		t, perr := timeflag.Parse(v, s.opts.Now(), s.opts.Zone)
		if perr != nil {
			return since, 0, fmt.Errorf("since: %w", perr)
		}
		since = t
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

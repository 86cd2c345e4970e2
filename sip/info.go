package sip

import (
	"errors"
	"fmt"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// errEmptyInfo is an INFO without a body (a keep-alive): answered 200.
var errEmptyInfo = errors.New("sip: info without body")

// maxInfoBody bounds INFO bodies we look at.
const maxInfoBody = 4096

// infoDigit reads a DTMF digit from a legacy (RFC 6086 §1 "legacy INFO usage")
// application/dtmf-relay INFO body. Other content types wrap ErrUnsupportedBody
// (415); an unreadable dtmf-relay body wraps ErrBadRequest (400).
func infoDigit(contentType string, body []byte) (media.Digit, error) {
	if len(body) == 0 {
		return media.Digit{}, errEmptyInfo
	}
	if !isContentType(contentType, "application/dtmf-relay") {
		return media.Digit{}, fmt.Errorf("%w: %q", ErrUnsupportedBody, contentType)
	}
	if len(body) > maxInfoBody {
		return media.Digit{}, fmt.Errorf("%w: dtmf-relay body of %d bytes", ErrBadRequest, len(body))
	}
	d, err := media.ParseDTMFRelay(body)
	if err != nil {
		return media.Digit{}, fmt.Errorf("%w: %w", ErrBadRequest, err)
	}
	d.Source = "info"
	return d, nil
}

// onInfo handles INFO in a dialog: application/dtmf-relay digits go into the call's
// DTMF stream (RFC 6086 legacy usage), others get 415.
func (s *Server) onInfo(req *gosip.Request, tx gosip.ServerTransaction) {
	if s.routeOutLeg(req, tx) { // an outbound leg's request (leg_outbound.go)
		return
	}
	c := s.callFor(req)
	if c == nil {
		s.replyOutOfDialog(tx, req, ErrCallNotFound)
		return
	}
	d, err := infoDigit(contentType(req), req.Body())
	switch {
	case errors.Is(err, errEmptyInfo):
		s.reply(tx, req, 200, "OK")
		return
	case err != nil:
		c.log.Info("info rejected", "error", err)
		s.replyErr(tx, req, err)
		return
	}
	c.mu.Lock()
	sess := c.sess
	ok := !c.ending && sess != nil
	c.mu.Unlock()
	if !ok {
		s.replyErr(tx, req, ErrCallNotFound)
		return
	}
	s.reply(tx, req, 200, "OK")
	c.log.Debug("info dtmf", "digit", string(d.Key))
	sess.InjectDTMF(d)
}

package sip

import (
	gosip "github.com/emiago/sipgo/sip"
)

const (
	allowHeader     = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY"
	acceptHeader    = "application/sdp, application/dtmf-relay"
	supportedHeader = "timer"
)

// onOptions answers OPTIONS (RFC 3261 §11) in and out of dialogs with our
// capabilities. Out-of-dialog OPTIONS from untrusted sources get 403.
func (s *Server) onOptions(req *gosip.Request, tx gosip.ServerTransaction) {
	if hasToTag(req) {
		if s.routeOutLeg(req, tx) {
			return
		}
		if s.callFor(req) == nil {
			s.replyOutOfDialog(tx, req, ErrCallNotFound)
			return
		}
	} else if !s.trusted(req) {
		s.replyErr(tx, req, ErrUntrusted)
		return
	} else if s.draining.Load() {
		s.replyErr(tx, req, ErrDraining) // 503 with Retry-After, like INVITE
		return
	}
	s.reply(tx, req, 200, "OK",
		gosip.NewHeader("Allow", allowHeader),
		gosip.NewHeader("Accept", acceptHeader),
		gosip.NewHeader("Accept-Language", "en"),
		gosip.NewHeader("Supported", supportedHeader),
	)
}

// onOther answers every method we do not implement (MESSAGE, SUBSCRIBE, NOTIFY,
// REFER from the caller, PRACK without 100rel, PUBLISH, REGISTER, ...): 405 with
// Allow in a known dialog or from a trusted source, 481 for unknown dialogs, 403
// out of dialog from untrusted sources.
func (s *Server) onOther(req *gosip.Request, tx gosip.ServerTransaction) {
	if s.routeOutLeg(req, tx) { // an outbound leg's request (leg_outbound.go)
		return
	}
	if req.IsAck() {
		return
	}
	if hasToTag(req) {
		if s.callFor(req) == nil {
			s.replyOutOfDialog(tx, req, ErrCallNotFound)
			return
		}
		s.replyErr(tx, req, ErrMethodNotAllowed)
		return
	}
	s.replyOutOfDialog(tx, req, ErrMethodNotAllowed)
}

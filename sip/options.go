package sip

import (
	gosip "github.com/emiago/sipgo/sip"
)

const (
	allowHeader     = "INVITE, ACK, BYE, CANCEL, OPTIONS, INFO, UPDATE, NOTIFY"
	acceptHeader    = "application/sdp, application/dtmf-relay"
	supportedHeader = "timer"
)

// capabilityHeaders describe what we serve (RFC 3261 §11.2): in OPTIONS answers.
func capabilityHeaders() []gosip.Header {
	return []gosip.Header{
		gosip.NewHeader("Allow", allowHeader),
		gosip.NewHeader("Accept", acceptHeader),
		gosip.NewHeader("Accept-Language", "en"),
		gosip.NewHeader("Supported", supportedHeader),
	}
}

// onOptions answers OPTIONS (RFC 3261 §11) in and out of dialogs with our
// capabilities. Out-of-dialog OPTIONS from untrusted sources get 403, and 503
// while draining (so a PBX's keep-alive sees the node as down).
func (s *Server) onOptions(req *gosip.Request, tx gosip.ServerTransaction) {
	switch {
	case hasToTag(req):
		s.inDialog(req, tx)
	case !s.trusted(req):
		s.replyErr(tx, req, ErrUntrusted)
	case s.draining.Load():
		s.replyErr(tx, req, ErrDraining) // 503 with Retry-After, like INVITE
	default:
		s.reply(tx, req, 200, "OK", capabilityHeaders()...)
	}
}

// onOther answers every method we do not implement (MESSAGE, SUBSCRIBE, REFER
// from the caller, PRACK without 100rel, PUBLISH, REGISTER, ...): in a dialog of
// ours the dialog answers (405 with Allow), 481 for unknown dialogs, 403 out of
// dialog from untrusted sources, else 405.
func (s *Server) onOther(req *gosip.Request, tx gosip.ServerTransaction) {
	if hasToTag(req) || req.IsAck() {
		s.inDialog(req, tx)
		return
	}
	s.replyOutOfDialog(tx, req, ErrMethodNotAllowed)
}

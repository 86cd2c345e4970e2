package sip

import (
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// onReinvite handles an INVITE inside a dialog: hold and resume (RFC 3264 §8.4),
// a new media address, or a session refresh (RFC 4028 §7.4). Its 2xx is
// retransmitted until the ACK (RFC 3261 §13.3.1.4); no ACK ends the call.
func (s *Server) onReinvite(req *gosip.Request, tx gosip.ServerTransaction) {
	c, st, interval, ok := s.refreshTarget(req, tx, false)
	if !ok {
		return
	}

	c.mu.Lock()
	if c.ending || c.sess == nil {
		c.mu.Unlock()
		s.replyErr(tx, req, ErrCallNotFound)
		return
	}
	seq := req.CSeq().SeqNo
	if seq <= c.remoteCSeq {
		c.mu.Unlock()
		s.reply(tx, req, 500, "Server Internal Error") // RFC 3261 §12.2.2: out of order
		return
	}
	c.remoteCSeq = seq
	if ct := req.Contact(); ct != nil {
		c.remoteTarget = ct.Address.Clone() // target refresh, RFC 3261 §12.2.2
	}
	if p := c.pendingAck; p != nil {
		// A new INVITE with a higher CSeq means the caller has our earlier 2xx: its
		// ACK is late or lost. We already sent that final response, so RFC 3261
		// §14.2's 500 does not apply; treat the earlier 2xx as acknowledged.
		p.acked = true
		c.pendingAck = nil
		close(p.ch)
		c.confirmed = true
	}
	if len(req.Body()) > 0 {
		desc, neg, err := negotiateOffer(contentType(req), req.Body(), []media.Codec{c.neg.Codec})
		if err != nil {
			c.mu.Unlock()
			c.log.Info("re-invite offer rejected", "error", err)
			s.replyErr(tx, req, err) // the call goes on with the old session
			return
		}
		c.applyOfferLocked(desc, neg)
	}
	// Without SDP (a refresh or a late-offer re-INVITE) our current SDP is the offer;
	// the answer in the ACK is not needed to keep the session as it is.
	if c.timerSupported || st.supported {
		c.timerSupported = true
		c.interval = interval
	}
	res := s.buildOK(c, req, media.BuildSDP(c.local), c.interval)
	pa := &pendingAck{cseq: seq, ch: make(chan struct{})}
	c.pendingAck = pa
	err := tx.Respond(res)
	c.mu.Unlock()
	if err != nil {
		c.log.Info("re-invite answer failed", "error", err)
		return
	}
	s.notifyResponse("INVITE", 200)
	c.refreshed()
	if !c.awaitAck(tx, res, pa) {
		c.mu.Lock()
		ending := c.ending
		if c.pendingAck == pa {
			c.pendingAck = nil
		}
		c.mu.Unlock()
		if !ending {
			c.log.Warn("no ack for re-invite 200 ok")
			c.end(EndNoAck, true)
		}
	}
}

// applyOfferLocked applies a new offer's outcome to the session: hold/resume via
// direction (RFC 3264 §6.1, §8.4), a changed remote address via SetRemote. Our o=
// version goes up when our SDP changes (RFC 3264 §8). c.mu must be held.
func (c *call) applyOfferLocked(desc media.Description, neg media.Negotiated) {
	if neg.Remote.IsValid() && !neg.Remote.Addr().IsUnspecified() && neg.Remote != c.neg.Remote {
		c.log.Info("remote media moved", "from", c.neg.Remote.String(), "to", neg.Remote.String())
		c.sess.SetRemote(neg.Remote)
		c.neg.Remote = neg.Remote
	}
	if neg.Direction != c.local.Direction {
		c.sess.SetDirection(neg.Direction)
		c.local.Direction = neg.Direction
		c.local.Version++
		c.neg.Direction = neg.Direction
	}
	hold := desc.Direction.OnHold()
	switch {
	case hold && !c.held:
		c.held = true
		c.heldFrom = c.state
		c.state = StateHeld
		c.log.Info("call held", "offer_direction", desc.Direction.String())
		c.notifyHold(true)
	case !hold && c.held:
		c.held = false
		c.state = c.heldFrom
		c.log.Info("call resumed")
		c.notifyHold(false)
	}
}

// refreshed signals a session refresh to the session timer.
func (c *call) refreshed() {
	select {
	case c.refresh <- struct{}{}:
	default:
	}
}

// onUpdate handles UPDATE (RFC 3311): a session refresh without SDP (RFC 4028 §7.4)
// or a new offer, answered at once in the 200.
func (s *Server) onUpdate(req *gosip.Request, tx gosip.ServerTransaction) {
	if s.routeOutLeg(req, tx) { // an outbound leg's request (leg_outbound.go)
		return
	}
	c, st, interval, ok := s.refreshTarget(req, tx, true)
	if !ok {
		return
	}
	c.mu.Lock()
	if c.ending || c.sess == nil {
		c.mu.Unlock()
		s.replyErr(tx, req, ErrCallNotFound)
		return
	}
	var body []byte
	if len(req.Body()) > 0 {
		desc, neg, err := negotiateOffer(contentType(req), req.Body(), []media.Codec{c.neg.Codec})
		if err != nil {
			c.mu.Unlock()
			s.replyErr(tx, req, err)
			return
		}
		c.applyOfferLocked(desc, neg)
		body = media.BuildSDP(c.local)
	}
	if c.timerSupported || st.supported {
		c.timerSupported = true
		c.interval = interval
	}
	res := gosip.NewResponseFromRequest(req, 200, "OK", body)
	res.AppendHeader(s.contactFor(c))
	if body != nil {
		res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	if c.timerSupported {
		for _, h := range sessionTimerHeaders(c.interval) {
			res.AppendHeader(h)
		}
	}
	err := tx.Respond(res)
	c.mu.Unlock()
	if err != nil {
		c.log.Debug("update answer failed", "error", err)
		return
	}
	s.notifyResponse("UPDATE", 200)
	c.refreshed()
}

// sessionInterval is the negotiated RFC 4028 interval (0 = none).
func (c *call) sessionInterval() time.Duration {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.interval
}

// refreshTarget finds the call of an in-dialog re-INVITE or UPDATE and negotiates
// its RFC 4028 session interval (and returns the request's timer headers); when it returns false it has answered the request
// (481 for no call, 403 for an untrusted source when outOfDialog, 422/400 for a bad
// timer).
func (s *Server) refreshTarget(req *gosip.Request, tx gosip.ServerTransaction, outOfDialog bool) (*call, sessionTimerReq, time.Duration, bool) {
	c := s.callFor(req)
	if c == nil {
		if outOfDialog {
			s.replyOutOfDialog(tx, req, ErrCallNotFound)
		} else {
			s.replyErr(tx, req, ErrCallNotFound)
		}
		return nil, sessionTimerReq{}, 0, false
	}
	st, err := sessionTimerFromRequest(req)
	if err != nil {
		s.replyErr(tx, req, err)
		return nil, sessionTimerReq{}, 0, false
	}
	interval, err := st.negotiate(s.cfg.SessionExpires)
	if err != nil {
		s.replyErr(tx, req, err)
		return nil, sessionTimerReq{}, 0, false
	}
	return c, st, interval, true
}

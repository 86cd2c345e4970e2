package sip

import (
	"log/slog"
	"math/rand/v2"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// side is what both legs of a call have in common: a dialog, a media session and
// its offer/answer state, the 2xx of a re-INVITE waiting for its ACK, and our own
// re-INVITE under way. The functions on it below serve re-INVITE and UPDATE
// (RFC 3261 §14, RFC 3311, RFC 3264 §8) the same way for the caller and for the
// callee, on the call's goroutine.
type side struct {
	name     string // "caller" or "callee", for logs
	log      *slog.Logger
	dlg      *dialog
	sess     *media.Session
	oa       *offerAnswer
	ack      *pendingAck
	reinvite *clientTx // our re-INVITE (hold reflection) under way
	wantHold bool      // what our last hold reflection asked for
	peerHeld bool      // the peer holds us
	bridged  bool      // the side's media is bridged to the other side
}

// other is the side a hold on s is reflected to: the caller's for the callee's
// and the other way round, nil when not bridged.
func (c *call) other(s *side) *side {
	if c.in == nil || c.out == nil || !c.out.bridged {
		return nil
	}
	if s == &c.in.side {
		return &c.out.side
	}
	return &c.in.side
}

// admitInDialog is what every request in s's dialog goes through first: a
// stranger's (neither a trusted source nor the dialog's peer) gets 403, an ACK
// is matched to its 2xx, and a CSeq out of order gets 500 (RFC 3261 §12.2.2).
// True when the request is for the caller to serve by method.
func (c *call) admitInDialog(s *side, ev *reqEvent) bool {
	req := ev.req
	if !c.srv.trusted(req) && !s.dlg.fromPeer(sourceAddr(req)) {
		s.log.Warn("in-dialog request from a stranger refused", "method", string(req.Method), "source", req.Source())
		ev.replyErr(c.srv, ErrUntrusted)
		return false
	}
	if req.IsAck() {
		c.onAck(s, ev)
		return false
	}
	if !s.dlg.checkRemoteCSeq(req) {
		ev.reply(c.srv, 500, "Server Internal Error", gosip.NewHeader("Retry-After", "1"))
		return false
	}
	return true
}

// onOffer serves a re-INVITE or UPDATE: a target refresh (§12.2.2), an offer
// answered in the 2xx, or for a re-INVITE without SDP our offer in the 2xx with
// the answer in the ACK (RFC 6337 §5.3: sendrecv unless we hold, all our
// codecs). The caller's also refresh the RFC 4028 session timer. Glare with our
// own re-INVITE gets 491 (§14.1).
func (c *call) onOffer(s *side, ev *reqEvent) {
	req := ev.req
	caller := c.in != nil && s == &c.in.side
	var st sessionTimerReq
	var interval time.Duration
	if caller {
		var err error
		st, interval, err = sessionTimerOf(req, c.srv.cfg.SessionExpires)
		if err != nil {
			ev.replyErr(c.srv, err)
			return
		}
	}
	isInvite := req.Method == gosip.INVITE
	if isInvite && s.ack != nil {
		// A new INVITE means the peer has our earlier 2xx: its ACK is late or
		// lost; we already sent that final response (§14.2's 500 applies only
		// before it), so count it as acknowledged.
		c.acked(s, nil)
	}
	var body []byte
	offerless := len(req.Body()) == 0
	switch {
	case s.reinvite != nil && isInvite:
		ev.replyErr(c.srv, ErrRequestPending) // glare, §14.1
		return
	case !offerless:
		var err error
		body, err = s.oa.receiveOffer(contentType(req), req.Body())
		if err != nil {
			s.log.Info("re-offer rejected", "method", string(req.Method), "error", err)
			ev.replyErr(c.srv, err) // 488/491: the session goes on as it was
			return
		}
	case isInvite:
		if s.oa.pending() {
			ev.replyErr(c.srv, ErrRequestPending)
			return
		}
		body = s.oa.createOffer()
	}
	s.dlg.refreshTarget(req)
	if caller {
		if c.timerSupported || st.supported {
			c.timerSupported = true
			c.interval = interval
		}
		c.armExpiry()
	}
	if !offerless {
		c.applyMedia(s)
	}
	res := c.okResponse(s, req, body)
	if !isInvite {
		if err := ev.respond(res); err == nil {
			c.srv.notifyResponse(string(req.Method), 200)
		}
		ev.done()
		return
	}
	if err := ev.respond(res); err != nil {
		s.log.Info("re-invite answer failed", "error", err)
		ev.done()
		return
	}
	c.srv.notifyResponse("INVITE", 200)
	s.ack = &pendingAck{side: s, cseq: req.CSeq().SeqNo, offer: offerless, acked: make(chan struct{}), ev: ev}
	c.retransmit(s, ev.tx, res, s.ack, ev.done)
}

// onAck matches an ACK to the 2xx waiting for it; an ACK for a 2xx that carried
// our offer carries the answer (RFC 3264 §4; a missing or unusable one leaves
// the session as it was, RFC 6337 §3.1.3).
func (c *call) onAck(s *side, ev *reqEvent) {
	defer ev.done()
	a := s.ack
	if a == nil || ev.req.CSeq() == nil || ev.req.CSeq().SeqNo != a.cseq {
		return
	}
	c.acked(s, ev.req)
}

// acked ends the wait for s's pending ACK (ack nil: implied by a newer INVITE).
func (c *call) acked(s *side, ack *gosip.Request) {
	a := s.ack
	s.ack = nil
	close(a.acked)
	if a.ev != nil {
		a.ev.done()
	}
	if c.in != nil && s == &c.in.side {
		c.in.confirmed = true
	}
	// A hold reflection held back while this 2xx waited for its ACK goes now.
	defer func() {
		if s.bridged && s.reinvite == nil && s.wantHold != s.oa.holding() {
			c.reflectHold(s, s.wantHold)
		}
	}()
	if !a.offer {
		return
	}
	if ack == nil || len(ack.Body()) == 0 {
		s.log.Warn("no answer to our offer in the ack")
		s.oa.rollback()
		return
	}
	if err := s.oa.receiveAnswer(contentType(ack), ack.Body()); err != nil {
		s.log.Warn("answer in the ack unusable", "error", err)
		s.oa.rollback()
		return
	}
	c.applyMedia(s)
}

// applyMedia applies s's offer/answer outcome to its session: the remote address,
// the direction (the inactivity timer runs only while both sides send, RFC 3264
// §8.4), and a change of the peer's hold, which is reflected to the other side
// when bridged.
func (c *call) applyMedia(s *side) {
	if s.sess == nil {
		return
	}
	neg := s.oa.negotiated()
	if err := s.sess.SetSRTP(neg.SRTP); err != nil {
		s.log.Error("srtp keys not applied", "error", err)
	}
	if neg.Remote.IsValid() && !neg.Remote.Addr().IsUnspecified() && neg.Remote != s.sess.Remote() {
		s.log.Info("remote media moved", "to", neg.Remote.String())
		s.sess.SetRemote(neg.Remote)
	}
	s.sess.SetFormat(neg.Codec, neg.HasDTMF, neg.DTMFPayloadType)
	s.sess.SetDirection(s.oa.direction())
	held := s.oa.peerHolds()
	if held == s.peerHeld {
		return
	}
	s.peerHeld = held
	s.log.Info("hold", "side", s.name, "held", held)
	if c.in != nil && s == &c.in.side {
		c.mu.Lock()
		if held {
			c.heldFrom, c.state = c.state, StateHeld
		} else if c.state == StateHeld {
			c.state = c.heldFrom
		}
		c.mu.Unlock()
	}
	if o := c.other(s); o != nil {
		c.reflectHold(o, held)
	}
}

// reflectHold sends s's peer a re-INVITE that reflects the other side's hold (our
// direction sendonly, or inactive when s's peer holds too; RFC 3264 §8.4) or
// resume (sendrecv). Its answer arrives as an event (reinviteAnswered). While one
// is under way the newest wish waits for it.
func (c *call) reflectHold(s *side, hold bool) {
	s.wantHold = hold
	if s.reinvite != nil || s.ack != nil || s.oa.pending() || s.dlg.ended {
		return // reinviteAnswered (or the ACK) looks at wantHold again
	}
	if s.oa.holding() == hold {
		return
	}
	body, err := s.oa.holdOffer(hold)
	if err != nil {
		s.log.Info("hold offer not made", "error", err)
		return
	}
	req := s.dlg.request(gosip.INVITE)
	req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	var leg *outLeg
	if c.out != nil && s == &c.out.side {
		leg = c.out
	}
	ct, err := c.startTx(txReinvite, leg, req, 32*time.Second)
	if err != nil {
		s.log.Info("hold re-invite not sent", "error", err)
		s.oa.rollback()
		return
	}
	s.reinvite = ct
	s.log.Info("hold reflected", "side", s.name, "hold", hold)
}

// reinviteAnswered takes the final response to our re-INVITE: 2xx is ACKed and
// its answer applied; 491 retries after 2.1-4 s (RFC 3261 §14.1); 481 and 408
// end the dialog (§12.2.1.2); other failures leave the session as it was
// (RFC 3261 §14.1).
func (c *call) reinviteAnswered(s *side, ct *clientTx, res *gosip.Response) {
	if s.reinvite != ct || res.IsProvisional() {
		return
	}
	s.reinvite = nil
	ct.final = true
	switch {
	case res.IsSuccess():
		ack := s.dlg.ack(res.CSeq().SeqNo)
		if err := c.srv.client.WriteRequest(ack); err != nil {
			s.log.Info("ack failed", "error", err)
		}
		if err := s.oa.receiveAnswer(contentType(res), res.Body()); err != nil {
			s.log.Warn("answer to our re-invite unusable", "error", err)
			s.oa.rollback()
			return
		}
		c.applyMedia(s)
		if s.wantHold != s.oa.holding() {
			c.reflectHold(s, s.wantHold)
		}
	case res.StatusCode == 491:
		s.oa.rollback()
		wait := 2100*time.Millisecond + time.Duration(rand.IntN(1900))*time.Millisecond
		time.AfterFunc(wait, func() { c.post(retryEvent{side: s}) })
	case endsDialog(res.StatusCode):
		s.oa.rollback()
		s.log.Info("re-invite: dialog gone", "status", res.StatusCode)
		c.dialogGone(s)
	default:
		s.oa.rollback()
		s.log.Info("re-invite refused", "status", res.StatusCode)
	}
}

// dialogGone ends what a dead dialog belonged to: the call for the caller's, the
// bridge (and with it the call) for the callee's.
func (c *call) dialogGone(s *side) {
	s.dlg.ended = true
	if c.in != nil && s == &c.in.side {
		c.finish(EndError)
		return
	}
	if c.out != nil && s == &c.out.side {
		c.out.gone = true
		if c.out.bridged {
			c.finish(EndCalleeBye)
		}
	}
}

// okResponse is our 2xx to an INVITE or UPDATE in s's dialog (initial or
// re-INVITE) with our SDP, our To tag and Contact, and for the caller the
// session timer when negotiated (RFC 4028 §9).
func (c *call) okResponse(s *side, req *gosip.Request, sdp []byte) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, 200, "OK", sdp)
	setToTag(res, s.dlg.localTag)
	res.AppendHeader(s.dlg.contact())
	if sdp != nil {
		res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	}
	res.AppendHeader(gosip.NewHeader("Allow", allowHeader))
	res.AppendHeader(gosip.NewHeader("Supported", supportedHeader))
	res.AppendHeader(gosip.NewHeader("Server", c.srv.cfg.UserAgent))
	if c.in != nil && s == &c.in.side && c.timerSupported && c.interval > 0 {
		for _, h := range sessionTimerHeaders(c.interval) {
			res.AppendHeader(h)
		}
	}
	return res
}

// retransmit resends a 2xx on UDP (T1 doubling up to T2) until its ACK, for at
// most 64*T1 (RFC 3261 §13.3.1.4); then it posts ackTimeoutEvent. It runs beside
// the call like a timer and touches nothing of the call's state; done runs when
// it stops (the handler holding the transaction may return).
func (c *call) retransmit(s *side, tx gosip.ServerTransaction, res *gosip.Response, pa *pendingAck, done func()) {
	udp := s.dlg.transport == "UDP"
	c.srv.goTracked(func() {
		defer done()
		deadline := time.NewTimer(c.srv.ackWait)
		defer deadline.Stop()
		iv := gosip.T1
		t := time.NewTimer(iv)
		defer t.Stop()
		if !udp {
			t.Stop()
		}
		for {
			select {
			case <-pa.acked:
				return
			case <-c.done:
				return
			case <-t.C:
				if err := tx.Respond(res); err != nil {
					c.log.Debug("2xx retransmission failed", "error", err)
				}
				iv = min(2*iv, gosip.T2)
				t.Reset(iv)
			case <-deadline.C:
				c.post(ackTimeoutEvent{ack: pa})
				return
			}
		}
	})
}

// onAckTimeout: no ACK for a 2xx within 64*T1 ends the dialog (§13.3.1.4).
func (c *call) onAckTimeout(a *pendingAck) {
	s := a.side
	if s.ack != a {
		return
	}
	s.ack = nil
	s.log.Warn("no ack for 200 ok", "side", s.name, "cseq", a.cseq)
	if a.offer {
		s.oa.rollback()
	}
	if c.in != nil && s == &c.in.side {
		c.finish(EndNoAck)
		return
	}
	c.dialogGone(s)
}

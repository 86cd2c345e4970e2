package sip

import (
	"context"
	"errors"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// routeOutLeg hands a request that belongs to an outbound leg (matched by Call-ID
// and the dialog's tags, sip.DialogIDFromRequestUAC) to it; false when it is not
// one of ours.
func (s *Server) routeOutLeg(req *gosip.Request, tx gosip.ServerTransaction) bool {
	id := req.CallID()
	if id == nil {
		return false
	}
	l := s.legs.get(id.Value())
	if l == nil {
		return false
	}
	if req.IsAck() {
		l.onAck(req)
		return true
	}
	l.mu.Lock()
	to := l.to
	l.mu.Unlock()
	ok := false
	if to != nil {
		theirs, _ := to.Params.Get("tag")
		want := gosip.DialogIDMake(id.Value(), theirs, l.localTag)
		got, err := gosip.DialogIDFromRequestUAC(req)
		ok = err == nil && got == want
	}
	if !ok {
		s.reply(tx, req, 481, "Call/Transaction Does Not Exist")
		return true
	}
	l.onRequest(req, tx)
	return true
}

// onRequest serves a request from the callee inside the leg's dialog.
func (l *outLeg) onRequest(req *gosip.Request, tx gosip.ServerTransaction) {
	switch req.Method {
	case gosip.BYE:
		l.srv.reply(tx, req, 200, "OK")
		l.log.Info("callee hung up")
		l.byeOnce.Do(func() { close(l.bye) })
	case gosip.INFO:
		d, err := infoDigit(contentType(req), req.Body())
		switch {
		case errors.Is(err, errEmptyInfo):
			l.srv.reply(tx, req, 200, "OK")
		case err != nil:
			l.srv.replyErr(tx, req, err)
		default:
			l.srv.reply(tx, req, 200, "OK")
			if sess := l.session(); sess != nil {
				sess.InjectDTMF(d)
			}
		}
	case gosip.INVITE:
		l.onReinvite(req, tx)
	case gosip.OPTIONS:
		l.srv.reply(tx, req, 200, "OK", gosip.NewHeader("Allow", allowHeader))
	default:
		l.srv.replyErr(tx, req, ErrMethodNotAllowed)
	}
}

// onReinvite answers a re-INVITE from the callee (hold/resume, RFC 3264 §8.4) with
// our SDP and reports hold changes to the bridge, which reflects them to the
// caller. The 2xx is retransmitted until the ACK (RFC 3261 §13.3.1.4).
func (l *outLeg) onReinvite(req *gosip.Request, tx gosip.ServerTransaction) {
	l.mu.Lock()
	sess := l.sess
	if sess == nil || l.closed {
		l.mu.Unlock()
		l.srv.replyErr(tx, req, ErrCallNotFound)
		return
	}
	if seq := req.CSeq().SeqNo; seq <= l.remoteCSeq {
		l.mu.Unlock()
		l.srv.reply(tx, req, 500, "Server Internal Error")
		return
	} else {
		l.remoteCSeq = seq
	}
	hold, changed := false, false
	if len(req.Body()) > 0 {
		desc, neg, err := negotiateOffer(contentType(req), req.Body(), []media.Codec{l.neg.Codec})
		if err != nil {
			l.mu.Unlock()
			l.srv.replyErr(tx, req, err)
			return
		}
		if neg.Remote.IsValid() && !neg.Remote.Addr().IsUnspecified() && neg.Remote != l.neg.Remote {
			sess.SetRemote(neg.Remote)
			l.neg.Remote = neg.Remote
		}
		if neg.Direction != l.local.Direction {
			sess.SetDirection(neg.Direction)
			l.local.Direction = neg.Direction
			l.local.Version++
			changed = true
		}
		hold = desc.Direction.OnHold()
	}
	res := gosip.NewResponseFromRequest(req, 200, "OK", media.BuildSDP(l.local))
	res.AppendHeader(l.contact())
	res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	l.mu.Unlock()
	if err := tx.Respond(res); err != nil {
		return
	}
	if changed {
		select {
		case l.holds <- hold:
		default:
		}
	}
	// Retransmit the 2xx on UDP until the ACK (or 8 s): T1 doubling.
	if l.transport != "UDP" {
		return
	}
	ackCh := l.expectAck(req.CSeq().SeqNo)
	iv := gosip.T1
	deadline := time.NewTimer(8 * time.Second)
	defer deadline.Stop()
	t := time.NewTimer(iv)
	defer t.Stop()
	for {
		select {
		case <-ackCh:
			return
		case <-deadline.C:
			return
		case <-t.C:
			_ = tx.Respond(res)
			iv = min(2*iv, gosip.T2)
			t.Reset(iv)
		}
	}
}

// expectAck returns a channel closed when the ACK for CSeq seq arrives.
func (l *outLeg) expectAck(seq uint32) <-chan struct{} {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acks == nil {
		l.acks = map[uint32]chan struct{}{}
	}
	ch, ok := l.acks[seq]
	if !ok {
		ch = make(chan struct{})
		l.acks[seq] = ch
	}
	return ch
}

func (l *outLeg) onAck(req *gosip.Request) {
	if req.CSeq() == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.acks == nil {
		l.acks = map[uint32]chan struct{}{}
	}
	seq := req.CSeq().SeqNo
	ch, ok := l.acks[seq]
	if !ok {
		ch = make(chan struct{})
		l.acks[seq] = ch
	}
	select {
	case <-ch:
	default:
		close(ch)
	}
}

// setHold sends the callee a re-INVITE that reflects the caller's hold (our
// direction sendonly; RFC 3264 §8.4) or resume (sendrecv), and ACKs its 2xx.
func (l *outLeg) setHold(hold bool) {
	l.mu.Lock()
	if l.sess == nil || l.closed {
		l.mu.Unlock()
		return
	}
	dir := media.DirSendRecv
	if hold {
		dir = media.DirSendOnly
	}
	l.local.Direction = dir
	l.local.Version++
	body := media.BuildSDP(l.local)
	l.mu.Unlock()
	req := l.inDialog(gosip.INVITE, l.nextCSeq())
	req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(body)
	res, err := l.request(context.Background(), req)
	if err != nil {
		l.log.Info("hold re-invite to callee failed", "error", err)
		return
	}
	if res.IsSuccess() {
		ack := l.inDialog(gosip.ACK, res.CSeq().SeqNo)
		ack.SetBody(nil)
		_ = l.srv.client.WriteRequest(ack)
	}
}

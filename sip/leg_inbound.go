package sip

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strings"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// defaultAckWait is how long a 2xx to an INVITE is retransmitted waiting for its
// ACK (64*T1 with T1 = 500ms, RFC 3261 §13.3.1.4).
const defaultAckWait = 32 * time.Second

// onInvite handles an INVITE. It keeps running until the final response is sent and,
// for a 2xx, until its ACK arrives (SIPGO-NOTES: if it returned earlier, every UDP
// retransmission of the INVITE would start a new call).
func (s *Server) onInvite(req *gosip.Request, tx gosip.ServerTransaction) {
	if hasToTag(req) {
		if s.routeOutLeg(req, tx) { // a re-INVITE from an outbound leg's callee
			return
		}
		s.onReinvite(req, tx)
		return
	}
	st, interval, err := s.admitInvite(req)
	if err != nil {
		if errors.Is(err, ErrUntrusted) {
			s.log.Warn("invite from untrusted source rejected", "source", req.Source())
		}
		s.replyErr(tx, req, err)
		return
	}

	c := s.newCall(req, st.supported)
	if err := s.reg.reserve(c, s.cfg.MaxCalls); err != nil {
		c.log.Warn("invite rejected", "error", err, "calls", s.reg.Count())
		s.replyErr(tx, req, err)
		return
	}
	c.log.Debug("invite caller", "caller", c.caller) // full number: debug only
	c.log.Info("invite", "caller", maskNumber(c.caller), "callee", c.callee, "source", c.source, "transport", c.transport)
	// The lookup starts the moment the INVITE is accepted, before 100 and answer.
	s.notifyStarted(c)
	if !s.spawn(c.runLookup) {
		s.replyErr(tx, req, ErrClosed)
		c.end(EndShutdown, false)
		return
	}
	s.reply(tx, req, 100, "Trying")
	tx.OnCancel(func(*gosip.Request) { s.notifyCancelled() })
	if s.redirect(c, req, tx) { // sip.mode redirect: 302 when the rules allow
		return
	}

	_, neg, err := negotiateOffer(contentType(req), req.Body(), allowedCodecs())
	if err != nil {
		c.log.Info("offer rejected", "error", err)
		s.replyErr(tx, req, err)
		c.end(mapError(err).End, false)
		return
	}
	dlg, err := s.dialogUA.ReadInvite(req, tx)
	if err != nil {
		c.log.Info("invite transaction ended", "error", err)
		s.replyErr(tx, req, err)
		c.end(mapError(err).End, false)
		return
	}
	if !s.reg.setDialog(dlg.ID, c) { // ended meanwhile (hangup, shutdown)
		s.reply(tx, dlg.InviteRequest, 480, "Temporarily Unavailable")
		return
	}

	sess, local, err := s.openMedia(c, neg)
	if err != nil {
		c.log.Error("media setup failed", "error", err)
		s.replyErr(tx, dlg.InviteRequest, err)
		c.end(mapError(err).End, false)
		return
	}
	c.mu.Lock()
	if c.ending {
		c.mu.Unlock()
		_ = sess.Close()
		s.reply(tx, dlg.InviteRequest, 480, "Temporarily Unavailable")
		return
	}
	c.dlg, c.inviteTx, c.sess, c.neg, c.local = dlg, tx, sess, neg, local
	c.remoteCSeq = req.CSeq().SeqNo
	c.interval = interval
	c.mu.Unlock()

	// Answering waits at most AnswerWait for the lookup.
	wait := time.NewTimer(s.cfg.AnswerWait)
	select {
	case <-c.lookup:
	case <-wait.C:
	case <-dlg.Context().Done():
		wait.Stop()
		c.log.Info("cancelled before answer")
		c.end(EndCallerCancel, false)
		return
	case <-c.quit:
		wait.Stop()
		s.reply(tx, dlg.InviteRequest, 480, "Temporarily Unavailable")
		return
	}
	wait.Stop()

	c.mu.Lock()
	res := s.buildOK(c, dlg.InviteRequest, media.BuildSDP(local), interval)
	if c.ending {
		c.mu.Unlock()
		s.reply(tx, dlg.InviteRequest, 480, "Temporarily Unavailable")
		return
	}
	if dlg.Context().Err() != nil {
		c.mu.Unlock()
		c.end(EndCallerCancel, false)
		return
	}
	pa := &pendingAck{cseq: req.CSeq().SeqNo, ch: make(chan struct{})}
	c.pendingAck = pa
	dlg.InviteResponse = res
	c.answeredOK = true
	c.answered = s.now()
	c.state = StateAnswered
	err = tx.Respond(res)
	c.mu.Unlock()
	if err != nil {
		c.log.Info("answer failed", "error", err)
		c.end(mapError(err).End, false)
		return
	}
	s.notifyResponse("INVITE", 200)
	c.log.Info("answered", "codec", neg.Codec.Name, "remote_rtp", neg.Remote.String(),
		"local_rtp_port", local.Port, "session_interval", interval)
	if !c.awaitAck(tx, res, pa) {
		if !c.isEnding() {
			c.log.Warn("no ack for 200 ok")
			c.end(EndNoAck, true)
		}
		return
	}
	if !s.spawn(c.runObserved) { // run, then CallEnded (observe.go)
		c.end(EndShutdown, true)
	}
}

// admitInvite checks a new INVITE before anything is set up: trusted source
// (403), required headers (400), draining (503), Require options (420) and the
// RFC 4028 session interval (422). It returns the session timer request and the
// negotiated interval.
func (s *Server) admitInvite(req *gosip.Request) (sessionTimerReq, time.Duration, error) {
	if !s.trusted(req) {
		return sessionTimerReq{}, 0, ErrUntrusted
	}
	if req.From() == nil || req.To() == nil || req.CallID() == nil || req.CSeq() == nil || req.Contact() == nil {
		return sessionTimerReq{}, 0, fmt.Errorf("%w: missing From, To, Call-ID, CSeq or Contact", ErrBadRequest)
	}
	if s.draining.Load() {
		return sessionTimerReq{}, 0, ErrDraining
	}
	if opts := unsupportedRequire(headerValues(req, "Require")); len(opts) > 0 {
		return sessionTimerReq{}, 0, &BadExtensionError{Options: opts}
	}
	st, err := sessionTimerFromRequest(req)
	if err != nil {
		return st, 0, err
	}
	interval, err := st.negotiate(s.cfg.SessionExpires)
	return st, interval, err
}

// spawn runs f on a goroutine the server waits for in Close; false once closed.
func (s *Server) spawn(f func()) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return false
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		f()
	}()
	return true
}

func (s *Server) newCall(req *gosip.Request, timerSupported bool) *call {
	id := newCallID()
	src := sourceAddr(req)
	l := s.pickListener(req.Transport(), localAddrToward(src))
	from := ""
	if f := req.From(); f != nil {
		from = f.Value()
	}
	c := &call{
		id:             id,
		srv:            s,
		log:            s.log.With("call_id", id),
		quit:           make(chan struct{}),
		done:           make(chan struct{}),
		lookup:         make(chan struct{}),
		refresh:        make(chan struct{}, 1),
		inject:         make(chan injected, 1),
		holds:          make(chan bool, 4),
		sipCallID:      req.CallID().Value(),
		caller:         callerNumber(from, headerValues(req, "P-Asserted-Identity"), s.trusted(req)),
		callee:         calledNumber(req),
		started:        s.now(),
		transport:      strings.ToUpper(req.Transport()),
		source:         req.Source(),
		laddr:          l.addr,
		advertise:      s.advertiseFor(l, src),
		timerSupported: timerSupported,
		state:          StateRinging,
	}
	return c
}

// openMedia binds an RTP port on the listener's address and starts the session.
// The port goes back to the allocator when the session closes.
func (s *Server) openMedia(c *call, neg media.Negotiated) (*media.Session, media.LocalSDP, error) {
	ip := c.laddr.Addr().Unmap()
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	conn, err := s.ports.Listen(ip)
	if err != nil {
		return nil, media.LocalSDP{}, err
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	sess, err := media.NewSession(media.SessionConfig{
		Conn:              conn,
		Codec:             neg.Codec,
		HasDTMF:           neg.HasDTMF,
		DTMFPayloadType:   neg.DTMFPayloadType,
		Remote:            neg.Remote,
		InactivityTimeout: s.cfg.RTPInactivity,
		OnClose:           func() { s.ports.Release(port) },
		Logger:            c.log,
	})
	if err != nil {
		_ = conn.Close()
		s.ports.Release(port)
		return nil, media.LocalSDP{}, err
	}
	sess.SetDirection(neg.Direction)
	local := media.LocalSDP{
		Addr:            c.advertise,
		Port:            port,
		SessionID:       randomSessionID(),
		Version:         1,
		Codecs:          []media.Codec{neg.Codec},
		DTMFPayloadType: neg.DTMFPayloadType,
		HasDTMF:         neg.HasDTMF,
		Direction:       neg.Direction,
	}
	return sess, local, nil
}

// buildOK is a 2xx to an INVITE (initial or re-INVITE) with our SDP. c.mu must be
// held.
func (s *Server) buildOK(c *call, req *gosip.Request, sdp []byte, interval time.Duration) *gosip.Response {
	res := gosip.NewResponseFromRequest(req, 200, "OK", sdp)
	res.AppendHeader(s.contactFor(c))
	res.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	res.AppendHeader(gosip.NewHeader("Allow", allowHeader))
	res.AppendHeader(gosip.NewHeader("Supported", supportedHeader))
	res.AppendHeader(gosip.NewHeader("Server", s.cfg.UserAgent))
	if c.timerSupported {
		for _, h := range sessionTimerHeaders(interval) {
			res.AppendHeader(h)
		}
	}
	return res
}

// awaitAck retransmits a 2xx on UDP (T1 doubling up to T2) until its ACK arrives,
// for at most 64*T1 (RFC 3261 §13.3.1.4). It returns whether the ACK came.
func (c *call) awaitAck(tx gosip.ServerTransaction, res *gosip.Response, pa *pendingAck) bool {
	deadline := time.NewTimer(c.srv.ackWait)
	defer deadline.Stop()
	var retransmit <-chan time.Time
	interval := gosip.T1
	if c.transport == "UDP" {
		t := time.NewTimer(interval)
		defer t.Stop()
		retransmit = t.C
		for {
			select {
			case <-pa.ch:
				return c.acked(pa)
			case <-retransmit:
				if err := tx.Respond(res); err != nil {
					c.log.Debug("2xx retransmission failed", "error", err)
				}
				interval = min(2*interval, gosip.T2)
				t.Reset(interval)
			case <-deadline.C:
				return false
			}
		}
	}
	select {
	case <-pa.ch:
		return c.acked(pa)
	case <-deadline.C:
		return false
	}
}

func (c *call) acked(pa *pendingAck) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return pa.acked
}

// onAck matches an ACK to the 2xx waiting for it.
func (s *Server) onAck(req *gosip.Request, tx gosip.ServerTransaction) {
	if s.routeOutLeg(req, tx) {
		return
	}
	c := s.callFor(req)
	if c == nil || req.CSeq() == nil {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	p := c.pendingAck
	if p == nil || req.CSeq().SeqNo != p.cseq {
		return
	}
	p.acked = true
	c.pendingAck = nil
	close(p.ch)
	if !c.confirmed {
		c.confirmed = true
		if c.dlg != nil {
			_ = c.dlg.ReadAck(req, tx)
		}
	}
}

// onBye answers a BYE from the caller and tears the call down.
func (s *Server) onBye(req *gosip.Request, tx gosip.ServerTransaction) {
	if s.routeOutLeg(req, tx) { // the callee of a transfer hung up
		return
	}
	c := s.callFor(req)
	if c == nil || !c.takeBye() {
		s.replyOutOfDialog(tx, req, ErrCallNotFound)
		return
	}
	s.reply(tx, req, 200, "OK")
	c.log.Info("caller hung up")
	c.end(EndCallerBye, false)
}

// onCancel sees only CANCELs that match no INVITE transaction: sipgo answers a
// matching CANCEL itself (200, then 487 to the INVITE), and the INVITE handler
// sees it through the dialog context.
func (s *Server) onCancel(req *gosip.Request, tx gosip.ServerTransaction) {
	s.replyOutOfDialog(tx, req, ErrCallNotFound)
}

// replyOutOfDialog answers a request that matched no call: 403 from untrusted
// sources, else err.
func (s *Server) replyOutOfDialog(tx gosip.ServerTransaction, req *gosip.Request, err error) {
	if !s.trusted(req) {
		err = ErrUntrusted
	}
	s.replyErr(tx, req, err)
}

// callFor finds the live call of an in-dialog request (sip.DialogIDFromRequestUAS);
// a call being torn down no longer matches (481).
func (s *Server) callFor(req *gosip.Request) *call {
	id, err := gosip.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	c := s.reg.byDialogID(id)
	if c == nil || c.isEnding() {
		return nil
	}
	return c
}

func hasToTag(req *gosip.Request) bool {
	to := req.To()
	if to == nil {
		return false
	}
	tag, ok := to.Params.Get("tag")
	return ok && tag != ""
}

func contentType(req *gosip.Request) string {
	if ct := req.ContentType(); ct != nil {
		return ct.Value()
	}
	return ""
}

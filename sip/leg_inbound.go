package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
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

// onInvite handles an INVITE: a new call (its own goroutine, live, does the rest)
// or a re-INVITE in a dialog of ours. The handler keeps running until the call is
// done with the transaction (SIPGO-NOTES: if it returned earlier, every UDP
// retransmission of the INVITE would start a new call).
func (s *Server) onInvite(req *gosip.Request, tx gosip.ServerTransaction) {
	if hasToTag(req) {
		s.inDialog(req, tx)
		return
	}
	st, interval, err := s.admitInvite(req)
	if err != nil {
		switch {
		case errors.Is(err, ErrUntrusted):
			s.log.Warn("invite from untrusted source rejected", "source", req.Source())
		case errors.Is(err, ErrRateLimited):
			s.log.Warn("invite over the source's call rate rejected", "source", req.Source())
		}
		s.replyErr(tx, req, err)
		return
	}
	c := s.newCall(req, tx, st.supported, interval)
	err = s.reg.reserve(c, s.cfg.MaxCalls)
	if errors.Is(err, ErrOverCapacity) && s.evictUnacked() {
		err = s.reg.reserve(c, s.cfg.MaxCalls)
	}
	if err != nil {
		c.log.Warn("invite rejected", "error", err, "calls", s.reg.Count())
		s.replyErr(tx, req, err)
		return
	}
	if s.holdsUnconfirmed(c.sourceIP) {
		s.reg.remove(c)
		s.log.Warn("invite from a source with too many unconfirmed calls rejected", "source", req.Source())
		s.replyErr(tx, req, ErrRateLimited)
		return
	}
	c.log.Debug("invite caller", "caller", c.caller) // full number: debug only
	c.log.Info("invite", "caller", maskNumber(c.caller), "callee", c.callee, "source", c.source, "transport", c.transport)
	s.notifyStarted(c)
	s.reply(tx, req, 100, "Trying")
	// sipgo answers a CANCEL itself (200, then 487 to the INVITE); the call
	// learns of it here (SIPGO-NOTES).
	tx.OnCancel(func(*gosip.Request) {
		s.notifyCancelled()
		s.goTracked(func() { c.post(cancelEvent{}) })
	})
	if !s.spawn(c.live) {
		s.replyErr(tx, req, ErrClosed)
		s.reg.remove(c)
		return
	}
	select {
	case <-c.released:
	case <-c.done:
	}
}

// holdsUnconfirmed reports whether src holds too many unconfirmed calls (INVITE
// in, ACK not yet) counting the one just reserved: once half the call slots are
// taken, a source may hold at most max(minUnconfirmedPerSource, MaxCalls/10) of
// them, and a new INVITE over that gets 503. A PBX within its call rate holds a
// few (rate × (lookup wait + a round trip)); a flood of INVITEs that never ACK
// would hold the rest of the slots for 64*T1, even within its call rate.
// Checked after the slot is reserved, so concurrent INVITEs cannot overshoot.
func (s *Server) holdsUnconfirmed(src netip.Addr) bool {
	if s.reg.Count() < s.cfg.MaxCalls/2 {
		return false
	}
	return s.reg.unconfirmedFrom(src) > max(minUnconfirmedPerSource, s.cfg.MaxCalls/10)
}

// evictUnacked makes room at MaxCalls: calls answered longer than unackedGrace
// ago whose ACK never came (a flood of INVITEs that never ACK holds a slot for
// 64*T1 otherwise) are ended, and it waits (at most 500 ms) until one is gone.
// It reports whether one was.
func (s *Server) evictUnacked() bool {
	now := s.now()
	var victims []*call
	for _, c := range s.reg.all() {
		c.mu.Lock()
		stale := c.state == StateAnswered && now.Sub(c.answered) > unackedGrace
		c.mu.Unlock()
		if stale {
			victims = append(victims, c)
		}
	}
	if len(victims) == 0 {
		return false
	}
	s.log.Warn("at the call limit: ending calls whose ACK never came", "calls", len(victims))
	for _, c := range victims {
		s.goTracked(func() { c.post(hangupEvent{reason: EndNoAck}) })
	}
	deadline := time.Now().Add(500 * time.Millisecond)
	for time.Now().Before(deadline) {
		if s.reg.Count() < s.cfg.MaxCalls {
			return true
		}
		time.Sleep(10 * time.Millisecond)
	}
	return false
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
	if ok, _ := s.invites.allow(sourceAddr(req).String(), s.now()); !ok {
		return sessionTimerReq{}, 0, ErrRateLimited
	}
	if opts := unsupportedRequire(headerValues(req, "Require")); len(opts) > 0 {
		return sessionTimerReq{}, 0, &BadExtensionError{Options: opts}
	}
	return sessionTimerOf(req, s.cfg.SessionExpires)
}

// sessionTimerOf reads a request's RFC 4028 headers and negotiates the interval.
func sessionTimerOf(req *gosip.Request, ours time.Duration) (sessionTimerReq, time.Duration, error) {
	st, err := sessionTimerFromRequest(req)
	if err != nil {
		return st, 0, err
	}
	interval, err := st.negotiate(ours)
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
	s.goTracked(func() {
		defer s.wg.Done()
		f()
	})
	return true
}

func (s *Server) newCall(req *gosip.Request, tx gosip.ServerTransaction, timerSupported bool, interval time.Duration) *call {
	id := newCallID()
	src := sourceAddr(req)
	l := s.pickListener(req.Transport(), localAddrToward(src))
	from := ""
	if f := req.From(); f != nil {
		from = f.Value()
	}
	ctx, cancel := context.WithCancel(context.Background())
	c := &call{
		id:             id,
		srv:            s,
		log:            s.log.With("call_id", id),
		ctx:            ctx,
		cancel:         cancel,
		events:         make(chan event, 16),
		done:           make(chan struct{}),
		released:       make(chan struct{}),
		sipCallID:      req.CallID().Value(),
		caller:         callerNumber(from, headerValues(req, "P-Asserted-Identity"), s.trusted(req)),
		callee:         calledNumber(req),
		started:        s.now(),
		transport:      strings.ToUpper(req.Transport()),
		source:         req.Source(),
		sourceIP:       src,
		laddr:          l.addr,
		advertise:      s.advertiseFor(l, src),
		invite:         req,
		inviteTx:       tx,
		timerSupported: timerSupported,
		interval:       interval,
		state:          StateRinging,
	}
	return c
}

// openMedia binds an RTP port on the listener's address and starts a session
// with its offer/answer state. The port goes back to the allocator when the
// session closes.
func (s *Server) openMedia(laddr netip.AddrPort, advertise netip.Addr, sec legSRTP, log *slog.Logger) (*media.Session, *offerAnswer, error) {
	ip := laddr.Addr().Unmap()
	if !ip.IsValid() {
		ip = netip.IPv4Unspecified()
	}
	conn, err := s.ports.Listen(ip)
	if err != nil {
		return nil, nil, err
	}
	port := conn.LocalAddr().(*net.UDPAddr).Port
	sess, err := media.NewSession(media.SessionConfig{
		Conn:              conn,
		Codec:             media.PCMU,
		InactivityTimeout: s.cfg.RTPInactivity,
		OnClose:           func() { s.ports.Release(port) },
		Logger:            log,
		Pacer:             s.pacer,
	})
	if err != nil {
		_ = conn.Close()
		s.ports.Release(port)
		return nil, nil, err
	}
	// Nothing is sent before the offer/answer says where and how.
	sess.SetDirection(media.DirInactive)
	return sess, newOfferAnswer(advertise, port, sec), nil
}

// inDialog routes a request with a To tag: to an outbound leg (by Call-ID and
// tags), to a caller's dialog (sip.DialogIDFromRequestUAS), else 481 (403 from
// untrusted sources; a stray ACK is dropped).
func (s *Server) inDialog(req *gosip.Request, tx gosip.ServerTransaction) {
	if l := s.legs.find(req); l != nil {
		l.dispatch(req, tx)
		return
	}
	if c := s.callFor(req); c != nil {
		c.dispatch(req, tx)
		return
	}
	if req.IsAck() {
		return
	}
	s.replyOutOfDialog(tx, req, ErrCallNotFound)
}

// onAck hands an ACK to its dialog.
func (s *Server) onAck(req *gosip.Request, tx gosip.ServerTransaction) { s.inDialog(req, tx) }

// onBye hands a BYE to its dialog.
func (s *Server) onBye(req *gosip.Request, tx gosip.ServerTransaction) { s.inDialog(req, tx) }

// onInfo hands an INFO to its dialog.
func (s *Server) onInfo(req *gosip.Request, tx gosip.ServerTransaction) { s.inDialog(req, tx) }

// onUpdate hands an UPDATE (RFC 3311) to its dialog.
func (s *Server) onUpdate(req *gosip.Request, tx gosip.ServerTransaction) { s.inDialog(req, tx) }

// onNotify hands a NOTIFY to its dialog; one outside any dialog matches no
// subscription of ours (481, RFC 6665 §4.1.3).
func (s *Server) onNotify(req *gosip.Request, tx gosip.ServerTransaction) { s.inDialog(req, tx) }

// onCancel sees only CANCELs that match no INVITE transaction: sipgo answers a
// matching CANCEL itself (200, then 487 to the INVITE), and the call sees it
// through the INVITE transaction's end.
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

// callFor finds the live call of a caller-dialog request (DialogIDFromRequestUAS).
func (s *Server) callFor(req *gosip.Request) *call {
	id, err := gosip.DialogIDFromRequestUAS(req)
	if err != nil {
		return nil
	}
	return s.reg.byDialogID(id)
}

func hasToTag(req *gosip.Request) bool { return toTag(req) != "" }

func contentType(m interface {
	ContentType() *gosip.ContentTypeHeader
}) string {
	if ct := m.ContentType(); ct != nil {
		return ct.Value()
	}
	return ""
}

// setToTag puts our dialog's tag on a response's To (RFC 3261 §8.2.6.2), in
// place of the random one sipgo's NewResponseFromRequest adds.
func setToTag(res *gosip.Response, tag string) {
	to := res.To()
	if to == nil || tag == "" {
		return
	}
	to.Params.Remove("tag")
	to.Params.Add("tag", tag)
}

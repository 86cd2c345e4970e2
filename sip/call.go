package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/netip"
	"sync"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
)

// byeTimeout bounds sending our BYE during teardown.
const byeTimeout = 4 * time.Second

// call is one inbound call and, during a warm or bridged transfer, its outbound
// leg. It is an actor (STYLE 11b): one goroutine, live, owns it from the INVITE to
// the call record. sipgo's goroutines, media, timers and the API only post events
// to it (post); every change of the call's state happens on that goroutine, and
// teardown and the record happen once, at the end of live.
//
// A reader finds the call's whole life in this file, top to bottom: live (answer,
// menu, teardown) and handle (what any event does while the flow waits).
// side.go serves re-INVITE/UPDATE/ACK the same way for both legs. The flow's steps (menu.go, transfer.go, refer.go,
// bridge_call.go, unavailable.go) run on the same goroutine and wait with
// selects that pass every event they do not consume to handle.
type call struct {
	id     string
	srv    *Server
	log    *slog.Logger
	ctx    context.Context // cancelled when the call starts ending
	cancel context.CancelFunc
	events chan event
	done   chan struct{} // closed when teardown and the record are done
	// released is closed when the INVITE handler may return (the final response
	// is out and, for a 2xx, its ACK came or never will).
	released    chan struct{}
	releaseOnce sync.Once

	// Set before live starts, read-only afterwards.
	sipCallID string
	caller    string
	callee    string
	started   time.Time
	transport string // "UDP" or "TCP"
	source    string // transport source of the INVITE (host:port)
	sourceIP  netip.Addr
	laddr     netip.AddrPort
	advertise netip.Addr
	invite    *gosip.Request
	inviteTx  gosip.ServerTransaction
	dialogID  string // guarded by Registry.mu
	// unconfirmed: counted in Registry.unconfirmed (guarded by Registry.mu).
	unconfirmed bool

	// Owned by live's goroutine (set from the INVITE before it starts).
	timerSupported bool          // the caller supports RFC 4028 timers
	interval       time.Duration // negotiated session interval, 0 = none
	in             *inLeg        // the caller's leg
	out            *outLeg       // the outbound leg of a warm or bridged transfer
	refer          *referSub
	lookupIn       bool // the lookup result is attached (or given up)
	pending        *injectEvent
	warmTries      int
	expiry         *time.Timer   // RFC 4028 session expiry
	ringStop       func()        // stops the ringback the caller hears
	msgDone        chan struct{} // closed when the rule's message, played while dialling, ends
	msgStop        func()        // cuts the rule's message short and waits for it
	agentReport    func(int)     // the agent's final sipfrag, pending an accepted transfer (agent.go)
	agentTried     bool          // the stream agent had the call (agent_stream.go)

	// recStart is closed when the write of the row at the INVITE is over (cdr.go);
	// set at the start of live, nil without call records.
	recStart chan struct{}

	// Written by live's goroutine only, under mu; read by others (snapshot,
	// Transfer, the registry).
	mu        sync.Mutex
	state     CallState
	heldFrom  CallState
	answered  time.Time
	endReason EndReason
	lookupRes lookup.Result
	intents   []routing.Intent
	dec       routing.Decision
	hasDec    bool
	outcome   records.Outcome
	agent     agentPart // the voice agent's part, for the record (agent.go)

	obs callObs // observer notifications in order (observe.go)
}

// inLeg is the caller's leg: its side (dialog, media, offer/answer) and where
// the initial INVITE stands.
type inLeg struct {
	side
	answered  bool // our 2xx to the INVITE went out
	confirmed bool // its ACK arrived
	byeIn     bool // the caller's BYE arrived
}

// pendingAck is a 2xx to an INVITE (initial or re-INVITE) waiting for its ACK
// (RFC 3261 §13.3.1.4); offer: the 2xx carried our offer, the answer comes in the
// ACK (late offer, offerless re-INVITE).
type pendingAck struct {
	side  *side
	cseq  uint32
	offer bool
	acked chan struct{} // closed by the call's goroutine when the ACK arrives
	ev    *reqEvent     // a re-INVITE's event, released after the ACK
}

func newCallID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// live is the call's goroutine: answer, menu and transfers, then teardown and
// the record, once.
func (c *call) live() {
	defer c.teardown()
	c.srv.goTracked(func() { c.runLookup() })
	c.startRecord()
	if c.srv.redirect(c) { // sip.mode redirect: 302 when the rules allow
		return
	}
	if !c.answer() {
		return
	}
	c.srv.reg.confirmed(c)
	c.setState(StateInMenu)
	if c.agentStreamFirst() || c.agentAtStart() { // agent.mode first: a media-stream agent (agent_stream.go) or a SIP one (agent.go)
		return
	}
	c.menu()
}

// answer answers the INVITE: offer/answer (or our offer for a late-offer INVITE),
// media, at most AnswerWait for the lookup, 200, and its ACK. False when the call
// ends before it is confirmed.
func (c *call) answer() bool {
	req, tx := c.invite, c.inviteTx
	d := uasDialog(req, gosip.GenerateTagN(16))
	d.laddr, d.advertise, d.userAgent = c.laddr, c.advertise, c.srv.cfg.UserAgent
	c.in = &inLeg{side: side{name: "caller", log: c.log, dlg: d}}
	if !c.srv.reg.setDialog(gosip.DialogIDMake(d.callID, d.localTag, d.remoteTag), c) {
		c.respondInvite(480, "Temporarily Unavailable")
		return false
	}
	sess, oa, err := c.srv.openMedia(c.laddr, c.advertise, c.srv.inboundSRTP(req), c.log)
	if err != nil {
		c.log.Error("media setup failed", "error", err)
		c.rejectInvite(err)
		return false
	}
	c.in.sess, c.in.oa = sess, oa
	c.srv.goTracked(func() { c.watchMedia(sess) })
	var body []byte
	lateOffer := len(req.Body()) == 0
	if lateOffer {
		body = oa.createOffer() // RFC 3261 §13.2.1: the answer comes in the ACK
	} else {
		body, err = oa.receiveOffer(contentType(req), req.Body())
		if err != nil {
			c.log.Info("offer rejected", "error", err)
			c.rejectInvite(err)
			return false
		}
		c.applyMedia(&c.in.side)
	}

	// Answering waits at most AnswerWait for the lookup.
	wait := time.NewTimer(c.srv.cfg.AnswerWait)
	defer wait.Stop()
	waited := false
	for !c.lookupIn && !waited {
		select {
		case ev := <-c.events:
			c.handle(ev)
		case <-wait.C:
			waited = true // the menu waits for the rest of it
		case <-tx.Done():
			c.log.Info("invite transaction ended before answer")
			c.finish(EndCallerCancel)
		case <-c.ctx.Done():
		}
		if c.ctx.Err() != nil {
			c.respondInvite(480, "Temporarily Unavailable")
			return false
		}
	}

	res := c.okResponse(&c.in.side, req, body)
	c.in.answered = true
	c.setAnswered(c.srv.now())
	if err := tx.Respond(res); err != nil {
		c.log.Info("answer failed", "error", err)
		c.finish(mapError(err).End)
		return false
	}
	c.srv.notifyResponse("INVITE", 200)
	neg := oa.negotiated()
	c.log.Info("answered", "codec", neg.Codec.Name, "remote_rtp", neg.Remote.String(),
		"local_rtp_port", sess.LocalPort(), "session_interval", c.interval, "late_offer", lateOffer)
	c.in.ack = &pendingAck{side: &c.in.side, cseq: req.CSeq().SeqNo, offer: lateOffer, acked: make(chan struct{})}
	c.retransmit(&c.in.side, tx, res, c.in.ack, c.release)
	for !c.in.confirmed {
		select {
		case ev := <-c.events:
			c.handle(ev)
		case <-c.ctx.Done():
			return false
		}
	}
	c.armExpiry()
	return true
}

// watchMedia turns the caller session's inactivity timeout into an event.
func (c *call) watchMedia(sess *media.Session) {
	select {
	case <-sess.Timeout():
		c.post(rtpTimeoutEvent{})
	case <-c.done:
	}
}

// rejectInvite answers the INVITE with the response mapError gives for err and
// ends the call with its reason.
func (c *call) rejectInvite(err error) {
	c.srv.replyErrTagged(c.inviteTx, c.invite, c.toTag(), err)
	c.finish(mapError(err).End)
	c.release()
}

// respondInvite answers the INVITE with a final non-2xx response (when none went
// out yet).
func (c *call) respondInvite(code int, phrase string) {
	if c.in == nil || !c.in.answered {
		c.srv.replyTagged(c.inviteTx, c.invite, c.toTag(), code, phrase)
	}
	c.release()
}

// toTag is our To tag for responses to the INVITE ("" before the dialog exists).
func (c *call) toTag() string {
	if c.in == nil {
		return ""
	}
	return c.in.dlg.localTag
}

func (c *call) release() { c.releaseOnce.Do(func() { close(c.released) }) }

// armExpiry (re)starts the RFC 4028 session expiry (§10: the interval minus
// min(32 s, interval/3) after the last refresh).
func (c *call) armExpiry() {
	if c.interval <= 0 {
		return
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	c.expiry = time.AfterFunc(expireAfter(c.interval), func() { c.post(expiryEvent{}) })
}

// finish starts the end of the call with reason (the first reason wins): the
// call's context is cancelled, every wait of the flow returns, and live's
// teardown runs. Only live's goroutine calls it; others post hangupEvent.
func (c *call) finish(reason EndReason) {
	if c.ctx.Err() != nil {
		return
	}
	c.mu.Lock()
	c.endReason = reason
	c.state = StateEnding
	c.mu.Unlock()
	c.cancel()
}

func (c *call) ending() bool { return c.ctx.Err() != nil }

// teardown ends the call once, in this order: the outbound leg (BYE or CANCEL),
// our BYE to the caller (when a 2xx went out and the dialog still stands), media,
// ports, the registry entry, the call record and CallEnded. It runs at the end of
// live, on the call's goroutine, never under a request context.
func (c *call) teardown() {
	if c.endReason == EndUnknown || c.ctx.Err() == nil {
		c.finish(EndError)
	}
	if c.expiry != nil {
		c.expiry.Stop()
	}
	if c.out != nil {
		c.out.hangup(c)
		c.out = nil
	}
	if in := c.in; in != nil && in.answered && !in.byeIn && !in.dlg.ended {
		if !in.confirmed {
			// No ACK: the session still ends with BYE (RFC 3261 §13.3.1.4), but a
			// caller that never ACKed rarely answers it: the call's slot is not
			// held for the BYE's answer.
			c.log.Debug("bye before the ack arrived")
			bye := in.dlg.request(gosip.BYE)
			in.dlg.ended = true
			c.srv.goTracked(func() { _, _ = c.srv.roundTrip(bye, byeTimeout) })
		} else if err := c.sendBye(in.dlg); err != nil {
			c.log.Warn("bye failed", "error", err)
		}
	}
	c.release()
	if c.in != nil && c.in.sess != nil {
		sess := c.in.sess
		st := sess.Stats()
		_ = sess.Close()
		c.notifyRTPStats(sess.Stats())
		c.log.Debug("media closed", "packets_in", st.PacketsIn, "packets_out", st.PacketsOut, "dropped", st.Dropped)
	}
	c.srv.reg.remove(c)
	c.setState(StateEnded)
	c.awaitLookup()
	c.writeRecord()
	c.notifyEnded(c.endReason)
	close(c.done)
	c.drainEvents()
	c.log.Info("call ended", "reason", c.endReason.String(), "duration", time.Since(c.started).Round(time.Millisecond))
}

// awaitLookup gives a lookup still running (cancelled with the call) up to
// lookupEndWait to attach its result, so that LookupDone comes before CallEnded
// and the record has it; requests meanwhile get 481.
func (c *call) awaitLookup() {
	if c.lookupRes.Status != lookup.StatusUnknown {
		return
	}
	t := time.NewTimer(lookupEndWait)
	defer t.Stop()
	for {
		select {
		case ev := <-c.events:
			switch ev := ev.(type) {
			case lookupEvent:
				c.attachLookup(ev.res)
				return
			case *reqEvent:
				ev.reply(c.srv, 481, "Call/Transaction Does Not Exist")
			}
		case <-t.C:
			return
		}
	}
}

// drainEvents answers what was posted but never handled: in-dialog requests get
// 481 now that the dialog is gone.
func (c *call) drainEvents() {
	for {
		select {
		case ev := <-c.events:
			if r, ok := ev.(*reqEvent); ok {
				r.reply(c.srv, 481, "Call/Transaction Does Not Exist")
			}
		default:
			return
		}
	}
}

// sendBye sends BYE in d and waits for its final response, bounded by byeTimeout.
func (c *call) sendBye(d *dialog) error {
	bye := d.request(gosip.BYE)
	d.ended = true
	_, err := c.srv.roundTrip(bye, byeTimeout)
	return err
}

// ---- events ----

// event is anything posted to a call: *reqEvent, responseEvent, txDoneEvent,
// ackTimeoutEvent, expiryEvent, *injectEvent, hangupEvent, retryEvent.
type event any

// reqEvent is a request of the call's dialogs (leg nil: the caller's), posted by
// a sipgo handler that waits for released before it returns (the transaction
// lives as long as the handler).
type reqEvent struct {
	req      *gosip.Request
	tx       gosip.ServerTransaction
	leg      *outLeg
	released chan struct{}
	once     sync.Once
	replied  bool
}

// reply answers the request once and releases its handler.
func (r *reqEvent) reply(s *Server, code int, phrase string, hdrs ...gosip.Header) {
	r.once.Do(func() {
		r.replied = true
		if !r.req.IsAck() {
			s.reply(r.tx, r.req, code, phrase, hdrs...)
		}
		close(r.released)
	})
}

// replyErr answers the request with mapError's response for err (an ACK gets
// none).
func (r *reqEvent) replyErr(s *Server, err error) {
	r.once.Do(func() {
		r.replied = true
		if !r.req.IsAck() {
			s.replyErr(r.tx, r.req, err)
		}
		close(r.released)
	})
}

// respond sends res (a 2xx kept for retransmission) without releasing the
// handler: done releases it.
func (r *reqEvent) respond(res *gosip.Response) error {
	return r.tx.Respond(res)
}

func (r *reqEvent) done() {
	r.once.Do(func() { close(r.released) })
}

// responseEvent is a response to one of our client transactions.
type responseEvent struct {
	tx  *clientTx
	res *gosip.Response
}

// txDoneEvent: one of our client transactions ended without (more) responses.
type txDoneEvent struct {
	tx  *clientTx
	err error
}

// ackTimeoutEvent: no ACK for a 2xx within 64*T1.
type ackTimeoutEvent struct{ ack *pendingAck }

// expiryEvent: the RFC 4028 session expired without a refresh.
type expiryEvent struct{}

// rtpTimeoutEvent: no RTP from the caller for RTPInactivity.
type rtpTimeoutEvent struct{}

// lookupEvent carries the caller lookup's result.
type lookupEvent struct{ res lookup.Result }

// cancelEvent: the caller's CANCEL arrived (sipgo answered it with 200 and 487).
type cancelEvent struct{}

// hangupEvent ends the call (API, drain, shutdown).
type hangupEvent struct{ reason EndReason }

// retryEvent retries our hold reflection after a 491 (RFC 3261 §14.1).
type retryEvent struct{ side *side }

// callFunc runs on the call's goroutine (inspection and adjustment from tests
// and tools without a data race).
type callFunc func()

// post hands ev to the call's goroutine; false when the call is over.
func (c *call) post(ev event) bool {
	select {
	case c.events <- ev:
		return true
	case <-c.done:
		return false
	}
}

// dispatch hands an in-dialog request to the call and waits until the call has
// answered it (and, for a 2xx to a re-INVITE, until its ACK): sipgo ends the
// transaction when the handler returns.
func (c *call) dispatch(req *gosip.Request, tx gosip.ServerTransaction) {
	ev := &reqEvent{req: req, tx: tx, released: make(chan struct{})}
	if !c.post(ev) {
		ev.reply(c.srv, 481, "Call/Transaction Does Not Exist")
		return
	}
	select {
	case <-ev.released:
	case <-c.done:
		ev.reply(c.srv, 481, "Call/Transaction Does Not Exist")
	}
}

// handle is what any event does while the flow waits for something else. The
// flow's own waits consume the events they are waiting for before this.
func (c *call) handle(ev event) {
	switch ev := ev.(type) {
	case *reqEvent:
		c.handleCallerRequest(ev)
	case responseEvent:
		c.handleResponse(ev)
	case txDoneEvent:
		c.handleTxDone(ev)
	case ackTimeoutEvent:
		c.onAckTimeout(ev.ack)
	case expiryEvent:
		c.log.Info("session expired without refresh")
		c.finish(EndSessionExpired)
	case rtpTimeoutEvent:
		c.log.Info("rtp inactivity timeout")
		c.finish(EndRTPTimeout)
	case lookupEvent:
		c.attachLookup(ev.res)
	case hangupEvent:
		c.finish(ev.reason)
	case cancelEvent:
		if c.in == nil || !c.in.answered {
			c.log.Info("cancelled before answer")
			c.finish(EndCallerCancel)
		}
	case *injectEvent:
		ev.reply <- ErrCallState // only the menu takes intents
	case retryEvent:
		c.reflectHold(ev.side, ev.side.wantHold)
	case callFunc:
		ev()
	}
}

// handleCallerRequest serves a request in the caller's dialog.
func (c *call) handleCallerRequest(ev *reqEvent) {
	req, in := ev.req, c.in
	if c.ending() || in == nil || in.byeIn || in.dlg.ended {
		ev.reply(c.srv, 481, "Call/Transaction Does Not Exist")
		return
	}
	if !c.admitInDialog(&in.side, ev) {
		return
	}
	switch req.Method {
	case gosip.BYE:
		in.byeIn = true
		in.dlg.ended = true
		ev.reply(c.srv, 200, "OK")
		c.log.Info("caller hung up")
		c.finish(EndCallerBye)
	case gosip.INVITE, gosip.UPDATE:
		c.onOffer(&in.side, ev)
	case gosip.INFO:
		c.onInfo(ev, in.sess)
	case gosip.OPTIONS:
		ev.reply(c.srv, 200, "OK", capabilityHeaders()...)
	case gosip.NOTIFY:
		c.onNotify(ev)
	default:
		ev.replyErr(c.srv, ErrMethodNotAllowed)
	}
}

// onInfo serves INFO: application/dtmf-relay digits go into the session's DTMF
// stream (RFC 6086 legacy usage), an empty INFO is a keep-alive, others get 415.
func (c *call) onInfo(ev *reqEvent, sess *media.Session) {
	d, err := infoDigit(contentType(ev.req), ev.req.Body())
	switch {
	case errors.Is(err, errEmptyInfo):
		ev.reply(c.srv, 200, "OK")
	case err != nil:
		c.log.Info("info rejected", "error", err)
		ev.replyErr(c.srv, err)
	default:
		ev.reply(c.srv, 200, "OK")
		if sess != nil {
			sess.InjectDTMF(d)
		}
	}
}

// ---- lookup ----

// runLookup runs the caller lookup (started the moment the call exists) and hands
// its result to the call's goroutine. A failed or slow lookup never stops the call.
func (c *call) runLookup() {
	var res lookup.Result
	switch {
	case c.srv.lookup == nil:
		res = lookup.Result{Status: lookup.StatusUnconfigured}
	case c.caller == "":
		res = lookup.Result{Status: lookup.StatusNotFound, Reason: "withheld"}
	default:
		ctx, cancel := context.WithTimeout(c.ctx, c.srv.cfg.LookupTimeout)
		res = c.safeLookup(ctx)
		if res.Status == lookup.StatusUnknown {
			res = lookup.Result{Status: lookup.StatusError, Reason: "no_result"}
			if ctx.Err() != nil {
				res.Reason = "timeout"
			}
		}
		cancel()
	}
	c.post(lookupEvent{res: res})
}

func (c *call) safeLookup(ctx context.Context) (res lookup.Result) {
	defer func() {
		if r := recover(); r != nil {
			c.log.Error("caller lookup panicked", "panic", r)
			res = lookup.Result{Status: lookup.StatusError, Reason: "panic"}
		}
	}()
	return c.srv.lookup.Lookup(ctx, c.caller)
}

// attachLookup attaches the lookup result to the call (on live's goroutine).
func (c *call) attachLookup(res lookup.Result) {
	c.mu.Lock()
	c.lookupRes = res
	c.mu.Unlock()
	c.lookupIn = true
	c.notifyLookup(res)
	attrs := []any{"status", res.Status.String(), "cached", res.Cached}
	if res.Reason != "" {
		attrs = append(attrs, "reason", res.Reason)
	}
	if res.Contact != nil {
		attrs = append(attrs, "contact_id", res.Contact.ID)
	}
	if res.Matter != nil {
		attrs = append(attrs, "matter_id", res.Matter.ID)
	}
	if res.Staff != nil {
		attrs = append(attrs, "staff_id", res.Staff.ID)
	}
	c.log.Info("caller lookup done", attrs...)
}

// ---- published state ----

func (c *call) setState(s CallState) {
	c.mu.Lock()
	defer c.mu.Unlock()
	switch {
	case c.state == StateEnding && s != StateEnded:
	case c.state == StateHeld && s != StateEnding && s != StateEnded:
		c.heldFrom = s
	default:
		c.state = s
	}
}

func (c *call) setAnswered(t time.Time) {
	c.mu.Lock()
	c.answered = t
	c.state = StateAnswered
	c.mu.Unlock()
}

func (c *call) addIntent(in routing.Intent) {
	c.mu.Lock()
	c.intents = append(c.intents, in)
	c.mu.Unlock()
}

func (c *call) snapshot() CallSnapshot {
	c.mu.Lock()
	defer c.mu.Unlock()
	var dec *routing.Decision
	if c.dec.Action != routing.ActionUnknown {
		d := c.dec
		d.Def = nil // the rule definition stays inside routing
		dec = &d
	}
	return CallSnapshot{
		Decision: dec,
		ID:       c.id, SIPCallID: c.sipCallID, Caller: c.caller, Callee: c.callee,
		State: c.state, Started: c.started, Answered: c.answered,
		Lookup: c.lookupRes, LookupDone: c.lookupRes.Status != lookup.StatusUnknown,
		Intents:   append([]routing.Intent(nil), c.intents...),
		EndReason: c.endReason,
	}
}

func (c *call) info() CallInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	return CallInfo{ID: c.id, SIPCallID: c.sipCallID, Caller: c.caller, Callee: c.callee,
		Lookup: c.lookupRes, LookupDone: c.lookupRes.Status != lookup.StatusUnknown}
}

// session is the caller's media session (nil before the answer).
func (c *call) session() *media.Session {
	if c.in == nil {
		return nil
	}
	return c.in.sess
}

package sip

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/icholy/digest"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// answerResult is how an outbound INVITE ended.
type answerResult uint8

const (
	answerUnknown   answerResult = iota
	answerOK                     // 2xx: ACKed, media up
	answerBusy                   // 486 Busy Here, 600 Busy Everywhere
	answerDeclined               // 603 Decline
	answerNoAnswer               // ring timeout (CANCEL sent), 408, 480
	answerFailed                 // any other failure
	answerAbandoned              // the caller left meanwhile (CANCEL sent)
)

// legTable finds outbound legs by SIP Call-ID (SIPGO-NOTES: sipgo's client dialog
// cannot read in-dialog requests, so we route them ourselves; a leg is registered
// before its INVITE leaves).
type legTable struct {
	mu sync.Mutex
	m  map[string]*outLeg
	// recent are released legs, kept for 64*T1 so that a 2xx that arrives after
	// the leg let go is still ACKed and ended with BYE (never left answered).
	recent map[string]recentLeg
}

type recentLeg struct {
	leg   *outLeg
	until time.Time
}

func (t *legTable) add(l *outLeg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m == nil {
		t.m = map[string]*outLeg{}
	}
	t.m[l.callID] = l
}

func (t *legTable) remove(l *outLeg) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.m[l.callID] == l {
		delete(t.m, l.callID)
	}
	now := time.Now()
	if t.recent == nil {
		t.recent = map[string]recentLeg{}
	}
	for id, r := range t.recent {
		if now.After(r.until) {
			delete(t.recent, id)
		}
	}
	t.recent[l.callID] = recentLeg{leg: l, until: now.Add(64 * gosip.T1)}
}

// released returns a leg released in the last 64*T1.
func (t *legTable) released(callID string) *outLeg {
	t.mu.Lock()
	defer t.mu.Unlock()
	if r, ok := t.recent[callID]; ok && time.Now().Before(r.until) {
		return r.leg
	}
	return nil
}

// strayResponse takes a response no transaction wanted (sipgo's unhandled
// response handler): a 2xx to an outbound leg's INVITE after its transaction
// ended (a retransmission, another fork, or an answer after the leg let go). A
// live leg's owner handles it; a released leg's is ACKed and, unless it is the
// dialog we had already ended with BYE, ended with BYE (RFC 3261 §13.2.2.4).
// Responses for Call-IDs we never used are dropped, so a forged 2xx cannot make
// us send requests elsewhere.
func (s *Server) strayResponse(res *gosip.Response) {
	if !res.IsSuccess() || res.CSeq() == nil || res.CSeq().MethodName != gosip.INVITE || res.CallID() == nil {
		return
	}
	id := res.CallID().Value()
	if l := s.legs.get(id); l != nil {
		s.goTracked(func() { l.post(strayEvent{res: res}) })
		return
	}
	l := s.legs.released(id)
	if l == nil || !l.answersFrom(res.Source()) {
		return
	}
	if l.confirmed && toTag(res) == l.dlg.remoteTag {
		if l.lastAck != nil {
			_ = s.client.WriteRequest(l.lastAck.Clone())
		}
		return
	}
	fork := l.dlg.fork(res)
	l.log.Info("answer after the leg was released: ack and bye", "to_tag", fork.remoteTag)
	_ = s.client.WriteRequest(fork.ack(res.CSeq().SeqNo))
	bye := fork.request(gosip.BYE)
	s.goTracked(func() {
		if _, err := s.roundTrip(bye, byeTimeout); err != nil {
			l.log.Debug("bye after release", "error", err)
		}
	})
}

// answersFrom reports whether src (host:port) may answer the leg's INVITE: the
// address the INVITE was sent to, when that is an IP address.
func (l *outLeg) answersFrom(src string) bool {
	dest := l.invite.Destination()
	dh, _, err := net.SplitHostPort(dest)
	if err != nil {
		return false
	}
	want, err := netip.ParseAddr(strings.Trim(dh, "[]"))
	if err != nil {
		return true // a host name: its addresses are not known here
	}
	sh, _, err := net.SplitHostPort(src)
	if err != nil {
		return false
	}
	got, err := netip.ParseAddr(sh)
	return err == nil && got.Unmap() == want.Unmap()
}

// strayEvent is a 2xx to the leg's INVITE that reached no transaction.
type strayEvent struct{ res *gosip.Response }

func (t *legTable) get(callID string) *outLeg {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[callID]
}

// find returns the leg a request from a callee belongs to (by Call-ID; the tags
// are checked by the leg's owner).
func (t *legTable) find(req *gosip.Request) *outLeg {
	id := req.CallID()
	if id == nil {
		return nil
	}
	return t.get(id.Value())
}

// count is the number of live outbound legs (tests).
func (t *legTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// outLeg is the outbound leg of a warm (or bridged fallback) transfer: matterline
// as UAC towards the destination. Its call's goroutine owns it; when the call lets
// go of a leg that is still ringing, a reaper goroutine takes it over (reap). Its
// transactions' responses and the callee's requests arrive in inbox, which only
// the owner reads.
type outLeg struct {
	srv    *Server
	call   *call
	log    *slog.Logger
	callID string
	inbox  chan event
	closed chan struct{} // closed when the leg is released
	once   sync.Once

	// Owned by the leg's owner.
	side
	invite      *gosip.Request // the INVITE as last sent (after a challenge, with credentials)
	inv         *clientTx
	viaProxy    bool // the INVITE went to the outbound proxy
	conn        *net.UDPConn
	port        int
	provisional bool
	confirmed   bool // a 2xx was ACKed
	final       bool // the INVITE has its final response
	lastAck     *gosip.Request
	authTries   int
	gone        bool          // the callee's BYE, or a 481/408 ended the dialog
	early       *media.Bridge // early media relayed to the caller
	earlyWaits  bool          // early media came while the rule's message played: relay it after
}

// post hands ev to the leg's owner; false once the leg is released.
func (l *outLeg) post(ev event) bool {
	select {
	case l.inbox <- ev:
		return true
	case <-l.closed:
		return false
	}
}

// dispatch hands a request from the callee to the leg's owner and waits until it
// is answered (see call.dispatch).
func (l *outLeg) dispatch(req *gosip.Request, tx gosip.ServerTransaction) {
	ev := &reqEvent{req: req, tx: tx, leg: l, released: make(chan struct{})}
	if !l.post(ev) {
		ev.reply(l.srv, 481, "Call/Transaction Does Not Exist")
		return
	}
	select {
	case <-ev.released:
	case <-l.closed:
		ev.reply(l.srv, 481, "Call/Transaction Does Not Exist")
	}
}

// legIdentity is who the callee sees: From and P-Asserted-Identity (RFC 3325) and,
// when showing the caller's number, a Diversion (RFC 5806) naming the service
// number so trunks that check caller ID accept it.
type legIdentity struct {
	user      string
	diversion string // service number, "" = none
}

func (s *Server) identityFor(c *call, dec routing.Decision) legIdentity {
	if dec.CallerID == routing.CallerIDService || c.caller == "" {
		user := s.cfg.ServiceNumber
		if user == "" {
			user = "matterline"
		}
		return legIdentity{user: user}
	}
	return legIdentity{user: c.caller, diversion: s.cfg.ServiceNumber}
}

// dialOut places the outbound INVITE for dec with an SDP offer from a new RTP
// port and returns at once; waitAnswer follows it. The leg is registered by
// Call-ID before the INVITE leaves.
func (c *call) dialOut(dec routing.Decision, extra ...gosip.Header) (*outLeg, error) {
	s := c.srv
	t, err := s.targetFor(dec.Destination)
	if err != nil {
		return nil, err
	}
	destAddr := netip.Addr{}
	hostPort := t.dest
	if hostPort == "" {
		hostPort = t.uri.HostPort()
	}
	if ap, err := netip.ParseAddrPort(hostPort); err == nil {
		destAddr = ap.Addr().Unmap()
	} else if a, err := netip.ParseAddr(strings.Trim(t.uri.Host, "[]")); err == nil {
		destAddr = a.Unmap()
	}
	lst := s.pickListener(t.tport, localAddrToward(destAddr))
	if t.tport == "TLS" && lst.network != "tls" {
		return nil, ErrNoTLSListener // never a plain-text fallback
	}
	leg := &outLeg{
		srv:      s,
		call:     c,
		callID:   uuid.NewString(),
		inbox:    make(chan event, 16),
		closed:   make(chan struct{}),
		viaProxy: t.number != "",
	}
	leg.log = c.log.With("leg_call_id", leg.callID)
	leg.side.name, leg.side.log = "callee", leg.log
	id := s.identityFor(c, dec)
	advertise := s.advertiseFor(lst, destAddr)
	leg.dlg = &dialog{
		callID:       leg.callID,
		localTag:     gosip.GenerateTagN(16),
		local:        gosip.Uri{Scheme: "sip", User: id.user, Host: advertise.String()},
		remote:       gosip.Uri{Scheme: t.uri.Scheme, User: t.uri.User, Host: t.uri.Host, Port: t.uri.Port},
		remoteTarget: t.uri,
		localCSeq:    1,
		transport:    strings.ToUpper(lst.network),
		secure:       strings.EqualFold(t.uri.Scheme, "sips"),
		laddr:        lst.addr,
		advertise:    advertise,
		userAgent:    s.cfg.UserAgent,
	}
	conn, err := s.ports.Listen(lst.addr.Addr().Unmap())
	if err != nil {
		return nil, err
	}
	leg.conn = conn
	leg.port = conn.LocalAddr().(*net.UDPAddr).Port
	// Offer the caller's codec first so that the bridge need not transcode.
	var prefer []media.Codec
	if sess := c.session(); sess != nil {
		prefer = append(prefer, sess.Codec())
	}
	sec := s.srtpToward(t)
	if dec.Def != nil {
		sec = sec.forRule(dec.Def.SRTP)
	}
	leg.oa = newOfferAnswer(advertise, leg.port, sec, prefer...)

	req := leg.dlg.build(gosip.INVITE, 1)
	if t.dest != "" {
		req.SetDestination(t.dest) // the outbound proxy (RFC 3261 §8.1.2)
	}
	if ap, err := netip.ParseAddrPort(req.Destination()); err == nil {
		leg.dlg.peer = ap.Addr().Unmap()
	}
	pai := gosip.Uri{Scheme: "sip", User: id.user, Host: advertise.String()}
	req.AppendHeader(gosip.NewHeader("P-Asserted-Identity", "<"+pai.String()+">"))
	if id.diversion != "" {
		div := gosip.Uri{Scheme: "sip", User: id.diversion, Host: advertise.String()}
		req.AppendHeader(gosip.NewHeader("Diversion", "<"+div.String()+">;reason=unconditional;counter=1"))
	}
	// No "Supported: timer": the leg sends no session refreshes (RFC 4028 §7.1
	// would let the callee make us the refresher).
	for _, h := range extra { // the agent's X-Matterline-* headers (agent.go)
		req.AppendHeader(h)
	}
	req.AppendHeader(gosip.NewHeader("Allow", allowHeader))
	req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(leg.oa.createOffer())
	leg.invite = req

	s.legs.add(leg)
	leg.inv, err = c.startTx(txInvite, leg, req, 0)
	if err != nil {
		leg.release()
		logTLSRefusal(leg.log, t.uri.String(), err)
		return nil, fmt.Errorf("invite %s: %w", t.uri.String(), err)
	}
	// The destination is a rule's (staff) number; the caller's number is masked.
	leg.log.Info("outbound invite", "to", t.uri.String(), "via", t.dest, "from", maskNumber(id.user))
	return leg, nil
}

// onInviteResponse takes a response to the leg's INVITE while the call waits for
// the answer. done reports a final outcome.
func (l *outLeg) onInviteResponse(c *call, res *gosip.Response) (answerResult, bool) {
	switch {
	case res.IsProvisional():
		if res.StatusCode > 100 {
			l.provisional = true
		}
		if res.StatusCode == 183 || res.StatusCode == 180 {
			l.earlyMedia(c, res)
		}
		return answerUnknown, false
	case res.IsSuccess():
		if err := l.answered(c, res); err != nil {
			l.log.Warn("answer unusable", "error", err)
			return answerFailed, true
		}
		return answerOK, true
	}
	l.final = true
	if (res.StatusCode == 401 || res.StatusCode == 407) && l.authenticate(c, res) {
		return answerUnknown, false
	}
	l.log.Info("outbound invite rejected", "status", res.StatusCode, "reason", res.Reason)
	switch res.StatusCode {
	case 486, 600:
		return answerBusy, true
	case 603:
		return answerDeclined, true
	case 408, 480, 487:
		return answerNoAnswer, true
	}
	return answerFailed, true
}

// authenticate answers a 401/407 challenge (RFC 3261 §22.2, §22.3) with
// sip.outbound_auth's credentials: the same INVITE with Authorization or
// Proxy-Authorization, the next CSeq and a new branch. Only challenges from the
// outbound proxy's path (or of the configured realm) are answered, once per
// realm, so credentials never go to an arbitrary destination.
func (l *outLeg) authenticate(c *call, res *gosip.Response) bool {
	auth := l.srv.cfg.OutboundAuth
	if auth.Username == "" || l.authTries >= 2 {
		return false
	}
	hdrName, credName := "WWW-Authenticate", "Authorization"
	if res.StatusCode == 407 {
		hdrName, credName = "Proxy-Authenticate", "Proxy-Authorization"
	}
	h := res.GetHeader(hdrName)
	if h == nil {
		return false
	}
	chal, err := digest.ParseChallenge(h.Value())
	if err != nil {
		l.log.Info("challenge unreadable", "error", err)
		return false
	}
	switch {
	case auth.Realm != "" && chal.Realm != auth.Realm:
		l.log.Info("challenge from another realm not answered", "realm", chal.Realm)
		return false
	case auth.Realm == "" && !l.viaProxy:
		l.log.Info("challenge not from the outbound proxy not answered", "realm", chal.Realm)
		return false
	}
	chal.Algorithm = strings.ToUpper(chal.Algorithm)
	cred, err := digest.Digest(chal, digest.Options{Method: "INVITE", URI: l.invite.Recipient.Addr(),
		Username: auth.Username, Password: auth.Password})
	if err != nil {
		l.log.Info("digest not computed", "error", err)
		return false
	}
	l.authTries++
	l.dlg.localCSeq++
	req := l.invite.Clone()
	req.RemoveHeader("Via")
	req.RemoveHeader("Authorization")
	req.RemoveHeader("Proxy-Authorization")
	fresh := l.dlg.build(gosip.INVITE, l.dlg.localCSeq)
	req.PrependHeader(fresh.Via())
	req.CSeq().SeqNo = l.dlg.localCSeq
	req.AppendHeader(gosip.NewHeader(credName, cred.String()))
	if l.invite.Destination() != "" {
		req.SetDestination(l.invite.Destination())
	}
	req.Laddr = l.invite.Laddr
	l.inv.tx.Terminate()
	tx, err := c.startTx(txInvite, l, req, 0)
	if err != nil {
		l.log.Info("authenticated invite not sent", "error", err)
		return false
	}
	l.invite, l.inv, l.final, l.provisional = req, tx, false, false
	l.log.Info("outbound invite authenticated", "status", res.StatusCode, "realm", chal.Realm)
	return true
}

// answered takes the first 2xx: the dialog (route set, remote target, RFC 3261
// §12.1.2), the ACK, the answer and the leg's media.
func (l *outLeg) answered(c *call, res *gosip.Response) error {
	l.final, l.confirmed = true, true
	l.dlg.confirmUAC(res)
	l.sendAck(res)
	if l.oa.pending() {
		if err := l.oa.receiveAnswer(contentType(res), res.Body()); err != nil {
			return fmt.Errorf("answer sdp: %w", err)
		}
	}
	if err := l.startMedia(); err != nil {
		return err
	}
	if l.early != nil {
		// The caller heard the destination's early media; ringback again while
		// the callee hears the whisper.
		l.stopEarly()
		c.startRingback()
	}
	neg := l.oa.negotiated()
	l.log.Info("outbound leg answered", "codec", neg.Codec.Name, "remote_rtp", neg.Remote.String(),
		"route_set", len(l.dlg.routeSet))
	return nil
}

// startMedia starts (or updates) the leg's session from the negotiation.
func (l *outLeg) startMedia() error {
	neg := l.oa.negotiated()
	if l.sess == nil {
		port := l.port
		sess, err := media.NewSession(media.SessionConfig{
			Conn: l.conn, Codec: neg.Codec, HasDTMF: neg.HasDTMF, DTMFPayloadType: neg.DTMFPayloadType,
			Remote: neg.Remote, InactivityTimeout: l.srv.cfg.RTPInactivity, SRTP: neg.SRTP,
			OnClose: func() { l.srv.ports.Release(port) },
			Logger:  l.log,
			Pacer:   l.srv.pacer,
		})
		if err != nil {
			return fmt.Errorf("leg media: %w", err)
		}
		l.conn = nil // owned by the session now
		l.sess = sess
	} else {
		if err := l.sess.SetSRTP(neg.SRTP); err != nil {
			return fmt.Errorf("leg media: %w", err)
		}
		if neg.Remote.IsValid() && !neg.Remote.Addr().IsUnspecified() {
			l.sess.SetRemote(neg.Remote)
		}
	}
	l.sess.SetDirection(l.oa.direction())
	return nil
}

// earlyMedia takes an 18x with SDP (RFC 3261 §13.2.1, RFC 3960): the answer to our
// offer starts the leg's media, and the callee's audio (a carrier's ringback or
// announcement) is relayed to the caller instead of our ringback.
func (l *outLeg) earlyMedia(c *call, res *gosip.Response) {
	if len(res.Body()) == 0 || !l.oa.pending() || l.early != nil {
		return
	}
	if err := l.oa.receiveAnswer(contentType(res), res.Body()); err != nil {
		l.log.Info("early media sdp unusable", "error", err)
		return
	}
	if err := l.startMedia(); err != nil {
		l.log.Info("early media not started", "error", err)
		return
	}
	l.log.Info("early media", "status", res.StatusCode)
	if c.msgDone != nil {
		// The caller hears the rule's message first; the destination's audio
		// replaces the ringback once it ends.
		l.earlyWaits = true
		return
	}
	l.relayEarly(c)
}

// relayEarly relays the leg's early media to the caller instead of our ringback.
func (l *outLeg) relayEarly(c *call) {
	l.earlyWaits = false
	c.stopRingback()
	if caller := c.session(); caller != nil {
		ctx, cancel := context.WithTimeout(c.ctx, time.Second)
		br, err := media.NewBridge(ctx, caller, l.sess, media.BridgeOptions{Logger: l.log})
		cancel()
		if err != nil {
			l.log.Info("early media not relayed", "error", err)
			return
		}
		l.early = br
	}
}

func (l *outLeg) stopEarly() {
	if l.early != nil {
		l.early.Stop()
		l.early = nil
	}
}

// sendAck ACKs a 2xx in the leg's dialog (RFC 3261 §13.2.2.4) and keeps it for
// the 2xx's retransmissions.
func (l *outLeg) sendAck(res *gosip.Response) {
	ack := l.dlg.ack(res.CSeq().SeqNo)
	l.lastAck = ack
	if err := l.srv.client.WriteRequest(ack.Clone()); err != nil {
		l.log.Warn("ack failed", "error", err)
	}
}

// strayInviteResponse handles a 2xx to the INVITE after the answer: a
// retransmission (our ACK was lost) is ACKed again; a 2xx with another To tag is
// a second fork, ACKed and ended with BYE in its own dialog (§13.2.2.4).
func (l *outLeg) strayInviteResponse(res *gosip.Response) {
	if !res.IsSuccess() || !l.confirmed {
		return
	}
	if toTag(res) == l.dlg.remoteTag {
		if l.lastAck != nil && res.CSeq() != nil && res.CSeq().SeqNo == l.lastAck.CSeq().SeqNo {
			l.log.Debug("2xx retransmitted: ack again")
			_ = l.srv.client.WriteRequest(l.lastAck.Clone())
		}
		return
	}
	fork := l.dlg.fork(res)
	l.log.Info("second fork answered: ack and bye", "to_tag", fork.remoteTag)
	_ = l.srv.client.WriteRequest(fork.ack(res.CSeq().SeqNo))
	bye := fork.request(gosip.BYE)
	l.srv.goTracked(func() {
		if _, err := l.srv.roundTrip(bye, byeTimeout); err != nil {
			l.log.Debug("bye to second fork", "error", err)
		}
	})
}

// handleLeg is what any event of the leg does while the flow waits for something
// else: the callee's requests, stray INVITE responses, our re-INVITEs' answers.
func (c *call) handleLeg(l *outLeg, ev event) {
	switch ev := ev.(type) {
	case *reqEvent:
		c.handleLegRequest(ev)
	case strayEvent:
		l.strayInviteResponse(ev.res)
	case responseEvent:
		c.handleResponse(ev)
	case txDoneEvent:
		c.handleTxDone(ev)
	}
}

// handleLegRequest serves a request from the callee inside the leg's dialog.
func (c *call) handleLegRequest(ev *reqEvent) {
	l, req := ev.leg, ev.req
	if l.gone || l.dlg.remoteTag == "" || !l.dlg.matches(req) {
		ev.reply(c.srv, 481, "Call/Transaction Does Not Exist")
		return
	}
	if !c.admitInDialog(&l.side, ev) {
		return
	}
	switch req.Method {
	case gosip.BYE:
		ev.reply(c.srv, 200, "OK")
		l.log.Info("callee hung up")
		l.gone, l.dlg.ended = true, true
		if l.bridged {
			c.finish(EndCalleeBye)
		}
	case gosip.INFO:
		c.onInfo(ev, l.sess)
	case gosip.INVITE, gosip.UPDATE:
		c.onOffer(&l.side, ev)
	case gosip.OPTIONS:
		ev.reply(c.srv, 200, "OK", capabilityHeaders()...)
	default:
		ev.replyErr(c.srv, ErrMethodNotAllowed)
	}
}

// release frees the leg's media and registration. Idempotent; the owner calls it.
func (l *outLeg) release() {
	l.once.Do(func() {
		l.stopEarly()
		if l.sess != nil {
			_ = l.sess.Close()
		} else if l.conn != nil {
			_ = l.conn.Close()
			l.srv.ports.Release(l.port)
		}
		if l.inv != nil {
			l.inv.tx.Terminate()
		}
		l.srv.legs.remove(l)
		close(l.closed)
		// Requests that arrived meanwhile: the leg is gone.
		for {
			select {
			case ev := <-l.inbox:
				if r, ok := ev.(*reqEvent); ok {
					r.reply(l.srv, 481, "Call/Transaction Does Not Exist")
				}
			default:
				return
			}
		}
	})
}

// hangup ends the leg: BYE when answered (its final response awaited, bounded);
// while it still rings, a reaper goroutine takes the leg over to CANCEL it
// (RFC 3261 §9.1) and ACK+BYE a 2xx that crosses the CANCEL, so the call need not
// wait. The call no longer owns the leg afterwards.
func (l *outLeg) hangup(c *call) {
	l.stopEarly()
	switch {
	case l.confirmed:
		if !l.gone && !l.dlg.ended {
			if err := c.sendBye(l.dlg); err != nil {
				l.log.Warn("bye to callee failed", "error", err)
			}
		}
		l.release()
	case l.final || l.inv == nil:
		l.release()
	default:
		l.call = nil
		if !l.srv.spawn(l.reap) {
			l.release()
		}
	}
}

// reap cancels a ringing leg. RFC 3261 §9.1: no CANCEL before a provisional
// response; wait for one up to 64*T1 (or the server's shutdown), then CANCEL
// anyway; the INVITE's final response is awaited at most CancelWait after the
// CANCEL; a crossing 2xx is ACKed and BYEd.
func (l *outLeg) reap() {
	defer l.release()
	sentCancel := false
	var cancelRes <-chan struct{}
	sendCancel := func() {
		sentCancel = true
		req := l.cancelRequest()
		done := make(chan struct{})
		cancelRes = done
		l.srv.goTracked(func() {
			defer close(done)
			if _, err := l.srv.roundTrip(req, l.srv.cfg.CancelWait); err != nil {
				l.log.Debug("cancel not answered", "error", err)
			}
		})
		l.log.Info("cancel sent")
	}
	if l.provisional {
		sendCancel()
	}
	wait := time.NewTimer(64 * gosip.T1)
	defer wait.Stop()
	if sentCancel {
		wait.Reset(l.srv.cfg.CancelWait)
	}
	defer func() {
		if cancelRes != nil {
			<-cancelRes
		}
	}()
	for {
		select {
		case ev := <-l.inbox:
			switch ev := ev.(type) {
			case strayEvent, responseEvent:
				var res *gosip.Response
				switch ev := ev.(type) {
				case strayEvent:
					res = ev.res
				case responseEvent:
					res = ev.res
				}
				if res.IsProvisional() {
					if res.StatusCode > 100 && !sentCancel {
						sendCancel()
						wait.Reset(l.srv.cfg.CancelWait)
					}
					continue
				}
				if res.IsSuccess() {
					l.log.Info("callee answered after cancel: ack and bye")
					l.dlg.confirmUAC(res)
					l.sendAck(res)
					bye := l.dlg.request(gosip.BYE)
					if _, err := l.srv.roundTrip(bye, byeTimeout); err != nil {
						l.log.Debug("bye after cancel", "error", err)
					}
				}
				return
			case txDoneEvent:
				return
			case *reqEvent:
				ev.reply(l.srv, 481, "Call/Transaction Does Not Exist")
			}
		case <-l.srv.closing:
			if !sentCancel {
				sendCancel()
			}
		case <-wait.C:
			if !sentCancel {
				sendCancel()
				wait.Reset(l.srv.cfg.CancelWait)
				continue
			}
			l.log.Info("no final response after cancel", "after", l.srv.cfg.CancelWait)
			return
		}
	}
}

// cancelRequest builds the CANCEL for the pending INVITE (RFC 3261 §9.1: same
// Request-URI, Call-ID, From, To, CSeq number and top Via).
func (l *outLeg) cancelRequest() *gosip.Request {
	inv := l.invite
	req := gosip.NewRequest(gosip.CANCEL, *inv.Recipient.Clone())
	req.SetTransport(inv.Transport())
	req.Laddr = inv.Laddr
	if d := inv.Destination(); d != "" {
		req.SetDestination(d)
	}
	req.AppendHeader(inv.Via().Clone())
	for _, h := range inv.GetHeaders("Route") {
		req.AppendHeader(gosip.HeaderClone(h))
	}
	req.AppendHeader(gosip.HeaderClone(inv.From()))
	req.AppendHeader(gosip.HeaderClone(inv.To()))
	req.AppendHeader(gosip.HeaderClone(inv.CallID()))
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: gosip.CANCEL})
	maxf := gosip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.SetBody(nil)
	return req
}

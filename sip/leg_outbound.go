package sip

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	gosip "github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// legState is where an outbound leg is. The zero value means unknown.
type legState uint8

const (
	legUnknown  legState = iota
	legCalling           // INVITE sent, no final response yet
	legAnswered          // 2xx received and ACKed
	legEnded             // BYE'd, cancelled or failed
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
}

func (t *legTable) get(callID string) *outLeg {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.m[callID]
}

// Count is the number of live outbound legs (tests).
func (t *legTable) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.m)
}

// outLeg is the outbound leg of a warm (or bridged fallback) transfer: matterline
// as UAC towards the destination.
type outLeg struct {
	srv       *Server
	log       *slog.Logger
	callID    string
	localTag  string
	transport string // "UDP" or "TCP"
	laddr     netip.AddrPort
	advertise netip.Addr
	dest      string // host:port every request goes to ("" = the Request-URI's)
	invite    *gosip.Request
	port      int
	conn      *net.UDPConn // until the session owns it
	local     media.LocalSDP

	bye     chan struct{} // closed when the callee sent BYE
	byeOnce sync.Once
	holds   chan bool // callee hold (true) / resume (false) re-INVITEs, buffered

	mu           sync.Mutex
	state        legState
	inviteTx     gosip.ClientTransaction
	provisional  bool
	to           *gosip.ToHeader // with the callee's tag once answered
	remoteTarget gosip.Uri
	cseq         uint32
	ack          *gosip.Request
	sess         *media.Session
	neg          media.Negotiated
	remoteCSeq   uint32
	acks         map[uint32]chan struct{} // ACKs of our 2xx to re-INVITEs, by CSeq
	closed       bool
	hangupOnce   sync.Once
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
func (s *Server) dialOut(c *call, dec routing.Decision) (*outLeg, error) {
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
	l := s.pickListener(t.tport, localAddrToward(destAddr))
	leg := &outLeg{
		srv:       s,
		callID:    uuid.NewString(),
		localTag:  gosip.GenerateTagN(16),
		transport: strings.ToUpper(l.network),
		laddr:     l.addr,
		advertise: s.advertiseFor(l, destAddr),
		dest:      t.dest,
		bye:       make(chan struct{}),
		holds:     make(chan bool, 4),
		cseq:      1,
	}
	leg.log = c.log.With("leg_call_id", leg.callID)
	ip := l.addr.Addr().Unmap()
	conn, err := s.ports.Listen(ip)
	if err != nil {
		return nil, err
	}
	leg.conn = conn
	leg.port = conn.LocalAddr().(*net.UDPAddr).Port

	// Offer the caller's codec first so that the bridge need not transcode.
	codecs := []media.Codec{media.PCMU, media.PCMA}
	c.mu.Lock()
	if c.neg.Codec.Name == media.PCMA.Name {
		codecs = []media.Codec{media.PCMA, media.PCMU}
	}
	c.mu.Unlock()
	leg.local = media.LocalSDP{Addr: leg.advertise, Port: leg.port, SessionID: randomSessionID(), Version: 1,
		Codecs: codecs, HasDTMF: true, DTMFPayloadType: 101, Direction: media.DirSendRecv}

	id := s.identityFor(c, dec)
	req := gosip.NewRequest(gosip.INVITE, t.uri)
	req.SetTransport(leg.transport)
	from := &gosip.FromHeader{Address: gosip.Uri{Scheme: "sip", User: id.user, Host: leg.advertise.String()}, Params: gosip.NewParams()}
	from.Params.Add("tag", leg.localTag)
	to := &gosip.ToHeader{Address: gosip.Uri{Scheme: t.uri.Scheme, User: t.uri.User, Host: t.uri.Host, Port: t.uri.Port}, Params: gosip.NewParams()}
	callID := gosip.CallIDHeader(leg.callID)
	leg.prepare(req)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: 1, MethodName: gosip.INVITE})
	maxf := gosip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.AppendHeader(leg.contact())
	pai := gosip.Uri{Scheme: "sip", User: id.user, Host: leg.advertise.String()}
	req.AppendHeader(gosip.NewHeader("P-Asserted-Identity", "<"+pai.String()+">"))
	if id.diversion != "" {
		div := gosip.Uri{Scheme: "sip", User: id.diversion, Host: leg.advertise.String()}
		req.AppendHeader(gosip.NewHeader("Diversion", "<"+div.String()+">;reason=unconditional;counter=1"))
	}
	req.AppendHeader(gosip.NewHeader("Allow", allowHeader))
	req.AppendHeader(gosip.NewHeader("User-Agent", s.cfg.UserAgent))
	req.AppendHeader(gosip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(media.BuildSDP(leg.local))
	leg.invite = req

	s.legs.add(leg)
	ctx, cancel := context.WithTimeout(context.Background(), byeTimeout)
	defer cancel()
	tx, err := s.client.TransactionRequest(ctx, req)
	if err != nil {
		leg.close()
		return nil, fmt.Errorf("invite %s: %w", t.uri.String(), err)
	}
	leg.mu.Lock()
	leg.state = legCalling
	leg.inviteTx = tx
	leg.mu.Unlock()
	// A retransmitted 2xx is answered with the same ACK (RFC 3261 §13.2.2.4).
	tx.OnRetransmission(func(res *gosip.Response) {
		if !res.IsSuccess() {
			return
		}
		leg.mu.Lock()
		ack := leg.ack
		leg.mu.Unlock()
		if ack != nil {
			_ = s.client.WriteRequest(ack.Clone())
		}
	})
	leg.log.Info("outbound invite", "to", t.uri.String(), "via", t.dest, "from", id.user)
	return leg, nil
}

// prepare makes a request leave from our listening socket (UDP), towards the
// outbound proxy when one is used, with our Via.
func (l *outLeg) prepare(req *gosip.Request) {
	if l.transport == "UDP" {
		req.Laddr = gosip.Addr{IP: net.IP(l.laddr.Addr().AsSlice()), Port: int(l.laddr.Port())}
	}
	if l.dest != "" {
		req.SetDestination(l.dest)
	}
	via := &gosip.ViaHeader{ProtocolName: "SIP", ProtocolVersion: "2.0", Transport: l.transport,
		Host: l.advertise.String(), Port: int(l.laddr.Port()), Params: gosip.NewParams()}
	via.Params.Add("branch", gosip.GenerateBranch())
	via.Params.Add("rport", "")
	req.PrependHeader(via)
}

func (l *outLeg) contact() *gosip.ContactHeader {
	h := &gosip.ContactHeader{Address: gosip.Uri{Scheme: "sip", User: "matterline",
		Host: l.advertise.String(), Port: int(l.laddr.Port())}}
	if l.transport == "TCP" {
		h.Address.UriParams = gosip.NewParams()
		h.Address.UriParams.Add("transport", "tcp")
	}
	return h
}

// waitAnswer follows the INVITE until its final response, the ring timeout (then
// CANCEL, RFC 3261 §9.1) or ctx (the caller left: CANCEL). On 2xx it ACKs and
// starts the leg's media.
func (l *outLeg) waitAnswer(ctx context.Context, ring time.Duration) answerResult {
	l.mu.Lock()
	tx := l.inviteTx
	l.mu.Unlock()
	timer := time.NewTimer(ring)
	defer timer.Stop()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				l.mu.Lock()
				l.provisional = true
				l.mu.Unlock()
				continue
			}
			if res.IsSuccess() {
				if err := l.answered(res); err != nil {
					l.log.Warn("answer unusable", "error", err)
					l.hangup()
					return answerFailed
				}
				return answerOK
			}
			l.finish()
			l.log.Info("outbound invite rejected", "status", res.StatusCode, "reason", res.Reason)
			switch res.StatusCode {
			case 486, 600:
				return answerBusy
			case 603:
				return answerDeclined
			case 408, 480, 487:
				return answerNoAnswer
			}
			return answerFailed
		case <-tx.Done():
			l.finish()
			l.log.Info("outbound invite failed", "error", tx.Err())
			return answerFailed
		case <-timer.C:
			l.log.Info("ring timeout", "after", ring)
			l.hangup()
			return answerNoAnswer
		case <-ctx.Done():
			l.hangup()
			return answerAbandoned
		}
	}
}

// answered takes a 2xx: dialog state from it, the ACK, then the media session for
// the negotiated codec.
func (l *outLeg) answered(res *gosip.Response) error {
	l.mu.Lock()
	if to := res.To(); to != nil {
		l.to = gosip.HeaderClone(to).(*gosip.ToHeader)
	}
	if ct := res.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	} else {
		l.remoteTarget = *l.invite.Recipient.Clone()
	}
	l.state = legAnswered
	l.mu.Unlock()
	if err := l.sendAck(res); err != nil {
		return err
	}
	desc, err := media.ParseSDP(res.Body())
	if err != nil {
		return fmt.Errorf("answer sdp: %w", err)
	}
	neg, err := media.Negotiate(desc, allowedCodecs())
	if err != nil {
		return fmt.Errorf("answer sdp: %w", err)
	}
	port := l.port
	sess, err := media.NewSession(media.SessionConfig{
		Conn: l.conn, Codec: neg.Codec, HasDTMF: neg.HasDTMF, DTMFPayloadType: neg.DTMFPayloadType,
		Remote: neg.Remote, InactivityTimeout: l.srv.cfg.RTPInactivity,
		OnClose: func() { l.srv.ports.Release(port) },
		Logger:  l.log,
	})
	if err != nil {
		return fmt.Errorf("leg media: %w", err)
	}
	sess.SetDirection(neg.Direction)
	l.mu.Lock()
	l.conn = nil // owned by the session now
	l.sess = sess
	l.neg = neg
	l.local.Codecs = []media.Codec{neg.Codec}
	l.local.DTMFPayloadType, l.local.HasDTMF = neg.DTMFPayloadType, neg.HasDTMF
	closed := l.closed
	l.mu.Unlock()
	if closed {
		_ = sess.Close()
		return errors.New("leg closed")
	}
	l.log.Info("outbound leg answered", "codec", neg.Codec.Name, "remote_rtp", neg.Remote.String())
	return nil
}

// inDialog builds a request in the leg's dialog (RFC 3261 §12.2.1.1).
func (l *outLeg) inDialog(method gosip.RequestMethod, seq uint32) *gosip.Request {
	l.mu.Lock()
	to, target := l.to, l.remoteTarget
	l.mu.Unlock()
	req := gosip.NewRequest(method, target)
	req.SetTransport(l.transport)
	l.prepare(req)
	req.AppendHeader(gosip.HeaderClone(l.invite.From()))
	if to != nil {
		req.AppendHeader(gosip.HeaderClone(to))
	}
	callID := gosip.CallIDHeader(l.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: seq, MethodName: method})
	maxf := gosip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.AppendHeader(l.contact())
	return req
}

func (l *outLeg) nextCSeq() uint32 {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.cseq++
	return l.cseq
}

func (l *outLeg) sendAck(res *gosip.Response) error {
	ack := l.inDialog(gosip.ACK, res.CSeq().SeqNo)
	ack.SetBody(nil)
	l.mu.Lock()
	l.ack = ack.Clone()
	l.mu.Unlock()
	if err := l.srv.client.WriteRequest(ack); err != nil {
		return fmt.Errorf("ack: %w", err)
	}
	return nil
}

// request sends an in-dialog request and waits (bounded) for its final response.
func (l *outLeg) request(ctx context.Context, req *gosip.Request) (*gosip.Response, error) {
	ctx, cancel := context.WithTimeout(ctx, byeTimeout)
	defer cancel()
	tx, err := l.srv.client.TransactionRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	defer tx.Terminate()
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			return res, nil
		case <-tx.Done():
			return nil, fmt.Errorf("%s: %w", req.Method, tx.Err())
		case <-ctx.Done():
			return nil, fmt.Errorf("%s: %w", req.Method, ctx.Err())
		}
	}
}

// hangup ends the leg once: BYE when answered, CANCEL while calling (bounded by
// Config.CancelWait; a 2xx that crosses the CANCEL is ACKed and BYEd, SIPGO-NOTES),
// then its media and registration.
func (l *outLeg) hangup() {
	l.hangupOnce.Do(func() {
		l.mu.Lock()
		st := l.state
		l.mu.Unlock()
		switch st {
		case legAnswered:
			if !l.calleeLeft() {
				l.sendBye()
			}
		case legCalling:
			l.cancel()
		}
		l.close()
	})
}

func (l *outLeg) calleeLeft() bool {
	select {
	case <-l.bye:
		return true
	default:
		return false
	}
}

func (l *outLeg) sendBye() {
	bye := l.inDialog(gosip.BYE, l.nextCSeq())
	bye.AppendHeader(gosip.NewHeader("User-Agent", l.srv.cfg.UserAgent))
	bye.SetBody(nil)
	res, err := l.request(context.Background(), bye)
	if err != nil {
		l.log.Warn("bye to callee failed", "error", err)
		return
	}
	l.log.Debug("bye to callee answered", "status", res.StatusCode)
}

// cancel sends CANCEL for the pending INVITE (RFC 3261 §9.1: same Request-URI,
// Call-ID, From, To, CSeq number and top Via) and waits for the INVITE's final
// response, at most Config.CancelWait.
func (l *outLeg) cancel() {
	l.mu.Lock()
	tx := l.inviteTx
	provisional := l.provisional
	l.mu.Unlock()
	if tx == nil {
		return
	}
	defer tx.Terminate()
	wait := time.NewTimer(l.srv.cfg.CancelWait)
	defer wait.Stop()
	if !provisional {
		// §9.1: no CANCEL before a provisional response; wait for one (bounded).
		select {
		case res := <-tx.Responses():
			if !res.IsProvisional() {
				l.afterCancel(res)
				return
			}
		case <-tx.Done():
			return
		case <-wait.C:
			return
		}
	}
	inv := l.invite
	req := gosip.NewRequest(gosip.CANCEL, *inv.Recipient.Clone())
	req.SetTransport(l.transport)
	req.Laddr = inv.Laddr
	if l.dest != "" {
		req.SetDestination(l.dest)
	}
	req.AppendHeader(inv.Via().Clone())
	req.AppendHeader(gosip.HeaderClone(inv.From()))
	req.AppendHeader(gosip.HeaderClone(inv.To()))
	callID := gosip.CallIDHeader(l.callID)
	req.AppendHeader(&callID)
	req.AppendHeader(&gosip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: gosip.CANCEL})
	maxf := gosip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.SetBody(nil)
	cancelDone := make(chan struct{})
	defer func() { <-cancelDone }() // bounded by CancelWait as well
	// The CANCEL's own transaction runs beside the wait for the INVITE's final
	// response.
	go func() {
		defer close(cancelDone)
		ctx, cancel := context.WithTimeout(context.Background(), l.srv.cfg.CancelWait)
		defer cancel()
		if _, err := l.request(ctx, req); err != nil {
			l.log.Debug("cancel not answered", "error", err)
		}
	}()
	l.log.Info("cancel sent")
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			l.afterCancel(res)
			return
		case <-tx.Done():
			return
		case <-wait.C:
			l.log.Info("no final response after cancel", "after", l.srv.cfg.CancelWait)
			return
		}
	}
}

// afterCancel handles the final response after a CANCEL: a 2xx (the callee
// answered as we cancelled) is ACKed and BYEd at once.
func (l *outLeg) afterCancel(res *gosip.Response) {
	if !res.IsSuccess() {
		return
	}
	l.log.Info("callee answered after cancel: ack and bye")
	l.mu.Lock()
	if to := res.To(); to != nil {
		l.to = gosip.HeaderClone(to).(*gosip.ToHeader)
	}
	if ct := res.Contact(); ct != nil {
		l.remoteTarget = *ct.Address.Clone()
	} else {
		l.remoteTarget = *l.invite.Recipient.Clone()
	}
	l.mu.Unlock()
	if err := l.sendAck(res); err != nil {
		l.log.Warn("ack after cancel failed", "error", err)
	}
	l.sendBye()
}

// finish marks a leg whose INVITE failed and releases it.
func (l *outLeg) finish() {
	l.hangupOnce.Do(l.close)
}

// close releases the leg's media and registration. Idempotent.
func (l *outLeg) close() {
	l.mu.Lock()
	if l.closed {
		l.mu.Unlock()
		return
	}
	l.closed = true
	l.state = legEnded
	sess, conn := l.sess, l.conn
	l.conn = nil
	tx := l.inviteTx
	l.mu.Unlock()
	if sess != nil {
		_ = sess.Close()
	} else if conn != nil {
		_ = conn.Close()
		l.srv.ports.Release(l.port)
	}
	if tx != nil {
		tx.Terminate()
	}
	l.srv.legs.remove(l)
}

func (l *outLeg) session() *media.Session {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.sess
}

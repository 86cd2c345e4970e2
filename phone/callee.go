package phone

import (
	"context"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// incomingQueue is how many answered calls wait for Next; beyond it the callee is
// busy (486).
const incomingQueue = 8

// CalleeConfig configures a Callee. Zero values mean defaults.
type CalleeConfig struct {
	// Name labels the phone's events. Default "callee".
	Name string
	// Listen is the UDP address for SIP, "ip:port" (e.g. the outbound proxy
	// address a B2BUA dials). Default "127.0.0.1:0".
	Listen string
	// Number is the Contact user. Default "callee".
	Number string
	// RingDelay is the time between 180 Ringing and the answer.
	RingDelay time.Duration
	// Reject, when set, answers every INVITE with this final status after
	// RingDelay instead of 200 (486 busy, 603 decline, 480 no answer ...).
	Reject int
	// AckTimeout bounds the wait for the ACK of our 200. Default 5 s.
	AckTimeout time.Duration
	// Ports hands out RTP ports; nil means an ephemeral port per call.
	Ports *media.PortAllocator
	// Logger receives the phone's and sipgo's logs. Default: discard.
	Logger *slog.Logger
	// OnEvent is called for every Event, synchronously: keep it fast.
	OnEvent func(Event)
}

// Callee answers calls (a UAS).
type Callee struct {
	cfg      CalleeConfig
	a        *agent
	incoming chan *Call
}

// NewCallee starts a callee phone listening on cfg.Listen.
func NewCallee(cfg CalleeConfig) (*Callee, error) {
	if cfg.Name == "" {
		cfg.Name = "callee"
	}
	if cfg.Number == "" {
		cfg.Number = "callee"
	}
	if cfg.AckTimeout <= 0 {
		cfg.AckTimeout = DefaultAckTimeout
	}
	c := &Callee{cfg: cfg, incoming: make(chan *Call, incomingQueue)}
	a, err := newAgent(agentConfig{name: cfg.Name, listen: cfg.Listen, user: strings.TrimPrefix(cfg.Number, "+"),
		ports: cfg.Ports, log: cfg.Logger, onEvent: cfg.OnEvent, onInvite: c.answer})
	if err != nil {
		return nil, err
	}
	c.a = a
	return c, nil
}

// Addr is the callee's SIP address.
func (c *Callee) Addr() netip.AddrPort { return c.a.addr }

// Close hangs up every call (BYE), closes media and ports and stops the phone.
// Idempotent.
func (c *Callee) Close() error {
	c.a.close()
	return nil
}

// Next returns the next answered (acknowledged) call, or an error when ctx ends
// (default timeout 30 s).
func (c *Callee) Next(ctx context.Context) (*Call, error) {
	ctx, cancel := withDefaultTimeout(ctx, DefaultAnswerTimeout)
	defer cancel()
	select {
	case call := <-c.incoming:
		return call, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("phone: no call answered: %w", ctx.Err())
	}
}

// answer runs on the INVITE's handler goroutine until the final response is sent
// (and for a 200, until its ACK): 180, RingDelay, then 200 with our SDP answer.
func (c *Callee) answer(a *agent, req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID()
	if id == nil || req.From() == nil || req.To() == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	dlg, err := a.dua.ReadInvite(req, tx)
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad Request", nil))
		return
	}
	call := newCall(a, id.Value())
	call.uas = dlg
	call.info = inviteInfo(req)
	if !a.add(call) {
		_ = dlg.Respond(480, "Temporarily Unavailable", nil)
		return
	}
	info := call.info
	detail := fmt.Sprintf("to %s from %s", info.To, info.From)
	if info.FromName != "" {
		detail += fmt.Sprintf(" (%q)", info.FromName)
	}
	if info.PAssertedIdentity != "" {
		detail += ", P-Asserted-Identity " + info.PAssertedIdentity
	}
	if len(info.Diversion) > 0 {
		detail += ", Diversion " + strings.Join(info.Diversion, ", ")
	}
	a.emit(EventInviteReceived, call.id, detail)

	desc, err := media.ParseSDP(req.Body())
	var neg media.Negotiated
	if err == nil {
		neg, err = media.Negotiate(desc, nil)
	}
	if err != nil {
		_ = dlg.Respond(488, "Not Acceptable Here", nil)
		call.end("rejected")
		return
	}
	if err := dlg.Respond(180, "Ringing", nil); err != nil {
		call.end("failed")
		return
	}
	a.emit(EventRinging, call.id, "180 Ringing")
	if c.cfg.RingDelay > 0 {
		t := time.NewTimer(c.cfg.RingDelay)
		select {
		case <-t.C:
		case <-dlg.Context().Done():
			t.Stop()
			a.emit(EventCancelled, call.id, "caller cancelled")
			call.end("cancelled")
			return
		case <-call.done: // the phone is closing
			t.Stop()
			_ = dlg.Respond(480, "Temporarily Unavailable", nil)
			return
		}
	}
	if c.cfg.Reject != 0 {
		reason := reasonPhrase(c.cfg.Reject)
		a.emit(EventRejected, call.id, fmt.Sprintf("answered %d %s", c.cfg.Reject, reason))
		_ = dlg.Respond(c.cfg.Reject, reason, nil)
		call.end("rejected")
		return
	}

	conn, release, err := a.openRTP()
	if err != nil {
		_ = dlg.Respond(503, "Service Unavailable", nil)
		call.end("failed")
		return
	}
	local := neg.LocalSDP(a.ip, conn.LocalAddr().(*net.UDPAddr).Port, newSessionID(), 1)
	if err := call.setMedia(conn, release, neg, local); err != nil {
		_ = dlg.Respond(503, "Service Unavailable", nil)
		call.end("failed")
		return
	}
	// RespondSDP waits for the ACK with no timeout of its own (SIPGO-NOTES):
	// terminating the transaction ends the wait.
	stop := time.AfterFunc(c.cfg.AckTimeout, tx.Terminate)
	err = dlg.RespondSDP(media.BuildSDP(local))
	stop.Stop()
	if err != nil {
		a.log.Info("answer not acknowledged", "call_id", call.id, "error", err)
		call.end("no_ack")
		return
	}
	call.markReady()
	a.emit(EventAnswerSent, call.id, fmt.Sprintf("200 OK, %s, rtp %s <-> %s; ACK received", neg.Codec,
		call.info.Local, neg.Remote))
	select {
	case c.incoming <- call:
	default:
		_ = call.Hangup(context.Background())
	}
}

// inviteInfo reads the identities of an INVITE.
func inviteInfo(req *sip.Request) CallInfo {
	info := CallInfo{From: req.From().Address.User, FromName: req.From().DisplayName,
		To: req.To().Address.User, RequestURI: req.Recipient.String()}
	if h := req.GetHeader("P-Asserted-Identity"); h != nil {
		info.PAssertedIdentity = userOf(h.Value())
	}
	for _, h := range req.GetHeaders("Diversion") {
		for _, v := range strings.Split(h.Value(), ",") {
			if u := userOf(strings.TrimSpace(v)); u != "" {
				info.Diversion = append(info.Diversion, u)
			}
		}
	}
	return info
}

// reasonPhrase is the RFC 3261 §21 phrase of the final statuses a test callee
// uses.
func reasonPhrase(code int) string {
	switch code {
	case 480:
		return "Temporarily Unavailable"
	case 486:
		return "Busy Here"
	case 487:
		return "Request Terminated"
	case 600:
		return "Busy Everywhere"
	case 603:
		return "Decline"
	case 404:
		return "Not Found"
	}
	return "Rejected"
}

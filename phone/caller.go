package phone

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/matterline/matterline/media"
)

// CallerConfig configures a Caller. Zero values mean defaults.
type CallerConfig struct {
	// Name labels the phone's events. Default "caller".
	Name string
	// Listen is the UDP address for SIP, "ip:port"; the ip is advertised in
	// Contact, Via and SDP. Default "127.0.0.1:0" (a free port).
	Listen string
	// From is the calling number, sent as the From user and in
	// P-Asserted-Identity; DisplayName its display name. Dial may override both.
	From, DisplayName string
	// Ports hands out RTP ports; nil means an ephemeral port per call.
	Ports *media.PortAllocator
	// Logger receives the phone's and sipgo's logs. Default: discard.
	Logger *slog.Logger
	// OnEvent is called for every Event, synchronously: keep it fast.
	OnEvent func(Event)
	// AcceptRefer answers a REFER with 202 and reports the transfer done (NOTIFY
	// with a 200 sipfrag, RFC 3515 §2.4.5) without dialling the target, as a
	// transferee that hands the call on would; the transferor then hangs up.
	// Default: decline REFER with 603.
	AcceptRefer bool
}

// Caller places calls (a UAC).
type Caller struct {
	cfg CallerConfig
	a   *agent
}

// NewCaller starts a caller phone listening on cfg.Listen.
func NewCaller(cfg CallerConfig) (*Caller, error) {
	if cfg.Name == "" {
		cfg.Name = "caller"
	}
	user := strings.TrimPrefix(cfg.From, "+")
	if user == "" {
		user = "phone"
	}
	acfg := agentConfig{name: cfg.Name, listen: cfg.Listen, user: user, ports: cfg.Ports,
		log: cfg.Logger, onEvent: cfg.OnEvent}
	if cfg.AcceptRefer {
		acfg.onRefer = acceptRefer
	}
	a, err := newAgent(acfg)
	if err != nil {
		return nil, err
	}
	return &Caller{cfg: cfg, a: a}, nil
}

// Addr is the caller's SIP address.
func (c *Caller) Addr() netip.AddrPort { return c.a.addr }

// Close hangs up every call (BYE), closes media and ports and stops the phone.
// Idempotent.
func (c *Caller) Close() error {
	c.a.close()
	return nil
}

// Header is an extra header for an INVITE.
type Header struct{ Name, Value string }

// DialOptions shape one call.
type DialOptions struct {
	// From and DisplayName override CallerConfig's.
	From, DisplayName string
	// Headers are added to the INVITE (CR and LF are removed from values).
	Headers []Header
	// AnswerTimeout bounds the wait for the final response (then CANCEL).
	// Default 30 s.
	AnswerTimeout time.Duration
}

// StatusError is a final non-2xx response to an INVITE.
type StatusError struct {
	Code   int
	Reason string
}

func (e *StatusError) Error() string {
	return fmt.Sprintf("phone: call rejected: %d %s", e.Code, e.Reason)
}

// Dial calls target (a SIP URI, e.g. "sip:demo@127.0.0.1:5060") and returns the
// call once it is answered and acknowledged. A final non-2xx response is a
// *StatusError. When ctx ends or AnswerTimeout passes before the answer, the
// INVITE is cancelled.
func (c *Caller) Dial(ctx context.Context, target string, opts DialOptions) (*Call, error) {
	var uri sip.Uri
	if err := sip.ParseUri(target, &uri); err != nil || uri.Host == "" {
		return nil, fmt.Errorf("phone: dial %q: not a sip uri", target)
	}
	from, name := opts.From, opts.DisplayName
	if from == "" {
		from, name = c.cfg.From, c.cfg.DisplayName
	}
	if opts.AnswerTimeout <= 0 {
		opts.AnswerTimeout = DefaultAnswerTimeout
	}
	a := c.a
	conn, release, err := a.openRTP()
	if err != nil {
		return nil, err
	}
	rtpPort := conn.LocalAddr().(*net.UDPAddr).Port
	offer := media.LocalSDP{Addr: a.ip, Port: rtpPort, SessionID: newSessionID(), Version: 1,
		Codecs: []media.Codec{media.PCMU, media.PCMA}, HasDTMF: true, DTMFPayloadType: 101,
		Direction: media.DirSendRecv}

	host := a.ip.String()
	req := sip.NewRequest(sip.INVITE, uri)
	fromHdr := &sip.FromHeader{DisplayName: clean(name), Address: sip.Uri{Scheme: "sip", User: clean(from), Host: host},
		Params: sip.NewParams()}
	fromHdr.Params.Add("tag", sip.GenerateTagN(16))
	callID := sip.CallIDHeader(uuid.NewString())
	req.AppendHeader(fromHdr)
	req.AppendHeader(&sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: uri.User, Host: uri.Host, Port: uri.Port},
		Params: sip.NewParams()})
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.AppendHeader(&sip.ContactHeader{Address: a.dua.ContactHDR.Address})
	if from != "" {
		req.AppendHeader(sip.NewHeader("P-Asserted-Identity", fmt.Sprintf("<sip:%s@%s>", clean(from), host)))
	}
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, INFO, UPDATE, REFER, NOTIFY, OPTIONS"))
	for _, h := range opts.Headers {
		req.AppendHeader(sip.NewHeader(clean(h.Name), clean(h.Value)))
	}
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	req.SetBody(media.BuildSDP(offer))

	call := newCall(a, callID.Value())
	call.info = CallInfo{From: from, FromName: name, PAssertedIdentity: from, To: uri.User, RequestURI: uri.String()}
	// Registered before the INVITE leaves: a request right behind the 200 OK
	// must find the call (SIPGO-NOTES).
	if !a.add(call) {
		_ = conn.Close()
		release()
		return nil, ErrClosed
	}
	fail := func(reason string, err error) (*Call, error) {
		_ = conn.Close()
		release()
		call.end(reason)
		return nil, err
	}

	wctx, cancel := context.WithTimeout(ctx, opts.AnswerTimeout)
	defer cancel()
	dlg, err := a.dua.WriteInvite(wctx, req)
	if err != nil {
		return fail("failed", fmt.Errorf("phone: invite: %w", err))
	}
	call.mu.Lock()
	call.uac = dlg // read by other goroutines only under mu or after ready
	call.mu.Unlock()
	a.emit(EventInviteSent, call.id, fmt.Sprintf("from %s to %s", from, uri.String()))
	err = dlg.WaitAnswer(wctx, sipgo.AnswerOptions{OnResponse: func(res *sip.Response) error {
		if res.IsProvisional() {
			a.emit(EventResponse, call.id, fmt.Sprintf("%d %s", res.StatusCode, res.Reason))
		}
		return nil
	}})
	if err != nil {
		var de *sipgo.ErrDialogResponse
		if errors.As(err, &de) {
			a.emit(EventRejected, call.id, fmt.Sprintf("%d %s", de.Res.StatusCode, de.Res.Reason))
			return fail("rejected", &StatusError{Code: de.Res.StatusCode, Reason: de.Res.Reason})
		}
		return fail("failed", fmt.Errorf("phone: no answer: %w", err))
	}
	res := dlg.InviteResponse
	desc, err := media.ParseSDP(res.Body())
	var neg media.Negotiated
	if err == nil {
		neg, err = media.Negotiate(desc, nil)
	}
	if err != nil {
		// Answered with an unusable SDP: acknowledge, then hang up.
		_ = dlg.Ack(ctx)
		call.markReady()
		bctx, bcancel := context.WithTimeout(context.WithoutCancel(ctx), DefaultRequestTimeout)
		_ = dlg.Bye(bctx)
		bcancel()
		return fail("bad_answer", fmt.Errorf("phone: answer sdp: %w", err))
	}
	// Our own direction is the reverse of the answer's (Negotiate reverses it).
	if err := call.setMedia(conn, release, neg, offer); err != nil {
		call.end("failed")
		return nil, err
	}
	if err := dlg.Ack(ctx); err != nil {
		call.markReady()
		_ = call.Hangup(context.WithoutCancel(ctx))
		return nil, fmt.Errorf("phone: ack: %w", err)
	}
	call.markReady()
	a.emit(EventAnswered, call.id, fmt.Sprintf("%d %s, %s, rtp %s <-> %s", res.StatusCode, res.Reason,
		neg.Codec, call.info.Local, neg.Remote))
	return call, nil
}

// acceptRefer answers a REFER with 202 and then reports the transfer done with a
// NOTIFY carrying a 200 sipfrag (RFC 3515 §2.4.4-2.4.5).
func acceptRefer(a *agent, call *Call, req *sip.Request, tx sip.ServerTransaction) {
	to := referTo(req)
	if to == "" {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Missing Refer-To", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 202, "Accepted", nil))
	a.emit(EventRefer, call.id, "REFER to "+to+" accepted (202)")
	a.track(func() {
		ctx, cancel := context.WithTimeout(context.Background(), DefaultRequestTimeout)
		defer cancel()
		_, _ = call.request(ctx, sip.NOTIFY, "message/sipfrag;version=2.0", []byte("SIP/2.0 200 OK\r\n"),
			sip.NewHeader("Event", "refer"), sip.NewHeader("Subscription-State", "terminated;reason=noresource"))
	})
}

// clean removes CR, LF and NUL from a header value built from outside input.
func clean(s string) string {
	return strings.Map(func(r rune) rune {
		if r == '\r' || r == '\n' || r == 0 {
			return -1
		}
		return r
	}, s)
}

// Package testphone is a SIP phone for matterline's tests: a sipgo user agent that
// places calls with an SDP offer from its own RTP socket, records the RTP it gets,
// sends RFC 4733 DTMF, INFO, BYE, CANCEL, re-INVITE and UPDATE, and answers the
// requests the far end sends inside its calls (routed by Call-ID, SIPGO-NOTES).
// Tests of later issues can hook OnRequest to act as a callee.
package testphone

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/matterline/matterline/media"
)

// Options configure a Phone.
type Options struct {
	// Transport is "udp" (default) or "tcp".
	Transport string
	// Logger receives sipgo's logs (default: discard).
	Logger *slog.Logger
	// OnRequest sees every incoming request first; returning true means it answered
	// the request itself (e.g. an INVITE to a callee phone).
	OnRequest func(req *sip.Request, tx sip.ServerTransaction) bool
}

// Phone is a test SIP user agent listening on 127.0.0.1.
type Phone struct {
	opts      Options
	transport string // "UDP" or "TCP"
	ua        *sipgo.UserAgent
	srv       *sipgo.Server
	client    *sipgo.Client
	addr      netip.AddrPort
	ln        io.Closer
	serveDone chan struct{}

	mu    sync.Mutex
	calls map[string]*Call
	// Unmatched counts requests for unknown Call-IDs.
	unmatched int
}

// New starts a phone on 127.0.0.1 with a free port.
func New(opts Options) (*Phone, error) {
	tr := strings.ToUpper(opts.Transport)
	if tr == "" {
		tr = "UDP"
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Phone{opts: opts, transport: tr, calls: map[string]*Call{}, serveDone: make(chan struct{})}
	var err error
	p.ua, err = sipgo.NewUA(sipgo.WithUserAgent("testphone"),
		sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log),
			sip.WithTransactionLayerUnhandledResponseHandler(func(*sip.Response) {})),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)))
	if err != nil {
		return nil, err
	}
	p.srv, err = sipgo.NewServer(p.ua, sipgo.WithServerLogger(log))
	if err != nil {
		p.ua.Close()
		return nil, err
	}
	var serve func() error
	if tr == "UDP" {
		pc, err := net.ListenPacket("udp", "127.0.0.1:0")
		if err != nil {
			p.ua.Close()
			return nil, err
		}
		p.ln = pc
		p.addr = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		serve = func() error { return p.srv.ServeUDP(pc) }
	} else {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			p.ua.Close()
			return nil, err
		}
		p.ln = l
		p.addr = l.Addr().(*net.TCPAddr).AddrPort()
		serve = func() error { return p.srv.ServeTCP(l) }
	}
	clientOpts := []sipgo.ClientOption{sipgo.WithClientLogger(log), sipgo.WithClientHostname("127.0.0.1")}
	if tr == "UDP" {
		clientOpts = append(clientOpts, sipgo.WithClientConnectionAddr(p.addr.String()))
	}
	p.client, err = sipgo.NewClient(p.ua, clientOpts...)
	if err != nil {
		p.ln.Close()
		p.ua.Close()
		return nil, err
	}
	for _, m := range []sip.RequestMethod{sip.INVITE, sip.BYE, sip.INFO, sip.OPTIONS, sip.NOTIFY,
		sip.REFER, sip.UPDATE, sip.MESSAGE} {
		p.srv.OnRequest(m, p.route)
	}
	p.srv.OnNoRoute(p.route)
	go func() {
		defer close(p.serveDone)
		_ = serve()
	}()
	// Wait until sipgo registered the listener before anything is sent.
	deadline := time.Now().Add(2 * time.Second)
	for len(p.ua.TransportLayer().ListenPorts(strings.ToLower(tr))) == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	time.Sleep(5 * time.Millisecond)
	return p, nil
}

// Addr is the phone's SIP address.
func (p *Phone) Addr() netip.AddrPort { return p.addr }

// Close ends every call's RTP and the phone's SIP stack.
func (p *Phone) Close() error {
	p.mu.Lock()
	calls := make([]*Call, 0, len(p.calls))
	for _, c := range p.calls {
		calls = append(calls, c)
	}
	p.mu.Unlock()
	for _, c := range calls {
		c.closeMedia()
		c.terminateTxs()
	}
	err := p.ln.Close()
	p.ua.Close()
	<-p.serveDone
	return err
}

func (p *Phone) route(req *sip.Request, tx sip.ServerTransaction) {
	if p.opts.OnRequest != nil && p.opts.OnRequest(req, tx) {
		return
	}
	if req.IsAck() {
		return
	}
	var c *Call
	if id := req.CallID(); id != nil {
		p.mu.Lock()
		c = p.calls[id.Value()]
		p.mu.Unlock()
	}
	if c == nil {
		p.mu.Lock()
		p.unmatched++
		p.mu.Unlock()
		_ = tx.Respond(sip.NewResponseFromRequest(req, 481, "Call/Transaction Does Not Exist", nil))
		return
	}
	c.record(req)
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	if req.Method == sip.BYE {
		c.byeOnce.Do(func() { close(c.byeCh) })
	}
}

// InviteOptions shape one outgoing INVITE.
type InviteOptions struct {
	// Target is the Request-URI, e.g. "sip:100@127.0.0.1:5060".
	Target string
	// From is the From user part (default "+12175550100").
	From string
	// Headers are extra headers (P-Asserted-Identity, Session-Expires, Supported ...).
	Headers []sip.Header
	// SDP replaces the generated offer; NoSDP sends none.
	SDP   []byte
	NoSDP bool
	// Offer shapes the generated offer.
	Offer OfferOptions
	// NoAutoAck leaves the ACK of a 2xx to the test (Call.Ack).
	NoAutoAck bool
	// Proxy ("host:port") receives every in-dialog request instead of the remote
	// target (like an outbound proxy; for far ends that advertise an external IP).
	Proxy string
}

// OfferOptions shape a generated SDP offer.
type OfferOptions struct {
	// Formats are the m= payload types with rtpmaps; default PCMU, PCMA,
	// telephone-event/8000 at DTMFPayloadType.
	Formats []string // e.g. "18 G729/8000"
	// DTMFPayloadType is the telephone-event payload type (default 101).
	DTMFPayloadType uint8
	// Direction is "sendrecv" (default), "sendonly", "recvonly", "inactive", or
	// "none" for no direction attribute.
	Direction string
	// Addr overrides the c=/m= address (e.g. 0.0.0.0 for RFC 2543 hold).
	Addr    netip.AddrPort
	Version int
}

// Offer renders an SDP offer for the RTP address ap.
func Offer(ap netip.AddrPort, o OfferOptions) []byte {
	if o.DTMFPayloadType == 0 {
		o.DTMFPayloadType = 101
	}
	if o.Addr.IsValid() {
		ap = o.Addr
	}
	formats := o.Formats
	if formats == nil {
		formats = []string{"0 PCMU/8000", "8 PCMA/8000", fmt.Sprintf("%d telephone-event/8000", o.DTMFPayloadType)}
	}
	var pts []string
	var attrs strings.Builder
	for _, f := range formats {
		pt, enc, _ := strings.Cut(f, " ")
		pts = append(pts, pt)
		fmt.Fprintf(&attrs, "a=rtpmap:%s %s\r\n", pt, enc)
		if strings.HasPrefix(enc, "telephone-event") {
			fmt.Fprintf(&attrs, "a=fmtp:%s 0-16\r\n", pt)
		}
	}
	dir := o.Direction
	if dir == "" {
		dir = "sendrecv"
	}
	v := o.Version
	if v == 0 {
		v = 1
	}
	dirLine := "a=" + dir + "\r\n"
	if dir == "none" {
		dirLine = ""
	}
	return []byte(fmt.Sprintf("v=0\r\no=phone 4242 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\n%sa=ptime:20\r\n%s",
		v, ap.Addr(), ap.Addr(), ap.Port(), strings.Join(pts, " "), attrs.String(), dirLine))
}

// Call is one call placed by the phone.
type Call struct {
	p      *Phone
	CallID string
	RTP    *RTPPeer
	invite *sip.Request
	from   *sip.FromHeader
	opts   InviteOptions

	finalCh chan struct{}
	byeCh   chan struct{}
	byeOnce sync.Once

	mu           sync.Mutex
	responses    []*sip.Response
	final        *sip.Response
	to           *sip.ToHeader
	remoteTarget sip.Uri
	cseq         uint32
	requests     []*sip.Request
	retrans      map[uint32]int // 2xx retransmissions per CSeq
	acked        map[uint32]*sip.Request
	txs          []sip.ClientTransaction
	answer       media.Description
	mediaClosed  bool
}

// Invite places a call and returns at once; WaitFinal waits for the final response.
// The call is registered by Call-ID before the INVITE leaves.
func (p *Phone) Invite(ctx context.Context, o InviteOptions) (*Call, error) {
	var target sip.Uri
	if err := sip.ParseUri(o.Target, &target); err != nil {
		return nil, fmt.Errorf("testphone: target %q: %w", o.Target, err)
	}
	if o.From == "" {
		o.From = "+12175550100"
	}
	rtpPeer, err := NewRTPPeer()
	if err != nil {
		return nil, err
	}
	c := &Call{p: p, CallID: uuid.NewString(), RTP: rtpPeer, opts: o, cseq: 1,
		finalCh: make(chan struct{}), byeCh: make(chan struct{}),
		retrans: map[uint32]int{}, acked: map[uint32]*sip.Request{}}
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(p.transport)
	c.from = &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: o.From, Host: "127.0.0.1"}, Params: sip.NewParams()}
	c.from.Params.Add("tag", sip.GenerateTagN(10))
	to := &sip.ToHeader{Address: sip.Uri{Scheme: "sip", User: target.User, Host: target.Host}, Params: sip.NewParams()}
	callID := sip.CallIDHeader(c.CallID)
	req.AppendHeader(c.from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(p.contact())
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	for _, h := range o.Headers {
		req.AppendHeader(h)
	}
	if !o.NoSDP {
		body := o.SDP
		if body == nil {
			body = Offer(rtpPeer.Addr(), o.Offer)
		}
		req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		req.SetBody(body)
	} else {
		req.SetBody(nil)
	}
	c.invite = req
	p.mu.Lock()
	p.calls[c.CallID] = c
	p.mu.Unlock()

	tx, err := p.client.TransactionRequest(ctx, req)
	if err != nil {
		c.closeMedia()
		return nil, fmt.Errorf("testphone: invite: %w", err)
	}
	c.addTx(tx)
	tx.OnRetransmission(func(res *sip.Response) { c.onRetransmission(res) })
	go c.collect(tx)
	return c, nil
}

func (p *Phone) contact() *sip.ContactHeader {
	h := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "phone", Host: p.addr.Addr().String(), Port: int(p.addr.Port())}}
	if p.transport == "TCP" {
		h.Address.UriParams = sip.NewParams()
		h.Address.UriParams.Add("transport", "tcp")
	}
	return h
}

func (c *Call) addTx(tx sip.ClientTransaction) {
	c.mu.Lock()
	c.txs = append(c.txs, tx)
	c.mu.Unlock()
}

func (c *Call) terminateTxs() {
	c.mu.Lock()
	txs := c.txs
	c.txs = nil
	c.mu.Unlock()
	for _, tx := range txs {
		tx.Terminate()
	}
}

func (c *Call) collect(tx sip.ClientTransaction) {
	for {
		select {
		case res := <-tx.Responses():
			c.mu.Lock()
			c.responses = append(c.responses, res)
			c.mu.Unlock()
			if res.IsProvisional() {
				continue
			}
			c.onFinal(res)
			return
		case <-tx.Done():
			c.onFinal(nil)
			return
		}
	}
}

func (c *Call) onFinal(res *sip.Response) {
	c.mu.Lock()
	c.final = res
	if res != nil && res.IsSuccess() {
		if to := res.To(); to != nil {
			c.to = sip.HeaderClone(to).(*sip.ToHeader)
		}
		if ct := res.Contact(); ct != nil {
			c.remoteTarget = *ct.Address.Clone()
		}
		if d, err := media.ParseSDP(res.Body()); err == nil {
			c.answer = d
			if d.Addr.IsValid() {
				c.RTP.SetRemote(d.Addr)
			}
		}
	}
	c.mu.Unlock()
	close(c.finalCh)
	if res != nil && res.IsSuccess() && !c.opts.NoAutoAck {
		_ = c.Ack()
	}
}

func (c *Call) onRetransmission(res *sip.Response) {
	cs := res.CSeq()
	if cs == nil || !res.IsSuccess() {
		return
	}
	c.mu.Lock()
	c.retrans[cs.SeqNo]++
	ack := c.acked[cs.SeqNo]
	c.mu.Unlock()
	if ack != nil {
		a := ack.Clone()
		if c.opts.Proxy != "" {
			a.SetDestination(c.opts.Proxy)
		}
		_ = c.p.client.WriteRequest(a)
	}
}

// Retransmissions is how many copies of the 2xx to the INVITE with CSeq seq came
// after the first.
func (c *Call) Retransmissions(seq uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retrans[seq]
}

// WaitFinal waits for the INVITE's final response (nil when the transaction died).
func (c *Call) WaitFinal(ctx context.Context) (*sip.Response, error) {
	select {
	case <-c.finalCh:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.final == nil {
			return nil, errors.New("testphone: invite transaction ended without final response")
		}
		return c.final, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Responses returns every response to the INVITE so far (provisional included).
func (c *Call) Responses() []*sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Response(nil), c.responses...)
}

// Answer is the parsed SDP of the 2xx.
func (c *Call) Answer() media.Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answer
}

// Final is the INVITE's final response (nil before it).
func (c *Call) Final() *sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.final
}

// DTMFPayloadType is the telephone-event payload type of the answer (101 if none).
func (c *Call) DTMFPayloadType() uint8 {
	a := c.Answer()
	if a.HasDTMF {
		return a.DTMFPayloadType
	}
	return 101
}

// Ack sends the ACK for the 2xx to the initial INVITE.
func (c *Call) Ack() error { return c.ackSeq(1) }

func (c *Call) ackSeq(seq uint32) error {
	c.mu.Lock()
	to, target := c.to, c.remoteTarget
	c.mu.Unlock()
	if to == nil {
		return errors.New("testphone: no dialog")
	}
	ack := sip.NewRequest(sip.ACK, target)
	ack.SetTransport(c.p.transport)
	c.dialogHeaders(ack, to, seq, sip.ACK)
	if c.opts.Proxy != "" {
		ack.SetDestination(c.opts.Proxy)
	}
	c.mu.Lock()
	c.acked[seq] = ack.Clone()
	c.mu.Unlock()
	return c.p.client.WriteRequest(ack)
}

func (c *Call) dialogHeaders(req *sip.Request, to *sip.ToHeader, seq uint32, method sip.RequestMethod) {
	callID := sip.CallIDHeader(c.CallID)
	req.AppendHeader(sip.HeaderClone(c.from))
	req.AppendHeader(sip.HeaderClone(to))
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.AppendHeader(c.p.contact())
}

// Cancel sends CANCEL for the pending INVITE (same Via branch, RFC 3261 §9.1) and
// returns the response to the CANCEL.
func (c *Call) Cancel(ctx context.Context) (*sip.Response, error) {
	inv := c.invite
	req := sip.NewRequest(sip.CANCEL, inv.Recipient)
	req.SetTransport(c.p.transport)
	req.AppendHeader(inv.Via().Clone())
	req.AppendHeader(sip.HeaderClone(c.from))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	callID := sip.CallIDHeader(c.CallID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.CANCEL})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.SetBody(nil)
	return c.p.client.Do(ctx, req, sipgo.ClientRequestBuild)
}

// Request sends an in-dialog request and waits for its final response.
func (c *Call) Request(ctx context.Context, method sip.RequestMethod, contentType string, body []byte, hdrs ...sip.Header) (*sip.Response, error) {
	req, err := c.newInDialog(method, contentType, body, hdrs...)
	if err != nil {
		return nil, err
	}
	return c.p.client.Do(ctx, req)
}

func (c *Call) newInDialog(method sip.RequestMethod, contentType string, body []byte, hdrs ...sip.Header) (*sip.Request, error) {
	c.mu.Lock()
	to, target := c.to, c.remoteTarget
	c.cseq++
	seq := c.cseq
	c.mu.Unlock()
	if to == nil {
		return nil, errors.New("testphone: no dialog")
	}
	req := sip.NewRequest(method, target)
	req.SetTransport(c.p.transport)
	c.dialogHeaders(req, to, seq, method)
	if c.opts.Proxy != "" {
		req.SetDestination(c.opts.Proxy)
	}
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	return req, nil
}

// Bye hangs up.
func (c *Call) Bye(ctx context.Context) (*sip.Response, error) {
	return c.Request(ctx, sip.BYE, "", nil)
}

// Info sends INFO with a body.
func (c *Call) Info(ctx context.Context, contentType string, body []byte) (*sip.Response, error) {
	return c.Request(ctx, sip.INFO, contentType, body)
}

// InfoDTMF sends one digit as application/dtmf-relay INFO.
func (c *Call) InfoDTMF(ctx context.Context, key rune) (*sip.Response, error) {
	return c.Info(ctx, "application/dtmf-relay", []byte(fmt.Sprintf("Signal=%c\r\nDuration=160\r\n", key)))
}

// SendDTMF sends one digit as RFC 4733 events on the call's RTP.
func (c *Call) SendDTMF(key rune) error { return c.RTP.SendDTMF(c.DTMFPayloadType(), key) }

// Reinvite sends a re-INVITE with sdp (nil: none) and waits for the final response.
// ackDelay > 0 delays the ACK of a 2xx (to observe retransmissions); a negative
// ackDelay sends no ACK.
func (c *Call) Reinvite(ctx context.Context, sdp []byte, ackDelay time.Duration, hdrs ...sip.Header) (*sip.Response, error) {
	ct := ""
	if sdp != nil {
		ct = "application/sdp"
	}
	req, err := c.newInDialog(sip.INVITE, ct, sdp, hdrs...)
	if err != nil {
		return nil, err
	}
	seq := req.CSeq().SeqNo
	tx, err := c.p.client.TransactionRequest(ctx, req)
	if err != nil {
		return nil, err
	}
	c.addTx(tx)
	tx.OnRetransmission(func(res *sip.Response) { c.onRetransmission(res) })
	for {
		select {
		case res := <-tx.Responses():
			if res.IsProvisional() {
				continue
			}
			if res.IsSuccess() {
				if d, err := media.ParseSDP(res.Body()); err == nil {
					c.mu.Lock()
					c.answer = d
					c.mu.Unlock()
				}
				if ackDelay >= 0 {
					time.Sleep(ackDelay)
					_ = c.ackSeq(seq)
				}
			}
			return res, nil
		case <-tx.Done():
			return nil, tx.Err()
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Call) record(req *sip.Request) {
	c.mu.Lock()
	c.requests = append(c.requests, req)
	c.mu.Unlock()
}

// Requests returns the requests the far end sent in this call.
func (c *Call) Requests() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Request(nil), c.requests...)
}

// ByeReceived is closed when the far end sent BYE (answered 200 by the phone).
func (c *Call) ByeReceived() <-chan struct{} { return c.byeCh }

// WaitBye waits for the far end's BYE.
func (c *Call) WaitBye(ctx context.Context) error {
	select {
	case <-c.byeCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("testphone: no bye: %w", ctx.Err())
	}
}

// Close releases the call's RTP socket and transactions.
func (c *Call) Close() {
	c.closeMedia()
	c.terminateTxs()
}

func (c *Call) closeMedia() {
	c.mu.Lock()
	closed := c.mediaClosed
	c.mediaClosed = true
	c.mu.Unlock()
	if !closed {
		_ = c.RTP.Close()
	}
}

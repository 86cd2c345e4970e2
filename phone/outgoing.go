package phone

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/google/uuid"

	"github.com/matterline/matterline/media"
)

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

// Outgoing is one call placed by a UA: the INVITE transaction, the dialog it
// set up, and the call's raw RTP.
type Outgoing struct {
	p *UA
	// CallID is the call's SIP Call-ID.
	CallID string
	// RTP is the call's media socket, offered in the generated SDP.
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

// Invite places a call and returns at once; WaitFinal waits for the final
// response, and a 2xx is acknowledged unless NoAutoAck. The call is registered by
// Call-ID before the INVITE leaves, so a request right behind the 200 OK finds
// it.
func (p *UA) Invite(ctx context.Context, o InviteOptions) (*Outgoing, error) {
	var target sip.Uri
	if err := sip.ParseUri(o.Target, &target); err != nil {
		return nil, fmt.Errorf("phone: target %q: %w", o.Target, err)
	}
	if o.From == "" {
		o.From = "+12175550100"
	}
	rtpPeer, err := p.NewRTPPeer()
	if err != nil {
		return nil, err
	}
	c := &Outgoing{p: p, CallID: uuid.NewString(), RTP: rtpPeer, opts: o, cseq: 1,
		finalCh: make(chan struct{}), byeCh: make(chan struct{}),
		retrans: map[uint32]int{}, acked: map[uint32]*sip.Request{}}
	req := sip.NewRequest(sip.INVITE, target)
	req.SetTransport(p.transportName())
	c.from = &sip.FromHeader{Address: sip.Uri{Scheme: "sip", User: o.From, Host: p.st.ip.String()}, Params: sip.NewParams()}
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
	if p.closed {
		p.mu.Unlock()
		_ = rtpPeer.Close()
		return nil, ErrClosed
	}
	p.calls[c.CallID] = c
	p.mu.Unlock()

	tx, err := p.st.client.TransactionRequest(ctx, req)
	if err != nil {
		c.closeMedia()
		return nil, fmt.Errorf("phone: invite: %w", err)
	}
	c.addTx(tx)
	tx.OnRetransmission(func(res *sip.Response) { c.onRetransmission(res) })
	go c.collect(tx)
	return c, nil
}

func (c *Outgoing) addTx(tx sip.ClientTransaction) {
	c.mu.Lock()
	c.txs = append(c.txs, tx)
	c.mu.Unlock()
}

func (c *Outgoing) terminateTxs() {
	c.mu.Lock()
	txs := c.txs
	c.txs = nil
	c.mu.Unlock()
	for _, tx := range txs {
		tx.Terminate()
	}
}

func (c *Outgoing) collect(tx sip.ClientTransaction) {
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

func (c *Outgoing) onFinal(res *sip.Response) {
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

func (c *Outgoing) onRetransmission(res *sip.Response) {
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
		_ = c.p.st.client.WriteRequest(a)
	}
}

// Retransmissions is how many copies of the 2xx to the INVITE with CSeq seq came
// after the first.
func (c *Outgoing) Retransmissions(seq uint32) int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.retrans[seq]
}

// WaitFinal waits for the INVITE's final response (nil when the transaction died).
func (c *Outgoing) WaitFinal(ctx context.Context) (*sip.Response, error) {
	select {
	case <-c.finalCh:
		c.mu.Lock()
		defer c.mu.Unlock()
		if c.final == nil {
			return nil, errors.New("phone: invite transaction ended without final response")
		}
		return c.final, nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// Responses returns every response to the INVITE so far (provisional included).
func (c *Outgoing) Responses() []*sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Response(nil), c.responses...)
}

// Answer is the parsed SDP of the 2xx.
func (c *Outgoing) Answer() media.Description {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.answer
}

// Final is the INVITE's final response (nil before it).
func (c *Outgoing) Final() *sip.Response {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.final
}

// DTMFPayloadType is the telephone-event payload type of the answer (101 if none).
func (c *Outgoing) DTMFPayloadType() uint8 {
	a := c.Answer()
	if a.HasDTMF {
		return a.DTMFPayloadType
	}
	return 101
}

// Ack sends the ACK for the 2xx to the initial INVITE.
func (c *Outgoing) Ack() error { return c.ackSeq(1) }

func (c *Outgoing) ackSeq(seq uint32) error {
	c.mu.Lock()
	to, target := c.to, c.remoteTarget
	c.mu.Unlock()
	if to == nil {
		return errors.New("phone: no dialog")
	}
	ack := sip.NewRequest(sip.ACK, target)
	ack.SetTransport(c.p.transportName())
	c.dialogHeaders(ack, to, seq, sip.ACK)
	if c.opts.Proxy != "" {
		ack.SetDestination(c.opts.Proxy)
	}
	c.mu.Lock()
	c.acked[seq] = ack.Clone()
	c.mu.Unlock()
	return c.p.st.client.WriteRequest(ack)
}

func (c *Outgoing) dialogHeaders(req *sip.Request, to *sip.ToHeader, seq uint32, method sip.RequestMethod) {
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
func (c *Outgoing) Cancel(ctx context.Context) (*sip.Response, error) {
	inv := c.invite
	req := sip.NewRequest(sip.CANCEL, inv.Recipient)
	req.SetTransport(c.p.transportName())
	req.AppendHeader(inv.Via().Clone())
	req.AppendHeader(sip.HeaderClone(c.from))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	callID := sip.CallIDHeader(c.CallID)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.CANCEL})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.SetBody(nil)
	return c.p.st.client.Do(ctx, req, sipgo.ClientRequestBuild)
}

// Request sends an in-dialog request and waits for its final response.
func (c *Outgoing) Request(ctx context.Context, method sip.RequestMethod, contentType string, body []byte, hdrs ...sip.Header) (*sip.Response, error) {
	req, err := c.newInDialog(method, contentType, body, hdrs...)
	if err != nil {
		return nil, err
	}
	return c.p.st.client.Do(ctx, req)
}

func (c *Outgoing) newInDialog(method sip.RequestMethod, contentType string, body []byte, hdrs ...sip.Header) (*sip.Request, error) {
	c.mu.Lock()
	to, target := c.to, c.remoteTarget
	c.cseq++
	seq := c.cseq
	c.mu.Unlock()
	if to == nil {
		return nil, errors.New("phone: no dialog")
	}
	req := sip.NewRequest(method, target)
	req.SetTransport(c.p.transportName())
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
func (c *Outgoing) Bye(ctx context.Context) (*sip.Response, error) {
	return c.Request(ctx, sip.BYE, "", nil)
}

// Info sends INFO with a body.
func (c *Outgoing) Info(ctx context.Context, contentType string, body []byte) (*sip.Response, error) {
	return c.Request(ctx, sip.INFO, contentType, body)
}

// InfoDTMF sends one digit as application/dtmf-relay INFO.
func (c *Outgoing) InfoDTMF(ctx context.Context, key rune) (*sip.Response, error) {
	return c.Info(ctx, "application/dtmf-relay", []byte(fmt.Sprintf("Signal=%c\r\nDuration=160\r\n", key)))
}

// SendDTMF sends one digit as RFC 4733 events on the call's RTP.
func (c *Outgoing) SendDTMF(key rune) error { return c.RTP.SendDTMF(c.DTMFPayloadType(), key) }

// Reinvite sends a re-INVITE with sdp (nil: none) and waits for the final response.
// ackDelay > 0 delays the ACK of a 2xx (to observe retransmissions); a negative
// ackDelay sends no ACK.
func (c *Outgoing) Reinvite(ctx context.Context, sdp []byte, ackDelay time.Duration, hdrs ...sip.Header) (*sip.Response, error) {
	ct := ""
	if sdp != nil {
		ct = "application/sdp"
	}
	req, err := c.newInDialog(sip.INVITE, ct, sdp, hdrs...)
	if err != nil {
		return nil, err
	}
	seq := req.CSeq().SeqNo
	tx, err := c.p.st.client.TransactionRequest(ctx, req)
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

func (c *Outgoing) record(req *sip.Request) {
	c.mu.Lock()
	c.requests = append(c.requests, req)
	c.mu.Unlock()
}

// Requests returns the requests the far end sent in this call.
func (c *Outgoing) Requests() []*sip.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]*sip.Request(nil), c.requests...)
}

// ByeReceived is closed when the far end sent BYE (answered 200 by the phone).
func (c *Outgoing) ByeReceived() <-chan struct{} { return c.byeCh }

// WaitBye waits for the far end's BYE.
func (c *Outgoing) WaitBye(ctx context.Context) error {
	select {
	case <-c.byeCh:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("phone: no bye: %w", ctx.Err())
	}
}

// Close releases the call's RTP socket and transactions; it sends nothing.
func (c *Outgoing) Close() {
	c.closeMedia()
	c.terminateTxs()
}

func (c *Outgoing) closeMedia() {
	c.mu.Lock()
	closed := c.mediaClosed
	c.mediaClosed = true
	c.mu.Unlock()
	if !closed {
		_ = c.RTP.Close()
	}
}

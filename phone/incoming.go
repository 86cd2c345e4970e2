package phone

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"sync"
	"time"

	"github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
)

// noAnswerRing bounds the ringing of AnswerOptions.NoAnswer.
const noAnswerRing = 30 * time.Second

// AnswerOptions shape how a UA answers INVITEs (a PBX extension or an
// attorney's phone in a transfer test): 180 Ringing, RingFor, then the final
// response.
type AnswerOptions struct {
	// Status is the final response: 0 or 200 answers with SDP; 486, 603 ...
	// reject.
	Status int
	// NoAnswer rings until the caller cancels (or 30 s), sending no final
	// response.
	NoAnswer bool
	// RingFor is how long it rings (180) before the final response.
	RingFor time.Duration
	// Codec is the codec it answers with: media.PCMU (default) or media.PCMA.
	Codec media.Codec
	// NoDTMF answers without telephone-event.
	NoDTMF bool
}

// Next waits for the next INVITE a UA with AnswerOptions received.
func (c *UA) Next(ctx context.Context) (*Incoming, error) {
	if c.cfg.Answer == nil {
		return nil, errors.New("phone: ua answers no calls (UAConfig.Answer is nil)")
	}
	select {
	case in := <-c.next:
		return in, nil
	case <-ctx.Done():
		return nil, fmt.Errorf("phone: no incoming call: %w", ctx.Err())
	}
}

// Incoming is one INVITE a UA with AnswerOptions received, answered as the
// options say.
type Incoming struct {
	c *UA
	// Invite is the INVITE as received.
	Invite *sip.Request
	// RTP is the call's media socket, in the SDP answer.
	RTP *RTPPeer
	// Offer is the parsed SDP offer of the INVITE.
	Offer media.Description
	// Cancelled is closed when the caller cancelled the INVITE; Acked when the ACK
	// came; Bye when the far end hung up.
	Cancelled chan struct{}
	Acked     chan struct{}
	Bye       chan struct{}

	mu       sync.Mutex
	tag      string
	cseq     uint32
	answer   *sip.Response
	requests []*sip.Request
	once     sync.Once
	ackOnce  sync.Once
	byeOnce  sync.Once
	pt       uint8
}

// answerRoute takes the INVITEs and in-dialog requests of answered calls; false
// leaves req to the UA's outgoing calls.
func (c *UA) answerRoute(req *sip.Request, tx sip.ServerTransaction) bool {
	id := ""
	if h := req.CallID(); h != nil {
		id = h.Value()
	}
	c.mu.Lock()
	in := c.incoming[id]
	c.mu.Unlock()
	if req.IsInvite() && in == nil {
		if to := req.To(); to != nil && to.Params != nil && to.Params.Has("tag") {
			return false // a re-INVITE in one of our outgoing calls
		}
		c.mu.Lock()
		closed := c.closed
		if !closed {
			c.wg.Add(1)
		}
		c.mu.Unlock()
		if closed {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 480, "Temporarily Unavailable", nil))
			return true
		}
		defer c.wg.Done()
		c.invite(req, tx)
		return true
	}
	if in == nil {
		return false
	}
	in.mu.Lock()
	in.requests = append(in.requests, req)
	in.mu.Unlock()
	switch {
	case req.IsAck():
		in.ackOnce.Do(func() { close(in.Acked) })
	case req.Method == sip.BYE:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
		in.byeOnce.Do(func() { close(in.Bye) })
	case req.IsInvite(): // re-INVITE: answer with our SDP
		in.mu.Lock()
		res := sip.NewResponseFromRequest(req, 200, "OK", in.answer.Body())
		in.mu.Unlock()
		res.AppendHeader(c.contact())
		res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
		_ = tx.Respond(res)
	default:
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	return true
}

func (c *UA) invite(req *sip.Request, tx sip.ServerTransaction) {
	rtpPeer, err := c.NewRTPPeer()
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 500, "Server Error", nil))
		return
	}
	offer, _ := media.ParseSDP(req.Body())
	in := &Incoming{c: c, Invite: req, RTP: rtpPeer, Offer: offer, tag: sip.GenerateTagN(10),
		Cancelled: make(chan struct{}), Acked: make(chan struct{}), Bye: make(chan struct{})}
	if offer.Addr.IsValid() {
		rtpPeer.SetRemote(offer.Addr)
	}
	c.mu.Lock()
	c.incoming[req.CallID().Value()] = in
	c.mu.Unlock()
	select {
	case c.next <- in:
	default: // nobody reads Next: the test does not care
	}
	o := *c.cfg.Answer

	dreq := req.Clone()
	dreq.To().Params.Add("tag", in.tag)
	tx.OnCancel(func(*sip.Request) { in.once.Do(func() { close(in.Cancelled) }) })
	_ = tx.Respond(sip.NewResponseFromRequest(dreq, 180, "Ringing", nil))
	ring := o.RingFor
	if o.NoAnswer {
		ring = noAnswerRing
	}
	t := time.NewTimer(ring)
	defer t.Stop()
	select {
	case <-t.C:
	case <-in.Cancelled:
		return
	case <-tx.Done():
		in.once.Do(func() { close(in.Cancelled) })
		return
	}
	if o.NoAnswer {
		return
	}
	if o.Status != 0 && o.Status != 200 {
		_ = tx.Respond(sip.NewResponseFromRequest(dreq, o.Status, reasonPhrase(o.Status), nil))
		return
	}
	codec := o.Codec
	if codec.Name == "" {
		codec = media.PCMU
	}
	pt := codec.PayloadType
	formats := []string{fmt.Sprintf("%d %s/%d", codec.PayloadType, codec.Name, codec.ClockRate)}
	if !o.NoDTMF {
		formats = append(formats, fmt.Sprintf("%d telephone-event/8000", dtmfPT(offer)))
	}
	body := Offer(rtpPeer.Addr(), OfferOptions{Formats: formats, DTMFPayloadType: dtmfPT(offer)})
	res := sip.NewResponseFromRequest(dreq, 200, "OK", body)
	res.AppendHeader(c.contact())
	res.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	in.mu.Lock()
	in.answer, in.pt = res, pt
	in.mu.Unlock()
	_ = tx.Respond(res)
}

func dtmfPT(d media.Description) uint8 {
	if d.HasDTMF {
		return d.DTMFPayloadType
	}
	return 101
}

// AudioPT is the payload type the callee answered with.
func (in *Incoming) AudioPT() uint8 {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.pt
}

// Requests are the in-dialog requests received after the INVITE.
func (in *Incoming) Requests() []*sip.Request {
	in.mu.Lock()
	defer in.mu.Unlock()
	return append([]*sip.Request(nil), in.requests...)
}

// Request sends an in-dialog request from the callee (UAS side of the dialog) and
// waits for its final response.
func (in *Incoming) Request(ctx context.Context, method sip.RequestMethod, contentType string, body []byte) (*sip.Response, error) {
	inv := in.Invite
	ct := inv.Contact()
	if ct == nil {
		return nil, errors.New("phone: invite without contact")
	}
	req := sip.NewRequest(method, *ct.Address.Clone())
	req.SetTransport(in.c.transportName())
	from := &sip.FromHeader{Address: inv.To().Address, Params: sip.NewParams()}
	from.Params.Add("tag", in.tag)
	to := &sip.ToHeader{Address: inv.From().Address, Params: inv.From().Params.Clone()}
	callID := sip.CallIDHeader(inv.CallID().Value())
	in.mu.Lock()
	in.cseq++
	seq := in.cseq
	in.mu.Unlock()
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	maxf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&maxf)
	req.AppendHeader(in.c.contact())
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	res, err := in.c.st.client.Do(ctx, req)
	if err == nil && method == sip.INVITE && res.IsSuccess() {
		ack := sip.NewRequest(sip.ACK, *ct.Address.Clone())
		ack.SetTransport(in.c.transportName())
		ack.AppendHeader(sip.HeaderClone(from))
		ack.AppendHeader(sip.HeaderClone(res.To()))
		ack.AppendHeader(&callID)
		ack.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: sip.ACK})
		ack.AppendHeader(&maxf)
		ack.SetBody(nil)
		_ = in.c.st.client.WriteRequest(ack)
	}
	return res, err
}

// HangUp sends BYE from the callee.
func (in *Incoming) HangUp(ctx context.Context) (*sip.Response, error) {
	return in.Request(ctx, sip.BYE, "", nil)
}

// InfoDTMF sends one digit as application/dtmf-relay INFO.
func (in *Incoming) InfoDTMF(ctx context.Context, key rune) (*sip.Response, error) {
	return in.Request(ctx, sip.INFO, "application/dtmf-relay", []byte(fmt.Sprintf("Signal=%c\r\nDuration=160\r\n", key)))
}

// SendDTMF sends one digit as RFC 4733 events.
func (in *Incoming) SendDTMF(key rune) error { return in.RTP.SendDTMF(dtmfPT(in.Offer), key) }

// WaitAcked reports whether the ACK came within d.
func (in *Incoming) WaitAcked(d time.Duration) bool {
	select {
	case <-in.Acked:
		return true
	case <-time.After(d):
		return false
	}
}

// Remote is where the callee sends RTP.
func (in *Incoming) Remote() netip.AddrPort { return in.RTP.Remote() }

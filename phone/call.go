package phone

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/pion/rtp"

	"github.com/matterline/matterline/media"
)

// DTMFDuration is how long a key is held: its RFC 4733 end packet, which
// completes the digit, leaves this long after its first packet.
const DTMFDuration = 120 * time.Millisecond

// CallInfo is what a phone learned about a call from its signalling.
type CallInfo struct {
	// From is the user part of From (the caller's number); FromName its display name.
	From, FromName string
	// PAssertedIdentity is the user part of P-Asserted-Identity, empty when absent.
	PAssertedIdentity string
	// Diversion holds the user parts of the Diversion headers (RFC 5806), in order.
	Diversion []string
	// To is the user part of To; RequestURI the Request-URI of the INVITE.
	To, RequestURI string
	// Codec is the negotiated audio format; Remote the far end's RTP address from
	// its SDP; Local our RTP address.
	Codec         media.Codec
	Remote, Local netip.AddrPort
}

// Call is one call of a phone, placed by a Caller or answered by a Callee.
// Its methods are safe for concurrent use.
type Call struct {
	a    *agent
	id   string
	uac  *sipgo.DialogClientSession
	uas  *sipgo.DialogServerSession
	info CallInfo

	ready     chan struct{} // closed when the dialog and media are set up
	readyOnce sync.Once
	done      chan struct{} // closed when the call has ended
	endOnce   sync.Once

	an *analyzer

	mu        sync.Mutex
	sess      *media.Session
	local     media.LocalSDP
	endReason string
	voiceStop context.CancelFunc
	voiceDone chan struct{}
	byeOnce   sync.Once
}

func newCall(a *agent, id string) *Call {
	return &Call{a: a, id: id, ready: make(chan struct{}), done: make(chan struct{}), an: newAnalyzer()}
}

// ID is the SIP Call-ID.
func (c *Call) ID() string { return c.id }

// Info is what the signalling said about the call.
func (c *Call) Info() CallInfo {
	c.mu.Lock()
	defer c.mu.Unlock()
	info := c.info
	info.Diversion = append([]string(nil), c.info.Diversion...)
	return info
}

// Done is closed when the call has ended (BYE either way, or Close).
func (c *Call) Done() <-chan struct{} { return c.done }

// EndReason says why the call ended ("" while it is up): "remote_bye",
// "local_bye", "closed".
func (c *Call) EndReason() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.endReason
}

// Stats are the call's RTP counters.
func (c *Call) Stats() media.Stats {
	c.mu.Lock()
	sess := c.sess
	c.mu.Unlock()
	if sess == nil {
		return media.Stats{}
	}
	return sess.Stats()
}

// setMedia starts the call's RTP session on conn for the negotiated format and
// hooks the analyzer to it.
func (c *Call) setMedia(conn *net.UDPConn, release func(), neg media.Negotiated, local media.LocalSDP) error {
	sess, err := media.NewSession(media.SessionConfig{
		Conn: conn, Codec: neg.Codec, HasDTMF: neg.HasDTMF, DTMFPayloadType: neg.DTMFPayloadType,
		Remote: neg.Remote, OnClose: release, Logger: c.a.log,
	})
	if err != nil {
		_ = conn.Close()
		release()
		return err
	}
	sess.SetDirection(neg.Direction)
	codec := sess.Codec()
	pcm := make([]int16, 0, 1500)
	sess.SetPacketHandler(func(pkt *rtp.Packet, _ netip.AddrPort) {
		if pkt.PayloadType != codec.PayloadType {
			return // telephone-event
		}
		pcm = pcm[:len(pkt.Payload)]
		n := media.Decode(codec, pcm, pkt.Payload)
		c.an.feed(pcm[:n], pkt.Marker, time.Now())
	})
	go c.forwardDigits(sess)
	c.mu.Lock()
	select {
	case <-c.done: // ended (Close) while it was being set up
		c.mu.Unlock()
		_ = sess.Close()
		return ErrClosed
	default:
	}
	c.sess, c.local = sess, local
	c.info.Codec = neg.Codec
	c.info.Remote = neg.Remote
	c.info.Local = netip.AddrPortFrom(local.Addr, uint16(local.Port))
	c.mu.Unlock()
	return nil
}

// forwardDigits reports received key presses until the session closes.
func (c *Call) forwardDigits(sess *media.Session) {
	for {
		select {
		case d := <-sess.DTMF():
			c.a.emit(EventDTMFReceived, c.id, fmt.Sprintf("key %c (%s)", d.Key, d.Source))
		case <-sess.Done():
			return
		}
	}
}

func (c *Call) session() *media.Session {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.sess
}

// markReady marks the dialog and media set up.
func (c *Call) markReady() { c.readyOnce.Do(func() { close(c.ready) }) }

// SendDTMF presses key: an RFC 4733 event on the RTP stream, or SIP INFO
// (application/dtmf-relay) when the far end did not negotiate telephone-event.
func (c *Call) SendDTMF(ctx context.Context, key rune) error {
	sess := c.session()
	if sess == nil {
		return errors.New("phone: send dtmf: no media")
	}
	ctx, cancel := withDefaultTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	err := sess.SendDTMF(ctx, key, DTMFDuration)
	if errors.Is(err, media.ErrNoTelephoneEvent) {
		return c.SendDTMFInfo(ctx, key)
	}
	if err != nil {
		return fmt.Errorf("phone: send dtmf: %w", err)
	}
	c.a.emit(EventDTMFSent, c.id, fmt.Sprintf("key %c (rfc4733)", key))
	return nil
}

// SendDTMFInfo presses key as a SIP INFO with an application/dtmf-relay body.
func (c *Call) SendDTMFInfo(ctx context.Context, key rune) error {
	body := fmt.Sprintf("Signal=%c\r\nDuration=%d\r\n", key, DTMFDuration.Milliseconds())
	res, err := c.request(ctx, sip.INFO, "application/dtmf-relay", []byte(body))
	if err != nil {
		return fmt.Errorf("phone: dtmf info: %w", err)
	}
	if !res.IsSuccess() {
		return fmt.Errorf("phone: dtmf info: %d %s", res.StatusCode, res.Reason)
	}
	c.a.emit(EventDTMFSent, c.id, fmt.Sprintf("key %c (info)", key))
	return nil
}

// Play sends p to the far end and returns when it has been sent.
func (c *Call) Play(ctx context.Context, p *media.Prompt) error {
	sess := c.session()
	if sess == nil {
		return errors.New("phone: play: no media")
	}
	return sess.Play(ctx, p)
}

// StartVoice plays a sine tone of freqHz over and over as the phone's "voice",
// until StopVoice, Hangup or the end of the call. A running voice is replaced.
func (c *Call) StartVoice(freqHz float64) error {
	sess := c.session()
	if sess == nil {
		return errors.New("phone: voice: no media")
	}
	c.StopVoice()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	c.mu.Lock()
	c.voiceStop, c.voiceDone = cancel, done
	c.mu.Unlock()
	tone := media.Tone(freqHz, time.Second)
	go func() {
		defer close(done)
		_ = sess.PlayLoop(ctx, tone)
	}()
	return nil
}

// StopVoice stops the voice started by StartVoice and waits until it is silent.
func (c *Call) StopVoice() {
	c.mu.Lock()
	stop, done := c.voiceStop, c.voiceDone
	c.voiceStop, c.voiceDone = nil, nil
	c.mu.Unlock()
	if stop != nil {
		stop()
		<-done
	}
}

// Listen waits until the phone hears s (audio that arrives after the call), or ctx
// ends (default timeout 10 s), or the call ends. The error wraps ErrNotHeard.
func (c *Call) Listen(ctx context.Context, s Sound) (Heard, error) {
	ctx, cancel := withDefaultTimeout(ctx, 10*time.Second)
	defer cancel()
	return c.an.listen(ctx, s, c.done)
}

// WaitQuiet waits until no audio above -40 dBFS has arrived for d (a prompt has
// ended), or ctx ends (default timeout 10 s).
func (c *Call) WaitQuiet(ctx context.Context, d time.Duration) error {
	ctx, cancel := withDefaultTimeout(ctx, 10*time.Second)
	defer cancel()
	start := time.Now()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		last := c.an.quietSince()
		if last.Before(start) {
			last = start
		}
		if time.Since(last) >= d {
			return nil
		}
		select {
		case <-tick.C:
		case <-ctx.Done():
			return fmt.Errorf("phone: still hearing audio: %w", ctx.Err())
		case <-c.done:
			return errors.New("phone: call ended")
		}
	}
}

// Hangup sends BYE (bounded by ctx, default 5 s), then closes the media. It is
// idempotent; after the call ended it does nothing.
func (c *Call) Hangup(ctx context.Context) error {
	select {
	case <-c.done:
		return nil
	default:
	}
	select {
	case <-c.ready:
	default:
		c.end("closed") // not set up: nothing to say BYE to
		return nil
	}
	ctx, cancel := withDefaultTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	c.StopVoice()
	var err error
	sent := false
	c.byeOnce.Do(func() {
		sent = true
		c.a.emit(EventByeSent, c.id, "BYE")
		if c.uac != nil {
			err = c.uac.Bye(ctx)
		} else if c.uas != nil {
			err = c.uas.Bye(ctx)
		}
	})
	if sent {
		c.end("local_bye")
	}
	if err != nil {
		return fmt.Errorf("phone: bye: %w", err)
	}
	return nil
}

// byeReceived answers the far end's BYE and ends the call.
func (c *Call) byeReceived(req *sip.Request, tx sip.ServerTransaction) {
	var err error
	if c.uac != nil {
		err = c.uac.ReadBye(req, tx)
	} else if c.uas != nil {
		err = c.uas.ReadBye(req, tx)
	}
	if err != nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
	}
	c.byeOnce.Do(func() {}) // no BYE of ours after theirs
	c.a.emit(EventByeReceived, c.id, "answered 200 OK")
	c.end("remote_bye")
}

// end tears the call down once: voice, then media and port, then the registry.
func (c *Call) end(reason string) {
	c.endOnce.Do(func() {
		c.StopVoice()
		c.mu.Lock()
		c.endReason = reason
		sess, uac, uas := c.sess, c.uac, c.uas
		c.mu.Unlock()
		var st media.Stats
		if sess != nil {
			st = sess.Stats()
			_ = sess.Close()
		}
		if uac != nil {
			_ = uac.Close()
		}
		if uas != nil {
			_ = uas.Close()
		}
		c.a.remove(c)
		c.a.emit(EventEnded, c.id, fmt.Sprintf("%s; rtp in %d, out %d", reason, st.PacketsIn, st.PacketsOut))
		close(c.done)
	})
}

// answerOffer answers a re-INVITE or UPDATE: the new remote address and direction
// apply, and the answer is our SDP with a new version (RFC 3264 §8).
func (c *Call) answerOffer(req *sip.Request, tx sip.ServerTransaction, what string) {
	c.mu.Lock()
	sess := c.sess
	c.local.Version++
	local := c.local
	c.mu.Unlock()
	if sess == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, 491, "Request Pending", nil))
		return
	}
	detail := what + " without offer"
	if len(req.Body()) > 0 {
		desc, err := media.ParseSDP(req.Body())
		if err == nil {
			var neg media.Negotiated
			neg, err = media.Negotiate(desc, []media.Codec{sess.Codec()})
			if err == nil {
				if neg.Remote.IsValid() && neg.Remote.Port() != 0 && !neg.Remote.Addr().IsUnspecified() {
					sess.SetRemote(neg.Remote)
				}
				sess.SetDirection(neg.Direction)
				local.Direction = neg.Direction
				detail = fmt.Sprintf("%s: %s, we answer %s", what, desc.Direction, neg.Direction)
			}
		}
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 488, "Not Acceptable Here", nil))
			c.a.emit(EventReinvite, c.id, what+" refused: "+err.Error())
			return
		}
	}
	c.mu.Lock()
	c.local = local
	c.mu.Unlock()
	res := sip.NewSDPResponseFromRequest(req, media.BuildSDP(local))
	res.AppendHeader(&sip.ContactHeader{Address: c.a.dua.ContactHDR.Address})
	_ = tx.Respond(res)
	c.a.emit(EventReinvite, c.id, detail)
}

// infoReceived takes an application/dtmf-relay INFO as a key press; other INFO
// bodies are acknowledged and ignored.
func (c *Call) infoReceived(req *sip.Request, tx sip.ServerTransaction) {
	ct := ""
	if h := req.ContentType(); h != nil {
		ct = strings.ToLower(h.Value())
	}
	if strings.HasPrefix(ct, "application/dtmf-relay") {
		d, err := media.ParseDTMFRelay(req.Body())
		if err != nil {
			_ = tx.Respond(sip.NewResponseFromRequest(req, 400, "Bad DTMF", nil))
			return
		}
		if sess := c.session(); sess != nil {
			sess.InjectDTMF(d)
		}
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, 200, "OK", nil))
}

// request sends an in-dialog request and waits for its final response. The
// Request-URI is the far end's Contact (SIPGO-NOTES: Do does not set it).
func (c *Call) request(ctx context.Context, method sip.RequestMethod, contentType string, body []byte, hdrs ...sip.Header) (*sip.Response, error) {
	select {
	case <-c.ready:
	default:
		return nil, errors.New("phone: call not set up")
	}
	ctx, cancel := withDefaultTimeout(ctx, DefaultRequestTimeout)
	defer cancel()
	var target sip.Uri
	switch {
	case c.uac != nil:
		target = c.uac.InviteRequest.Recipient
		if ct := c.uac.InviteResponse.Contact(); ct != nil {
			target = ct.Address
		}
	case c.uas != nil:
		target = c.uas.InviteRequest.Recipient
		if ct := c.uas.InviteRequest.Contact(); ct != nil {
			target = ct.Address
		}
	}
	req := sip.NewRequest(method, *target.Clone())
	for _, h := range hdrs {
		req.AppendHeader(h)
	}
	if contentType != "" {
		req.AppendHeader(sip.NewHeader("Content-Type", contentType))
	}
	req.SetBody(body)
	c.a.st.bindLocal(req)
	if c.uac != nil {
		return c.uac.Do(ctx, req)
	}
	return c.uas.Do(ctx, req)
}

// withDefaultTimeout bounds ctx by d unless it already has a deadline.
func withDefaultTimeout(ctx context.Context, d time.Duration) (context.Context, context.CancelFunc) {
	if _, ok := ctx.Deadline(); ok {
		return context.WithCancel(ctx)
	}
	return context.WithTimeout(ctx, d)
}

// newSessionID is a random o= session id (RFC 4566 §5.2: a numeric string).
func newSessionID() uint64 { return rand.Uint64N(1 << 62) }

package sip

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"mime"
	"net/netip"
	"strings"

	"github.com/matterline/matterline/media"
)

// allowedCodecs are the formats we answer with; the offer's order decides
// (RFC 3264 §6.1).
func allowedCodecs() []media.Codec { return []media.Codec{media.PCMU, media.PCMA} }

// offerAnswer is one leg's RFC 3264 offer/answer state (with RFC 6337's
// clarifications): our SDP and its version, the negotiated format, both sides'
// directions, and our offer while it waits for its answer. Only the call's
// goroutine uses it.
type offerAnswer struct {
	local    media.LocalSDP
	all      []media.Codec // what we offer (RFC 6337 §5.3: everything we can)
	neg      media.Negotiated
	peerDir  media.Direction // the direction the peer's last SDP said
	hold     bool            // we hold the peer
	lastBody []byte          // our last SDP: the version moves only when it changes
	offered  *offerAnswer    // the state before our pending offer (rollback)
}

func newOfferAnswer(advertise netip.Addr, port int, prefer ...media.Codec) *offerAnswer {
	codecs := allowedCodecs()
	if len(prefer) > 0 && prefer[0].Name == media.PCMA.Name {
		codecs = []media.Codec{media.PCMA, media.PCMU}
	}
	return &offerAnswer{
		all: codecs,
		local: media.LocalSDP{Addr: advertise, Port: port, SessionID: randomSessionID(), Version: 1,
			Codecs: codecs, HasDTMF: true, DTMFPayloadType: 101, Direction: media.DirSendRecv},
		peerDir: media.DirInactive,
	}
}

// receiveOffer answers a remote offer. A wrong content type or a broken SDP wraps
// media.ErrBadSDP, nothing in common media.ErrNoCommonCodec (both 488), an offer
// while ours is pending ErrRequestPending (491, RFC 3261 §14.1). On error the
// state is unchanged. A re-offer keeps the codec in use when it still lists it.
func (o *offerAnswer) receiveOffer(contentType string, body []byte) ([]byte, error) {
	if o.offered != nil {
		return nil, ErrRequestPending
	}
	if err := checkSDPBody(contentType, body); err != nil {
		return nil, err
	}
	desc, err := media.ParseSDP(body)
	if err != nil {
		return nil, fmt.Errorf("parse offer: %w", err)
	}
	var neg media.Negotiated
	if !o.neg.Codec.IsZero() {
		neg, err = media.Negotiate(desc, []media.Codec{o.neg.Codec})
	}
	if o.neg.Codec.IsZero() || err != nil {
		neg, err = media.Negotiate(desc, o.all)
		if err != nil {
			return nil, fmt.Errorf("negotiate offer: %w", err)
		}
	}
	o.neg = neg
	o.peerDir = desc.Direction
	dir := o.direction()
	o.neg.Direction = dir
	l := o.local
	l.Codecs, l.HasDTMF, l.DTMFPayloadType, l.Direction = []media.Codec{neg.Codec}, neg.HasDTMF, neg.DTMFPayloadType, dir
	return o.render(l), nil
}

// createOffer is our offer: every codec we have, the one in use first
// (RFC 6337 §5.3), telephone-event, and sendrecv unless we hold the peer
// (sendonly). It is pending until receiveAnswer or rollback.
func (o *offerAnswer) createOffer() []byte {
	prev := *o
	o.offered = &prev
	l := o.local
	l.Codecs = o.all
	if !o.neg.Codec.IsZero() {
		l.Codecs = append([]media.Codec{o.neg.Codec}, withoutCodec(o.all, o.neg.Codec)...)
	}
	l.HasDTMF, l.DTMFPayloadType = true, 101
	if o.neg.HasDTMF {
		l.DTMFPayloadType = o.neg.DTMFPayloadType
	}
	l.Direction = media.DirSendRecv
	if o.hold {
		l.Direction = media.DirSendOnly
	}
	return o.render(l)
}

// receiveAnswer takes the answer to our pending offer: its codec must be one we
// offered; its direction limits ours (an answer recvonly makes us sendonly).
func (o *offerAnswer) receiveAnswer(contentType string, body []byte) error {
	if o.offered == nil {
		return fmt.Errorf("%w: answer without an offer", media.ErrBadSDP)
	}
	if err := checkSDPBody(contentType, body); err != nil {
		return err
	}
	desc, err := media.ParseSDP(body)
	if err != nil {
		return fmt.Errorf("parse answer: %w", err)
	}
	neg, err := media.Negotiate(desc, o.local.Codecs)
	if err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	o.offered = nil
	o.neg = neg
	o.peerDir = desc.Direction
	o.neg.Direction = o.direction()
	o.local.Codecs, o.local.HasDTMF, o.local.DTMFPayloadType = []media.Codec{neg.Codec}, neg.HasDTMF, neg.DTMFPayloadType
	o.local.Direction = o.neg.Direction
	return nil
}

// rollback forgets our pending offer (rejected, or no answer came): the state
// before it holds again (RFC 3264 §8: a failed re-offer changes nothing).
func (o *offerAnswer) rollback() {
	if o.offered != nil {
		*o = *o.offered
	}
}

func (o *offerAnswer) pending() bool                { return o.offered != nil }
func (o *offerAnswer) negotiated() media.Negotiated { return o.neg }

// direction is ours as the session must run: we send unless the peer does not
// receive, we receive unless the peer does not send or we hold it.
func (o *offerAnswer) direction() media.Direction {
	peerSends := o.peerDir == media.DirSendRecv || o.peerDir == media.DirSendOnly
	peerRecvs := o.peerDir == media.DirSendRecv || o.peerDir == media.DirRecvOnly
	return directionOf(peerRecvs, peerSends && !o.hold)
}

// peerHolds: the peer's SDP says it does not want our media (sendonly, inactive,
// or a c=0.0.0.0 hold; RFC 3264 §8.4, RFC 6337 §5.1).
func (o *offerAnswer) peerHolds() bool {
	return o.peerDir == media.DirSendOnly || o.peerDir == media.DirInactive
}

// setHold sets whether we hold the peer; the next offer says so.
func (o *offerAnswer) setHold(hold bool) { o.hold = hold }
func (o *offerAnswer) holding() bool     { return o.hold }

// render is our SDP body for l; the o= version goes up only when the body
// changes (RFC 3264 §8).
func (o *offerAnswer) render(l media.LocalSDP) []byte {
	l.Version = o.local.Version
	body := media.BuildSDP(l)
	if !bytes.Equal(body, o.lastBody) {
		if o.lastBody != nil {
			l.Version++
			body = media.BuildSDP(l)
		}
		o.lastBody = body
	}
	o.local.Version = l.Version
	return body
}

func directionOf(send, recv bool) media.Direction {
	switch {
	case send && recv:
		return media.DirSendRecv
	case send:
		return media.DirSendOnly
	case recv:
		return media.DirRecvOnly
	}
	return media.DirInactive
}

func withoutCodec(list []media.Codec, c media.Codec) []media.Codec {
	out := make([]media.Codec, 0, len(list))
	for _, x := range list {
		if x.Name != c.Name {
			out = append(out, x)
		}
	}
	return out
}

// checkSDPBody: an SDP body is present and of type application/sdp.
func checkSDPBody(contentType string, body []byte) error {
	if len(body) == 0 {
		return fmt.Errorf("%w: empty body", media.ErrBadSDP)
	}
	if !isContentType(contentType, "application/sdp") {
		return fmt.Errorf("%w: content type %q", media.ErrBadSDP, contentType)
	}
	return nil
}

// isContentType compares a Content-Type value's media type, ignoring parameters
// and case.
func isContentType(v, want string) bool {
	mt, _, err := mime.ParseMediaType(v)
	if err != nil {
		mt, _, _ = strings.Cut(v, ";")
	}
	return strings.EqualFold(strings.TrimSpace(mt), want)
}

func randomSessionID() uint64 {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return binary.BigEndian.Uint64(b[:]) >> 2 // keep it well inside int64 for o=
}

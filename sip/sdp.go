package sip

import (
	"crypto/rand"
	"encoding/binary"
	"errors"
	"fmt"
	"mime"
	"net/netip"
	"strings"

	"github.com/matterline/matterline/media"
)

// allowedCodecs are the formats we answer with; the offer's order decides
// (RFC 3264 §6.1).
func allowedCodecs() []media.Codec { return []media.Codec{media.PCMU, media.PCMA} }

// offerAnswer is one leg's RFC 3264 offer/answer state as the call uses it: the
// state machine is media.OfferAnswer (RFC 3264 and RFC 6337: pending offers,
// hold in both directions, m= line bookkeeping, o= versions); this checks the
// SIP bodies (present, application/sdp) and maps its errors to ours. Only the
// call's goroutine uses it.
type offerAnswer struct {
	m *media.OfferAnswer
}

// newOfferAnswer starts a leg's state with our address and RTP port and its SRTP
// setup (srtp.go); prefer puts a codec first in our offers (the caller's, so a
// bridge need not transcode).
func newOfferAnswer(advertise netip.Addr, port int, sec legSRTP, prefer ...media.Codec) *offerAnswer {
	codecs := allowedCodecs()
	if len(prefer) > 0 && prefer[0].Name == media.PCMA.Name {
		codecs = []media.Codec{media.PCMA, media.PCMU}
	}
	return &offerAnswer{m: media.NewOfferAnswer(media.OfferAnswerConfig{
		Addr: advertise, Port: port, SessionID: randomSessionID(), Codecs: codecs, DTMFPayloadType: 101,
		SRTP: sec.policy, OfferSRTP: sec.offer,
	})}
}

// receiveOffer answers a remote offer (RFC 3264 §6: as many m= lines as offered,
// the ones we do not use with port 0). A wrong content type or a broken SDP wraps
// media.ErrBadSDP, nothing in common media.ErrNoCommonCodec (both 488), an offer
// while ours is pending ErrRequestPending (491, RFC 3261 §14.1). On error the
// state is unchanged.
func (o *offerAnswer) receiveOffer(contentType string, body []byte) ([]byte, error) {
	if err := checkSDPBody(contentType, body); err != nil {
		return nil, err
	}
	ans, _, err := o.m.AnswerOffer(body)
	switch {
	case errors.Is(err, media.ErrGlare):
		return nil, fmt.Errorf("%w: %w", ErrRequestPending, err)
	case err != nil:
		return nil, fmt.Errorf("offer: %w", err)
	}
	return ans, nil
}

// createOffer is our offer for an INVITE without SDP (late offer, offerless
// re-INVITE): every codec we have and telephone-event, sendrecv unless we hold
// the peer (RFC 6337 §5.3). nil when an offer of ours is pending already.
func (o *offerAnswer) createOffer() []byte {
	b, err := o.m.Offer()
	if err != nil {
		return nil
	}
	return b
}

// holdOffer is our offer to hold the peer (sendonly, inactive when it holds us
// too) or to resume (sendrecv), RFC 3264 §8.4.
func (o *offerAnswer) holdOffer(hold bool) ([]byte, error) {
	if hold {
		return o.m.Hold()
	}
	return o.m.Resume()
}

// receiveAnswer takes the answer to our pending offer; an unusable one rolls the
// offer back.
func (o *offerAnswer) receiveAnswer(contentType string, body []byte) error {
	if err := checkSDPBody(contentType, body); err != nil {
		return err
	}
	if _, err := o.m.ReceiveAnswer(body); err != nil {
		return fmt.Errorf("answer: %w", err)
	}
	return nil
}

func (o *offerAnswer) rollback()     { o.m.Rollback() }
func (o *offerAnswer) pending() bool { return o.m.OfferPending() }
func (o *offerAnswer) negotiated() media.Negotiated {
	n, _ := o.m.Negotiated()
	return n
}

// direction is what the session must run with: sendrecv only while neither side
// holds (so the inactivity timer never runs during a hold).
func (o *offerAnswer) direction() media.Direction {
	if d := o.m.Direction(); d != media.DirUnknown {
		return d
	}
	return media.DirInactive
}
func (o *offerAnswer) peerHolds() bool { return o.m.PeerHolds() }
func (o *offerAnswer) holding() bool   { return o.m.Holding() }

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

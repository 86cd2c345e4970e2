package media

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/netip"
)

// Offer/answer state of one call leg: RFC 3264 (offer/answer, §8 modifying the
// session, §8.4 hold) with the clarifications of RFC 6337 (§5 hold, §5.3 offerless
// re-INVITE). Pure: no sockets, no clock; the SIP layer feeds it bodies and applies
// the results (Session.SetDirection, Session.SetRemote).

var (
	// ErrGlare: a peer offer arrived while an offer of ours is pending. The SIP layer
	// answers 491 Request Pending (RFC 3261 §14.1).
	ErrGlare = errors.New("media: offer received while our offer is pending")
	// ErrOfferPending: we cannot make a new offer before the previous one is answered
	// or rolled back (RFC 3264 §4: one offer at a time).
	ErrOfferPending = errors.New("media: an offer of ours is pending")
	// ErrNoOfferPending: an answer arrived but we made no offer.
	ErrNoOfferPending = errors.New("media: no offer of ours is pending")
)

// defaultDTMFPayloadType is the telephone-event payload type of our own offers
// (RFC 4733 §7: dynamic; 101 is what most endpoints use).
const defaultDTMFPayloadType = 101

// OfferAnswerConfig describes our side of one leg. Zero values mean defaults.
type OfferAnswerConfig struct {
	Addr      netip.Addr // advertised RTP address
	Port      int        // our RTP port
	SessionID uint64     // o= sess-id, fixed for the dialog
	// Codecs we accept and offer, in preference order; PCMU and PCMA when empty.
	Codecs []Codec
	// DTMFPayloadType is the telephone-event payload type of our offers before one
	// was negotiated; 101 when zero.
	DTMFPayloadType uint8
	PtimeMS         int // a=ptime; 20 when zero

	// SRTP is the leg's SDES-SRTP policy (RFC 4568; config media.srtp); the zero
	// value behaves as SRTPOff: RTP/SAVP offers are refused with ErrSRTPRefused.
	// SRTPRequire refuses plain offers with ErrSRTPRequired (both wrap
	// ErrNoCommonCodec) and makes every offer of ours RTP/SAVP.
	SRTP SRTPPolicy
	// OfferSRTP makes our first offer RTP/SAVP under SRTPOffer: the destination
	// requires it (a sips: URI, transport=tls, a destination marked so). Later
	// offers keep whatever the session negotiated.
	OfferSRTP bool
	// Rand is where our SRTP master keys come from; crypto/rand when nil.
	Rand io.Reader
}

// OfferAnswer is the offer/answer state machine of one leg. It owns our SDP (address,
// port, session id and o= version: the version goes up by exactly one whenever the
// SDP we send differs from the one we sent last, and stays when we send the same
// again, RFC 3264 §8), the negotiated media and the hold state in both directions.
// Not safe for concurrent use: the call's actor owns it.
type OfferAnswer struct {
	cfg OfferAnswerConfig

	established bool       // an offer/answer exchange completed
	local       LocalSDP   // our SDP of the last completed exchange
	neg         Negotiated // its result
	dir         Direction  // the direction our Session runs with
	weHold      bool       // we hold the peer (Hold)
	peerHolds   bool       // the peer holds us

	pending *pendingOffer // our offer awaiting its answer

	sent     LocalSDP // the last SDP we sent (offer or answer) ...
	sentBody []byte   // ... as rendered
}

// pendingOffer is an offer we sent and its effect once answered.
type pendingOffer struct {
	local  LocalSDP
	weHold bool
}

// NewOfferAnswer returns the state of a leg before any offer.
func NewOfferAnswer(cfg OfferAnswerConfig) *OfferAnswer {
	if len(cfg.Codecs) == 0 {
		cfg.Codecs = []Codec{PCMU, PCMA}
	} else {
		cfg.Codecs = append([]Codec(nil), cfg.Codecs...)
	}
	if cfg.DTMFPayloadType == 0 {
		cfg.DTMFPayloadType = defaultDTMFPayloadType
	}
	return &OfferAnswer{cfg: cfg}
}

// AnswerOffer takes the peer's offer (initial INVITE, re-INVITE or UPDATE with SDP)
// and returns our answer and the negotiated media. The codec in use is kept when the
// re-offer still lists it (RFC 3264 §8.3.2), a new telephone-event payload type is
// followed. The answer direction is the offer's reversed (RFC 3264 §6.1) and limited
// by our own hold: a sendonly, inactive or c=0.0.0.0 offer holds us (RFC 3264 §8.4,
// RFC 6337 §5); both sides holding gives inactive. The answer keeps the offer's m=
// lines, others rejected with port 0 (RFC 3264 §6).
//
// Errors: ErrGlare while our offer is pending; errors wrapping ErrBadSDP or
// ErrNoCommonCodec for an offer we cannot take. The state is unchanged on error.
func (oa *OfferAnswer) AnswerOffer(body []byte) ([]byte, Negotiated, error) {
	if oa.pending != nil {
		return nil, Negotiated{}, ErrGlare
	}
	desc, err := parseSDP(body, oa.cfg.SRTP)
	if err != nil {
		return nil, Negotiated{}, fmt.Errorf("offer: %w", err)
	}
	desc.Direction = peerDirection(desc)
	if err := oa.checkPolicy(desc); err != nil {
		return nil, Negotiated{}, fmt.Errorf("offer: %w", err)
	}
	neg, err := negotiate(desc, oa.cfg.Codecs, true) // checkPolicy allowed the transport
	if err != nil {
		return nil, Negotiated{}, fmt.Errorf("offer: %w", err)
	}
	var ours []Crypto
	if len(desc.Crypto) > 0 {
		c, err := oa.answerCrypto(desc.Crypto[0])
		if err != nil {
			return nil, Negotiated{}, fmt.Errorf("offer: %w", err)
		}
		ours = []Crypto{c}
		neg.SRTP = SRTPKeys{Suite: c.Suite, Local: c.Key, Remote: desc.Crypto[0].Key}
	}
	if oa.established {
		for _, c := range desc.Codecs {
			if sameFormat(c, oa.neg.Codec) {
				neg.Codec = c // keep the codec in use, at the payload type now offered
				break
			}
		}
	}
	neg.Direction = desc.Direction.Answer().intersect(oa.intent())

	local, ans := oa.render(LocalSDP{
		Codecs:          []Codec{neg.Codec},
		DTMFPayloadType: neg.DTMFPayloadType,
		HasDTMF:         neg.HasDTMF,
		Direction:       neg.Direction,
		Rejected:        neg.Rejected,
		AudioIndex:      neg.AudioIndex,
		Crypto:          ours,
		Proto:           secureProto(desc.Proto, ours),
	})
	oa.established, oa.local, oa.neg, oa.dir = true, local, neg, neg.Direction
	oa.peerHolds = desc.Direction.OnHold()
	return ans, neg, nil
}

// Offer returns our offer for an INVITE without SDP: the initial one (late offer:
// the offer goes in the 200, the answer comes in the ACK) or a re-INVITE without SDP
// (RFC 3261 §14.2, RFC 6337 §5.3). It lists all our capabilities (the codec in use
// first, the other codecs and telephone-event), and its direction is sendrecv, or
// sendonly while we hold the peer: never the held direction of the last exchange, so
// a peer that sends the offerless re-INVITE to resume can. Marks the offer pending;
// ErrOfferPending if one already is.
func (oa *OfferAnswer) Offer() ([]byte, error) {
	dir := DirSendRecv
	if oa.weHold {
		dir = DirSendOnly
	}
	return oa.offer(dir, oa.weHold)
}

// Hold returns our offer to put the peer on hold (re-INVITE or UPDATE): sendonly, or
// inactive when the peer holds us too (RFC 3264 §8.4, RFC 6337 §5.1). Hold state
// changes only when the offer is answered. ErrOfferPending if an offer is pending.
func (oa *OfferAnswer) Hold() ([]byte, error) {
	dir := DirSendOnly
	if oa.peerHolds {
		dir = DirInactive
	}
	return oa.offer(dir, true)
}

// Resume returns our offer to take the peer off hold: sendrecv (the peer answers
// sendonly if it still holds us). ErrOfferPending if an offer is pending.
func (oa *OfferAnswer) Resume() ([]byte, error) {
	return oa.offer(DirSendRecv, false)
}

func (oa *OfferAnswer) offer(dir Direction, weHold bool) ([]byte, error) {
	if oa.pending != nil {
		return nil, ErrOfferPending
	}
	l := LocalSDP{
		Codecs:          oa.offerCodecs(),
		DTMFPayloadType: oa.cfg.DTMFPayloadType,
		HasDTMF:         true,
		Direction:       dir,
	}
	if oa.established {
		if oa.neg.HasDTMF {
			l.DTMFPayloadType = oa.neg.DTMFPayloadType
		}
		// RFC 3264 §8: a new offer keeps every m= line of the session, rejected
		// ones with port 0, in the same order.
		l.Rejected, l.AudioIndex = oa.local.Rejected, oa.local.AudioIndex
	}
	if oa.offersSRTP() {
		c, err := oa.offerCrypto()
		if err != nil {
			return nil, err
		}
		l.Crypto = []Crypto{c}
		if oa.established {
			l.Proto = secureProto(oa.local.Proto, l.Crypto)
		}
	}
	l, body := oa.render(l)
	oa.pending = &pendingOffer{local: l, weHold: weHold}
	return body, nil
}

// offerCodecs is our full list: the codec in use first (at its payload type), then
// the other configured codecs.
func (oa *OfferAnswer) offerCodecs() []Codec {
	out := make([]Codec, 0, len(oa.cfg.Codecs)+1)
	if oa.established && !oa.neg.Codec.IsZero() {
		out = append(out, oa.neg.Codec)
	}
	for _, c := range oa.cfg.Codecs {
		if !containsFormat(out, c) {
			out = append(out, c)
		}
	}
	return out
}

// ReceiveAnswer takes the answer to our pending offer (a 2xx, or the ACK of a late
// offer) and returns the negotiated media. The answer's direction sets ours (RFC 3264
// §6.1: answer recvonly, we are sendonly; answer inactive, we are inactive); an
// answer holding us (sendonly, inactive, c=0.0.0.0) marks the peer as holding. The
// answer's codec must be one we offered and its audio stream where ours was.
//
// Errors: ErrNoOfferPending; errors wrapping ErrBadSDP or ErrNoCommonCodec for an
// unusable answer, after which the offer is rolled back as by Rollback (the SIP
// layer then ends the call or keeps the previous session).
func (oa *OfferAnswer) ReceiveAnswer(body []byte) (Negotiated, error) {
	p := oa.pending
	if p == nil {
		return Negotiated{}, ErrNoOfferPending
	}
	neg, peerHolds, err := oa.readAnswer(p, body)
	if err != nil {
		oa.Rollback()
		return Negotiated{}, err
	}
	oa.pending = nil
	oa.established, oa.local, oa.neg, oa.dir = true, p.local, neg, neg.Direction
	oa.weHold = p.weHold
	if p.local.Direction != DirInactive {
		// An answer to an inactive offer is inactive whatever the peer wants; the
		// peer's hold is known only from answers that allowed it to receive.
		oa.peerHolds = peerHolds
	}
	return neg, nil
}

func (oa *OfferAnswer) readAnswer(p *pendingOffer, body []byte) (Negotiated, bool, error) {
	desc, err := parseSDP(body, SRTPOffer)
	if err != nil {
		return Negotiated{}, false, fmt.Errorf("answer: %w", err)
	}
	offered := len(p.local.Rejected) + 1
	at := max(0, min(p.local.AudioIndex, len(p.local.Rejected)))
	if len(desc.Streams) != offered || desc.AudioIndex != at {
		// RFC 3264 §6: the answer has exactly the offer's m= lines.
		return Negotiated{}, false, fmt.Errorf("answer: %w: %d m= lines with audio at %d, offered %d with audio at %d",
			ErrBadSDP, len(desc.Streams), desc.AudioIndex, offered, at)
	}
	desc.Direction = peerDirection(desc)
	neg, err := negotiate(desc, p.local.Codecs, true) // answeredKeys checks the transport
	if err != nil {
		return Negotiated{}, false, fmt.Errorf("answer: codec not offered: %w", err)
	}
	if neg.SRTP, err = answeredKeys(p.local.Crypto, desc); err != nil {
		return Negotiated{}, false, fmt.Errorf("answer: %w", err)
	}
	neg.Direction = desc.Direction.Answer().intersect(p.local.Direction)
	neg.Rejected, neg.AudioIndex = p.local.Rejected, p.local.AudioIndex
	return neg, desc.Direction.OnHold(), nil
}

// Rollback abandons our pending offer: the peer rejected it (non-2xx to the re-INVITE
// or UPDATE) or never answered it (an ACK without body for an offer in a 2xx). The
// previous session stays (RFC 3264 §8: a rejected offer changes nothing). The o=
// version is not rolled back: the peer saw the offer, so our next SDP gets a higher
// one. No-op without a pending offer.
func (oa *OfferAnswer) Rollback() { oa.pending = nil }

// Direction is the direction our Session must run with (Session.SetDirection);
// DirUnknown before the first exchange. It is sendrecv only while neither side holds.
func (oa *OfferAnswer) Direction() Direction { return oa.dir }

// PeerHolds reports whether the peer holds us (its last offer or answer was sendonly,
// inactive or c=0.0.0.0).
func (oa *OfferAnswer) PeerHolds() bool { return oa.peerHolds }

// Holding reports whether we hold the peer (a Hold offer was answered, and no Resume
// since).
func (oa *OfferAnswer) Holding() bool { return oa.weHold }

// OfferPending reports whether an offer of ours awaits its answer.
func (oa *OfferAnswer) OfferPending() bool { return oa.pending != nil }

// Negotiated returns the result of the last completed exchange; false before one.
func (oa *OfferAnswer) Negotiated() (Negotiated, bool) { return oa.neg, oa.established }

// Local returns our SDP of the last completed exchange (our answer, or our offer
// once answered); the zero LocalSDP before one.
func (oa *OfferAnswer) Local() LocalSDP { return oa.local }

// Body renders Local (to resend it, e.g. in a retransmitted 200); nil before the
// first exchange.
func (oa *OfferAnswer) Body() []byte {
	if !oa.established {
		return nil
	}
	return BuildSDP(oa.local)
}

// intent is the direction we want for ourselves: sendonly while we hold the peer.
func (oa *OfferAnswer) intent() Direction {
	if oa.weHold {
		return DirSendOnly
	}
	return DirSendRecv
}

// render fills in our address, port, ptime, session id and version and renders l.
// The version is the last sent one when the SDP is the same, else one more (RFC 3264
// §8); the first SDP has version 1.
func (oa *OfferAnswer) render(l LocalSDP) (LocalSDP, []byte) {
	l.Addr, l.Port, l.SessionID, l.PtimeMS = oa.cfg.Addr, oa.cfg.Port, oa.cfg.SessionID, oa.cfg.PtimeMS
	if oa.sentBody != nil {
		l.Version = oa.sent.Version
		if body := BuildSDP(l); bytes.Equal(body, oa.sentBody) {
			return l, body
		}
		l.Version++
	} else {
		l.Version = 1
	}
	body := BuildSDP(l)
	oa.sent, oa.sentBody = l, body
	return l, body
}

// peerDirection is the direction of a peer's SDP with the RFC 2543 hold folded in: a
// c= of 0.0.0.0 means the peer receives nothing (RFC 3264 §8.4), so sendrecv becomes
// sendonly and recvonly inactive.
func peerDirection(d Description) Direction {
	dir := d.Direction
	if dir == DirUnknown {
		dir = DirSendRecv
	}
	if d.Addr.IsValid() {
		return dir
	}
	return dir.intersect(DirSendOnly)
}

// intersect is the direction allowing only what both d and o allow, each read as
// "may send" and "may receive" of the same side.
func (d Direction) intersect(o Direction) Direction {
	return directionOf2(d.canSend() && o.canSend(), d.canReceive() && o.canReceive())
}

// canReceive reports whether a side whose own direction is d may receive media.
func (d Direction) canReceive() bool { return d != DirSendOnly && d != DirInactive }

// directionOf2 is the Direction of a side that may send and/or receive.
func directionOf2(send, recv bool) Direction {
	switch {
	case send && recv:
		return DirSendRecv
	case send:
		return DirSendOnly
	case recv:
		return DirRecvOnly
	}
	return DirInactive
}

package sip

import (
	"strings"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/routing"
)

// SDES-SRTP (RFC 4568) per leg. Config.SRTP is the policy (media.srtp):
//
//   - off: an RTP/SAVP offer gets 488, our offers are RTP/AVP.
//   - offer: an RTP/SAVP offer is answered in kind with our own fresh key, a plain
//     one in plain RTP; our own offers are RTP/SAVP only toward a leg that requires
//     it (see legSRTP.offer).
//   - require: a plain offer gets 488 and every offer of ours is RTP/SAVP.
//
// The keys travel in the SDP, so they are secret only over SIP over TLS (RFC 4568
// §8.3); SECURITY.md says so.

// legSRTP is one leg's SRTP setup for its offer/answer state.
type legSRTP struct {
	policy media.SRTPPolicy
	// offer: our first offer on this leg is RTP/SAVP under the "offer" policy.
	offer bool
}

// srtpToward is the setup of an outbound leg to t. The per-destination hook: t
// requires SRTP when it is a sips: URI, has transport=tls (or its transport is
// TLS), or transferTarget.requireSRTP is set (e.g. by the agent route). Under
// "require" every leg offers SRTP anyway, under "off" none does.
func (s *Server) srtpToward(t transferTarget) legSRTP {
	return legSRTP{policy: s.cfg.SRTP, offer: t.wantsSRTP()}
}

// forRule applies a rule's srtp setting to an outbound leg's setup: on requires
// SRTP on this leg whatever media.srtp says (a plain answer fails the leg), off
// offers plain RTP even to a TLS destination.
func (l legSRTP) forRule(t routing.Toggle) legSRTP {
	switch t {
	case routing.ToggleOn:
		return legSRTP{policy: media.SRTPRequire, offer: true}
	case routing.ToggleOff:
		return legSRTP{policy: media.SRTPOff}
	}
	return l
}

// wantsSRTP reports whether a dial target requires an RTP/SAVP offer.
func (t transferTarget) wantsSRTP() bool {
	if t.requireSRTP || strings.EqualFold(t.uri.Scheme, "sips") || strings.EqualFold(t.tport, "TLS") {
		return true
	}
	if t.uri.UriParams != nil {
		if tp, ok := t.uri.UriParams.Get("transport"); ok && strings.EqualFold(tp, "tls") {
			return true
		}
	}
	return false
}

// inboundSRTP is the setup of the caller's leg: when its INVITE has no offer (we
// offer in the 200), our offer is RTP/SAVP under "offer" if the INVITE came over
// TLS or to a sips: Request-URI.
func (s *Server) inboundSRTP(req *gosip.Request) legSRTP {
	secure := strings.EqualFold(req.Transport(), "TLS") || strings.EqualFold(req.Recipient.Scheme, "sips")
	return legSRTP{policy: s.cfg.SRTP, offer: secure}
}

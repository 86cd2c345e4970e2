package sip

import (
	"crypto/rand"
	"encoding/binary"
	"fmt"
	"mime"
	"strings"

	"github.com/matterline/matterline/media"
)

// allowedCodecs are the formats we answer with; the offer's order decides
// (RFC 3264 §6.1).
func allowedCodecs() []media.Codec { return []media.Codec{media.PCMU, media.PCMA} }

// negotiateOffer checks the body of an INVITE/UPDATE offer and negotiates it against
// allowed. An empty body is ErrNoSDP (we do not answer late offers: documented in
// the package comment); a wrong content type or a broken SDP wraps media.ErrBadSDP;
// nothing in common is media.ErrNoCommonCodec. All three give 488.
func negotiateOffer(contentType string, body []byte, allowed []media.Codec) (media.Description, media.Negotiated, error) {
	if len(body) == 0 {
		return media.Description{}, media.Negotiated{}, ErrNoSDP
	}
	if !isContentType(contentType, "application/sdp") {
		return media.Description{}, media.Negotiated{}, fmt.Errorf("%w: content type %q", media.ErrBadSDP, contentType)
	}
	desc, err := media.ParseSDP(body)
	if err != nil {
		return desc, media.Negotiated{}, fmt.Errorf("parse offer: %w", err)
	}
	neg, err := media.Negotiate(desc, allowed)
	if err != nil {
		return desc, neg, fmt.Errorf("negotiate offer: %w", err)
	}
	return desc, neg, nil
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

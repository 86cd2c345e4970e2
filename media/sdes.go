package media

import (
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
)

// SDES: SDP security descriptions for media streams (RFC 4568). Each side puts its
// own master key and salt in an a=crypto line of its SDP; what one side sends is
// encrypted with its own key and decrypted by the other with that key. The keys are
// in the clear in the SDP: they are secret only when the signalling is (SIP over
// TLS, RFC 4568 §8.3).

var (
	// ErrBadCrypto: an a=crypto line that does not follow the RFC 4568 §9.1 grammar
	// (tag, suite, inline key of the suite's length).
	ErrBadCrypto = errors.New("media: malformed a=crypto")
	// ErrUnsupportedCrypto: a well-formed a=crypto line we cannot honour: another
	// crypto suite, an MKI, several keys, a session parameter other than WSH.
	ErrUnsupportedCrypto = errors.New("media: unsupported a=crypto")
	// ErrSRTPRequired: the offer is plain RTP and our policy requires SRTP.
	// ErrSRTPRefused: the offer is SRTP and our policy is off. Both reach the SIP
	// layer wrapped in ErrNoCommonCodec (488 Not Acceptable Here).
	ErrSRTPRequired = errors.New("media: srtp required")
	ErrSRTPRefused  = errors.New("media: srtp not enabled")
)

// CryptoSuite is an SRTP crypto suite of RFC 4568 §6.2. Zero is unknown.
type CryptoSuite uint8

const (
	SuiteUnknown CryptoSuite = iota
	// SuiteAES128SHA1_80 is AES_CM_128_HMAC_SHA1_80: AES-128 counter mode, 80-bit
	// HMAC-SHA1 tag (RFC 4568 §6.2.1). The one we offer.
	SuiteAES128SHA1_80
	// SuiteAES128SHA1_32 is AES_CM_128_HMAC_SHA1_32, the same with a 32-bit tag
	// (RFC 4568 §6.2.2). Accepted in offers.
	SuiteAES128SHA1_32
)

// sdesKeyLen is the master key (16 bytes) and salt (14 bytes) of both suites.
const sdesKeyLen = 30

func (s CryptoSuite) String() string {
	switch s {
	case SuiteAES128SHA1_80:
		return "AES_CM_128_HMAC_SHA1_80"
	case SuiteAES128SHA1_32:
		return "AES_CM_128_HMAC_SHA1_32"
	}
	return "unknown"
}

// AuthTagLen is the SRTP authentication tag length in bytes.
func (s CryptoSuite) AuthTagLen() int {
	if s == SuiteAES128SHA1_32 {
		return 4
	}
	return 10
}

func suiteByName(name string) CryptoSuite {
	switch name {
	case "AES_CM_128_HMAC_SHA1_80":
		return SuiteAES128SHA1_80
	case "AES_CM_128_HMAC_SHA1_32":
		return SuiteAES128SHA1_32
	}
	return SuiteUnknown
}

// Crypto is one a=crypto attribute we can use: tag, suite and a single inline
// master key and salt without MKI.
type Crypto struct {
	Tag   uint32 // 1-9 digits (RFC 4568 §9.1)
	Suite CryptoSuite
	Key   [sdesKeyLen]byte // master key || master salt
}

// maxCryptoTag is the largest 1*9DIGIT tag.
const maxCryptoTag = 999999999

// ParseCrypto reads the value of an a=crypto attribute (what follows "crypto:"):
//
//	tag SP suite SP "inline:" base64(key||salt) ["|" lifetime] ["|" mki ":" len] [SP session-params]
//
// (RFC 4568 §9.1). A lifetime is accepted and ignored (our keys never reach 2^31
// packets in a call); an MKI, several key-params or a session parameter other than
// WSH= (a window size hint, RFC 4568 §6.3.6) cannot be honoured: ErrUnsupportedCrypto,
// as is an unknown suite. Anything malformed wraps ErrBadCrypto.
func ParseCrypto(v string) (Crypto, error) {
	f := strings.Fields(v)
	if len(f) < 3 {
		return Crypto{}, fmt.Errorf("%w: %d fields", ErrBadCrypto, len(f))
	}
	if len(f[0]) > 9 {
		return Crypto{}, fmt.Errorf("%w: tag %q", ErrBadCrypto, f[0])
	}
	tag, err := strconv.ParseUint(f[0], 10, 32)
	if err != nil || f[0][0] == '+' {
		return Crypto{}, fmt.Errorf("%w: tag %q", ErrBadCrypto, f[0])
	}
	c := Crypto{Tag: uint32(tag), Suite: suiteByName(f[1])}
	if c.Suite == SuiteUnknown {
		return Crypto{}, fmt.Errorf("%w: crypto suite %q", ErrUnsupportedCrypto, f[1])
	}
	if strings.Contains(f[2], ";") {
		return Crypto{}, fmt.Errorf("%w: several keys", ErrUnsupportedCrypto)
	}
	method, info, ok := strings.Cut(f[2], ":")
	if !ok || !strings.EqualFold(method, "inline") {
		return Crypto{}, fmt.Errorf("%w: key method %q", ErrBadCrypto, method)
	}
	parts := strings.Split(info, "|")
	if len(parts) > 3 {
		return Crypto{}, fmt.Errorf("%w: key parameters %q", ErrBadCrypto, info)
	}
	// 30 bytes are exactly 40 base64 characters, without padding.
	if len(parts[0]) != base64.StdEncoding.EncodedLen(sdesKeyLen) {
		return Crypto{}, fmt.Errorf("%w: inline key is not %d bytes of base64", ErrBadCrypto, sdesKeyLen)
	}
	if n, err := base64.StdEncoding.Decode(c.Key[:], []byte(parts[0])); err != nil || n != sdesKeyLen {
		return Crypto{}, fmt.Errorf("%w: inline key is not %d bytes of base64", ErrBadCrypto, sdesKeyLen)
	}
	for _, p := range parts[1:] {
		if strings.Contains(p, ":") {
			return Crypto{}, fmt.Errorf("%w: mki %q", ErrUnsupportedCrypto, p)
		}
		if !validLifetime(p) {
			return Crypto{}, fmt.Errorf("%w: lifetime %q", ErrBadCrypto, p)
		}
	}
	for _, sp := range f[3:] {
		if !strings.HasPrefix(sp, "WSH=") {
			return Crypto{}, fmt.Errorf("%w: session parameter %q", ErrUnsupportedCrypto, sp)
		}
	}
	return c, nil
}

// validLifetime: ["2^"] 1*DIGIT (RFC 4568 §9.1).
func validLifetime(s string) bool {
	s = strings.TrimPrefix(s, "2^")
	if s == "" || len(s) > 20 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// appendCrypto writes c as an a=crypto line (RFC 4568 §9.1), CRLF-terminated.
func appendCrypto(b []byte, c Crypto) []byte {
	b = append(b, "a=crypto:"...)
	b = strconv.AppendUint(b, uint64(c.Tag), 10)
	b = append(b, ' ')
	b = append(b, c.Suite.String()...)
	b = append(b, " inline:"...)
	b = base64.StdEncoding.AppendEncode(b, c.Key[:])
	return append(b, "\r\n"...)
}

// String is the attribute value, without the key (for logs).
func (c Crypto) String() string {
	return strconv.FormatUint(uint64(c.Tag), 10) + " " + c.Suite.String() + " inline:<redacted>"
}

// newCrypto makes a fresh master key and salt from r (crypto/rand when nil).
func newCrypto(r io.Reader, tag uint32, suite CryptoSuite) (Crypto, error) {
	if r == nil {
		r = rand.Reader
	}
	c := Crypto{Tag: tag, Suite: suite}
	if _, err := io.ReadFull(r, c.Key[:]); err != nil {
		return Crypto{}, fmt.Errorf("media: srtp key: %w", err)
	}
	return c, nil
}

// SRTPPolicy is a leg's SDES-SRTP policy (config media.srtp). Zero is unknown and
// behaves as SRTPOff.
type SRTPPolicy uint8

const (
	SRTPUnknown SRTPPolicy = iota
	// SRTPOff refuses RTP/SAVP offers (488) and never offers SRTP.
	SRTPOff
	// SRTPOffer answers an RTP/SAVP offer in kind and a plain one in plain RTP; our
	// own offers are RTP/SAVP only where OfferAnswerConfig.OfferSRTP says so (the
	// destination requires it: sips:, transport=tls, a marked destination).
	SRTPOffer
	// SRTPRequire refuses plain RTP offers (488) and always offers RTP/SAVP.
	SRTPRequire
)

// ParseSRTPPolicy reads "off", "offer" or "require"; "" is SRTPOff.
func ParseSRTPPolicy(s string) (SRTPPolicy, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "", "off":
		return SRTPOff, nil
	case "offer":
		return SRTPOffer, nil
	case "require":
		return SRTPRequire, nil
	}
	return SRTPUnknown, fmt.Errorf("media: srtp policy %q: want off, offer or require", s)
}

func (p SRTPPolicy) String() string {
	switch p {
	case SRTPOff:
		return "off"
	case SRTPOffer:
		return "offer"
	case SRTPRequire:
		return "require"
	}
	return "unknown"
}

// SRTPKeys are the SDES keys negotiated for one leg. The zero value is plain RTP.
type SRTPKeys struct {
	Suite CryptoSuite
	// Local is our master key and salt: what we send is encrypted with it (it
	// was in our SDP). Remote is the peer's: what it sends is decrypted with it.
	Local, Remote [sdesKeyLen]byte
}

// Enabled reports whether the leg uses SRTP.
func (k SRTPKeys) Enabled() bool { return k.Suite != SuiteUnknown }

// policyTakes reports whether an audio stream of transport proto is usable under p.
func policyTakes(p SRTPPolicy, proto string) bool {
	switch p {
	case SRTPOffer:
		return isPlainRTP(proto) || isSecureRTP(proto)
	case SRTPRequire:
		return isSecureRTP(proto)
	}
	return isPlainRTP(proto)
}

// isSecureRTP accepts RTP/SAVP and RTP/SAVPF (the feedback profile is compatible
// with a peer that ignores RTCP feedback). DTLS-SRTP (UDP/TLS/RTP/SAVP[F]) is not
// SDES and stays unsupported.
func isSecureRTP(proto string) bool {
	return strings.EqualFold(proto, "RTP/SAVP") || strings.EqualFold(proto, "RTP/SAVPF")
}

// checkPolicy refuses an offer whose transport the leg's policy does not allow.
func (oa *OfferAnswer) checkPolicy(desc Description) error {
	secure := isSecureRTP(desc.Proto)
	switch {
	case secure && oa.cfg.SRTP != SRTPOffer && oa.cfg.SRTP != SRTPRequire:
		return fmt.Errorf("%w: %w: %s offered", ErrNoCommonCodec, ErrSRTPRefused, desc.Proto)
	case !secure && oa.cfg.SRTP == SRTPRequire:
		return fmt.Errorf("%w: %w: %s offered", ErrNoCommonCodec, ErrSRTPRequired, desc.Proto)
	}
	return nil
}

// answerCrypto is our a=crypto line answering the peer's chosen one (RFC 4568
// §7.1.2: its tag and suite, our own key). A leg that already runs SRTP with that
// suite keeps its key, so a re-INVITE (hold, a peer rekeying its own side) does not
// restart our stream's crypto; otherwise the key is fresh.
func (oa *OfferAnswer) answerCrypto(theirs Crypto) (Crypto, error) {
	if oa.established && oa.neg.SRTP.Suite == theirs.Suite {
		return Crypto{Tag: theirs.Tag, Suite: theirs.Suite, Key: oa.neg.SRTP.Local}, nil
	}
	return newCrypto(oa.cfg.Rand, theirs.Tag, theirs.Suite)
}

// offersSRTP reports whether our next offer is RTP/SAVP: always under SRTPRequire;
// under SRTPOffer the first offer when OfferSRTP asks for it, later ones when the
// session runs SRTP.
func (oa *OfferAnswer) offersSRTP() bool {
	switch oa.cfg.SRTP {
	case SRTPRequire:
		return true
	case SRTPOffer:
		if oa.established {
			return oa.neg.SRTP.Enabled()
		}
		return oa.cfg.OfferSRTP
	}
	return false
}

// offerCrypto is the a=crypto line of our offer: the key in use when the session
// runs SRTP (RFC 4568 §7.1.4 lets a re-offer keep it), else a fresh
// AES_CM_128_HMAC_SHA1_80 key with tag 1.
func (oa *OfferAnswer) offerCrypto() (Crypto, error) {
	if oa.established && oa.neg.SRTP.Enabled() {
		tag := uint32(1)
		if len(oa.local.Crypto) > 0 {
			tag = oa.local.Crypto[0].Tag
		}
		return Crypto{Tag: tag, Suite: oa.neg.SRTP.Suite, Key: oa.neg.SRTP.Local}, nil
	}
	if oa.pending == nil && len(oa.sent.Crypto) > 0 && !oa.established {
		// A re-sent initial offer (after a challenge or a rollback) keeps its key.
		return oa.sent.Crypto[0], nil
	}
	return newCrypto(oa.cfg.Rand, 1, SuiteAES128SHA1_80)
}

// answeredKeys checks the transport of an answer against our offer (RFC 3264 §6:
// the same transport) and, for SRTP, picks the answer's a=crypto line whose tag and
// suite are one of ours (RFC 4568 §7.1.3).
func answeredKeys(offered []Crypto, ans Description) (SRTPKeys, error) {
	secure := isSecureRTP(ans.Proto)
	switch {
	case len(offered) == 0 && !secure:
		return SRTPKeys{}, nil
	case len(offered) == 0:
		return SRTPKeys{}, fmt.Errorf("%w: %w: %s answer to a plain offer", ErrNoCommonCodec, ErrUnsupportedTransport, ans.Proto)
	case !secure:
		return SRTPKeys{}, fmt.Errorf("%w: %w: %s answer to an RTP/SAVP offer", ErrNoCommonCodec, ErrSRTPRequired, ans.Proto)
	}
	for _, theirs := range ans.Crypto {
		for _, ours := range offered {
			if ours.Tag == theirs.Tag && ours.Suite == theirs.Suite {
				return SRTPKeys{Suite: ours.Suite, Local: ours.Key, Remote: theirs.Key}, nil
			}
		}
	}
	return SRTPKeys{}, fmt.Errorf("%w: %w: no a=crypto answering ours", ErrNoCommonCodec, ErrUnsupportedCrypto)
}

// secureProto is the audio transport of an SDP of ours with crypto lines: the
// peer's secure transport when it has one (RTP/SAVPF stays), else RTP/SAVP; "" for
// plain RTP.
func secureProto(peer string, crypto []Crypto) string {
	switch {
	case len(crypto) == 0:
		return ""
	case isSecureRTP(peer):
		return peer
	}
	return "RTP/SAVP"
}

package phone

import (
	"fmt"
	"net/netip"
	"strings"

	"github.com/matterline/matterline/media"
)

// OfferOptions shape an SDP offer written by Offer: the raw material of
// offer/answer tests (RFC 3264), including offers a well-behaved phone would not
// make (unsupported codecs only, RFC 2543 hold).
type OfferOptions struct {
	// Formats are the m= payload types with their rtpmap encodings, e.g.
	// "18 G729/8000". Default PCMU, PCMA and telephone-event/8000 at
	// DTMFPayloadType. A telephone-event format gets "a=fmtp:<pt> 0-16".
	Formats []string
	// DTMFPayloadType is the telephone-event payload type (RFC 4733). Default 101.
	DTMFPayloadType uint8
	// Direction is the direction attribute; zero means sendrecv.
	Direction media.Direction
	// NoDirection leaves the direction attribute out (an RFC 2543 phone).
	NoDirection bool
	// Addr overrides the c= address and the m= port, e.g. 0.0.0.0 for RFC 2543
	// hold (RFC 3264 §8.4).
	Addr netip.AddrPort
	// Version is the o= session version; raise it for each new offer in a
	// dialog (RFC 3264 §8). Default 1.
	Version int
	// Crypto are a=crypto values (RFC 4568, e.g. "1 AES_CM_128_HMAC_SHA1_80
	// inline:KEY"); any makes the audio stream RTP/SAVP.
	Crypto []string
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
	if dir == media.DirUnknown {
		dir = media.DirSendRecv
	}
	v := o.Version
	if v == 0 {
		v = 1
	}
	dirLine := "a=" + dir.String() + "\r\n"
	if o.NoDirection {
		dirLine = ""
	}
	proto := "RTP/AVP"
	for _, c := range o.Crypto {
		proto = "RTP/SAVP"
		dirLine += "a=crypto:" + c + "\r\n"
	}
	return fmt.Appendf(nil, "v=0\r\no=phone 4242 %d IN IP4 %s\r\ns=-\r\nc=IN IP4 %s\r\nt=0 0\r\nm=audio %d %s %s\r\n%sa=ptime:20\r\n%s",
		v, ap.Addr(), ap.Addr(), ap.Port(), proto, strings.Join(pts, " "), attrs.String(), dirLine)
}

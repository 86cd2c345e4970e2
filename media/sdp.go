package media

import (
	"bytes"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"

	"github.com/pion/sdp/v3"
)

// SDP offer/answer for one audio stream: RFC 4566 (RFC 8866) syntax, RFC 3264 rules,
// RFC 4733 telephone-event, RFC 3551 static payload types.

var (
	ErrBadSDP        = errors.New("media: malformed sdp")
	ErrNoCommonCodec = errors.New("media: no common codec")
	// ErrUnsupportedTransport: the audio stream is not plain RTP (e.g. RTP/SAVP,
	// UDP/TLS/RTP/SAVPF). Negotiate wraps it together with ErrNoCommonCodec, so a
	// caller that maps ErrNoCommonCodec to 488 covers it too.
	ErrUnsupportedTransport = errors.New("media: unsupported rtp transport")
)

// maxSDPSize bounds what ParseSDP accepts; a real audio SDP is well under 2 KiB.
const maxSDPSize = 64 << 10

// telephoneEvent is the RFC 4733 §7 media subtype name.
const telephoneEvent = "telephone-event"

// MediaLine is one m= line (RFC 4566 §5.14): media type, port, transport and the
// format list, as written.
type MediaLine struct {
	Media   string   // "audio", "video", "application", ...
	Port    int      // 0: stream rejected or disabled (RFC 3264 §5.1, §6)
	Proto   string   // e.g. "RTP/AVP", "RTP/SAVP", "UDP/TLS/RTP/SAVPF"
	Formats []string // payload types or other format tokens, in order
}

// Description is the audio part of a remote SDP (offer or answer), plus the list of
// every m= line so that an answer can keep their number and order (RFC 3264 §6).
type Description struct {
	// Addr is the RTP address: the media-level c= else the session-level c=, and the
	// m=audio port. A c= of 0.0.0.0 (RFC 2543 hold) keeps the address invalid-zero
	// and sets Direction to DirInactive when no direction attribute says otherwise.
	Addr netip.AddrPort
	// Codecs are the offered formats matterline knows (PCMU, PCMA), in the offer's
	// order of preference, matched by payload type 0/8 or by rtpmap name/rate.
	// PayloadType is the one the peer uses (normally 0/8).
	Codecs []Codec
	// DTMFPayloadType is the dynamic payload type of telephone-event/8000, matched by
	// name and rate, whatever number the peer uses. Valid only when HasDTMF.
	DTMFPayloadType uint8
	HasDTMF         bool
	// Direction is the stream's direction attribute (media level, else session
	// level); DirSendRecv when absent (RFC 3264 §5.1), DirInactive for a c=0.0.0.0
	// hold without one.
	Direction      Direction
	PtimeMS        int // a=ptime, 0 when absent
	SessionVersion uint64

	// SessionID is the o= sess-id.
	SessionID uint64
	// Proto is the m= transport of the chosen audio stream, e.g. "RTP/AVP".
	Proto string
	// Formats are all payload types listed on the chosen m=audio line, in order (for logs).
	Formats []string

	// Streams are all m= lines of the SDP, in order; Streams[AudioIndex] is the
	// audio stream the fields above describe.
	Streams    []MediaLine
	AudioIndex int

	// Crypto are the a=crypto lines of an RTP/SAVP audio stream that we can use
	// (RFC 4568, sdes.go), in the SDP's order of preference; lines with another
	// suite, an MKI or malformed ones are left out. Empty for plain RTP.
	Crypto []Crypto
}

// ParseSDP reads an SDP body and describes one of its audio streams: the first
// m=audio line that is usable (a non-zero port, plain RTP as RTP/AVP or RTP/AVPF
// or SDES-SRTP as RTP/SAVP or RTP/SAVPF with an a=crypto line we support, and a
// codec we know), else the first m=audio line with a non-zero port, else the
// first m=audio line. With the fallback, Negotiate reports ErrUnsupportedTransport or
// ErrNoCommonCodec. Every m= line is listed in Streams. Errors wrap ErrBadSDP; an
// SDP whose chosen audio stream has port 0 is one.
//
// ParseSDP prefers plain RTP streams; the offer/answer state (OfferAnswer) chooses
// by its SRTP policy instead.
func ParseSDP(body []byte) (desc Description, err error) {
	return parseSDP(body, SRTPOff)
}

// parseSDP is ParseSDP choosing among the audio streams by an SRTP policy: under
// SRTPOff (and SRTPUnknown) only plain RTP streams are usable, under SRTPRequire
// only SDES-SRTP ones, under SRTPOffer the first of either (a best-effort offer
// of RTP/SAVP and RTP/AVP lines of the same audio is answered on the line the
// policy takes, the other rejected with port 0).
func parseSDP(body []byte, policy SRTPPolicy) (desc Description, err error) {
	// pion/sdp is well fuzzed, but a parser fed from the network must not take the
	// process down whatever happens inside it.
	defer func() {
		if r := recover(); r != nil {
			desc, err = Description{}, fmt.Errorf("%w: parser failure: %v", ErrBadSDP, r)
		}
	}()
	if len(body) > maxSDPSize {
		return Description{}, fmt.Errorf("%w: body of %d bytes is too large", ErrBadSDP, len(body))
	}
	body = bytes.TrimSpace(body)
	if len(body) == 0 {
		return Description{}, fmt.Errorf("%w: empty body", ErrBadSDP)
	}
	// pion/sdp wants a final line end; some endpoints omit it. It also insists on
	// the RFC 4566 line order; when that fails, retry once with the lines put in
	// order (and a missing t= supplied), as lenient SIP stacks do.
	// pion/sdp also knows only some media types and transports; others (m=image
	// udptl t38, RFC 3362) are masked for it and restored below.
	text, orig := maskMediaLines(string(body))
	var sd sdp.SessionDescription
	if err := sd.UnmarshalString(text + "\r\n"); err != nil {
		sd = sdp.SessionDescription{}
		if err2 := sd.UnmarshalString(canonicalSDP(text)); err2 != nil {
			return Description{}, fmt.Errorf("%w: %w", ErrBadSDP, err)
		}
	}
	if len(orig) != len(sd.MediaDescriptions) {
		return Description{}, fmt.Errorf("%w: %d m= lines, %d media sections", ErrBadSDP, len(orig), len(sd.MediaDescriptions))
	}

	streams := make([]MediaLine, 0, len(sd.MediaDescriptions))
	firstAudio, firstLive := -1, -1
	for i, m := range sd.MediaDescriptions {
		if m == nil {
			return Description{}, fmt.Errorf("%w: empty m= section %d", ErrBadSDP, i)
		}
		port := m.MediaName.Port.Value
		if port < 0 || port > 65535 {
			return Description{}, fmt.Errorf("%w: m=%s port %d out of range", ErrBadSDP, m.MediaName.Media, port)
		}
		streams = append(streams, MediaLine{
			Media:   orig[i].media,
			Port:    port,
			Proto:   orig[i].proto,
			Formats: m.MediaName.Formats,
		})
		if !strings.EqualFold(orig[i].media, "audio") {
			continue
		}
		if firstAudio < 0 {
			firstAudio = i
		}
		if port == 0 {
			continue // RFC 3264 §6: a port-0 stream is not in use
		}
		if firstLive < 0 {
			firstLive = i
		}
	}
	if firstAudio < 0 {
		return Description{}, fmt.Errorf("%w: no m=audio line", ErrBadSDP)
	}

	// The first usable audio stream wins (RFC 3264 §6: the answerer picks the
	// streams it takes; the others are rejected with port 0).
	for i, st := range streams {
		if !strings.EqualFold(st.Media, "audio") || st.Port == 0 || !policyTakes(policy, st.Proto) {
			continue
		}
		d := Description{Streams: streams, AudioIndex: i}
		if err := d.readAudio(&sd, sd.MediaDescriptions[i]); err == nil && len(d.Codecs) > 0 &&
			(isPlainRTP(st.Proto) || len(d.Crypto) > 0) {
			d.Proto = st.Proto
			return d, nil
		}
	}
	chosen := firstLive
	if chosen < 0 {
		chosen = firstAudio
	}
	desc = Description{Streams: streams, AudioIndex: chosen}
	if err := desc.readAudio(&sd, sd.MediaDescriptions[chosen]); err != nil {
		return Description{}, err
	}
	desc.Proto = streams[chosen].Proto
	return desc, nil
}

// mediaLineID is the media type and transport of one m= line as written.
type mediaLineID struct{ media, proto string }

// maskMediaLines returns body with each m= line whose media type or transport
// pion/sdp rejects rewritten as "m=application <port> UDP <formats>", and the
// media type and transport of every m= line as written, in order.
func maskMediaLines(body string) (string, []mediaLineID) {
	var (
		ids     []mediaLineID
		b       strings.Builder
		changed bool
	)
	lines := strings.SplitAfter(body, "\n")
	for i, line := range lines {
		if !strings.HasPrefix(line, "m=") {
			continue
		}
		f := strings.Fields(line[2:])
		id := mediaLineID{}
		if len(f) > 0 {
			id.media = f[0]
		}
		if len(f) > 2 {
			id.proto = f[2]
		}
		ids = append(ids, id)
		if len(f) < 3 || (pionMedia(f[0]) && pionProto(f[2])) {
			continue
		}
		f[0], f[2] = "application", "UDP"
		lines[i] = "m=" + strings.Join(f, " ") + line[len(strings.TrimRight(line, "\r\n")):]
		changed = true
	}
	if !changed {
		return body, ids
	}
	for _, l := range lines {
		b.WriteString(l)
	}
	return b.String(), ids
}

// pionMedia and pionProto mirror what pion/sdp accepts (RFC 4566 §5.14 registry).
func pionMedia(m string) bool {
	switch m {
	case "audio", "video", "text", "application", "message":
		return true
	}
	return false
}

func pionProto(p string) bool {
	for part := range strings.SplitSeq(p, "/") {
		switch part {
		case "UDP", "RTP", "AVP", "SAVP", "SAVPF", "TLS", "DTLS", "SCTP", "AVPF", "TCP",
			"MSRP", "BFCP", "UDT", "IX", "MRCPv2", "FEC":
		default:
			return false
		}
	}
	return true
}

// readAudio fills d from the audio section md of sd.
func (d *Description) readAudio(sd *sdp.SessionDescription, md *sdp.MediaDescription) error {
	d.SessionVersion = sd.Origin.SessionVersion
	d.SessionID = sd.Origin.SessionID
	d.Proto = strings.Join(md.MediaName.Protos, "/")
	d.Formats = md.MediaName.Formats

	port := md.MediaName.Port.Value
	if port == 0 {
		// RFC 3264 §5.1/§6: port zero rejects or disables the stream.
		return fmt.Errorf("%w: audio stream disabled (port 0)", ErrBadSDP)
	}

	conn := md.ConnectionInformation
	if conn == nil {
		conn = sd.ConnectionInformation
	}
	if conn == nil || conn.Address == nil {
		return fmt.Errorf("%w: no c= line for audio", ErrBadSDP)
	}
	addr, err := parseConnectionAddress(conn.Address.Address)
	if err != nil {
		return err
	}
	held := addr.IsUnspecified() // RFC 2543 hold: c=IN IP4 0.0.0.0
	if !held {
		d.Addr = netip.AddrPortFrom(addr, uint16(port))
	}

	rtpmaps := rtpmapsOf(md.Attributes)
	for _, f := range md.MediaName.Formats {
		pt, err := strconv.ParseUint(f, 10, 7)
		if err != nil {
			// RTP/AVP formats are payload types 0-127 (RFC 4566 §5.14).
			return fmt.Errorf("%w: bad payload type %q on m=audio", ErrBadSDP, f)
		}
		c, ok := formatOf(uint8(pt), rtpmaps)
		switch {
		case ok && c.Name == telephoneEvent:
			if !d.HasDTMF {
				d.HasDTMF, d.DTMFPayloadType = true, c.PayloadType
			}
		case ok && !containsFormat(d.Codecs, c):
			d.Codecs = append(d.Codecs, c)
		}
	}

	d.Direction = directionOf(md.Attributes)
	if d.Direction == DirUnknown {
		d.Direction = directionOf(sd.Attributes)
	}
	if d.Direction == DirUnknown {
		if held {
			d.Direction = DirInactive
		} else {
			d.Direction = DirSendRecv
		}
	}

	d.PtimeMS = ptimeOf(md.Attributes)
	if d.PtimeMS == 0 {
		d.PtimeMS = ptimeOf(sd.Attributes)
	}
	if isSecureRTP(d.Proto) {
		d.Crypto = cryptosOf(md.Attributes)
	}
	return nil
}

// cryptosOf returns the usable a=crypto lines (RFC 4568 §9.1) in order.
func cryptosOf(attrs []sdp.Attribute) []Crypto {
	var out []Crypto
	for _, a := range attrs {
		if !strings.EqualFold(a.Key, "crypto") {
			continue
		}
		if c, err := ParseCrypto(a.Value); err == nil {
			out = append(out, c)
		}
	}
	return out
}

// canonicalSDP reorders the lines of each SDP section into RFC 4566 §5 order
// (stable, so repeated lines keep their order), drops blank lines, and adds "t=0 0"
// when the session has no t= line.
func canonicalSDP(body string) string {
	const sessionOrder, mediaOrder = "vosiuepcbtrzka", "micbka"
	rank := func(order, line string) int {
		if len(line) < 2 || line[1] != '=' {
			return len(order)
		}
		if i := strings.IndexByte(order, line[0]); i >= 0 {
			return i
		}
		return len(order)
	}
	var sections [][]string
	for _, line := range strings.Split(strings.ReplaceAll(body, "\r", "\n"), "\n") {
		line = strings.TrimSpace(line)
		if line == "" {
			continue
		}
		if strings.HasPrefix(line, "m=") || len(sections) == 0 {
			sections = append(sections, nil)
		}
		sections[len(sections)-1] = append(sections[len(sections)-1], line)
	}
	var b strings.Builder
	for i, sec := range sections {
		order := mediaOrder
		if i == 0 {
			order = sessionOrder
			hasT := false
			for _, l := range sec {
				hasT = hasT || strings.HasPrefix(l, "t=")
			}
			if !hasT {
				sec = append(sec, "t=0 0")
			}
		}
		slices.SortStableFunc(sec, func(a, b string) int { return rank(order, a) - rank(order, b) })
		for _, l := range sec {
			b.WriteString(l)
			b.WriteString("\r\n")
		}
	}
	return b.String()
}

// parseConnectionAddress reads the c= connection-address, dropping a multicast
// "/ttl[/count]" suffix. Host names are not resolved.
func parseConnectionAddress(s string) (netip.Addr, error) {
	if i := strings.IndexByte(s, '/'); i >= 0 {
		s = s[:i]
	}
	addr, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, fmt.Errorf("%w: c= address %q: %w", ErrBadSDP, s, err)
	}
	return addr.Unmap().WithZone(""), nil
}

// rtpmap is one a=rtpmap:PT NAME/RATE[/CHANNELS].
type rtpmap struct {
	pt   uint8
	name string
	rate uint32
}

func rtpmapsOf(attrs []sdp.Attribute) []rtpmap {
	var out []rtpmap
	for _, a := range attrs {
		if !strings.EqualFold(a.Key, "rtpmap") {
			continue
		}
		ptStr, enc, ok := strings.Cut(strings.TrimSpace(a.Value), " ")
		if !ok {
			continue
		}
		pt, err := strconv.ParseUint(ptStr, 10, 7)
		if err != nil {
			continue
		}
		parts := strings.Split(strings.TrimSpace(enc), "/")
		if len(parts) < 2 {
			continue
		}
		rate, err := strconv.ParseUint(parts[1], 10, 32)
		if err != nil {
			continue
		}
		out = append(out, rtpmap{pt: uint8(pt), name: parts[0], rate: uint32(rate)})
	}
	return out
}

// formatOf identifies payload type pt: by its rtpmap name and rate when present
// (RFC 4566 §6), else by the static assignment of RFC 3551 (0 = PCMU, 8 = PCMA).
// telephone-event/8000 is returned as a Codec named "telephone-event".
func formatOf(pt uint8, maps []rtpmap) (Codec, bool) {
	for _, m := range maps {
		if m.pt != pt {
			continue
		}
		if strings.EqualFold(m.name, telephoneEvent) {
			if m.rate != sampleRate {
				return Codec{}, false
			}
			return Codec{Name: telephoneEvent, PayloadType: pt, ClockRate: m.rate}, true
		}
		c, ok := codecByName(m.name, m.rate)
		c.PayloadType = pt
		return c, ok
	}
	if pt >= 96 {
		return Codec{}, false // dynamic without rtpmap: unknown
	}
	return codecByStaticPT(pt)
}

func containsFormat(list []Codec, c Codec) bool {
	for _, x := range list {
		if sameFormat(x, c) {
			return true
		}
	}
	return false
}

func directionOf(attrs []sdp.Attribute) Direction {
	for _, a := range attrs {
		if d, ok := parseDirection(a.Key); ok {
			return d
		}
	}
	return DirUnknown
}

func ptimeOf(attrs []sdp.Attribute) int {
	for _, a := range attrs {
		if !strings.EqualFold(a.Key, "ptime") {
			continue
		}
		// Some endpoints send fractional values ("20.0"); keep the integer part.
		v, _, _ := strings.Cut(strings.TrimSpace(a.Value), ".")
		n, err := strconv.Atoi(v)
		if err != nil || n <= 0 || n > 1000 {
			return 0
		}
		return n
	}
	return 0
}

// Negotiated is the outcome of an offer/answer exchange for one leg.
type Negotiated struct {
	Codec           Codec
	DTMFPayloadType uint8
	HasDTMF         bool
	Remote          netip.AddrPort
	// Direction is the direction of OUR answer (already reversed from the offer).
	Direction Direction
	// Rejected are the offer's other m= lines with port 0, in order, and AudioIndex
	// the position of the audio stream among all lines: an answer keeps the offer's
	// number and order of m= lines (RFC 3264 §6). Nil for a single-stream offer.
	Rejected   []MediaLine
	AudioIndex int
	// SRTP are the SDES keys when the audio stream is RTP/SAVP (Session.SetSRTP);
	// zero for plain RTP. Filled in by OfferAnswer, not by Negotiate.
	SRTP SRTPKeys
}

// Negotiate picks the first codec of the offer's order that is in allowed
// (PCMU/PCMA), keeps telephone-event at the offer's payload type, and computes the
// answer direction. ErrNoCommonCodec when nothing is common. An empty allowed means
// PCMU and PCMA.
//
// The chosen Codec keeps the payload type the peer uses. Negotiate also reads a
// remote answer to our offer: the reversed direction is then our own direction.
//
// Negotiate takes plain RTP only; OfferAnswer also takes SDES-SRTP (RTP/SAVP with a
// usable a=crypto line) when its policy allows.
func Negotiate(offer Description, allowed []Codec) (Negotiated, error) {
	return negotiate(offer, allowed, false)
}

func negotiate(offer Description, allowed []Codec, srtpOK bool) (Negotiated, error) {
	secure := srtpOK && isSecureRTP(offer.Proto) && len(offer.Crypto) > 0
	if offer.Proto != "" && !isPlainRTP(offer.Proto) && !secure {
		return Negotiated{}, fmt.Errorf("%w: %w %q", ErrNoCommonCodec, ErrUnsupportedTransport, offer.Proto)
	}
	if len(allowed) == 0 {
		allowed = []Codec{PCMU, PCMA}
	}
	for _, c := range offer.Codecs {
		if containsFormat(allowed, c) {
			return Negotiated{
				Codec:           c,
				DTMFPayloadType: offer.DTMFPayloadType,
				HasDTMF:         offer.HasDTMF,
				Remote:          offer.Addr,
				Direction:       offer.Direction.Answer(),
				Rejected:        offer.rejected(),
				AudioIndex:      offer.audioIndex(),
			}, nil
		}
	}
	return Negotiated{}, fmt.Errorf("%w: offer formats %v, allowed %v", ErrNoCommonCodec, offer.Formats, allowed)
}

// rejected returns the m= lines other than the chosen audio stream, each with port 0
// (RFC 3264 §6: a rejected stream keeps its media type and transport and lists the
// offer's formats); nil when the audio stream is the only one.
func (d Description) rejected() []MediaLine {
	if len(d.Streams) <= 1 {
		return nil
	}
	out := make([]MediaLine, 0, len(d.Streams)-1)
	for i, st := range d.Streams {
		if i != d.AudioIndex {
			st.Port = 0
			out = append(out, st)
		}
	}
	return out
}

// audioIndex is AudioIndex when it names one of Streams, else 0.
func (d Description) audioIndex() int {
	if d.AudioIndex < 0 || d.AudioIndex >= len(d.Streams) {
		return 0
	}
	return d.AudioIndex
}

// isPlainRTP accepts RTP/AVP and RTP/AVPF (the feedback profile is compatible with a
// peer that ignores RTCP feedback).
func isPlainRTP(proto string) bool {
	return strings.EqualFold(proto, "RTP/AVP") || strings.EqualFold(proto, "RTP/AVPF")
}

// LocalSDP returns the answer for this negotiation: our address and port, the chosen
// codec, telephone-event when the offer had it, and our direction.
func (n Negotiated) LocalSDP(addr netip.Addr, port int, sessionID, version uint64) LocalSDP {
	return LocalSDP{
		Addr:            addr,
		Port:            port,
		SessionID:       sessionID,
		Version:         version,
		Codecs:          []Codec{n.Codec},
		DTMFPayloadType: n.DTMFPayloadType,
		HasDTMF:         n.HasDTMF,
		Direction:       n.Direction,
		Rejected:        n.Rejected,
		AudioIndex:      n.AudioIndex,
	}
}

// LocalSDP is what we put in our SDP (answer or offer).
type LocalSDP struct {
	Addr      netip.Addr // advertised address (sip.external_ip or the local address)
	Port      int        // our RTP port
	SessionID uint64     // o= sess-id, fixed for the dialog
	Version   uint64     // o= sess-version, +1 each time the SDP changes
	Codecs    []Codec    // formats listed on m=, first is the one in use
	// DTMFPayloadType is listed as telephone-event/8000 with fmtp 0-16 when HasDTMF.
	DTMFPayloadType uint8
	HasDTMF         bool
	Direction       Direction
	PtimeMS         int // 20 when zero
	// Rejected are further m= lines written with port 0 (RFC 3264 §6: an answer has
	// as many m= lines as the offer, in the same order; RFC 3264 §8: a later offer
	// keeps them). The audio line is written at position AudioIndex among all lines
	// (0: first; clamped to the number of lines). Empty: the audio line alone.
	Rejected   []MediaLine
	AudioIndex int
	// Crypto are our a=crypto lines (RFC 4568); non-empty makes the audio stream
	// RTP/SAVP (or Proto). Proto overrides the audio transport; "" is RTP/AVP, or
	// RTP/SAVP with Crypto.
	Crypto []Crypto
	Proto  string
}

// BuildSDP renders an SDP body (RFC 4566/8866) with CRLF line ends. An invalid Addr
// is written as 0.0.0.0, no Codecs as PCMU and PCMA, DirUnknown as sendrecv.
func BuildSDP(l LocalSDP) []byte {
	addr := l.Addr.Unmap().WithZone("")
	if !addr.IsValid() {
		addr = netip.IPv4Unspecified()
	}
	ipver := "IP4"
	if addr.Is6() {
		ipver = "IP6"
	}
	codecs := l.Codecs
	if len(codecs) == 0 {
		codecs = []Codec{PCMU, PCMA}
	}
	ptime := l.PtimeMS
	if ptime <= 0 {
		ptime = int(frameDuration.Milliseconds())
	}
	dir := l.Direction
	if dir == DirUnknown {
		dir = DirSendRecv
	}
	a := addr.String()

	b := make([]byte, 0, 320)
	b = append(b, "v=0\r\n"...)
	b = append(b, "o=matterline "...)
	b = strconv.AppendUint(b, l.SessionID, 10)
	b = append(b, ' ')
	b = strconv.AppendUint(b, l.Version, 10)
	b = append(b, " IN "...)
	b = append(b, ipver...)
	b = append(b, ' ')
	b = append(b, a...)
	b = append(b, "\r\ns=matterline\r\nc=IN "...)
	b = append(b, ipver...)
	b = append(b, ' ')
	b = append(b, a...)
	b = append(b, "\r\nt=0 0\r\n"...)
	audioAt := max(0, min(l.AudioIndex, len(l.Rejected)))
	for _, m := range l.Rejected[:audioAt] {
		b = appendRejected(b, m)
	}
	b = append(b, "m=audio "...)
	b = strconv.AppendInt(b, int64(max(0, min(l.Port, 65535))), 10)
	b = append(b, ' ')
	switch {
	case isToken(l.Proto):
		b = append(b, l.Proto...)
	case len(l.Crypto) > 0:
		b = append(b, "RTP/SAVP"...)
	default:
		b = append(b, "RTP/AVP"...)
	}
	for _, c := range codecs {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(c.PayloadType), 10)
	}
	if l.HasDTMF {
		b = append(b, ' ')
		b = strconv.AppendUint(b, uint64(l.DTMFPayloadType), 10)
	}
	b = append(b, "\r\n"...)
	for _, c := range codecs {
		rate := c.ClockRate
		if rate == 0 {
			rate = sampleRate
		}
		b = append(b, "a=rtpmap:"...)
		b = strconv.AppendUint(b, uint64(c.PayloadType), 10)
		b = append(b, ' ')
		b = append(b, c.Name...)
		b = append(b, '/')
		b = strconv.AppendUint(b, uint64(rate), 10)
		b = append(b, "\r\n"...)
	}
	if l.HasDTMF {
		b = append(b, "a=rtpmap:"...)
		b = strconv.AppendUint(b, uint64(l.DTMFPayloadType), 10)
		b = append(b, " telephone-event/8000\r\na=fmtp:"...)
		b = strconv.AppendUint(b, uint64(l.DTMFPayloadType), 10)
		b = append(b, " 0-16\r\n"...)
	}
	b = append(b, "a=ptime:"...)
	b = strconv.AppendInt(b, int64(ptime), 10)
	b = append(b, "\r\na="...)
	b = append(b, dir.String()...)
	b = append(b, "\r\n"...)
	for _, c := range l.Crypto {
		b = appendCrypto(b, c)
	}
	for _, m := range l.Rejected[audioAt:] {
		b = appendRejected(b, m)
	}
	return b
}

// appendRejected writes m as a rejected stream: "m=<media> 0 <proto> <formats>"
// (RFC 3264 §6). Bytes that cannot appear in an SDP token are dropped; an empty
// media type, transport or format list is written as "audio", "RTP/AVP" or "0" so
// the line stays valid RFC 4566 syntax.
func appendRejected(b []byte, m MediaLine) []byte {
	b = append(b, "m="...)
	b = appendToken(b, m.Media, "audio")
	b = append(b, " 0 "...)
	b = appendToken(b, m.Proto, "RTP/AVP")
	n := 0
	for _, f := range m.Formats {
		if !isToken(f) {
			continue
		}
		b = append(b, ' ')
		b = append(b, f...)
		n++
	}
	if n == 0 {
		b = append(b, " 0"...)
	}
	return append(b, "\r\n"...)
}

// appendToken appends s, or def when s is not a plain token.
func appendToken(b []byte, s, def string) []byte {
	if !isToken(s) {
		s = def
	}
	return append(b, s...)
}

// isToken reports whether s is non-empty printable ASCII without spaces.
func isToken(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] >= 0x7f {
			return false
		}
	}
	return true
}

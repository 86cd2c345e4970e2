package media

import (
	"strings"
	"time"
)

// Codec is an RTP audio format at 8 kHz.
type Codec struct {
	Name        string // "PCMU" or "PCMA"
	PayloadType uint8  // 0 or 8
	ClockRate   uint32 // 8000
}

// The static G.711 payload types of RFC 3551 §6 (table 4). They are values, never
// modified.
var (
	PCMU = Codec{Name: "PCMU", PayloadType: 0, ClockRate: 8000}
	PCMA = Codec{Name: "PCMA", PayloadType: 8, ClockRate: 8000}
)

const (
	// sampleRate is the clock rate of everything this package produces.
	sampleRate = 8000
	// frameSamples is one 20 ms packet at 8 kHz (RFC 3551 §4.5 default ptime).
	frameSamples = 160
	// frameDuration is the packetization interval.
	frameDuration = 20 * time.Millisecond
)

// String returns the rtpmap encoding name, e.g. "PCMU".
func (c Codec) String() string { return c.Name }

// isAlaw reports whether c is PCMA (by name: a peer may map PCMA to a dynamic
// payload type). Everything else is treated as PCMU.
func (c Codec) isAlaw() bool { return c.Name == PCMA.Name }

// IsZero reports whether c is the zero Codec (no codec).
func (c Codec) IsZero() bool { return c == Codec{} }

// codecByName maps an rtpmap encoding name and rate to a known codec.
func codecByName(name string, rate uint32) (Codec, bool) {
	if rate != sampleRate {
		return Codec{}, false
	}
	switch {
	case strings.EqualFold(name, PCMU.Name):
		return PCMU, true
	case strings.EqualFold(name, PCMA.Name):
		return PCMA, true
	}
	return Codec{}, false
}

// sameFormat reports whether a and b are the same encoding (name and rate), whatever
// payload type each side uses.
func sameFormat(a, b Codec) bool {
	return strings.EqualFold(a.Name, b.Name) && (a.ClockRate == b.ClockRate || a.ClockRate == 0 || b.ClockRate == 0)
}

// codecByStaticPT maps the static payload types 0 and 8 (RFC 3551 table 4).
func codecByStaticPT(pt uint8) (Codec, bool) {
	switch pt {
	case PCMU.PayloadType:
		return PCMU, true
	case PCMA.PayloadType:
		return PCMA, true
	}
	return Codec{}, false
}

// Direction is an SDP media direction attribute. The zero value means unknown
// (treated as sendrecv, RFC 3264 §5.1 default).
type Direction uint8

// Direction values; DirUnknown is the zero value.
const (
	DirUnknown Direction = iota
	DirSendRecv
	DirSendOnly
	DirRecvOnly
	DirInactive
)

// String returns the SDP attribute name ("sendrecv", ...); "unknown" for the zero value.
func (d Direction) String() string {
	switch d {
	case DirSendRecv:
		return "sendrecv"
	case DirSendOnly:
		return "sendonly"
	case DirRecvOnly:
		return "recvonly"
	case DirInactive:
		return "inactive"
	}
	return "unknown"
}

// Answer returns the direction an answerer uses for an offer with direction d
// (RFC 3264 §6.1: sendonly→recvonly, recvonly→sendonly, inactive→inactive, else sendrecv).
func (d Direction) Answer() Direction {
	switch d {
	case DirSendOnly:
		return DirRecvOnly
	case DirRecvOnly:
		return DirSendOnly
	case DirInactive:
		return DirInactive
	}
	return DirSendRecv
}

// OnHold reports whether the peer offering d put us on hold (sendonly or inactive).
func (d Direction) OnHold() bool { return d == DirSendOnly || d == DirInactive }

// canSend reports whether a side whose own direction is d may send media.
func (d Direction) canSend() bool { return d != DirRecvOnly && d != DirInactive }

// parseDirection maps an SDP attribute key to a Direction.
func parseDirection(key string) (Direction, bool) {
	switch strings.ToLower(key) {
	case "sendrecv":
		return DirSendRecv, true
	case "sendonly":
		return DirSendOnly, true
	case "recvonly":
		return DirRecvOnly, true
	case "inactive":
		return DirInactive, true
	}
	return DirUnknown, false
}

// Package hep encodes SIP messages as HEPv3 packets and exports them over UDP to
// a Homer (sipcapture.org) collector, the way telephony engineers watch SIP
// traffic of a live system.
//
// The wire format follows the HEP/EEP v3 specification ("HEP3 Encapsulation
// Protocol", sipcapture/hep, HEP3_Network_Protocol_Specification_REV_36): a
// 6-byte header ("HEP3" and the total length, network byte order) followed by
// chunks of vendor id (uint16), type id (uint16), chunk length (uint16, header
// included) and value. This package writes the generic (vendor 0) chunks Homer
// needs: IP family, IP protocol, IPv4 or IPv6 addresses, ports, timestamp
// seconds and microseconds, protocol type (1 = SIP), capture agent id, an
// optional authentication key, the captured payload and the correlation id
// (the SIP Call-ID).
package hep

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"time"
)

// Chunk type ids of the generic vendor (0), from the HEPv3 specification.
const (
	ChunkIPFamily      uint16 = 0x0001 // uint8: 2 (AF_INET) or 10 (AF_INET6)
	ChunkIPProtocol    uint16 = 0x0002 // uint8: 17 UDP, 6 TCP
	ChunkIPv4Src       uint16 = 0x0003 // 4 bytes
	ChunkIPv4Dst       uint16 = 0x0004 // 4 bytes
	ChunkIPv6Src       uint16 = 0x0005 // 16 bytes
	ChunkIPv6Dst       uint16 = 0x0006 // 16 bytes
	ChunkSrcPort       uint16 = 0x0007 // uint16
	ChunkDstPort       uint16 = 0x0008 // uint16
	ChunkTimeSec       uint16 = 0x0009 // uint32: seconds since the Unix epoch
	ChunkTimeUsec      uint16 = 0x000a // uint32: microseconds offset
	ChunkProtoType     uint16 = 0x000b // uint8: 1 = SIP
	ChunkCaptureID     uint16 = 0x000c // uint32: capture agent id
	ChunkAuthKey       uint16 = 0x000e // octet string
	ChunkPayload       uint16 = 0x000f // octet string: the captured message
	ChunkCorrelationID uint16 = 0x0011 // octet string: the SIP Call-ID
)

// Values of the IP family chunk (Linux AF_INET and AF_INET6, as the spec uses).
const (
	FamilyIPv4 uint8 = 2
	FamilyIPv6 uint8 = 10
)

// Values of the IP protocol chunk.
const (
	IPProtoTCP uint8 = 6
	IPProtoUDP uint8 = 17
)

// ProtoSIP is the protocol type chunk value for SIP.
const ProtoSIP uint8 = 1

const (
	headerLen      = 6
	chunkHeaderLen = 6
	// MaxPacketLen is the largest HEPv3 packet: its length field is 16 bits.
	MaxPacketLen = math.MaxUint16
)

var magic = [4]byte{'H', 'E', 'P', '3'}

// Errors returned by the encoder and decoder. Decode errors wrap ErrMalformed.
var (
	ErrMalformed = errors.New("hep: malformed packet")
	ErrTooLarge  = errors.New("hep: packet larger than 65535 bytes")
)

// Packet is one captured message with the fields Homer indexes.
type Packet struct {
	// Time is when the message was sent or received.
	Time time.Time
	// IPProto is the transport: IPProtoUDP or IPProtoTCP (TLS and WebSocket are TCP).
	IPProto uint8
	// Src and Dst are the message's source and destination. Both must be IPv4 or
	// both IPv6 (an IPv4-mapped IPv6 address counts as IPv6; Exporter.Send
	// unmaps them).
	Src, Dst netip.AddrPort
	// ProtoType is the captured protocol, ProtoSIP for SIP.
	ProtoType uint8
	// AgentID identifies the capture agent (this matterline instance).
	AgentID uint32
	// AuthKey is the collector's shared key; empty writes no chunk.
	AuthKey string
	// CorrelationID is the SIP Call-ID; empty writes no chunk.
	CorrelationID string
	// Payload is the captured message, for SIP the whole message as sent.
	Payload []byte
}

// Chunk is one decoded HEPv3 chunk. Value aliases the decoded buffer.
type Chunk struct {
	Vendor uint16
	Type   uint16
	Value  []byte
}

// MarshalBinary encodes p as a HEPv3 packet.
func (p *Packet) MarshalBinary() ([]byte, error) { return p.AppendBinary(nil) }

// AppendBinary appends the HEPv3 encoding of p to b (encoding.BinaryAppender).
// It fails when the addresses are missing or of different families, when the
// time is outside what 32-bit Unix seconds can carry, or when the packet would
// exceed MaxPacketLen.
func (p *Packet) AppendBinary(b []byte) ([]byte, error) {
	if !p.Src.IsValid() || !p.Dst.IsValid() {
		return b, errors.New("hep: source and destination addresses are required")
	}
	src, dst := p.Src.Addr(), p.Dst.Addr()
	if src.Is4() != dst.Is4() {
		return b, fmt.Errorf("hep: source %s and destination %s differ in address family", src, dst)
	}
	sec := p.Time.Unix()
	if sec < 0 || sec > math.MaxUint32 {
		return b, fmt.Errorf("hep: time %s does not fit HEPv3 seconds", p.Time)
	}
	addrLen := 16
	if src.Is4() {
		addrLen = 4
	}
	total := headerLen +
		2*(chunkHeaderLen+1) + // family, ip proto
		2*(chunkHeaderLen+addrLen) +
		2*(chunkHeaderLen+2) + // ports
		2*(chunkHeaderLen+4) + // time
		(chunkHeaderLen + 1) + // proto type
		(chunkHeaderLen + 4) + // agent id
		(chunkHeaderLen + len(p.Payload))
	if p.AuthKey != "" {
		total += chunkHeaderLen + len(p.AuthKey)
	}
	if p.CorrelationID != "" {
		total += chunkHeaderLen + len(p.CorrelationID)
	}
	if total > MaxPacketLen {
		return b, fmt.Errorf("%w (%d bytes)", ErrTooLarge, total)
	}

	b = append(b, magic[:]...)
	b = binary.BigEndian.AppendUint16(b, uint16(total))
	if src.Is4() {
		b = appendChunk(b, ChunkIPFamily, FamilyIPv4)
	} else {
		b = appendChunk(b, ChunkIPFamily, FamilyIPv6)
	}
	b = appendChunk(b, ChunkIPProtocol, p.IPProto)
	if src.Is4() {
		s4, d4 := src.As4(), dst.As4()
		b = appendChunk(b, ChunkIPv4Src, s4[:]...)
		b = appendChunk(b, ChunkIPv4Dst, d4[:]...)
	} else {
		s16, d16 := src.As16(), dst.As16()
		b = appendChunk(b, ChunkIPv6Src, s16[:]...)
		b = appendChunk(b, ChunkIPv6Dst, d16[:]...)
	}
	b = appendChunk(b, ChunkSrcPort, byte(p.Src.Port()>>8), byte(p.Src.Port()))
	b = appendChunk(b, ChunkDstPort, byte(p.Dst.Port()>>8), byte(p.Dst.Port()))
	b = appendUint32Chunk(b, ChunkTimeSec, uint32(sec))
	b = appendUint32Chunk(b, ChunkTimeUsec, uint32(p.Time.Nanosecond()/1000))
	b = appendChunk(b, ChunkProtoType, p.ProtoType)
	b = appendUint32Chunk(b, ChunkCaptureID, p.AgentID)
	if p.AuthKey != "" {
		b = appendChunkHeader(b, ChunkAuthKey, len(p.AuthKey))
		b = append(b, p.AuthKey...)
	}
	b = appendChunk(b, ChunkPayload, p.Payload...)
	if p.CorrelationID != "" {
		b = appendChunkHeader(b, ChunkCorrelationID, len(p.CorrelationID))
		b = append(b, p.CorrelationID...)
	}
	return b, nil
}

func appendChunkHeader(b []byte, typ uint16, valueLen int) []byte {
	b = binary.BigEndian.AppendUint16(b, 0) // generic vendor
	b = binary.BigEndian.AppendUint16(b, typ)
	return binary.BigEndian.AppendUint16(b, uint16(chunkHeaderLen+valueLen))
}

func appendChunk(b []byte, typ uint16, value ...byte) []byte {
	return append(appendChunkHeader(b, typ, len(value)), value...)
}

func appendUint32Chunk(b []byte, typ uint16, v uint32) []byte {
	return binary.BigEndian.AppendUint32(appendChunkHeader(b, typ, 4), v)
}

// Decode splits a HEPv3 packet into its chunks, in wire order. It checks the
// header, that the total length equals len(b), and that every chunk fits; it does
// not interpret chunk values (see Parse). The returned values alias b.
func Decode(b []byte) ([]Chunk, error) {
	if len(b) < headerLen {
		return nil, fmt.Errorf("%w: %d bytes is shorter than the header", ErrMalformed, len(b))
	}
	if [4]byte(b[:4]) != magic {
		return nil, fmt.Errorf("%w: bad magic %q", ErrMalformed, b[:4])
	}
	total := int(binary.BigEndian.Uint16(b[4:6]))
	if total != len(b) {
		return nil, fmt.Errorf("%w: length field %d, packet is %d bytes", ErrMalformed, total, len(b))
	}
	var chunks []Chunk
	for rest := b[headerLen:]; len(rest) > 0; {
		if len(rest) < chunkHeaderLen {
			return nil, fmt.Errorf("%w: %d trailing bytes", ErrMalformed, len(rest))
		}
		n := int(binary.BigEndian.Uint16(rest[4:6]))
		if n < chunkHeaderLen || n > len(rest) {
			return nil, fmt.Errorf("%w: chunk 0x%04x length %d with %d bytes left", ErrMalformed,
				binary.BigEndian.Uint16(rest[2:4]), n, len(rest))
		}
		chunks = append(chunks, Chunk{
			Vendor: binary.BigEndian.Uint16(rest[0:2]),
			Type:   binary.BigEndian.Uint16(rest[2:4]),
			Value:  rest[chunkHeaderLen:n:n],
		})
		rest = rest[n:]
	}
	return chunks, nil
}

// Parse decodes a HEPv3 packet and interprets the generic chunks into a Packet.
// The family, IP protocol, addresses, ports, timestamp and payload chunks are
// required; unknown and vendor-specific chunks are ignored; when a chunk repeats
// the last one wins. Payload and the strings are copies, not aliases of b.
func Parse(b []byte) (Packet, error) {
	chunks, err := Decode(b)
	if err != nil {
		return Packet{}, err
	}
	var (
		p                      Packet
		family                 uint8
		v4s, v4d, v6s, v6d     []byte
		sport, dport           []byte
		sec, usec              []byte
		haveProto, havePayload bool
	)
	for _, c := range chunks {
		if c.Vendor != 0 {
			continue
		}
		if want := fixedLen(c.Type); want != 0 && len(c.Value) != want {
			return Packet{}, fmt.Errorf("%w: chunk 0x%04x has %d bytes, want %d", ErrMalformed, c.Type, len(c.Value), want)
		}
		switch c.Type {
		case ChunkIPFamily:
			family = c.Value[0]
		case ChunkIPProtocol:
			p.IPProto = c.Value[0]
			haveProto = true
		case ChunkIPv4Src:
			v4s = c.Value
		case ChunkIPv4Dst:
			v4d = c.Value
		case ChunkIPv6Src:
			v6s = c.Value
		case ChunkIPv6Dst:
			v6d = c.Value
		case ChunkSrcPort:
			sport = c.Value
		case ChunkDstPort:
			dport = c.Value
		case ChunkTimeSec:
			sec = c.Value
		case ChunkTimeUsec:
			usec = c.Value
		case ChunkProtoType:
			p.ProtoType = c.Value[0]
		case ChunkCaptureID:
			p.AgentID = binary.BigEndian.Uint32(c.Value)
		case ChunkAuthKey:
			p.AuthKey = string(c.Value)
		case ChunkPayload:
			p.Payload = append([]byte{}, c.Value...)
			havePayload = true
		case ChunkCorrelationID:
			p.CorrelationID = string(c.Value)
		}
	}
	var src, dst netip.Addr
	switch family {
	case FamilyIPv4:
		if v4s == nil || v4d == nil {
			return Packet{}, fmt.Errorf("%w: IPv4 family without IPv4 address chunks", ErrMalformed)
		}
		src, dst = netip.AddrFrom4([4]byte(v4s)), netip.AddrFrom4([4]byte(v4d))
	case FamilyIPv6:
		if v6s == nil || v6d == nil {
			return Packet{}, fmt.Errorf("%w: IPv6 family without IPv6 address chunks", ErrMalformed)
		}
		src, dst = netip.AddrFrom16([16]byte(v6s)), netip.AddrFrom16([16]byte(v6d))
	default:
		return Packet{}, fmt.Errorf("%w: missing or unknown IP family %d", ErrMalformed, family)
	}
	if !haveProto || sport == nil || dport == nil || sec == nil || usec == nil || !havePayload {
		return Packet{}, fmt.Errorf("%w: missing a required chunk", ErrMalformed)
	}
	us := binary.BigEndian.Uint32(usec)
	if us >= 1_000_000 {
		return Packet{}, fmt.Errorf("%w: microseconds %d out of range", ErrMalformed, us)
	}
	p.Src = netip.AddrPortFrom(src, binary.BigEndian.Uint16(sport))
	p.Dst = netip.AddrPortFrom(dst, binary.BigEndian.Uint16(dport))
	p.Time = time.Unix(int64(binary.BigEndian.Uint32(sec)), int64(us)*1000).UTC()
	return p, nil
}

// fixedLen is the value length of the fixed-size generic chunks, 0 for the
// variable-length and unknown ones.
func fixedLen(typ uint16) int {
	switch typ {
	case ChunkIPFamily, ChunkIPProtocol, ChunkProtoType:
		return 1
	case ChunkSrcPort, ChunkDstPort:
		return 2
	case ChunkIPv4Src, ChunkIPv4Dst, ChunkTimeSec, ChunkTimeUsec, ChunkCaptureID:
		return 4
	case ChunkIPv6Src, ChunkIPv6Dst:
		return 16
	}
	return 0
}

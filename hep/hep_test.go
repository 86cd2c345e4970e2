package hep

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"runtime"
	"strings"
	"testing"
	"time"
)

const invite = "INVITE sip:firm@192.0.2.10 SIP/2.0\r\n" +
	"Via: SIP/2.0/UDP 192.0.2.1:5060;branch=z9hG4bK776asdhds\r\n" +
	"Call-ID: a84b4c76e66710@pc33.example.com\r\n" +
	"Content-Length: 0\r\n\r\n"

func samplePacket() Packet {
	return Packet{
		Time:          time.Date(2026, 11, 24, 16, 0, 0, 123456000, time.UTC),
		IPProto:       IPProtoUDP,
		Src:           netip.MustParseAddrPort("192.0.2.1:5060"),
		Dst:           netip.MustParseAddrPort("192.0.2.10:5062"),
		ProtoType:     ProtoSIP,
		AgentID:       2001,
		AuthKey:       "s3cret",
		CorrelationID: "a84b4c76e66710@pc33.example.com",
		Payload:       []byte(invite),
	}
}

func u16(v uint16) []byte { return binary.BigEndian.AppendUint16(nil, v) }
func u32(v uint32) []byte { return binary.BigEndian.AppendUint32(nil, v) }

// checkChunks asserts every chunk of an encoded packet byte by byte, in order.
func checkChunks(t *testing.T, b []byte, want []Chunk) {
	t.Helper()
	if string(b[:4]) != "HEP3" || int(binary.BigEndian.Uint16(b[4:6])) != len(b) {
		t.Fatalf("header % x, len %d", b[:6], len(b))
	}
	got, err := Decode(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != len(want) {
		t.Fatalf("%d chunks, want %d: %+v", len(got), len(want), got)
	}
	for i := range want {
		if got[i].Vendor != 0 || got[i].Type != want[i].Type || !bytes.Equal(got[i].Value, want[i].Value) {
			t.Errorf("chunk %d = {%d 0x%04x % x}, want {0 0x%04x % x}", i, got[i].Vendor, got[i].Type, got[i].Value, want[i].Type, want[i].Value)
		}
	}
}

func TestEncodeIPv4(t *testing.T) {
	p := samplePacket()
	b, err := p.MarshalBinary()
	if err != nil {
		t.Fatal(err)
	}
	checkChunks(t, b, []Chunk{
		{Type: ChunkIPFamily, Value: []byte{2}},
		{Type: ChunkIPProtocol, Value: []byte{17}},
		{Type: ChunkIPv4Src, Value: []byte{192, 0, 2, 1}},
		{Type: ChunkIPv4Dst, Value: []byte{192, 0, 2, 10}},
		{Type: ChunkSrcPort, Value: u16(5060)},
		{Type: ChunkDstPort, Value: u16(5062)},
		{Type: ChunkTimeSec, Value: u32(uint32(p.Time.Unix()))},
		{Type: ChunkTimeUsec, Value: u32(123456)},
		{Type: ChunkProtoType, Value: []byte{1}},
		{Type: ChunkCaptureID, Value: u32(2001)},
		{Type: ChunkAuthKey, Value: []byte("s3cret")},
		{Type: ChunkPayload, Value: []byte(invite)},
		{Type: ChunkCorrelationID, Value: []byte("a84b4c76e66710@pc33.example.com")},
	})
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	assertPacket(t, back, p)
}

func TestEncodeIPv6NoOptional(t *testing.T) {
	p := samplePacket()
	p.Src = netip.MustParseAddrPort("[2001:db8::1]:5060")
	p.Dst = netip.MustParseAddrPort("[2001:db8::2]:5061")
	p.IPProto = IPProtoTCP
	p.AuthKey, p.CorrelationID = "", ""
	b, err := p.AppendBinary([]byte("prefix"))
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(b, []byte("prefix")) {
		t.Fatal("AppendBinary dropped the prefix")
	}
	b = b[len("prefix"):]
	s, d := p.Src.Addr().As16(), p.Dst.Addr().As16()
	checkChunks(t, b, []Chunk{
		{Type: ChunkIPFamily, Value: []byte{10}},
		{Type: ChunkIPProtocol, Value: []byte{6}},
		{Type: ChunkIPv6Src, Value: s[:]},
		{Type: ChunkIPv6Dst, Value: d[:]},
		{Type: ChunkSrcPort, Value: u16(5060)},
		{Type: ChunkDstPort, Value: u16(5061)},
		{Type: ChunkTimeSec, Value: u32(uint32(p.Time.Unix()))},
		{Type: ChunkTimeUsec, Value: u32(123456)},
		{Type: ChunkProtoType, Value: []byte{1}},
		{Type: ChunkCaptureID, Value: u32(2001)},
		{Type: ChunkPayload, Value: []byte(invite)},
	})
	back, err := Parse(b)
	if err != nil {
		t.Fatal(err)
	}
	assertPacket(t, back, p)
}

func assertPacket(t *testing.T, got, want Packet) {
	t.Helper()
	if !got.Time.Equal(want.Time) || got.IPProto != want.IPProto || got.Src != want.Src || got.Dst != want.Dst ||
		got.ProtoType != want.ProtoType || got.AgentID != want.AgentID || got.AuthKey != want.AuthKey ||
		got.CorrelationID != want.CorrelationID || !bytes.Equal(got.Payload, want.Payload) {
		t.Fatalf("packet =\n%+v\nwant\n%+v", got, want)
	}
}

func TestEncodeErrors(t *testing.T) {
	for name, mod := range map[string]func(*Packet){
		"no src":       func(p *Packet) { p.Src = netip.AddrPort{} },
		"mixed family": func(p *Packet) { p.Dst = netip.MustParseAddrPort("[2001:db8::2]:5060") },
		"before 1970":  func(p *Packet) { p.Time = time.Unix(-1, 0) },
		"too large":    func(p *Packet) { p.Payload = make([]byte, MaxPacketLen) },
	} {
		p := samplePacket()
		mod(&p)
		if _, err := p.MarshalBinary(); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
	p := samplePacket()
	p.Payload = make([]byte, MaxPacketLen)
	if _, err := p.MarshalBinary(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("too large: %v, want ErrTooLarge", err)
	}
}

func TestDecodeMalformed(t *testing.T) {
	good, _ := func() ([]byte, error) { p := samplePacket(); return p.MarshalBinary() }()
	cases := map[string][]byte{
		"empty":       nil,
		"short":       []byte("HEP3"),
		"magic":       append([]byte("HEP2"), good[4:]...),
		"length":      append(append([]byte{}, good...), 0),
		"chunk short": {'H', 'E', 'P', '3', 0, 9, 0, 0, 1},
		"chunk len 0": {'H', 'E', 'P', '3', 0, 12, 0, 0, 0, 1, 0, 0},
		"chunk over":  {'H', 'E', 'P', '3', 0, 12, 0, 0, 0, 1, 0, 9},
	}
	for name, b := range cases {
		if _, err := Decode(b); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: Decode err = %v, want ErrMalformed", name, err)
		}
	}
	// Decodable but not a complete SIP capture.
	onlyFamily := []byte{'H', 'E', 'P', '3', 0, 13, 0, 0, 0, 1, 0, 7, 2}
	if _, err := Parse(onlyFamily); !errors.Is(err, ErrMalformed) {
		t.Errorf("Parse(family only) = %v", err)
	}
	badLen := []byte{'H', 'E', 'P', '3', 0, 14, 0, 0, 0, 1, 0, 8, 2, 0}
	if _, err := Parse(badLen); err == nil || !strings.Contains(err.Error(), "want 1") {
		t.Errorf("Parse(2-byte family) = %v", err)
	}
}

func TestExporterUDP(t *testing.T) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	e, err := NewExporter(ln.LocalAddr().String(), 77, ExporterOptions{AuthKey: "homer-key"})
	if err != nil {
		t.Fatal(err)
	}
	defer e.Close()

	at := time.Date(2026, 11, 24, 16, 0, 1, 500000000, time.UTC)
	for i, callID := range []string{"call-1", "call-2"} {
		ok := e.Send(Packet{
			Time:          at.Add(time.Duration(i) * time.Second),
			Src:           netip.MustParseAddrPort("[::ffff:127.0.0.1]:5060"), // mapped: sent as IPv4
			Dst:           netip.MustParseAddrPort("127.0.0.2:5070"),
			CorrelationID: callID,
			Payload:       []byte(invite),
		})
		if !ok {
			t.Fatal("Send dropped")
		}
	}
	buf := make([]byte, 65536)
	for i, callID := range []string{"call-1", "call-2"} {
		_ = ln.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, _, err := ln.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		chunks, err := Decode(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		if len(chunks) != 13 {
			t.Fatalf("%d chunks", len(chunks))
		}
		p, err := Parse(buf[:n])
		if err != nil {
			t.Fatal(err)
		}
		assertPacket(t, p, Packet{
			Time:          at.Add(time.Duration(i) * time.Second),
			IPProto:       IPProtoUDP,
			Src:           netip.MustParseAddrPort("127.0.0.1:5060"),
			Dst:           netip.MustParseAddrPort("127.0.0.2:5070"),
			ProtoType:     ProtoSIP,
			AgentID:       77,
			AuthKey:       "homer-key",
			CorrelationID: callID,
			Payload:       []byte(invite),
		})
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	if err := e.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if e.Send(samplePacket()) {
		t.Fatal("Send after Close accepted")
	}
	if s := e.Stats(); s.Sent != 2 || s.Dropped != 1 {
		t.Fatalf("stats = %+v", s)
	}
}

func TestExporterDropsWhenFull(t *testing.T) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	conn, err := net.Dial("udp", ln.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	// No sender yet: the one-slot queue cannot drain, which is what a wedged
	// collector socket looks like to Send.
	e := newExporter(conn, 1, ExporterOptions{QueueSize: 1})
	if !e.Send(samplePacket()) {
		t.Fatal("first packet dropped")
	}
	start := time.Now()
	for i := 0; i < 1000; i++ {
		if e.Send(samplePacket()) {
			t.Fatal("Send accepted into a full queue")
		}
	}
	if time.Since(start) > 2*time.Second {
		t.Fatal("Send blocked")
	}
	if d := e.Stats().Dropped; d != 1000 {
		t.Fatalf("dropped %d, want 1000", d)
	}
	go e.run()
	p := samplePacket()
	p.Dst = netip.MustParseAddrPort("[2001:db8::1]:5060")
	if e.Send(p) {
		t.Fatal("unencodable packet accepted")
	}
	if err := e.Close(); err != nil {
		t.Fatal(err)
	}
	// Close flushed the queued packet.
	if s := e.Stats(); s.Sent != 1 {
		t.Fatalf("stats after Close = %+v", s)
	}
}

func TestNewExporterBadAddr(t *testing.T) {
	if _, err := NewExporter("not an address", 1, ExporterOptions{}); err == nil {
		t.Fatal("no error")
	}
}

func FuzzDecode(f *testing.F) {
	p := samplePacket()
	b, _ := p.MarshalBinary()
	f.Add(b)
	p.Src = netip.MustParseAddrPort("[2001:db8::1]:5060")
	p.Dst = netip.MustParseAddrPort("[2001:db8::2]:5060")
	p.AuthKey = ""
	b6, _ := p.MarshalBinary()
	f.Add(b6)
	f.Add([]byte("HEP3\x00\x06"))
	f.Add([]byte{'H', 'E', 'P', '3', 0, 13, 0, 0, 0, 1, 0, 7, 2})
	f.Fuzz(func(t *testing.T, b []byte) {
		chunks, err := Decode(b)
		if err != nil {
			return
		}
		n := headerLen
		for _, c := range chunks {
			n += chunkHeaderLen + len(c.Value)
		}
		if n != len(b) {
			t.Fatalf("chunks cover %d of %d bytes", n, len(b))
		}
		p, err := Parse(b)
		if err != nil {
			return
		}
		// A parsed packet re-encodes, and parses back to the same packet.
		enc, err := p.MarshalBinary()
		if err != nil {
			t.Fatalf("re-encode %+v: %v", p, err)
		}
		q, err := Parse(enc)
		if err != nil {
			t.Fatalf("re-parse: %v", err)
		}
		assertPacket(t, q, p)
	})
}

// TestExporterNoLeak checks Close stops the sender goroutine.
func TestExporterNoLeak(t *testing.T) {
	ln, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	for i := 0; i < 5; i++ {
		e, err := NewExporter(ln.LocalAddr().String(), 1, ExporterOptions{})
		if err != nil {
			t.Fatal(err)
		}
		e.Send(samplePacket())
		e.Close()
	}
	deadline := time.Now().Add(5 * time.Second)
	for {
		buf := make([]byte, 1<<20)
		stacks := string(buf[:runtime.Stack(buf, true)])
		if !strings.Contains(stacks, "hep.(*Exporter).run") {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("sender goroutine still running after Close:\n%s", stacks)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

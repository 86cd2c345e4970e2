package media

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/pion/rtp"
)

// rtpFuzzSources are the datagram sources a fuzz input chooses from: the SDP
// address, a stranger and a NAT-rewritten port of the peer.
var rtpFuzzSources = [4]netip.AddrPort{
	netip.MustParseAddrPort("127.0.0.1:40000"),
	netip.MustParseAddrPort("127.0.0.2:40000"),
	netip.MustParseAddrPort("127.0.0.1:40002"),
	netip.MustParseAddrPort("[::ffff:127.0.0.1]:40000"),
}

// rtpFrame frames one datagram for FuzzSessionHandlePacket: a control byte (low
// two bits the source, the rest 100 ms steps of the clock), a length byte, the
// bytes.
func rtpFrame(src, steps byte, b []byte) []byte {
	return append([]byte{src&3 | steps<<2, byte(len(b))}, b...)
}

// FuzzSessionHandlePacket feeds a sequence of datagrams from chosen sources,
// at chosen times, into the receive path after the socket read (source
// admission, RFC 3550 §5.1 header checks, payload type, RFC 4733 events). It
// must not panic, and each datagram is counted once as accepted or as from a
// wrong source at most.
func FuzzSessionHandlePacket(f *testing.F) {
	var seed []byte
	for i, h := range sippDTMF1 {
		seed = append(seed, rtpFrame(0, byte(i&1), mustHex(f, h))...)
	}
	f.Add(seed)
	f.Add(append(rtpFrame(0, 0, rtpBytes(f, 0, 1, 160, make([]byte, 160))),
		rtpFrame(1, 12, rtpBytes(f, 0, 2, 320, make([]byte, 160)))...))
	f.Add(append(rtpFrame(2, 15, rtpBytes(f, 8, 7, 0, make([]byte, 20))),
		rtpFrame(3, 0, []byte{0x80, 0xc8, 0x00, 0x06, 0, 0, 0x12, 0x34})...)) // RTCP SR on a muxed port
	f.Add(rtpFrame(0, 0, []byte{0xb0, 0x65, 0, 1, 0, 0, 0, 1, 0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff})) // padding, extension, CSRC bits
	f.Add(rtpFrame(0, 0, []byte{0x40, 0, 0, 1}))
	f.Fuzz(func(t *testing.T, data []byte) {
		conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Skip(err)
		}
		s, err := NewSession(SessionConfig{Conn: conn, Remote: rtpFuzzSources[0], HasDTMF: true, DTMFPayloadType: 101})
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		var (
			p      rtp.Packet
			rx     dtmfReceiver
			digits = make([]Digit, 0, 2)
			now    = time.Now()
			n      uint64
		)
		for len(data) >= 2 {
			ctl, size := data[0], int(data[1])
			data = data[2:]
			size = min(size, len(data))
			b := data[:size]
			data = data[size:]
			now = now.Add(time.Duration(ctl>>2) * 100 * time.Millisecond)
			s.handlePacket(b, rtpFuzzSources[ctl&3], now, &p, &rx, digits[:0])
			n++
		}
		s.housekeeping(now.Add(time.Second), &rx, digits[:0])
		if st := s.Stats(); st.PacketsIn+st.WrongSource > n {
			t.Fatalf("%d datagrams, stats %+v", n, st)
		}
	})
}

package main

import (
	"net"
	"net/netip"
	"reflect"
	"testing"
	"time"
)

func TestBencodeRoundTrip(t *testing.T) {
	in := map[string]any{"command": "offer", "call-id": "c1", "flags": []any{"trust-address"}, "n": int64(-3)}
	b, err := bencode(nil, in)
	if err != nil {
		t.Fatal(err)
	}
	if want := "d7:call-id2:c17:command5:offer5:flagsl13:trust-addresse1:ni-3ee"; string(b) != want {
		t.Fatalf("bencode = %s, want %s", b, want)
	}
	out, err := bdecode(b)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(out, in) {
		t.Fatalf("round trip: got %#v", out)
	}
}

func TestBdecodeRejects(t *testing.T) {
	for _, s := range []string{"", "d", "5:ab", "i12", "l", "di1ei2ee", "x", "3:abcX"} {
		if _, err := bdecode([]byte(s)); err == nil {
			t.Errorf("bdecode(%q): no error", s)
		}
	}
}

func TestSDPAudioAddr(t *testing.T) {
	sdp := "v=0\r\no=- 1 1 IN IP4 127.0.0.1\r\ns=-\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\n" +
		"m=audio 30010 RTP/AVP 0\r\nc=IN IP4 127.0.0.2\r\na=sendrecv\r\nm=video 4000 RTP/AVP 96\r\nc=IN IP4 127.0.0.3\r\n"
	got, err := sdpAudioAddr([]byte(sdp))
	if err != nil || got != netip.MustParseAddrPort("127.0.0.2:30010") {
		t.Fatalf("sdpAudioAddr = %v, %v", got, err)
	}
	if _, err := sdpAudioAddr([]byte("c=IN IP4 10.0.0.1\r\nm=audio 5000 RTP/AVP 0\r\n")); err == nil {
		t.Fatal("non-loopback address accepted")
	}
	if got, err := sdpAudioAddr([]byte(buildSDP(sdpOptions{port: 2000, dtmf: true}))); err != nil || got.Port() != 2000 {
		t.Fatalf("own SDP: %v, %v", got, err)
	}
}

// TestSendReceive sends through a loopback "relay" (the receiver's own
// address) and checks the meter counts it, without allocating per packet.
func TestSendReceive(t *testing.T) {
	a, err := openEndpoint(0)
	if err != nil {
		t.Fatal(err)
	}
	b, err := openEndpoint(1)
	if err != nil {
		t.Fatal(err)
	}
	a.remote = b.conn.LocalAddr().(*net.UDPAddr).AddrPort()
	m := newMeter(time.Now(), 2, 0, time.Hour)
	var rx receivers
	rx.start(m, []*endpoint{b})
	s := &sender{m: m, eps: []*endpoint{a}}
	allocs := testing.AllocsPerRun(100, func() { s.send(a) })
	deadline := time.Now().Add(2 * time.Second)
	for m.recv[0].Load() < a.sent && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	_ = a.conn.Close()
	_ = b.conn.Close()
	rx.wait()
	if allocs != 0 {
		t.Errorf("send allocates %.1f times per packet", allocs)
	}
	if got := m.recv[0].Load(); got != a.sent || got == 0 {
		t.Errorf("received %d of %d", got, a.sent)
	}
	if p := m.percentile(0.5); p <= 0 || p > 100*time.Millisecond {
		t.Errorf("p50 %v", p)
	}
}

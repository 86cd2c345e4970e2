package interop

import (
	"net"
	"strings"
	"testing"
	"time"
)

// An in-dialog request without a Route naming the proxy is not relayed (the
// stock WITHINDLG rule): a BYE gets 404, an ACK is discarded silently.
func TestKamailioDropsInDialogWithoutRoute(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{RecordRoute: true})
	c, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	to, err := net.ResolveUDPAddr("udp4", k.Addr())
	if err != nil {
		t.Fatal(err)
	}
	for _, method := range []string{"ACK", "BYE"} {
		msg := "" +
			method + " sip:nobody@127.0.0.1:9 SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + c.LocalAddr().String() + ";branch=z9hG4bK-drop-" + method + "\r\n" +
			"Max-Forwards: 70\r\n" +
			"From: <sip:a@127.0.0.1>;tag=from1\r\n" +
			"To: <sip:b@127.0.0.1>;tag=to1\r\n" +
			"Call-ID: drop-test@127.0.0.1\r\n" +
			"CSeq: 2 " + method + "\r\n" +
			"Content-Length: 0\r\n\r\n"
		if _, err := c.WriteTo([]byte(msg), to); err != nil {
			t.Fatal(err)
		}
		r, err := k.WaitRequest(5*time.Second, func(r ProxiedRequest) bool { return r.Method == method })
		if err != nil {
			t.Fatal(err)
		}
		if r.Routing != DroppedInDialog || !r.InDialog() || r.Relayed() {
			t.Errorf("%s handled as %v, want dropped in-dialog", method, r)
		}
	}
	buf := make([]byte, 2048)
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	n, _, err := c.ReadFrom(buf)
	if err != nil {
		t.Fatalf("no answer to the BYE: %v", err)
	}
	if got := string(buf[:n]); !strings.HasPrefix(got, "SIP/2.0 404") || !strings.Contains(got, "CSeq: 2 BYE") {
		t.Errorf("answer = %q, want 404 to the BYE", got)
	}
}

func TestKamailioLogLine(t *testing.T) {
	k := &Kamailio{changed: make(chan struct{})}
	k.onLine(` 9(4242) NOTICE: <script>: INTEROP|loose|BYE|abc@h|sip:b@127.0.0.1:5062;transport=udp`)
	k.onLine(` 9(4242) INFO: <core> unrelated`)
	k.onLine(` 9(4242) NOTICE: <script>: INTEROP|dropped|ACK|x|sip:b|odd`)
	got := k.Requests()
	if len(got) != 2 {
		t.Fatalf("parsed %v", got)
	}
	if r := got[0]; r.Method != "BYE" || r.Routing != RoutedLoose || r.CallID != "abc@h" ||
		r.RequestURI != "sip:b@127.0.0.1:5062;transport=udp" || !r.InDialog() || !r.Relayed() {
		t.Errorf("first = %+v", r)
	}
	if r := got[1]; r.Routing != DroppedInDialog || r.Relayed() || r.RequestURI != "sip:b|odd" {
		t.Errorf("second = %+v", r)
	}
}

// Stopping a peer frees its ports at once (the next test may pick them).
func TestStopFreesPorts(t *testing.T) {
	t.Parallel()
	k := StartKamailio(t, KamailioOptions{Transport: TransportTCP})
	b := StartBaresip(t, BaresipOptions{})
	k.proc.stopAndCheck(t)
	b.stop()
	for _, addr := range []string{k.Addr(), b.Addr()} {
		u, err := net.ListenPacket("udp4", addr)
		if err != nil {
			t.Errorf("udp %s still taken: %v", addr, err)
			continue
		}
		u.Close()
		l, err := net.Listen("tcp4", addr)
		if err != nil {
			t.Errorf("tcp %s still taken: %v", addr, err)
			continue
		}
		l.Close()
	}
}

package sip

import (
	"bytes"
	"encoding/base64"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosip "github.com/emiago/sipgo/sip"

	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
)

// recTracer records traced messages.
type recTracer struct {
	mu   sync.Mutex
	msgs []TracedMessage
}

func (r *recTracer) TraceSIP(m TracedMessage) {
	r.mu.Lock()
	r.msgs = append(r.msgs, m)
	r.mu.Unlock()
}

func (r *recTracer) all() []TracedMessage {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

// find returns the first message in the given direction whose data starts with
// prefix and, when cseq is not empty, has that CSeq method.
func (r *recTracer) find(outbound bool, prefix, cseq string) (TracedMessage, bool) {
	for _, m := range r.all() {
		if m.Outbound != outbound || !bytes.HasPrefix(m.Data, []byte(prefix)) {
			continue
		}
		if cseq != "" && !bytes.Contains(m.Data, []byte(" "+cseq+"\r\n")) {
			continue
		}
		return m, true
	}
	return TracedMessage{}, false
}

func TestSIPTraceUDP(t *testing.T) {
	tr := &recTracer{}
	e := newEnv(t, defaultTestConfig(), WithTracer(tr))
	if e.srv.SIPTraceEnabled() {
		t.Fatal("trace on by default")
	}
	e.srv.SetSIPTrace(true)
	c := e.answered(phone.InviteOptions{From: "+12175552171"})
	srvAddr := netip.MustParseAddrPort(e.udp)
	phoneAddr := e.phone.Addr()

	inv, ok := tr.find(false, "INVITE sip:", "")
	if !ok {
		t.Fatal("no inbound INVITE traced")
	}
	if inv.Network != "udp" || inv.Src != phoneAddr || inv.Dst != srvAddr || inv.CallID() != c.CallID ||
		inv.Time.IsZero() || time.Since(inv.Time) > time.Minute {
		t.Errorf("INVITE traced as %s %s -> %s call-id %q at %s", inv.Network, inv.Src, inv.Dst, inv.CallID(), inv.Time)
	}
	eventually(t, 5*time.Second, "200 OK traced", func() bool { _, ok := tr.find(true, "SIP/2.0 200 OK", "INVITE"); return ok })
	ok200, _ := tr.find(true, "SIP/2.0 200 OK", "INVITE")
	if ok200.Src != srvAddr || ok200.Dst != phoneAddr || ok200.CallID() != c.CallID || !bytes.Contains(ok200.Data, []byte("application/sdp")) {
		t.Errorf("200 traced as %s -> %s call-id %q", ok200.Src, ok200.Dst, ok200.CallID())
	}
	if _, ok := tr.find(true, "SIP/2.0 100 Trying", "INVITE"); !ok {
		t.Error("no 100 Trying traced")
	}
	if _, ok := tr.find(false, "ACK sip:", ""); !ok {
		t.Error("no ACK traced")
	}

	// Off at run time: nothing more is traced.
	e.srv.SetSIPTrace(false)
	if e.srv.SIPTraceEnabled() {
		t.Fatal("trace still on")
	}
	n := len(tr.all())
	ctx := ctxT(t, 10*time.Second)
	if r, err := c.Request(ctx, gosip.OPTIONS, "", nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("options: %v %v", r, err)
	}
	if got := len(tr.all()); got != n {
		t.Fatalf("trace off: %d messages traced", got-n)
	}
	// And on again.
	e.srv.SetSIPTrace(true)
	if r, err := c.Request(ctx, gosip.OPTIONS, "", nil); err != nil || r.StatusCode != 200 {
		t.Fatalf("options: %v %v", r, err)
	}
	eventually(t, 5*time.Second, "options traced", func() bool {
		_, in := tr.find(false, "OPTIONS sip:", "")
		_, out := tr.find(true, "SIP/2.0 200 OK", "OPTIONS")
		return in && out
	})
	// The BYE we send leaves from the listening socket: traced too.
	id := e.onlyCall().ID
	if err := e.srv.Hangup(ctx, id); err != nil {
		t.Fatal(err)
	}
	bye, ok := tr.find(true, "BYE sip:", "")
	if !ok || bye.Src != srvAddr || bye.Dst != phoneAddr {
		t.Errorf("our BYE traced: %v %s -> %s", ok, bye.Src, bye.Dst)
	}
	e.waitIdle()
}

func TestSIPTraceTCP(t *testing.T) {
	tr := &recTracer{}
	e := newEnv(t, defaultTestConfig(), WithTracer(tr))
	e.srv.SetSIPTrace(true)
	p := e.newPhone("tcp")
	c, res := e.call(p, phone.InviteOptions{Target: e.target("tcp")})
	if res.StatusCode != 200 {
		t.Fatalf("invite over tcp: %d", res.StatusCode)
	}
	srvAddr := netip.MustParseAddrPort(e.tcp)
	eventually(t, 5*time.Second, "200 OK traced", func() bool { _, ok := tr.find(true, "SIP/2.0 200 OK", "INVITE"); return ok })

	// Inbound TCP data are raw chunks: join them.
	var in []byte
	var remote netip.AddrPort
	for _, m := range tr.all() {
		if m.Outbound || m.Network != "tcp" {
			continue
		}
		if m.Dst != srvAddr || m.Src.Addr() != netip.MustParseAddr("127.0.0.1") {
			t.Errorf("inbound tcp chunk %s -> %s", m.Src, m.Dst)
		}
		remote = m.Src
		in = append(in, m.Data...)
	}
	if !bytes.Contains(in, []byte("INVITE sip:")) || !bytes.Contains(in, []byte(c.CallID)) {
		t.Errorf("inbound tcp data has no INVITE of the call:\n%s", in)
	}
	ok200, _ := tr.find(true, "SIP/2.0 200 OK", "INVITE")
	if ok200.Network != "tcp" || ok200.Src != srvAddr || ok200.Dst != remote || ok200.CallID() != c.CallID {
		t.Errorf("200 traced as %s %s -> %s (inbound from %s)", ok200.Network, ok200.Src, ok200.Dst, remote)
	}
	if r, err := c.Bye(ctxT(t, 5*time.Second)); err != nil || r.StatusCode != 200 {
		t.Fatalf("bye: %v %v", r, err)
	}
	e.waitIdle()
}

func TestWithoutTracerListenersAreNotWrapped(t *testing.T) {
	s := &Server{}
	pc := &fakePacketConn{}
	if got := s.traceUDP(&listener{}, pc); got != net.PacketConn(pc) {
		t.Error("udp socket wrapped without a tracer")
	}
	var ln net.Listener = &net.TCPListener{}
	if got := s.traceTCP(&listener{}, ln); got != ln {
		t.Error("tcp listener wrapped without a tracer")
	}
}

// fakePacketConn reads data from every ReadFrom and swallows writes.
type fakePacketConn struct {
	net.PacketConn
	data []byte
	from *net.UDPAddr
}

func (f *fakePacketConn) ReadFrom(b []byte) (int, net.Addr, error) {
	return copy(b, f.data), f.from, nil
}

func (f *fakePacketConn) WriteTo(b []byte, _ net.Addr) (int, error) { return len(b), nil }

// fakeConn is a TCP connection that reads data and swallows writes.
type fakeConn struct {
	net.Conn
	data []byte
}

func (f *fakeConn) Read(b []byte) (int, error)  { return copy(b, f.data), nil }
func (f *fakeConn) Write(b []byte) (int, error) { return len(b), nil }

func TestTraceWrappers(t *testing.T) {
	tr := &recTracer{}
	var on atomic.Bool
	peer := netip.MustParseAddrPort("192.0.2.7:5060")
	local := netip.MustParseAddrPort("198.51.100.1:5060")
	msg := []byte("OPTIONS sip:a@b SIP/2.0\r\nCall-ID: x1\r\n\r\n")
	pc := &tracedPacketConn{PacketConn: &fakePacketConn{data: msg, from: net.UDPAddrFromAddrPort(peer)},
		on: &on, t: tr, local: local}
	conn := &tracedConn{Conn: &fakeConn{data: msg}, on: &on, t: tr, local: local, remote: peer}
	buf := make([]byte, 1500)
	to := net.UDPAddrFromAddrPort(peer)
	roundTrip := func() {
		_, _, _ = pc.ReadFrom(buf)
		_, _ = pc.WriteTo(msg, to)
		_, _ = conn.Read(buf)
		_, _ = conn.Write(msg)
	}

	// Off: nothing traced and nothing allocated (no copies).
	if allocs := testing.AllocsPerRun(100, roundTrip); allocs != 0 {
		t.Errorf("trace off: %v allocations per round trip, want 0", allocs)
	}
	if n := len(tr.all()); n != 0 {
		t.Fatalf("trace off: %d messages", n)
	}

	on.Store(true)
	roundTrip()
	got := tr.all()
	if len(got) != 4 {
		t.Fatalf("trace on: %d messages, want 4", len(got))
	}
	for i, w := range []struct {
		network  string
		outbound bool
	}{{"udp", false}, {"udp", true}, {"tcp", false}, {"tcp", true}} {
		m := got[i]
		src, dst := peer, local
		if w.outbound {
			src, dst = local, peer
		}
		if m.Network != w.network || m.Outbound != w.outbound || m.Src != src || m.Dst != dst ||
			!bytes.Equal(m.Data, msg) || m.CallID() != "x1" {
			t.Errorf("message %d = %+v", i, m)
		}
	}
	// The traced data are copies: the read buffer is reused.
	copy(buf, "XXXXXXX")
	if !bytes.HasPrefix(got[0].Data, []byte("OPTIONS")) {
		t.Error("traced data aliases the read buffer")
	}

	// Keep-alives are not traced.
	pc.PacketConn.(*fakePacketConn).data = []byte("\r\n\r\n")
	conn.Conn.(*fakeConn).data = []byte("\r\n")
	_, _, _ = pc.ReadFrom(buf)
	_, _ = conn.Read(buf)
	_, _ = conn.Write([]byte("\r\n"))
	if n := len(tr.all()); n != 4 {
		t.Errorf("keep-alives traced: %d messages", n-4)
	}
}

func TestTracedMessageCallID(t *testing.T) {
	for _, tc := range []struct{ data, want string }{
		{"INVITE sip:a@b SIP/2.0\r\nVia: SIP/2.0/UDP h\r\nCall-ID: abc@host\r\n\r\n", "abc@host"},
		{"SIP/2.0 200 OK\r\ncall-id:  lower \r\n\r\n", "lower"},
		{"BYE sip:a@b SIP/2.0\ni: compact\n\n", "compact"},
		{"OPTIONS sip:a@b SIP/2.0\r\nVia: x\r\n\r\nCall-ID: in-body\r\n", ""},
		{"Call-ID: start-line-only", ""},
		{"", ""},
		{"REGISTER sip:b SIP/2.0\r\nContact: <sip:i:1@h>\r\nCALL-ID: upper\r\n", "upper"},
	} {
		if got := (TracedMessage{Data: []byte(tc.data)}).CallID(); got != tc.want {
			t.Errorf("CallID(%q) = %q, want %q", strings.ReplaceAll(tc.data, "\r\n", "|"), got, tc.want)
		}
	}
}

func TestAddrPortOf(t *testing.T) {
	for _, tc := range []struct {
		in   net.Addr
		want string
	}{
		{&net.UDPAddr{IP: net.ParseIP("127.0.0.1"), Port: 5060}, "127.0.0.1:5060"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:10.0.0.1"), Port: 5061}, "10.0.0.1:5061"},
		{&net.UDPAddr{IP: net.ParseIP("::1"), Port: 7}, "[::1]:7"},
		{nil, "invalid AddrPort"},
		{&net.UnixAddr{Name: "/x", Net: "unix"}, "invalid AddrPort"},
	} {
		if got := addrPortOf(tc.in).String(); got != tc.want {
			t.Errorf("addrPortOf(%v) = %s, want %s", tc.in, got, tc.want)
		}
	}
}

func TestTraceWildcardUDPUsesExternalIP(t *testing.T) {
	s := &Server{cfg: Config{ExternalIP: netip.MustParseAddr("203.0.113.5")}}
	s.obs.tracer = &recTracer{}
	l := &listener{network: "udp", addr: netip.MustParseAddrPort("0.0.0.0:5060")}
	pc, ok := s.traceUDP(l, &fakePacketConn{}).(*tracedPacketConn)
	if !ok || pc.local != netip.MustParseAddrPort("203.0.113.5:5060") {
		t.Errorf("wildcard listener traced as %v", pc)
	}
}

// The SRTP keys of a call never reach the SIP trace (log or HEP): the
// caller's key in the traced INVITE and ours in the traced 200 are
// overwritten, the rest of each message stays as it was sent, length included.
func TestSIPTraceRedactsSDESKeys(t *testing.T) {
	tr := &recTracer{}
	cfg := defaultTestConfig()
	cfg.SRTP = media.SRTPRequire
	e := newEnv(t, cfg, WithTracer(tr))
	e.srv.SetSIPTrace(true)
	_, b64 := freshKey(t)
	c := e.answered(phone.InviteOptions{Offer: phone.OfferOptions{Crypto: []string{
		"1 AES_CM_128_HMAC_SHA1_80 inline:" + b64 + "|2^31",
	}}})
	ours := c.Answer().Crypto[0]
	eventually(t, 5*time.Second, "200 OK traced", func() bool { _, ok := tr.find(true, "SIP/2.0 200 OK", "INVITE"); return ok })
	inv, _ := tr.find(false, "INVITE sip:", "")
	ok200, _ := tr.find(true, "SIP/2.0 200 OK", "INVITE")
	for _, m := range []TracedMessage{inv, ok200} {
		if !bytes.Contains(m.Data, []byte("a=crypto:")) {
			t.Fatalf("no crypto attribute traced:\n%s", m.Data)
		}
		if bytes.Contains(m.Data, []byte(b64)) {
			t.Errorf("the caller's key is in the trace:\n%s", m.Data)
		}
	}
	if !bytes.Contains(inv.Data, []byte("inline:"+strings.Repeat("x", len(b64))+"|2^31")) {
		t.Errorf("the INVITE's key parameter is not overwritten in place:\n%s", inv.Data)
	}
	ourB64 := base64.StdEncoding.EncodeToString(ours.Key[:])
	if bytes.Contains(ok200.Data, []byte(ourB64)) {
		t.Errorf("our key is in the trace:\n%s", ok200.Data)
	}
	if _, err := c.Bye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()
}

func TestRedactSDESKeys(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AbCd|2^20|1:4\r\n", "a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:xxxx|2^20|1:4\r\n"},
		{"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:AbCd\r\na=crypto:2 X inline:Ef;inline:Gh\r\n",
			"a=crypto:1 AES_CM_128_HMAC_SHA1_80 inline:xxxx\r\na=crypto:2 X inline:xx;inline:xx\r\n"},
		{"inline:", "inline:"},
		{"no keys here\r\n", "no keys here\r\n"},
	} {
		if got := string(redactSDESKeys([]byte(tc.in))); got != tc.want {
			t.Errorf("redact(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

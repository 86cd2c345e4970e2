package sip

import (
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/http"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/matterline/matterline/httpapi"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/phone"
)

// BenchmarkAnswerUnderAttack places legitimate calls one after another from
// 127.0.0.1 while an attacker on 127.0.0.2 keeps up one of SECURITY.md's attacks,
// and reports how long each legitimate INVITE took to be answered (p50, p99, max)
// next to how much the attacker sent. The goal (issue "Safe on a hostile
// network") is every legit call answered in under 50 ms during every attack; this
// is a benchmark, not a test, because the figure depends on the machine:
//
//	go test -run '^$' -bench AnswerUnderAttack -benchtime 200x ./sip/
//
// bench/attacks.sh runs it and prints the table.
func BenchmarkAnswerUnderAttack(b *testing.B) {
	if _, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")}); err != nil {
		b.Skipf("no 127.0.0.2 on this machine: %v", err)
	}
	for _, a := range []struct {
		name string
		// trusted: the attacker's address is a trusted source (a compromised or
		// misbehaving PBX); otherwise only 127.0.0.1 is trusted.
		trusted bool
		run     func(b *testing.B, e *testEnv, ports [2]int, stop <-chan struct{}) (sent *atomic.Int64)
	}{
		{"none", false, nil},
		{"rtp_spray", false, attackRTPSpray},
		{"tcp_flood", false, attackTCPFlood},
		{"garbage_udp", false, attackGarbage},
		{"untrusted_invites", false, attackInvites},
		{"invite_flood_trusted", true, attackInvites},
		{"in_dialog_stranger", false, attackInDialog},
		{"http_api_forged", false, attackHTTPAPI},
	} {
		b.Run(a.name, func(b *testing.B) {
			cfg := defaultTestConfig()
			// The production per-source call rate, which the flood runs into.
			cfg.InviteRate, cfg.InviteBurst = DefaultInviteRate, DefaultInviteBurst
			cfg.MenuTimeout = 10 * time.Minute // the in-dialog attack's victim waits in the menu
			cfg.TrustedSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
			if a.trusted {
				cfg.TrustedSources = append(cfg.TrustedSources, netip.MustParsePrefix("127.0.0.2/32"))
			}
			// A port range of its own, so the RTP spray knows where to aim.
			rng := [2]int{52000, 52999}
			ports, err := media.NewPortAllocator(rng[0], rng[1], 200*time.Millisecond)
			if err != nil {
				b.Fatal(err)
			}
			e := newEnv(b, cfg, WithPorts(ports))
			stop := make(chan struct{})
			var sent *atomic.Int64
			if a.run != nil {
				sent = a.run(b, e, rng, stop)
				time.Sleep(300 * time.Millisecond) // the attack is in full swing
			}
			lat := make([]time.Duration, 0, b.N)
			start := time.Now()
			b.ResetTimer()
			for i := 0; i < b.N; i++ {
				// One legit caller, paced like busy real traffic (well below the
				// per-source call rate), each call hung up before the next.
				time.Sleep(time.Second / time.Duration(DefaultInviteRate) * 2)
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				t0 := time.Now()
				c, err := e.phone.Invite(ctx, phone.InviteOptions{Target: e.target("udp")})
				if err != nil {
					cancel()
					b.Fatal(err)
				}
				res, err := c.WaitFinal(ctx)
				d := time.Since(t0)
				if err != nil || res.StatusCode != 200 {
					cancel()
					b.Fatalf("legit call %d during %s: %v %v", i, a.name, res, err)
				}
				lat = append(lat, d)
				if r, err := c.Bye(ctx); err != nil || r.StatusCode != 200 {
					cancel()
					b.Fatalf("legit call %d BYE: %v %v", i, r, err)
				}
				c.Close()
				cancel()
			}
			b.StopTimer()
			elapsed := time.Since(start)
			close(stop)
			slices.Sort(lat)
			ms := func(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
			b.ReportMetric(ms(lat[len(lat)/2]), "p50-ms")
			b.ReportMetric(ms(lat[(len(lat)*99)/100]), "p99-ms")
			b.ReportMetric(ms(lat[len(lat)-1]), "max-ms")
			if sent != nil {
				b.ReportMetric(float64(sent.Load())/elapsed.Seconds(), "attack/s")
			}
			if e.check != nil {
				e.check()
			}
			e.srv.HangupAll(ctxT(b, 10*time.Second))
		})
	}
}

// attackRTPSpray sends RTP audio and an RFC 4733 "1" to every port of the range,
// round and round.
func attackRTPSpray(b *testing.B, e *testEnv, rng [2]int, stop <-chan struct{}) *atomic.Int64 {
	conn := attackerUDP(b)
	var sent atomic.Int64
	audio := make([]byte, 12+160)
	audio[0], audio[1] = 0x80, 0
	binary.BigEndian.PutUint32(audio[8:], 0xbad)
	dtmf := []byte{0x80, 0xe5, 0, 1, 0, 0, 0x33, 0xe0, 0, 0, 0x0b, 0xad, 1, 0x0a, 0, 0xa0}
	go func() {
		defer conn.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			for p := rng[0]; p <= rng[1]; p++ {
				pkt := audio
				if p%2 == 1 {
					pkt = dtmf
				}
				binary.BigEndian.PutUint16(pkt[2:], uint16(i))
				if _, err := conn.WriteToUDPAddrPort(pkt, netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(p))); err == nil {
					sent.Add(1)
				}
			}
			time.Sleep(5 * time.Millisecond)
		}
	}()
	return &sent
}

// tcpFloodRate is how many connections a second the TCP flood opens. Unpaced,
// the attacker's own dialling (in this process, on the same cores) takes most
// of the CPU and measures the machine rather than matterline; 5,000 a second is
// the 5,000 idle connections renewed every second.
var tcpFloodRate = 5000

// attackTCPFlood keeps opening TCP connections from the attacker that send
// nothing, tcpFloodRate a second, up to 1,000 open at a time, reopening each as
// the server closes it.
func attackTCPFlood(b *testing.B, e *testEnv, _ [2]int, stop <-chan struct{}) *atomic.Int64 {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: time.Second}
	var sent atomic.Int64
	var wg sync.WaitGroup
	// A pacer hands out tcpFloodRate/100 dials every 10 ms.
	tokens := make(chan struct{}, tcpFloodRate/100)
	go func() {
		t := time.NewTicker(10 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
			}
			for range tcpFloodRate / 100 {
				select {
				case tokens <- struct{}{}:
				default:
				}
			}
		}
	}()
	for range 1000 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				case <-tokens:
				}
				c, err := d.Dial("tcp", e.tcp)
				sent.Add(1)
				if err != nil {
					time.Sleep(10 * time.Millisecond)
					continue
				}
				// Hold it until the server closes it or the attack ends.
				done := make(chan struct{})
				go func() {
					var buf [64]byte
					for {
						if _, err := c.Read(buf[:]); err != nil {
							close(done)
							return
						}
					}
				}()
				select {
				case <-done:
				case <-stop:
				}
				_ = c.Close()
			}
		}()
	}
	b.Cleanup(wg.Wait)
	return &sent
}

// attackGarbage sends 60 KB datagrams that do not parse, as fast as one
// goroutine can.
func attackGarbage(b *testing.B, e *testEnv, _ [2]int, stop <-chan struct{}) *atomic.Int64 {
	conn := attackerUDP(b)
	dst := netip.MustParseAddrPort(e.udp)
	junk := make([]byte, 60_000)
	copy(junk, "INVITE sip:+12175552171@x SIP/2.0\r\nVia: garbage\r\nFrom: +12175552171 ")
	for i := 80; i < len(junk); i++ {
		junk[i] = 'A' + byte(i%26)
	}
	return sendUntil(conn, dst, stop, 200*time.Microsecond, func(int) []byte { return junk })
}

// attackInvites sends INVITEs with fresh Call-IDs that never ACK, about 2,000 a
// second; from an untrusted address they get 403, from a trusted one the
// source's call rate admits a few and refuses the rest.
func attackInvites(b *testing.B, e *testEnv, _ [2]int, stop <-chan struct{}) *atomic.Int64 {
	conn := attackerUDP(b)
	dst := netip.MustParseAddrPort(e.udp)
	me := conn.LocalAddr().String()
	return sendUntil(conn, dst, stop, 500*time.Microsecond, func(i int) []byte {
		return []byte(floodInvite(i, e.udp, me))
	})
}

// attackInDialog keeps a victim call in the menu and sends it forged INFO
// digits, re-INVITEs and BYEs with its Call-ID and tags from the attacker.
func attackInDialog(b *testing.B, e *testEnv, _ [2]int, stop <-chan struct{}) *atomic.Int64 {
	victim := e.newPhone("udp")
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := victim.Invite(ctx, phone.InviteOptions{Target: e.target("udp")})
	if err != nil {
		b.Fatal(err)
	}
	res, err := c.WaitFinal(ctx)
	if err != nil || res.StatusCode != 200 {
		b.Fatalf("victim call: %v %v", res, err)
	}
	b.Cleanup(c.Close)
	conn := attackerUDP(b)
	dst := netip.MustParseAddrPort(e.udp)
	me := conn.LocalAddr().String()
	evilSDP := "v=0\r\no=evil 1 2 IN IP4 127.0.0.2\r\ns=-\r\nc=IN IP4 127.0.0.2\r\nt=0 0\r\nm=audio 40000 RTP/AVP 0\r\na=sendrecv\r\n"
	reqs := []struct{ method, extra, body string }{
		{"INFO", "Content-Type: application/dtmf-relay\r\n", "Signal=1\r\nDuration=160\r\n"},
		{"INVITE", "Content-Type: application/sdp\r\n", evilSDP},
		{"BYE", "", ""},
	}
	sent := sendUntil(conn, dst, stop, 500*time.Microsecond, func(i int) []byte {
		r := reqs[i%len(reqs)]
		msg := r.method + " sip:matterline@" + e.udp + " SIP/2.0\r\n" +
			"Via: SIP/2.0/UDP " + me + ";branch=z9hG4bKevil" + strconv.Itoa(i) + "\r\n" +
			"From: " + res.From().Value() + "\r\n" +
			"To: " + res.To().Value() + "\r\n" +
			"Call-ID: " + c.CallID + "\r\n" +
			"CSeq: " + strconv.Itoa(900+i) + " " + r.method + "\r\n" +
			"Contact: <sip:evil@" + me + ">\r\n" + r.extra +
			"Content-Length: " + strconv.Itoa(len(r.body)) + "\r\n\r\n" + r.body
		return []byte(msg)
	})
	e.check = func() {
		// The victim is still in the menu with no intent: the attack did nothing.
		for _, s := range e.srv.Registry().List() {
			if s.SIPCallID == c.CallID {
				if s.State != StateInMenu || len(s.Intents) != 0 {
					b.Errorf("victim call after the attack: state %v, intents %v", s.State, s.Intents)
				}
				return
			}
		}
		b.Error("the victim call is gone after the attack")
	}
	return sent
}

func attackerUDP(b *testing.B) *net.UDPConn {
	conn, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.ParseIP("127.0.0.2")})
	if err != nil {
		b.Fatal(err)
	}
	return conn
}

// drain reads and drops what the server answers the attacker until conn closes.
func drain(conn *net.UDPConn) {
	buf := make([]byte, 65536)
	for {
		if _, _, err := conn.ReadFromUDP(buf); err != nil {
			return
		}
	}
}

// attackHTTPAPI runs the HTTP control API (admin token set, the listen address
// on loopback) next to the SIP server and sends it, from the attacker's
// address, what a DNS-rebinding page or a stranger on the port would: a
// transfer request with a foreign Host, without a token, and with a wrong one,
// over keep-alive connections, as fast as four clients can. None may succeed.
func attackHTTPAPI(b *testing.B, e *testEnv, _ [2]int, stop <-chan struct{}) *atomic.Int64 {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		b.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Token: "admin-secret-0123456789", AgentToken: "agent-secret-0123456789", Listen: ln.Addr().String(), Logger: testLogger(b)})
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	b.Cleanup(func() { _ = hs.Close() })
	client := &http.Client{Transport: &http.Transport{
		DialContext:         (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}}).DialContext,
		MaxIdleConnsPerHost: 8,
	}, Timeout: 5 * time.Second}
	url := "http://" + ln.Addr().String() + "/v1/calls/c1/transfer"
	var sent, succeeded atomic.Int64
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest("POST", url, strings.NewReader(`{"rule":"premium"}`))
				switch (w + i) % 3 {
				case 0:
					req.Host = "evil.example:80" // DNS rebinding
				case 1: // no token
				case 2:
					req.Header.Set("Authorization", "Bearer guessed-token")
				}
				res, err := client.Do(req)
				if err != nil {
					continue
				}
				_, _ = io.Copy(io.Discard, res.Body)
				res.Body.Close()
				sent.Add(1)
				if res.StatusCode < 400 {
					succeeded.Add(1)
				}
			}
		}()
	}
	e.check = func() {
		wg.Wait()
		if n := succeeded.Load(); n > 0 {
			b.Errorf("%d forged API requests succeeded", n)
		}
		if sent.Load() == 0 {
			b.Error("the API attack sent nothing")
		}
	}
	return &sent
}

// sendUntil sends next(i) from conn to dst, pausing between datagrams, until
// stop closes (then it closes conn), draining what the server answers, and
// counts what it sent.
func sendUntil(conn *net.UDPConn, dst netip.AddrPort, stop <-chan struct{}, pause time.Duration, next func(i int) []byte) *atomic.Int64 {
	var sent atomic.Int64
	go drain(conn)
	go func() {
		defer conn.Close()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			if _, err := conn.WriteToUDPAddrPort(next(i), dst); err == nil {
				sent.Add(1)
			}
			time.Sleep(pause)
		}
	}()
	return &sent
}

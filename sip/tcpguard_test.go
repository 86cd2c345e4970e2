package sip

import (
	"errors"
	"net"
	"net/netip"
	"os"
	"sync"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
)

// attackerDialer dials from 127.0.0.2, outside the test's trusted sources.
func attackerDialer(t *testing.T) *net.Dialer {
	t.Helper()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)}, Timeout: 2 * time.Second}
	l, err := net.ListenTCP("tcp", &net.TCPAddr{IP: net.IPv4(127, 0, 0, 2)})
	if err != nil {
		t.Skipf("cannot bind 127.0.0.2: %v", err)
	}
	_ = l.Close()
	return d
}

func guardTestConfig() Config {
	cfg := defaultTestConfig()
	cfg.TrustedSources = []netip.Prefix{netip.MustParsePrefix("127.0.0.1/32")}
	return cfg
}

// closedByPeer reports whether the server closed c: a read returns EOF or a
// reset before the deadline.
func closedByPeer(c net.Conn, deadline time.Time) bool {
	_ = c.SetReadDeadline(deadline)
	var b [64]byte
	for {
		_, err := c.Read(b[:])
		if err == nil {
			continue
		}
		return !errors.Is(err, os.ErrDeadlineExceeded)
	}
}

func openFDs() int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		return -1
	}
	return len(ents)
}

func TestTCPGuardUntrustedFlood(t *testing.T) {
	d := attackerDialer(t)
	e := newEnv(t, guardTestConfig())
	fdsBefore := openFDs()
	base := e.srv.TCPStats().Open

	const attack = 500
	// A dial may already fail with a reset: the server closes refused
	// connections with SO_LINGER 0, sometimes before connect returns.
	conns := make([]net.Conn, 0, attack)
	resetAtDial := 0
	for range attack {
		c, err := d.Dial("tcp", e.tcp)
		if err != nil {
			resetAtDial++
			continue
		}
		conns = append(conns, c)
	}
	defer func() {
		for _, c := range conns {
			_ = c.Close()
		}
	}()
	eventually(t, 5*time.Second, "all attacker connections accepted or refused", func() bool {
		st := e.srv.TCPStats()
		return st.Accepted+st.RefusedSource+st.RefusedGlobal >= attack
	})
	st := e.srv.TCPStats()
	t.Logf("after %d connections from 127.0.0.2: %+v, fds %d -> %d", attack, st, fdsBefore, openFDs())
	if st.Open-base > DefaultTCPMaxPerUntrustedSource {
		t.Errorf("open connections %d, want at most %d", st.Open-base, DefaultTCPMaxPerUntrustedSource)
	}

	var wg sync.WaitGroup
	var mu sync.Mutex
	closed := resetAtDial
	deadline := time.Now().Add(time.Second)
	for _, c := range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if closedByPeer(c, deadline) {
				mu.Lock()
				closed++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	t.Logf("closed by the server: %d of %d", closed, attack)
	if open := attack - closed; open > DefaultTCPMaxPerUntrustedSource {
		t.Errorf("%d attacker connections still open, want at most %d", open, DefaultTCPMaxPerUntrustedSource)
	}

	// A trusted caller over TCP still gets through during the attack.
	p := e.newPhone("tcp")
	c, res := e.call(p, phone.InviteOptions{Target: e.target("tcp")})
	if res.StatusCode != 200 {
		t.Fatalf("legit tcp call during the attack: %d", res.StatusCode)
	}
	if err := e.srv.Hangup(ctxT(t, 10*time.Second), e.onlyCall().ID); err != nil {
		t.Fatal(err)
	}
	if err := c.WaitBye(ctxT(t, 5*time.Second)); err != nil {
		t.Fatal(err)
	}
	e.waitIdle()

	for _, c := range conns {
		_ = c.Close()
	}
	_ = p.Close()
	eventually(t, 5*time.Second, "open connections back to baseline", func() bool {
		return e.srv.TCPStats().Open == base
	})
	t.Logf("after the attack: %+v, fds %d", e.srv.TCPStats(), openFDs())
}

func TestTCPGuardHalfMessageClosed(t *testing.T) {
	d := attackerDialer(t)
	cfg := guardTestConfig()
	cfg.TCPFirstMessageTimeout = 300 * time.Millisecond
	e := newEnv(t, cfg)

	c, err := d.Dial("tcp", e.tcp)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write([]byte("OPTIONS sip:100@127.0.0.1 SIP/2.0\r\nVia: SIP/2.0/TCP 127.0.0.2:5060\r\n")); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	if !closedByPeer(c, start.Add(3*time.Second)) {
		t.Fatal("half-sent message from an untrusted source still open after 3s")
	}
	took := time.Since(start)
	t.Logf("half message closed after %v", took)
	if took > 2*time.Second {
		t.Errorf("closed after %v, want about 300ms", took)
	}
	eventually(t, 2*time.Second, "counted", func() bool { return e.srv.TCPStats().FirstMsgTimeout == 1 })
	eventually(t, 2*time.Second, "released", func() bool { return e.srv.TCPStats().Open == 0 })
}

func TestTCPGuardTrustedIdleAndGlobalCap(t *testing.T) {
	cfg := guardTestConfig()
	cfg.TCPIdleTimeout = 400 * time.Millisecond
	cfg.TCPMaxConns = 6
	cfg.TCPMaxPerSource = 100
	e := newEnv(t, cfg)

	var conns []net.Conn
	for range 20 {
		c, err := net.Dial("tcp", e.tcp)
		if err != nil {
			continue // reset by the server before connect returned: refused
		}
		defer c.Close()
		conns = append(conns, c)
	}
	eventually(t, 5*time.Second, "all accepted or refused", func() bool {
		st := e.srv.TCPStats()
		return st.Accepted+st.RefusedGlobal >= 20
	})
	if st := e.srv.TCPStats(); st.Open != 6 || st.RefusedGlobal != 14 {
		t.Errorf("stats %+v, want 6 open and 14 refused by the global cap", st)
	}
	// The admitted ones are closed when idle, the refused ones at once.
	deadline := time.Now().Add(3 * time.Second)
	for i, c := range conns {
		if !closedByPeer(c, deadline) {
			t.Errorf("connection %d still open after the idle timeout", i)
		}
	}
	eventually(t, 2*time.Second, "released", func() bool { return e.srv.TCPStats().Open == 0 })
	if st := e.srv.TCPStats(); st.IdleTimeout != 6 {
		t.Errorf("idle timeouts %d, want 6", st.IdleTimeout)
	}
}

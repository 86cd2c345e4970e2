package media

import (
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"
)

var loopback = netip.MustParseAddr("127.0.0.1")

// freeRange finds a run of n free even ports on loopback by asking the kernel for
// an ephemeral port and probing upwards; tests only ever bind 127.0.0.1.
func freeRange(t *testing.T, n int) (int, int) {
	t.Helper()
	for attempt := 0; attempt < 50; attempt++ {
		c, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
		if err != nil {
			t.Fatal(err)
		}
		base := c.LocalAddr().(*net.UDPAddr).Port
		c.Close()
		base += base % 2
		if base+2*n > 65535 {
			continue
		}
		ok := true
		for p := base; p < base+2*n; p += 2 {
			probe, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: p})
			if err != nil {
				ok = false
				break
			}
			probe.Close()
		}
		if ok {
			return base, base + 2*(n-1)
		}
	}
	t.Skip("no free port range on loopback")
	return 0, 0
}

func port(c *net.UDPConn) int { return c.LocalAddr().(*net.UDPAddr).Port }

func TestPortAllocatorBasics(t *testing.T) {
	if _, err := NewPortAllocator(20001, 20001, 0); err == nil {
		t.Error("range without even port accepted")
	}
	if _, err := NewPortAllocator(30000, 20000, 0); err == nil {
		t.Error("inverted range accepted")
	}
	if _, err := NewPortAllocator(0, 70000, 0); err == nil {
		t.Error("out of range accepted")
	}

	lo, hi := freeRange(t, 3)
	pa, err := NewPortAllocator(lo-1, hi+1, time.Hour) // odd bounds round inwards
	if err != nil {
		t.Fatal(err)
	}
	if a, b := pa.Range(); a != lo || b != hi {
		t.Fatalf("range %d-%d, want %d-%d", a, b, lo, hi)
	}
	var conns []*net.UDPConn
	for range 3 {
		c, err := pa.Listen(loopback)
		if err != nil {
			t.Fatal(err)
		}
		if p := port(c); p%2 != 0 || p < lo || p > hi {
			t.Errorf("port %d outside even range %d-%d", p, lo, hi)
		}
		conns = append(conns, c)
	}
	if pa.InUse() != 3 {
		t.Errorf("InUse = %d", pa.InUse())
	}
	if _, err := pa.Listen(loopback); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("exhausted: err = %v", err)
	}
	// Released ports stay quarantined for an hour.
	conns[0].Close()
	pa.Release(port(conns[0]))
	pa.Release(port(conns[0])) // twice is harmless
	pa.Release(1)              // unknown is harmless
	if pa.InUse() != 2 || pa.Quarantined() != 1 {
		t.Errorf("InUse %d Quarantined %d", pa.InUse(), pa.Quarantined())
	}
	if _, err := pa.Listen(loopback); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("quarantined port handed out: err = %v", err)
	}
	for _, c := range conns[1:] {
		c.Close()
		pa.Release(port(c))
	}
	if pa.InUse() != 0 {
		t.Errorf("InUse = %d after release", pa.InUse())
	}
}

func TestPortAllocatorQuarantineExpires(t *testing.T) {
	lo, hi := freeRange(t, 1)
	pa, err := NewPortAllocator(lo, hi, 20*time.Millisecond)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pa.Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	c.Close()
	pa.Release(port(c))
	if _, err := pa.Listen(loopback); !errors.Is(err, ErrNoPorts) {
		t.Fatalf("port reused during quarantine: %v", err)
	}
	time.Sleep(40 * time.Millisecond)
	c, err = pa.Listen(loopback)
	if err != nil {
		t.Fatalf("port not reusable after quarantine: %v", err)
	}
	c.Close()
	pa.Release(port(c))
}

func TestPortAllocatorSkipsForeignPorts(t *testing.T) {
	lo, hi := freeRange(t, 2)
	// Another "process" holds the first port.
	foreign, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1), Port: lo})
	if err != nil {
		t.Fatal(err)
	}
	defer foreign.Close()
	pa, err := NewPortAllocator(lo, hi, 0)
	if err != nil {
		t.Fatal(err)
	}
	c, err := pa.Listen(loopback)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if port(c) != hi {
		t.Errorf("got port %d, want %d (the one not held)", port(c), hi)
	}
	if _, err := pa.Listen(loopback); !errors.Is(err, ErrNoPorts) {
		t.Errorf("err = %v, want ErrNoPorts", err)
	}
	// An address that is not ours is a real error, not exhaustion.
	if _, err := pa.Listen(netip.MustParseAddr("192.0.2.1")); err == nil || errors.Is(err, ErrNoPorts) {
		t.Errorf("foreign ip: err = %v", err)
	}
}

func TestPortAllocatorConcurrent(t *testing.T) {
	lo, hi := freeRange(t, 16)
	pa, err := NewPortAllocator(lo, hi, 0)
	if err != nil {
		t.Fatal(err)
	}
	var (
		wg   sync.WaitGroup
		mu   sync.Mutex
		seen = map[int]bool{}
	)
	for range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range 20 {
				c, err := pa.Listen(loopback)
				if err != nil {
					continue // exhausted for a moment
				}
				p := port(c)
				mu.Lock()
				if seen[p] {
					t.Errorf("port %d handed out twice", p)
				}
				seen[p] = true
				mu.Unlock()
				mu.Lock()
				delete(seen, p)
				mu.Unlock()
				c.Close()
				pa.Release(p)
			}
		}()
	}
	wg.Wait()
	if pa.InUse() != 0 {
		t.Errorf("InUse = %d", pa.InUse())
	}
}

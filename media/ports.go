package media

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"
)

// ErrNoPorts: every port of the range is in use or quarantined.
var ErrNoPorts = errors.New("media: no free rtp port")

// PortAllocator hands out even RTP ports from a range, binds them, and keeps a
// released port out of reuse for a quarantine period so stale media of an old call
// cannot reach a new one. Safe for concurrent use; no package-level state.
//
// RTP uses even ports and leaves port+1 to RTCP (RFC 3550 §11). Ports held by other
// processes are skipped. The search starts after the last port handed out, so ports
// rotate through the range rather than being reused at once.
type PortAllocator struct {
	min, max   int // even bounds, inclusive
	quarantine time.Duration
	now        func() time.Time

	mu       sync.Mutex
	next     int               // next candidate port
	inUse    map[int]struct{}  // handed out, not released
	released map[int]time.Time // quarantined until
}

// NewPortAllocator covers [min, max] (both inclusive; only even ports are used).
func NewPortAllocator(min, max int, quarantine time.Duration) (*PortAllocator, error) {
	if min < 1 || max > 65535 || min > max {
		return nil, fmt.Errorf("media: invalid rtp port range %d-%d", min, max)
	}
	if quarantine < 0 {
		return nil, fmt.Errorf("media: negative port quarantine %v", quarantine)
	}
	lo, hi := min+min%2, max-max%2
	if lo > hi {
		return nil, fmt.Errorf("media: rtp port range %d-%d has no even port", min, max)
	}
	return &PortAllocator{
		min:        lo,
		max:        hi,
		quarantine: quarantine,
		now:        time.Now,
		next:       lo,
		inUse:      make(map[int]struct{}),
		released:   make(map[int]time.Time),
	}, nil
}

// Listen binds a UDP socket on ip at a free even port from the range. It returns
// ErrNoPorts when every port is in use, quarantined or taken by another process.
func (p *PortAllocator) Listen(ip netip.Addr) (*net.UDPConn, error) {
	if !ip.IsValid() {
		return nil, fmt.Errorf("media: listen rtp: invalid ip address")
	}
	p.mu.Lock()
	defer p.mu.Unlock()

	now := p.now()
	count := (p.max-p.min)/2 + 1
	port := p.next
	for range count {
		candidate := port
		port += 2
		if port > p.max {
			port = p.min
		}
		if _, busy := p.inUse[candidate]; busy {
			continue
		}
		if until, ok := p.released[candidate]; ok {
			if now.Before(until) {
				continue
			}
			delete(p.released, candidate)
		}
		conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(candidate))))
		if err != nil {
			if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES) {
				continue // another process holds it: try the next one
			}
			return nil, fmt.Errorf("media: listen rtp on %s: %w", ip, err)
		}
		p.inUse[candidate] = struct{}{}
		p.next = port
		return conn, nil
	}
	return nil, fmt.Errorf("%w in %d-%d (%d in use, %d quarantined)",
		ErrNoPorts, p.min, p.max, len(p.inUse), len(p.released))
}

// Release returns the port of conn (after the caller closed it) to the pool. The port
// is not handed out again before the quarantine has passed. Releasing a port that is
// not in use does nothing.
func (p *PortAllocator) Release(port int) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if _, ok := p.inUse[port]; !ok {
		return
	}
	delete(p.inUse, port)
	if p.quarantine > 0 {
		p.released[port] = p.now().Add(p.quarantine)
	}
}

// InUse is the number of ports currently allocated (for leak tests and metrics).
func (p *PortAllocator) InUse() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	return len(p.inUse)
}

// Quarantined is the number of released ports still kept out of reuse.
func (p *PortAllocator) Quarantined() int {
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	n := 0
	for _, until := range p.released {
		if now.Before(until) {
			n++
		}
	}
	return n
}

// Range returns the even bounds actually used.
func (p *PortAllocator) Range() (min, max int) { return p.min, p.max }

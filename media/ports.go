package media

import (
	crand "crypto/rand"
	"errors"
	"fmt"
	"math/rand/v2"
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
// processes are skipped. The port is chosen at random within the range (a ChaCha8
// generator per allocator, seeded from crypto/rand), so that the next call's port
// cannot be guessed from the last one and sprayed (RFC 3550 §9.1 makes the same point
// for SSRC and sequence numbers); the quarantine keeps a released port from coming
// straight back.
type PortAllocator struct {
	min, max   int // even bounds, inclusive
	quarantine time.Duration
	now        func() time.Time

	mu       sync.Mutex
	rng      *rand.Rand        // guarded by mu
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
		rng:        newPortRand(),
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
	// A few uniform random draws find a free port at once unless the range is
	// nearly full; then one pass from a random offset visits every port exactly
	// once, so the work is bounded by randomProbes+count candidates.
	for range min(randomProbes, count) {
		conn, err := p.try(ip, p.min+2*p.rng.IntN(count), now)
		if conn != nil || err != nil {
			return conn, err
		}
	}
	start := p.rng.IntN(count)
	for i := range count {
		conn, err := p.try(ip, p.min+2*((start+i)%count), now)
		if conn != nil || err != nil {
			return conn, err
		}
	}
	return nil, fmt.Errorf("%w in %d-%d (%d in use, %d quarantined)",
		ErrNoPorts, p.min, p.max, len(p.inUse), len(p.released))
}

// randomProbes is how many uniform draws Listen makes before scanning the range.
const randomProbes = 8

// try binds candidate if it is neither in use nor quarantined. A nil conn and nil
// error mean "not this one". The caller holds mu.
func (p *PortAllocator) try(ip netip.Addr, candidate int, now time.Time) (*net.UDPConn, error) {
	if _, busy := p.inUse[candidate]; busy {
		return nil, nil
	}
	if until, ok := p.released[candidate]; ok {
		if now.Before(until) {
			return nil, nil
		}
		delete(p.released, candidate)
	}
	conn, err := net.ListenUDP("udp", net.UDPAddrFromAddrPort(netip.AddrPortFrom(ip, uint16(candidate))))
	if err != nil {
		if errors.Is(err, syscall.EADDRINUSE) || errors.Is(err, syscall.EACCES) {
			return nil, nil // another process holds it: try another
		}
		return nil, fmt.Errorf("media: listen rtp on %s: %w", ip, err)
	}
	p.inUse[candidate] = struct{}{}
	return conn, nil
}

// newPortRand is an allocator's own generator, seeded from the system's CSPRNG
// (crypto/rand.Read never fails on supported platforms, Go 1.24+).
func newPortRand() *rand.Rand {
	var seed [32]byte
	_, _ = crand.Read(seed[:])
	return rand.New(rand.NewChaCha8(seed))
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

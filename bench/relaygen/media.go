package main

import (
	"encoding/binary"
	"errors"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// RTP stream shape: 20 ms PCMU frames (RFC 3551 §4.5.14), 50 per second.
const (
	rtpHeaderSize = 12
	payloadSize   = 160
	packetSize    = rtpHeaderSize + payloadSize
	frameInterval = 20 * time.Millisecond
	// sendSlices spreads one tick's sends over this many sub-slots.
	sendSlices = 10
)

// Payload layout written by the generator: send time (ns since the run's
// start, monotonic clock), the sending endpoint's id and a marker, so that a
// receiver can tell generator packets from anything else the relay sends
// (matterline's ringback before the bridge).
const (
	offSendNs = 0
	offID     = 8
	offMagic  = 12
	magic     = 0x524c5947 // "RLYG"
)

// Latency histogram: 10 µs buckets up to 1 s, then one overflow bucket (a
// percentile there reads 1000010 µs: over a second).
const (
	histBucket  = 10 * time.Microsecond
	histBuckets = int(time.Second / histBucket)
)

// endpoint is one RTP endpoint of the generator: a call's caller side (id 2k)
// or callee/agent side (id 2k+1), with its socket and the relay address it
// sends to.
type endpoint struct {
	id     uint32
	conn   *net.UDPConn
	remote netip.AddrPort
	seq    uint16
	ts     uint32
	sent   uint64 // packets sent with a send time in the window; owned by the sender
	errs   uint64 // failed sends; owned by the sender
	buf    [packetSize]byte
}

// openEndpoint binds a loopback UDP socket on an ephemeral port.
func openEndpoint(id uint32) (*endpoint, error) {
	conn, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		return nil, err
	}
	e := &endpoint{id: id, conn: conn, seq: uint16(id * 7919), ts: id * 104729}
	e.buf[0] = 0x80 // V=2, no padding, no extension, no CSRC
	e.buf[1] = 0    // no marker, PT 0 (PCMU)
	binary.BigEndian.PutUint32(e.buf[8:12], 0x10000000+id)
	p := e.buf[rtpHeaderSize:]
	for i := range p {
		p[i] = 0xff // μ-law silence
	}
	binary.BigEndian.PutUint32(p[offID:], id)
	binary.BigEndian.PutUint32(p[offMagic:], magic)
	return e, nil
}

// port is the endpoint's local RTP port.
func (e *endpoint) port() int { return e.conn.LocalAddr().(*net.UDPAddr).Port }

// meter holds what the receivers measure. All fields are safe for concurrent use.
type meter struct {
	start    time.Time
	winStart int64 // ns since start; fixed before any goroutine reads them
	winEnd   int64
	recv     []atomic.Uint64 // window packets received, by sending endpoint id
	hist     []atomic.Uint64 // histBuckets+1
	maxLat   atomic.Int64
	stray    atomic.Uint64 // packets that are not the generator's, or from outside the window
}

func newMeter(start time.Time, endpoints int, warmup, window time.Duration) *meter {
	return &meter{
		start:    start,
		winStart: int64(warmup),
		winEnd:   int64(warmup + window),
		recv:     make([]atomic.Uint64, endpoints),
		hist:     make([]atomic.Uint64, histBuckets+1),
	}
}

// inWindow reports whether a packet sent at ns (since start) is measured.
func (m *meter) inWindow(ns int64) bool { return ns >= m.winStart && ns < m.winEnd }

// receive reads conn until it is closed, measuring generator packets. No
// allocation per packet.
func (m *meter) receive(conn *net.UDPConn) {
	var buf [1500]byte
	for {
		n, err := conn.Read(buf[:])
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		now := int64(time.Since(m.start))
		if n < rtpHeaderSize+offMagic+4 {
			m.stray.Add(1)
			continue
		}
		p := buf[rtpHeaderSize:n]
		if binary.BigEndian.Uint32(p[offMagic:]) != magic {
			m.stray.Add(1)
			continue
		}
		sent := int64(binary.BigEndian.Uint64(p[offSendNs:]))
		id := binary.BigEndian.Uint32(p[offID:])
		if !m.inWindow(sent) || int(id) >= len(m.recv) {
			continue
		}
		m.recv[id].Add(1)
		lat := now - sent
		b := int(lat / int64(histBucket))
		if b < 0 {
			b = 0
		}
		if b > histBuckets {
			b = histBuckets
		}
		m.hist[b].Add(1)
		for {
			old := m.maxLat.Load()
			if lat <= old || m.maxLat.CompareAndSwap(old, lat) {
				break
			}
		}
	}
}

// percentile returns the upper edge of the histogram bucket holding quantile q
// (0..1) of the measured packets.
func (m *meter) percentile(q float64) time.Duration {
	var total uint64
	for i := range m.hist {
		total += m.hist[i].Load()
	}
	if total == 0 {
		return 0
	}
	want := uint64(q*float64(total) + 0.5)
	if want < 1 {
		want = 1
	}
	var acc uint64
	for i := range m.hist {
		acc += m.hist[i].Load()
		if acc >= want {
			return time.Duration(i+1) * histBucket
		}
	}
	return time.Duration(histBuckets+1) * histBucket
}

// sender sends one packet per endpoint every 20 ms from one goroutine, the
// endpoints of a tick spread over sendSlices sub-slots, until stop closes or
// the measured window ends. Ticks missed by more than one interval are skipped
// (counted), never sent in a burst.
type sender struct {
	m       *meter
	eps     []*endpoint
	skipped uint64 // ticks skipped; owned by run
}

func (s *sender) run(stop <-chan struct{}) {
	n := len(s.eps)
	timer := time.NewTimer(0)
	defer timer.Stop()
	<-timer.C
	wait := func(at int64) bool {
		d := time.Duration(at - int64(time.Since(s.m.start)))
		if d <= 0 {
			select {
			case <-stop:
				return false
			default:
				return true
			}
		}
		timer.Reset(d)
		select {
		case <-stop:
			return false
		case <-timer.C:
			return true
		}
	}
	for tick := int64(0); ; tick++ {
		base := tick * int64(frameInterval)
		if base >= s.m.winEnd {
			return
		}
		if now := int64(time.Since(s.m.start)); now-base > int64(frameInterval) {
			s.skipped++
			continue
		}
		for slice := 0; slice < sendSlices; slice++ {
			if !wait(base + int64(slice)*int64(frameInterval)/sendSlices) {
				return
			}
			for i := slice * n / sendSlices; i < (slice+1)*n/sendSlices; i++ {
				s.send(s.eps[i])
			}
		}
	}
}

// send writes e's next packet, stamped with the current time.
func (s *sender) send(e *endpoint) {
	b := e.buf[:]
	binary.BigEndian.PutUint16(b[2:4], e.seq)
	binary.BigEndian.PutUint32(b[4:8], e.ts)
	e.seq++
	e.ts += payloadSize
	ns := int64(time.Since(s.m.start))
	binary.BigEndian.PutUint64(b[rtpHeaderSize+offSendNs:], uint64(ns))
	if _, err := e.conn.WriteToUDPAddrPort(b, e.remote); err != nil {
		e.errs++
		return
	}
	if s.m.inWindow(ns) {
		e.sent++
	}
}

// receivers runs one receive goroutine per endpoint socket; close the sockets
// and call wait to end them.
type receivers struct{ wg sync.WaitGroup }

func (r *receivers) start(m *meter, eps []*endpoint) {
	for _, e := range eps {
		r.wg.Add(1)
		go func() {
			defer r.wg.Done()
			m.receive(e.conn)
		}()
	}
}

func (r *receivers) wait() { r.wg.Wait() }

package hep

import (
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// DefaultQueueSize is the exporter queue length used when ExporterOptions.QueueSize is 0.
const DefaultQueueSize = 1024

// ExporterOptions configures an Exporter. The zero value is usable.
type ExporterOptions struct {
	// QueueSize bounds the packets waiting to be sent (default DefaultQueueSize).
	// When the queue is full, Send drops the packet and counts it.
	QueueSize int
	// AuthKey is the collector's shared authentication key (HEP chunk 0x000e);
	// empty sends none.
	AuthKey string
	// Logger receives send errors, rate-limited to one per ErrorLogInterval
	// (default slog.Default()).
	Logger *slog.Logger
	// ErrorLogInterval is the minimum time between two logged send errors
	// (default one minute).
	ErrorLogInterval time.Duration
}

// Stats are an Exporter's counters.
type Stats struct {
	Sent    uint64 // packets written to the socket
	Dropped uint64 // packets dropped: queue full, not encodable, or sent after Close
	Errors  uint64 // socket write errors (collector unreachable, ...)
}

// Exporter sends HEPv3 packets to one collector over UDP. Send never blocks the
// caller: packets go through a bounded queue to one sender goroutine, owned by
// the Exporter and stopped by Close.
type Exporter struct {
	conn    net.Conn
	agentID uint32
	authKey string
	log     *slog.Logger
	logEach time.Duration

	queue chan []byte
	stop  chan struct{}
	done  chan struct{}
	once  sync.Once

	sent, dropped, errs atomic.Uint64
}

// NewExporter returns an Exporter sending to the collector at addr
// ("host:port", UDP) as capture agent agentID, and starts its sender goroutine.
func NewExporter(addr string, agentID uint32, opts ExporterOptions) (*Exporter, error) {
	conn, err := net.Dial("udp", addr)
	if err != nil {
		return nil, fmt.Errorf("hep: dial collector %s: %w", addr, err)
	}
	e := newExporter(conn, agentID, opts)
	go e.run()
	return e, nil
}

// newExporter builds an Exporter on conn without starting its sender.
func newExporter(conn net.Conn, agentID uint32, opts ExporterOptions) *Exporter {
	if opts.QueueSize <= 0 {
		opts.QueueSize = DefaultQueueSize
	}
	if opts.Logger == nil {
		opts.Logger = slog.Default()
	}
	if opts.ErrorLogInterval <= 0 {
		opts.ErrorLogInterval = time.Minute
	}
	return &Exporter{
		conn:    conn,
		agentID: agentID,
		authKey: opts.AuthKey,
		log:     opts.Logger,
		logEach: opts.ErrorLogInterval,
		queue:   make(chan []byte, opts.QueueSize),
		stop:    make(chan struct{}),
		done:    make(chan struct{}),
	}
}

// Send encodes p and queues it for the collector. It fills in the exporter's
// agent id and auth key, the current time when p.Time is zero, ProtoSIP when
// p.ProtoType is zero and IPProtoUDP when p.IPProto is zero, and unmaps
// IPv4-mapped addresses. The payload is copied, so the caller may reuse it.
// Send never blocks; it reports false when the packet was dropped (queue full,
// not encodable, or the exporter is closed).
func (e *Exporter) Send(p Packet) bool {
	select {
	case <-e.stop:
		e.dropped.Add(1)
		return false
	default:
	}
	p.AgentID = e.agentID
	p.AuthKey = e.authKey
	if p.Time.IsZero() {
		p.Time = time.Now()
	}
	if p.ProtoType == 0 {
		p.ProtoType = ProtoSIP
	}
	if p.IPProto == 0 {
		p.IPProto = IPProtoUDP
	}
	p.Src = unmap(p.Src)
	p.Dst = unmap(p.Dst)
	b, err := p.AppendBinary(nil)
	if err != nil {
		e.dropped.Add(1)
		return false
	}
	select {
	case e.queue <- b:
		return true
	default:
		e.dropped.Add(1)
		return false
	}
}

// Stats returns the exporter's counters.
func (e *Exporter) Stats() Stats {
	return Stats{Sent: e.sent.Load(), Dropped: e.dropped.Load(), Errors: e.errs.Load()}
}

// Close stops the sender goroutine after it has written what is already
// queued, and closes the socket. It is idempotent and safe for concurrent use.
func (e *Exporter) Close() error {
	var err error
	e.once.Do(func() {
		close(e.stop)
		<-e.done
		err = e.conn.Close()
	})
	return err
}

// run is the sender goroutine: it writes queued packets until Close, then
// flushes what is left in the queue without waiting for more.
func (e *Exporter) run() {
	defer close(e.done)
	var lastLog time.Time
	write := func(b []byte) {
		// A UDP write does not block for long; a deadline keeps a wedged
		// socket from holding Close forever.
		_ = e.conn.SetWriteDeadline(time.Now().Add(time.Second))
		if _, err := e.conn.Write(b); err != nil {
			n := e.errs.Add(1)
			if now := time.Now(); now.Sub(lastLog) >= e.logEach {
				lastLog = now
				e.log.Warn("hep: send to collector failed", "addr", e.conn.RemoteAddr().String(), "err", err, "errors", n)
			}
			return
		}
		e.sent.Add(1)
	}
	for {
		select {
		case b := <-e.queue:
			write(b)
		case <-e.stop:
			for {
				select {
				case b := <-e.queue:
					write(b)
				default:
					return
				}
			}
		}
	}
}

func unmap(ap netip.AddrPort) netip.AddrPort {
	if !ap.IsValid() {
		return ap
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
}

package sip

import (
	"context"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Log guard: whatever reaches the logs from the network is bounded. A stranger
// who sends 60 KB datagrams or floods INVITEs must not be able to fill the disk,
// and a raw SIP message (caller numbers, names) never reaches the log.
const (
	// maxLogValue bounds every string in a log record (message and attributes).
	maxLogValue = 256
	// logRate and logBurst bound warnings and errors of one message text per
	// second; what is dropped is counted on the next line that goes out.
	logRate  = 5
	logBurst = 20
	// maxLogKeys bounds the limiter's table (message texts are constants; this
	// guards against a logger that puts variable text in the message).
	maxLogKeys = 1024
)

// guardHandler truncates strings, replaces raw-message attributes by their size,
// and rate-limits warnings and errors per message text.
type guardHandler struct {
	next slog.Handler
	lim  *rateTable
}

// newLogGuard wraps h.
func newLogGuard(h slog.Handler) slog.Handler {
	return &guardHandler{next: h, lim: newRateTable(logRate, logBurst)}
}

func (g *guardHandler) Enabled(ctx context.Context, l slog.Level) bool {
	return g.next.Enabled(ctx, l)
}

func (g *guardHandler) Handle(ctx context.Context, r slog.Record) error {
	var suppressed int
	if r.Level >= slog.LevelWarn {
		ok, n := g.lim.allow(r.Message, r.Time)
		if !ok {
			return nil
		}
		suppressed = n
	}
	out := slog.NewRecord(r.Time, r.Level, truncate(r.Message), r.PC)
	r.Attrs(func(a slog.Attr) bool {
		out.AddAttrs(cleanAttr(a))
		return true
	})
	if suppressed > 0 {
		out.AddAttrs(slog.Int("suppressed", suppressed))
	}
	return g.next.Handle(ctx, out)
}

func (g *guardHandler) WithAttrs(as []slog.Attr) slog.Handler {
	clean := make([]slog.Attr, len(as))
	for i, a := range as {
		clean[i] = cleanAttr(a)
	}
	return &guardHandler{next: g.next.WithAttrs(clean), lim: g.lim}
}

func (g *guardHandler) WithGroup(name string) slog.Handler {
	return &guardHandler{next: g.next.WithGroup(name), lim: g.lim}
}

// rawKeys are attributes that carry a raw SIP message (sipgo's "failed to parse"
// logs the whole datagram as "data"): only their size is logged.
var rawKeys = map[string]bool{"data": true, "msg_raw": true, "raw": true}

func cleanAttr(a slog.Attr) slog.Attr {
	v := a.Value.Resolve()
	switch v.Kind() {
	case slog.KindString:
		if rawKeys[a.Key] {
			return slog.Int(a.Key+"_bytes", len(v.String()))
		}
		return slog.String(a.Key, truncate(v.String()))
	case slog.KindGroup:
		as := v.Group()
		clean := make([]any, len(as))
		for i, g := range as {
			clean[i] = cleanAttr(g)
		}
		return slog.Group(a.Key, clean...)
	case slog.KindAny:
		switch x := v.Any().(type) {
		case error:
			return slog.String(a.Key, truncate(x.Error()))
		case fmt.Stringer:
			return slog.String(a.Key, truncate(x.String()))
		case []byte:
			return slog.Int(a.Key+"_bytes", len(x))
		}
	}
	return slog.Attr{Key: a.Key, Value: v}
}

func truncate(s string) string {
	if len(s) <= maxLogValue {
		return s
	}
	return fmt.Sprintf("%s…(%d bytes)", s[:maxLogValue], len(s))
}

// rateTable is a token bucket per key (a log message text, a source address):
// rate tokens a second, at most burst. Safe for concurrent use; its size is
// bounded by maxLogKeys (the oldest state is dropped wholesale beyond it).
type rateTable struct {
	rate, burst float64
	mu          sync.Mutex
	buckets     map[string]*logBucket
}

func newRateTable(rate, burst float64) *rateTable {
	return &rateTable{rate: rate, burst: burst, buckets: map[string]*logBucket{}}
}

type logBucket struct {
	tokens     float64
	last       time.Time
	suppressed int
}

// allow reports whether an event for key may pass at t, and how many for key
// were refused since the last one that passed.
func (l *rateTable) allow(key string, t time.Time) (bool, int) {
	if t.IsZero() {
		t = time.Now()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	b := l.buckets[key]
	if b == nil {
		if len(l.buckets) >= maxLogKeys {
			clear(l.buckets)
		}
		b = &logBucket{tokens: l.burst, last: t}
		l.buckets[key] = b
	}
	b.tokens = min(l.burst, b.tokens+t.Sub(b.last).Seconds()*l.rate)
	b.last = t
	if b.tokens < 1 {
		b.suppressed++
		return false, 0
	}
	b.tokens--
	n := b.suppressed
	b.suppressed = 0
	return true, n
}

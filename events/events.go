// Package events is matterline's in-process bus for call events: call started,
// lookup done, intent, decision, transfer result and call ended. The SIP core
// publishes; the HTTP API streams them to voice agents as server-sent events and
// other observers (logs, tests) subscribe.
//
// Publishing never blocks: every subscription has a bounded buffer, and a
// subscriber that falls behind far enough to overflow it is dropped (its channel
// is closed and Lagged reports true) and counted, so one slow reader can never
// stall a call. A dropped subscriber that wants the stream again subscribes anew.
package events

import (
	"fmt"
	"sync"
	"time"
)

// Type is the kind of a call event. The zero value means unknown.
type Type uint8

const (
	TypeUnknown        Type = iota
	TypeCallStarted         // an INVITE was accepted
	TypeLookupDone          // the caller lookup finished (found or not)
	TypeIntent              // a transfer intent arrived (DTMF, extension, HTTP)
	TypeDecision            // routing decided what to do with the intent
	TypeTransferResult      // a transfer ended (success, declined, failed, fallback)
	TypeCallEnded           // the call is over
)

var typeNames = [...]string{"unknown", "call_started", "lookup_done", "intent", "decision", "transfer_result", "call_ended"}

// String returns the stable text name of t ("call_started", ...), "unknown" for
// values outside the enum.
func (t Type) String() string {
	if int(t) < len(typeNames) {
		return typeNames[t]
	}
	return "unknown"
}

// ParseType is the inverse of String. Unknown text gives TypeUnknown and an error.
func ParseType(s string) (Type, error) {
	for i, n := range typeNames {
		if i != 0 && n == s {
			return Type(i), nil
		}
	}
	return TypeUnknown, fmt.Errorf("events: unknown event type %q", s)
}

// MarshalText implements encoding.TextMarshaler.
func (t Type) MarshalText() ([]byte, error) { return []byte(t.String()), nil }

// UnmarshalText implements encoding.TextUnmarshaler.
func (t *Type) UnmarshalText(b []byte) error {
	v, err := ParseType(string(b))
	if err != nil {
		return err
	}
	*t = v
	return nil
}

// Event is one thing that happened on a call. Seq and Time are set by
// Bus.Publish. Data holds the event's details (for example "status" and
// "contact_id" for lookup_done, "action", "rule" and "reason" for decision); it
// must be JSON-encodable and is shared by all subscribers, so nobody may modify
// it after Publish.
type Event struct {
	Seq    uint64         `json:"seq"`
	Time   time.Time      `json:"time"`
	Type   Type           `json:"type"`
	CallID string         `json:"call_id"`
	Data   map[string]any `json:"data,omitempty"`
}

// DefaultBuffer is the subscription buffer used when Subscribe is given a
// buffer of zero or less.
const DefaultBuffer = 64

// Option configures a Bus.
type Option func(*Bus)

// WithClock sets the clock used to stamp events whose Time is zero (default
// time.Now).
func WithClock(now func() time.Time) Option { return func(b *Bus) { b.now = now } }

// WithDropHook sets a function called each time a lagging subscriber is
// dropped, for example to count it in metrics. It runs synchronously inside
// Publish (after the bus lock is released), so it must be quick and must not
// block.
func WithDropHook(f func()) Option { return func(b *Bus) { b.onDrop = f } }

// Bus fans events out to subscribers. The zero value is not usable; call NewBus.
// All methods are safe for concurrent use.
type Bus struct {
	now    func() time.Time
	onDrop func()

	mu      sync.Mutex
	seq     uint64
	subs    map[*Subscription]struct{}
	dropped uint64
	closed  bool
}

// NewBus returns an empty bus.
func NewBus(opts ...Option) *Bus {
	b := &Bus{now: time.Now, subs: make(map[*Subscription]struct{})}
	for _, o := range opts {
		o(b)
	}
	return b
}

// Publish stamps e with the next sequence number (and the current time when
// e.Time is zero) and offers it to every subscriber without blocking. A
// subscriber whose buffer is full is dropped. Publish returns the stamped event;
// after Close it returns e unchanged and delivers nothing.
func (b *Bus) Publish(e Event) Event {
	drops := 0
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return e
	}
	b.seq++
	e.Seq = b.seq
	if e.Time.IsZero() {
		e.Time = b.now()
	}
	for s := range b.subs {
		select {
		case s.c <- e:
		default:
			// The subscriber is too slow: drop it rather than block the call.
			s.lagged = true
			b.removeLocked(s)
			b.dropped++
			drops++
		}
	}
	b.mu.Unlock()
	if b.onDrop != nil {
		for range drops {
			b.onDrop()
		}
	}
	return e
}

// Subscribe returns a subscription receiving every event published from now on,
// buffered up to buffer events (DefaultBuffer when buffer <= 0). The caller
// must Close it. Subscribing to a closed bus returns a subscription whose
// channel is already closed.
func (b *Bus) Subscribe(buffer int) *Subscription {
	if buffer <= 0 {
		buffer = DefaultBuffer
	}
	s := &Subscription{bus: b, c: make(chan Event, buffer)}
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		close(s.c)
		return s
	}
	b.subs[s] = struct{}{}
	return s
}

// Dropped returns how many subscriptions were dropped for lagging so far.
func (b *Bus) Dropped() uint64 {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.dropped
}

// Subscribers returns the number of live subscriptions.
func (b *Bus) Subscribers() int {
	b.mu.Lock()
	defer b.mu.Unlock()
	return len(b.subs)
}

// Close closes every subscription's channel and makes later Publish calls
// no-ops. It is idempotent.
func (b *Bus) Close() {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return
	}
	b.closed = true
	for s := range b.subs {
		b.removeLocked(s)
	}
}

// removeLocked unregisters s and closes its channel. The channel is closed only
// here, under b.mu, and only while s is registered, so it is closed exactly once
// and never sent on afterwards.
func (b *Bus) removeLocked(s *Subscription) {
	if _, ok := b.subs[s]; !ok {
		return
	}
	delete(b.subs, s)
	close(s.c)
}

// Subscription is one subscriber's view of a Bus.
type Subscription struct {
	bus    *Bus
	c      chan Event
	lagged bool // guarded by bus.mu
}

// C returns the channel events arrive on, in publish order. It is closed when
// the subscription is closed, dropped for lagging, or the bus is closed.
func (s *Subscription) C() <-chan Event { return s.c }

// Lagged reports whether the bus dropped this subscription because its buffer
// overflowed (events were lost). Meaningful once C is closed.
func (s *Subscription) Lagged() bool {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	return s.lagged
}

// Close unsubscribes and closes C. It is idempotent and safe to call
// concurrently with Publish. Events still buffered remain readable.
func (s *Subscription) Close() {
	s.bus.mu.Lock()
	defer s.bus.mu.Unlock()
	s.bus.removeLocked(s)
}

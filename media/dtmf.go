package media

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadDTMF is wrapped by DTMF parsing errors.
var ErrBadDTMF = errors.New("media: malformed dtmf")

// Digit is one DTMF key press: '0'-'9', '*', '#', 'A'-'D'.
type Digit struct {
	Key      rune
	Duration time.Duration
	Source   string // "rfc4733" or "info"
}

// Digit sources.
const (
	DTMFSourceRFC4733 = "rfc4733"
	DTMFSourceINFO    = "info"
)

// dtmfKeys maps RFC 4733 §3.2 event codes 0-15 to keys.
const dtmfKeys = "0123456789*#ABCD"

// keyForEvent returns the key of a DTMF event code, false for other events
// (flash, modem and fax tones are ignored).
func keyForEvent(ev uint8) (rune, bool) {
	if int(ev) >= len(dtmfKeys) {
		return 0, false
	}
	return rune(dtmfKeys[ev]), true
}

// TelephoneEvent is one RFC 4733 §2.3 named-event payload.
//
//	 0                   1                   2                   3
//	 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1 2 3 4 5 6 7 8 9 0 1
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
//	|     event     |E|R| volume    |          duration             |
//	+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+-+
type TelephoneEvent struct {
	Event    uint8
	End      bool   // E bit: last packets of the event
	Volume   uint8  // 0-63, in -dBm0
	Duration uint16 // in timestamp units (1/8000 s for telephone-event/8000)
}

// ParseTelephoneEvent reads the first event of an RFC 4733 payload (further events
// of a multi-event payload, §2.5.1.5, are ignored).
func ParseTelephoneEvent(payload []byte) (TelephoneEvent, error) {
	if len(payload) < 4 {
		return TelephoneEvent{}, fmt.Errorf("%w: telephone-event payload of %d bytes", ErrBadDTMF, len(payload))
	}
	return TelephoneEvent{
		Event:    payload[0],
		End:      payload[1]&0x80 != 0,
		Volume:   payload[1] & 0x3F,
		Duration: binary.BigEndian.Uint16(payload[2:4]),
	}, nil
}

// MarshalTo writes the 4-byte payload into b (len(b) >= 4) and returns 4.
func (e TelephoneEvent) MarshalTo(b []byte) int {
	_ = b[3]
	b[0] = e.Event
	b[1] = e.Volume & 0x3F
	if e.End {
		b[1] |= 0x80
	}
	binary.BigEndian.PutUint16(b[2:4], e.Duration)
	return 4
}

// dtmfReceiver turns RFC 4733 packets into key presses, each once.
//
// All packets of one event carry the RTP timestamp of the event's start (RFC 4733
// §2.5.1.2), and the final packet (E bit) is sent three times (§2.5.1.4). A press is
// delivered at its first end packet with the final duration. When the end packets are
// lost, the press is delivered when a packet of a different event arrives, or by
// flush after dtmfEndWait without packets. When the start packets are lost, the first
// end packet is enough. A new press of the same key has a new timestamp and counts
// again.
//
// The retransmitted end packets of one event may arrive after the next event began
// (a quick dialler, or reordering in the network). The last dtmfRecentEvents
// delivered events are remembered by (timestamp, event), so a late packet of any of
// them is ignored instead of producing a second digit or cutting the current press
// short. Used only by the session's read loop: no locking, no allocation.
type dtmfReceiver struct {
	active    bool // a press is being tracked
	delivered bool // ... and already delivered
	ts        uint32
	event     uint8
	duration  uint16
	lastSeen  time.Time

	recent [dtmfRecentEvents]dtmfEventID // delivered events, a ring
	next   int                           // where the next delivered event goes
}

// dtmfEventID names one event: its RTP timestamp and event code (RFC 4733 §2.5.1.2).
type dtmfEventID struct {
	ts    uint32
	event uint8
	valid bool
}

// dtmfRecentEvents is how many delivered events the receiver remembers. Three end
// packets at the 50 ms update interval span 100 ms, well under one short press.
const dtmfRecentEvents = 8

// dtmfEndWait is how long an event without end packet is kept before it is
// delivered anyway (the longest gap between RFC 4733 updates is ~50 ms).
const dtmfEndWait = 300 * time.Millisecond

// handle processes one telephone-event packet with RTP timestamp ts and returns the
// digits to deliver (at most two: a pending press flushed, then this one).
func (r *dtmfReceiver) handle(ts uint32, ev TelephoneEvent, now time.Time, out []Digit) []Digit {
	if _, ok := keyForEvent(ev.Event); !ok {
		return out
	}
	if r.active && r.ts == ts && r.event == ev.Event {
		r.lastSeen = now
		if ev.Duration > r.duration {
			r.duration = ev.Duration
		}
		if ev.End && !r.delivered {
			out = r.deliver(out)
		}
		return out
	}
	if r.seen(ts, ev.Event) {
		return out // a late packet (typically an end retransmission) of a delivered event
	}
	// A new event: flush the previous one if its end never came.
	out = r.flush(out)
	r.active, r.delivered = true, false
	r.ts, r.event, r.duration, r.lastSeen = ts, ev.Event, ev.Duration, now
	if ev.End {
		out = r.deliver(out)
	}
	return out
}

// seen reports whether the event (ts, event) was already delivered.
func (r *dtmfReceiver) seen(ts uint32, event uint8) bool {
	for _, e := range r.recent {
		if e.valid && e.ts == ts && e.event == event {
			return true
		}
	}
	return false
}

// deliver appends the tracked press and remembers it as delivered.
func (r *dtmfReceiver) deliver(out []Digit) []Digit {
	r.delivered = true
	r.recent[r.next] = dtmfEventID{ts: r.ts, event: r.event, valid: true}
	r.next = (r.next + 1) % len(r.recent)
	return append(out, r.digit())
}

// flush delivers a press whose end packets were lost.
func (r *dtmfReceiver) flush(out []Digit) []Digit {
	if r.active && !r.delivered {
		out = r.deliver(out)
	}
	return out
}

// expire flushes a pending press not updated for dtmfEndWait.
func (r *dtmfReceiver) expire(now time.Time, out []Digit) []Digit {
	if r.active && !r.delivered && now.Sub(r.lastSeen) >= dtmfEndWait {
		return r.flush(out)
	}
	return out
}

func (r *dtmfReceiver) digit() Digit {
	key, _ := keyForEvent(r.event)
	return Digit{
		Key:      key,
		Duration: time.Duration(r.duration) * time.Second / sampleRate,
		Source:   DTMFSourceRFC4733,
	}
}

// ParseDTMFRelay reads a SIP INFO application/dtmf-relay body ("Signal=5\r\nDuration=160").
// Keys are case-insensitive, CRLF or LF line ends and spaces around '=' are accepted;
// Signal is 0-9, *, #, A-D (either case), or 10-15 for * # A-D. Duration is in
// milliseconds and optional. Errors wrap ErrBadDTMF.
func ParseDTMFRelay(body []byte) (Digit, error) {
	if len(body) > 1024 {
		return Digit{}, fmt.Errorf("%w: dtmf-relay body of %d bytes", ErrBadDTMF, len(body))
	}
	d := Digit{Source: DTMFSourceINFO}
	var haveSignal bool
	for _, line := range bytes.Split(body, []byte("\n")) {
		line = bytes.TrimSpace(line)
		if len(line) == 0 {
			continue
		}
		k, v, ok := bytes.Cut(line, []byte("="))
		if !ok {
			return Digit{}, fmt.Errorf("%w: dtmf-relay line %q has no '='", ErrBadDTMF, line)
		}
		key := strings.ToLower(string(bytes.TrimSpace(k)))
		val := string(bytes.TrimSpace(v))
		switch key {
		case "signal":
			r, err := parseSignal(val)
			if err != nil {
				return Digit{}, err
			}
			d.Key, haveSignal = r, true
		case "duration":
			ms, err := strconv.ParseUint(val, 10, 16)
			if err != nil {
				return Digit{}, fmt.Errorf("%w: dtmf-relay duration %q", ErrBadDTMF, val)
			}
			d.Duration = time.Duration(ms) * time.Millisecond
		default:
			// Unknown keys are ignored (forward compatibility).
		}
	}
	if !haveSignal {
		return Digit{}, fmt.Errorf("%w: dtmf-relay body without signal", ErrBadDTMF)
	}
	return d, nil
}

func parseSignal(v string) (rune, error) {
	if len(v) == 1 {
		c := v[0]
		switch {
		case c >= '0' && c <= '9', c == '*', c == '#':
			return rune(c), nil
		case c >= 'A' && c <= 'D':
			return rune(c), nil
		case c >= 'a' && c <= 'd':
			return rune(c - 'a' + 'A'), nil
		}
	}
	if n, err := strconv.ParseUint(v, 10, 8); err == nil {
		if key, ok := keyForEvent(uint8(n)); ok {
			return key, nil
		}
	}
	return 0, fmt.Errorf("%w: dtmf-relay signal %q", ErrBadDTMF, v)
}

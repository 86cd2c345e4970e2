package media

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// ErrNoTelephoneEvent is returned by SendDTMF when the peer did not negotiate
// telephone-event (RFC 4733 §7.1.1): send the digit by SIP INFO instead.
var ErrNoTelephoneEvent = errors.New("media: telephone-event not negotiated")

// DTMF sending parameters (RFC 4733 §2.5.1).
const (
	// dtmfUpdateInterval is how often the sender repeats an event with its growing
	// duration (§2.5.1.2) and the interval between the three end packets (§2.5.1.4).
	dtmfUpdateInterval = 50 * time.Millisecond
	// dtmfEndRepeats is how many times the final packet is sent (§2.5.1.4).
	dtmfEndRepeats = 3
	// dtmfVolume is the power level of the tone the event stands for, in -dBm0
	// (§2.3.4): 10 is a typical keypad level.
	dtmfVolume = 10
	// Bounds for the key-press duration: the 16-bit duration field counts 8 kHz
	// units, so an event cannot describe more than ~8.19 s (§2.5.2.2 would split it).
	minDTMFDuration     = 40 * time.Millisecond
	maxDTMFDuration     = 5 * time.Second
	defaultDTMFDuration = 100 * time.Millisecond
)

// dtmfJob is one key press to send, handed from SendDTMF to whoever holds the
// session's writer (SendDTMF itself, or a running Play through Session.inject).
type dtmfJob struct {
	event  uint8
	dur    time.Duration
	cancel <-chan struct{} // the requester's ctx.Done(): end the event early
	done   chan error      // buffered, 1
}

// eventForKey maps a key to its RFC 4733 §3.2 event code; 'a'-'d' are accepted.
func eventForKey(key rune) (uint8, bool) {
	if key >= 'a' && key <= 'd' {
		key -= 'a' - 'A'
	}
	for i, k := range dtmfKeys {
		if k == key {
			return uint8(i), true
		}
	}
	return 0, false
}

// SendDTMF sends one key press as RFC 4733 telephone-events on the negotiated
// payload type and returns when the last end packet has left (or ctx ends, which
// cuts the event short but still sends its end packets, or the session closes).
//
// The event follows §2.5.1: a first packet with the marker bit and duration 0, an
// update every 50 ms with the duration so far, then the final packet with the E bit
// and the full duration sent three times, 50 ms apart; all of them carry the
// timestamp of the event start (§2.5.1.2), each its own sequence number. The event
// takes its place in the session's one outgoing stream: a running Play pauses for it
// (the event's timestamp is where the audio was, and the audio resumes after it with
// the timestamp advanced by the time the event took); without a Play, the event's
// timestamp continues the last prompt's timeline (RFC 3550 §5.1).
//
// key is '0'-'9', '*', '#' or 'A'-'D' (any case); dur 0 means 100 ms and is clamped
// to [40 ms, 5 s]. Returns ErrNoTelephoneEvent when the session has no
// telephone-event payload type, ErrBridged on a bridged session.
func (s *Session) SendDTMF(ctx context.Context, key rune, dur time.Duration) error {
	ev, ok := eventForKey(key)
	if !ok {
		return fmt.Errorf("media: send dtmf: %w: key %q", ErrBadDTMF, key)
	}
	if !s.format().hasDTMF {
		return ErrNoTelephoneEvent
	}
	if s.bridged() {
		return ErrBridged
	}
	if dur == 0 {
		dur = defaultDTMFDuration
	}
	dur = min(max(dur, minDTMFDuration), maxDTMFDuration)
	job := &dtmfJob{event: ev, dur: dur, cancel: ctx.Done(), done: make(chan error, 1)}
	select {
	case s.play <- struct{}{}:
		// Nobody is playing: send the event ourselves.
		err := s.runDTMFJob(job)
		<-s.play
		return dtmfResult(ctx, err)
	case s.inject <- job:
		// A Play holds the writer and runs the job between two frames.
		select {
		case err := <-job.done:
			return dtmfResult(ctx, err)
		case <-s.done:
			return ErrSessionClosed
		}
	case <-ctx.Done():
		return ctx.Err()
	case <-s.done:
		return ErrSessionClosed
	}
}

// dtmfResult reports an event cut short by ctx as ctx's error.
func dtmfResult(ctx context.Context, err error) error {
	if err == nil && ctx.Err() != nil {
		return ctx.Err()
	}
	return err
}

// runDTMFJob sends the event with the writer held and reports to job.done.
func (s *Session) runDTMFJob(job *dtmfJob) error {
	err := s.sendEvent(job)
	job.done <- err
	return err
}

// sendEvent writes the packets of one event (see SendDTMF). The caller holds the
// writer. The writer's timeline ends up after the event: the next audio frame
// continues at the event's start timestamp plus the time the event took.
func (s *Session) sendEvent(job *dtmfJob) error {
	w := &s.w
	start := time.Now()
	ts := w.tsAt(start)
	total := uint16(job.dur * sampleRate / time.Second)
	var buf [rtpHeaderSize + 4]byte
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()

	var (
		last   time.Time
		cut    bool // the requester gave up: end the event now
		closed bool
	)
	send := func(marker bool, ev TelephoneEvent) {
		putRTPHeader(buf[:], marker, s.format().dtmfPT, w.pkt.SequenceNumber, ts, w.pkt.SSRC)
		ev.MarshalTo(buf[rtpHeaderSize:])
		sent, err := s.transmit(buf[:])
		if errors.Is(err, ErrSessionClosed) {
			closed = true
			return
		}
		if sent {
			w.pkt.SequenceNumber++
		}
		last = time.Now()
	}
	// wait sleeps until d after start; false when the session closed.
	wait := func(d time.Duration) bool {
		if cut {
			return !closed
		}
		if left := time.Until(start.Add(d)); left > 0 {
			timer.Reset(left)
			select {
			case <-timer.C:
			case <-job.cancel:
				cut = true
				timer.Stop()
			case <-s.done:
				closed = true
				timer.Stop()
			}
		}
		return !closed
	}

	ev := TelephoneEvent{Event: job.event, Volume: dtmfVolume}
	send(true, ev) // §2.5.1.2: the first packet has the marker bit
	for k := 1; !closed; k++ {
		at := time.Duration(k) * dtmfUpdateInterval
		if at >= job.dur {
			break
		}
		if !wait(at) || cut {
			break
		}
		ev.Duration = uint16(at * sampleRate / time.Second)
		send(false, ev)
	}
	if !closed {
		ev.End = true
		ev.Duration = total
		if cut {
			ev.Duration = min(total, uint16(time.Since(start)*sampleRate/time.Second))
		}
		// §2.5.1.4: the final packet three times; back to back when cut short.
		endAt := job.dur
		for range dtmfEndRepeats {
			if !wait(endAt) {
				break
			}
			send(false, ev)
			endAt += dtmfUpdateInterval
		}
	}
	if last.IsZero() {
		last = time.Now()
	}
	// The stream's timeline continues after the event (RFC 3550 §5.1).
	w.nextTS = ts + uint32(last.Sub(start)/(time.Second/sampleRate)) + frameSamples
	w.lastSlot = last
	w.started = true
	if closed {
		return ErrSessionClosed
	}
	return nil
}

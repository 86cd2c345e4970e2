package media

import (
	"context"
	"errors"
	"fmt"
	"math"
	"net/netip"
	"sync/atomic"
	"time"

	"github.com/pion/rtp"
)

// SampleSink receives recorded audio: 8 kHz mono 16-bit linear samples, in order.
// The slice is reused after WriteSamples returns. A WAV file writer (package records)
// implements it; an error ends the recording.
type SampleSink interface {
	WriteSamples(samples []int16) error
}

// StopReason says why a recording ended. The zero value is unknown.
type StopReason uint8

// Stop reasons.
const (
	StopUnknown   StopReason = iota
	StopMaxLength            // the maximum length was reached
	StopSilence              // the caller stopped talking (or never started)
	StopHangup               // the session closed or its media stopped (inactivity timeout)
	StopCancelled            // ctx ended
	StopKey                  // the end key (e.g. '#') was pressed
	StopError                // the sink failed
)

// String returns the reason as used in logs and records: "max_length", "silence",
// "hangup", "cancelled", "key", "error"; "unknown" for the zero value.
func (r StopReason) String() string {
	switch r {
	case StopMaxLength:
		return "max_length"
	case StopSilence:
		return "silence"
	case StopHangup:
		return "hangup"
	case StopCancelled:
		return "cancelled"
	case StopKey:
		return "key"
	case StopError:
		return "error"
	}
	return "unknown"
}

// RecordOptions tunes Record. The zero value means the defaults.
type RecordOptions struct {
	// MaxLength caps the recording; 0 means 2 minutes.
	MaxLength time.Duration
	// Silence is how long the caller must stay quiet to end the recording; 0 means
	// 5 s, negative disables ending on silence. The quiet tail that ended the
	// recording is not written.
	Silence time.Duration
	// MinLength: before any speech was heard, silence ends the recording only once
	// it is at least this long (a caller who needs a moment to start); 0 means 10 s.
	MinLength time.Duration
	// SilenceLevel is the energy threshold, as the RMS of a 20 ms frame in dBFS:
	// quieter frames are silence. 0 means -40 dBFS (line noise is around -60,
	// speech -30 to -15).
	SilenceLevel float64
	// EndKey ends the recording when pressed ('#' typically); 0 means none. While
	// Record runs with an EndKey it reads the session's DTMF channel (RFC 4733 and
	// SIP INFO digits) and discards other keys.
	EndKey rune
	// MaxGap: a timestamp gap up to this long (lost packets, a phone that stops
	// sending in silence) is filled with silence so the recording keeps real time;
	// larger jumps are treated as a new stream start. 0 means 1 s, negative
	// disables filling.
	MaxGap time.Duration
}

// Recording is the outcome of Record.
type Recording struct {
	// Duration of the audio written to the sink.
	Duration time.Duration
	Reason   StopReason
	// Speech reports whether any frame louder than the silence level (for at least
	// 60 ms in all) was heard: a recording without speech is usually not worth
	// keeping.
	Speech bool
	// Dropped counts packets lost in the recorder (queue full, duplicates, late).
	Dropped int
}

// Record defaults.
const (
	defaultRecordMax     = 2 * time.Minute
	defaultRecordSilence = 5 * time.Second
	defaultRecordMin     = 10 * time.Second
	defaultSilenceLevel  = -40.0
	defaultRecordGap     = time.Second
	// speechFrames of 20 ms above the threshold count as speech (not a click).
	speechFrames = 3
	// recQueue packets can wait between the read goroutine and the recorder.
	recQueue = 64
	// maxPendingSilence bounds the held-back quiet tail (the rest is written).
	maxPendingSilence = 10 * time.Second
)

// recPacket is one received audio payload handed to the recorder.
type recPacket struct {
	ts, ssrc uint32
	n        int
	payload  [maxPacketSize]byte
}

// Record writes the audio the session receives (decoded from G.711 to 16-bit
// linear) to sink until one of: MaxLength, Silence after speech (or after MinLength
// without speech), EndKey, ctx ending, the session closing or its inactivity
// timeout. It returns what was recorded and why it stopped; the error is non-nil
// only when the sink failed (Reason StopError) or Record could not start.
//
// Silence is measured on 20 ms frames by energy (RMS against SilenceLevel), in
// stream time (a phone that stops sending counts as silence through gap filling and
// a wall-clock check). Record installs the session's packet hook for its duration
// (the read goroutine only copies each payload into a preallocated slot; decoding
// and sink writes run on the caller's goroutine) and restores the previous handler
// when done. Prompts may play on the session meanwhile (a beep before recording).
// ErrBridged on a bridged session, ErrBusy when another Record runs.
func (s *Session) Record(ctx context.Context, sink SampleSink, opts RecordOptions) (Recording, error) {
	if sink == nil {
		return Recording{}, errors.New("media: record: nil sink")
	}
	if !s.tap.CompareAndSwap(tapNone, tapRecord) {
		if s.bridged() {
			return Recording{}, ErrBridged
		}
		return Recording{}, fmt.Errorf("media: record: %w", ErrBusy)
	}
	defer s.tap.Store(tapNone)
	select {
	case <-s.done:
		return Recording{Reason: StopHangup}, nil
	default:
	}
	rec := newRecorder(s.Codec(), opts)

	free := make(chan *recPacket, recQueue)
	full := make(chan *recPacket, recQueue)
	for range recQueue {
		free <- new(recPacket)
	}
	var lost atomic.Int64
	audioPT := s.Codec().PayloadType
	h := PacketHandler(func(pkt *rtp.Packet, _ netip.AddrPort) {
		if pkt.PayloadType != audioPT || len(pkt.Payload) == 0 {
			return
		}
		select {
		case p := <-free:
			p.ts, p.ssrc = pkt.Timestamp, pkt.SSRC
			p.n = copy(p.payload[:], pkt.Payload)
			full <- p // never blocks: full has room for every slot
		default:
			lost.Add(1)
		}
	})
	prev := s.handler.Swap(&h)
	defer s.handler.CompareAndSwap(&h, prev)

	var keys <-chan Digit
	if opts.EndKey != 0 {
		keys = s.dtmf
	}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	started := time.Now()
	lastPkt := started
	wallMax := rec.maxLen + time.Second // when packets stop coming altogether

	reason := StopUnknown
	var err error
	for reason == StopUnknown {
		select {
		case p := <-full:
			lastPkt = time.Now()
			reason, err = rec.packet(sink, p.ts, p.ssrc, p.payload[:p.n])
			free <- p
		case d := <-keys:
			if normalizeKey(d.Key) == normalizeKey(opts.EndKey) {
				reason = StopKey
			}
		case now := <-tick.C:
			switch {
			case now.Sub(started) >= wallMax:
				reason = StopMaxLength
			case rec.silenceOn && now.Sub(lastPkt) >= rec.silenceDur && rec.mayEndOnSilence(now.Sub(started)):
				reason = StopSilence // the phone stopped sending: nothing to fill with
			}
		case <-ctx.Done():
			reason = StopCancelled
		case <-s.done:
			reason = StopHangup
		case <-s.timedOut:
			reason = StopHangup
		}
	}
	if reason != StopSilence && reason != StopError {
		// The tail is part of the message (cut short by a hang-up or the limit).
		if ferr := rec.flush(sink); ferr != nil {
			reason, err = StopError, ferr
		}
	}
	out := Recording{
		Duration: time.Duration(rec.written) * time.Second / sampleRate,
		Reason:   reason,
		Speech:   rec.speech,
		Dropped:  rec.dropped + int(lost.Load()),
	}
	if err != nil {
		err = fmt.Errorf("media: record: write samples: %w", err)
	}
	return out, err
}

// normalizeKey folds 'a'-'d' to upper case.
func normalizeKey(k rune) rune {
	if k >= 'a' && k <= 'd' {
		return k - 'a' + 'A'
	}
	return k
}

// recorder is the decoding and silence logic of Record, without sockets (unit
// tested directly). Not safe for concurrent use.
type recorder struct {
	codec      Codec
	maxLen     time.Duration
	maxSamples int
	silenceOn  bool
	silenceDur time.Duration
	silence    int   // samples of trailing silence that end the recording
	minSamples int   // MinLength in samples
	threshold  int64 // sum of squares of a 20 ms frame at the threshold
	maxGap     int   // samples; 0 disables filling

	started bool
	ssrc    uint32
	nextTS  uint32

	frame   [frameSamples]int16 // the 20 ms frame being filled
	fill    int
	decoded [maxPacketSize]int16
	pending []int16 // quiet frames held back: written if speech resumes
	total   int     // samples consumed (written + pending + frame)
	written int     // samples written to the sink
	quiet   int     // current run of quiet samples
	loud    int     // loud frames so far
	speech  bool
	dropped int
}

func newRecorder(c Codec, opts RecordOptions) *recorder {
	r := &recorder{codec: c}
	r.maxLen = opts.MaxLength
	if r.maxLen <= 0 {
		r.maxLen = defaultRecordMax
	}
	r.maxSamples = int(r.maxLen * sampleRate / time.Second)
	r.silenceDur = opts.Silence
	if r.silenceDur == 0 {
		r.silenceDur = defaultRecordSilence
	}
	r.silenceOn = r.silenceDur > 0
	r.silence = int(r.silenceDur * sampleRate / time.Second)
	minLen := opts.MinLength
	if minLen <= 0 {
		minLen = defaultRecordMin
	}
	r.minSamples = int(minLen * sampleRate / time.Second)
	level := opts.SilenceLevel
	if level == 0 {
		level = defaultSilenceLevel
	}
	rms := 32767 * math.Pow(10, level/20)
	r.threshold = int64(rms * rms * frameSamples)
	switch gap := opts.MaxGap; {
	case gap == 0:
		r.maxGap = int(defaultRecordGap * sampleRate / time.Second)
	case gap > 0:
		r.maxGap = int(gap * sampleRate / time.Second)
	}
	if r.silenceOn {
		r.pending = make([]int16, 0, min(r.silence, int(maxPendingSilence*sampleRate/time.Second)))
	}
	return r
}

// mayEndOnSilence: silence ends a recording after speech, or after MinLength.
func (r *recorder) mayEndOnSilence(elapsed time.Duration) bool {
	return r.speech || r.total >= r.minSamples || elapsed >= time.Duration(r.minSamples)*time.Second/sampleRate
}

// packet consumes one RTP payload with timestamp ts from source ssrc.
func (r *recorder) packet(sink SampleSink, ts, ssrc uint32, payload []byte) (StopReason, error) {
	switch {
	case !r.started || ssrc != r.ssrc:
		r.started, r.ssrc, r.nextTS = true, ssrc, ts
	default:
		d := int32(ts - r.nextTS)
		switch {
		case d < 0 && int(-d) <= max(r.maxGap, frameSamples*50):
			r.dropped++ // duplicate or late: its place has passed
			return StopUnknown, nil
		case d > 0 && int(d) <= r.maxGap:
			// Lost packets (or a phone silent without comfort noise): keep time.
			for d > 0 {
				k := min(int(d), len(r.decoded))
				clear(r.decoded[:k])
				if reason, err := r.samples(sink, r.decoded[:k]); reason != StopUnknown {
					return reason, err
				}
				d -= int32(k)
			}
		}
		// Other jumps: a restarted clock; continue from here.
	}
	n := Decode(r.codec, r.decoded[:], payload)
	r.nextTS = ts + uint32(n)
	return r.samples(sink, r.decoded[:n])
}

// samples runs decoded audio through the 20 ms frame analysis.
func (r *recorder) samples(sink SampleSink, in []int16) (StopReason, error) {
	for len(in) > 0 {
		k := copy(r.frame[r.fill:], in[:min(len(in), r.maxSamples-r.total)])
		r.fill += k
		in = in[k:]
		r.total += k
		if r.fill == frameSamples {
			r.fill = 0
			if reason, err := r.frameDone(sink); reason != StopUnknown {
				return reason, err
			}
		}
		if r.total >= r.maxSamples {
			return StopMaxLength, nil // Record flushes the rest
		}
	}
	return StopUnknown, nil
}

// frameDone classifies the complete frame in r.frame and writes or holds it back.
func (r *recorder) frameDone(sink SampleSink) (StopReason, error) {
	var energy int64
	for _, v := range r.frame {
		energy += int64(v) * int64(v)
	}
	if energy >= r.threshold {
		r.loud++
		if r.loud >= speechFrames {
			r.speech = true
		}
		r.quiet = 0
		if err := r.writePending(sink); err != nil {
			return StopError, err
		}
		if err := r.write(sink, r.frame[:]); err != nil {
			return StopError, err
		}
		return StopUnknown, nil
	}
	r.quiet += frameSamples
	if !r.silenceOn {
		if err := r.write(sink, r.frame[:]); err != nil {
			return StopError, err
		}
		return StopUnknown, nil
	}
	if len(r.pending)+frameSamples > cap(r.pending) {
		if err := r.writePending(sink); err != nil {
			return StopError, err
		}
	}
	r.pending = append(r.pending, r.frame[:]...)
	if r.quiet >= r.silence && (r.speech || r.total >= r.minSamples) {
		r.pending = r.pending[:0] // the quiet tail is not part of the message
		return StopSilence, nil
	}
	return StopUnknown, nil
}

func (r *recorder) writePending(sink SampleSink) error {
	if len(r.pending) == 0 {
		return nil
	}
	err := r.write(sink, r.pending)
	r.pending = r.pending[:0]
	return err
}

func (r *recorder) write(sink SampleSink, s []int16) error {
	if len(s) == 0 {
		return nil
	}
	if err := sink.WriteSamples(s); err != nil {
		return err
	}
	r.written += len(s)
	return nil
}

// flush writes what is held back: the quiet frames and the partial frame.
func (r *recorder) flush(sink SampleSink) error {
	if err := r.writePending(sink); err != nil {
		return err
	}
	err := r.write(sink, r.frame[:r.fill])
	r.fill = 0
	return err
}

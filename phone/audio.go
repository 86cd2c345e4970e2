package phone

import (
	"context"
	"errors"
	"fmt"
	"math"
	"sync"
	"time"
)

// blockSamples is the analysis block: 50 ms at 8 kHz. Frequencies that are
// multiples of 20 Hz fit a whole number of cycles in a block, so two such tones
// (ringback's 440 and 480 Hz) do not leak into each other's Goertzel bin.
const (
	blockSamples  = 400
	blockDuration = 50 * time.Millisecond
	sampleRate    = 8000
)

// Defaults of Sound.
const (
	DefaultSoundFor    = 200 * time.Millisecond
	DefaultSpeechLevel = -40.0 // dBFS
	// DefaultTonePurity is the share of a block's energy that must be at the
	// sound's tones for the block to count as that tone.
	DefaultTonePurity = 0.6
)

// ErrNotHeard is returned (wrapped) by Listen when the wait ends without the sound.
var ErrNotHeard = errors.New("phone: sound not heard")

// Sound is what Call.Listen waits for.
type Sound struct {
	// Tones are frequencies in Hz that must all be present: one for a test tone,
	// two for ringback (440, 480). Empty means any sound above MinLevel (speech,
	// prompts).
	Tones []float64
	// For is how much matching audio must arrive (in 50 ms blocks, not
	// necessarily contiguous). Default 200 ms.
	For time.Duration
	// MinLevel is the level a block needs, in dBFS. Default -40.
	MinLevel float64
	// Purity is the share of the block's energy the Tones must carry together
	// (0..1). Default 0.6. Unused without Tones.
	Purity float64
	// NewTalkspurt counts only audio of a talkspurt (RTP packets from one with the
	// marker bit, RFC 3550 §5.1) that starts after Since: the next prompt, not the
	// rest of the current one.
	NewTalkspurt bool
	// Since is when the talkspurt may start at the earliest (take it before the
	// action that makes the far end play, e.g. a key press). Zero means when
	// Listen is called.
	Since time.Time
}

func (s Sound) withDefaults() Sound {
	if s.For <= 0 {
		s.For = DefaultSoundFor
	}
	if s.MinLevel == 0 {
		s.MinLevel = DefaultSpeechLevel
	}
	if s.Purity <= 0 {
		s.Purity = DefaultTonePurity
	}
	return s
}

// String names the sound for messages: "speech", "tone 820 Hz", "tones 440+480 Hz".
func (s Sound) String() string {
	switch len(s.Tones) {
	case 0:
		return "speech"
	case 1:
		return fmt.Sprintf("tone %g Hz", s.Tones[0])
	}
	out := "tones "
	for i, f := range s.Tones {
		if i > 0 {
			out += "+"
		}
		out += fmt.Sprintf("%g", f)
	}
	return out + " Hz"
}

// Heard describes the audio that satisfied a Listen.
type Heard struct {
	First, Last time.Time // arrival of the first and last matching block
	Blocks      int       // matching 50 ms blocks
	Level       float64   // mean level of the matching blocks, dBFS
	// Purity is the mean share of the matching blocks' energy at the sound's
	// tones (0 for speech).
	Purity float64
}

// Duration is the matching audio heard (Blocks × 50 ms).
func (h Heard) Duration() time.Duration { return time.Duration(h.Blocks) * blockDuration }

// analyzer measures received audio in 50 ms blocks and wakes the Listen calls
// whose sound was heard. It is fed from the media session's read goroutine.
type analyzer struct {
	mu       sync.Mutex
	buf      [blockSamples]int16
	n        int
	waiters  map[*waiter]struct{}
	lastLoud time.Time // last block above DefaultSpeechLevel
	// lastMarker is the arrival of the last packet with the marker bit.
	lastMarker time.Time
	blocks     uint64
	loud       uint64
}

type waiter struct {
	sound  Sound
	armed  bool
	heard  Heard
	sumLvl float64
	sumPur float64
	done   chan struct{}
}

func newAnalyzer() *analyzer { return &analyzer{waiters: map[*waiter]struct{}{}} }

// feed takes decoded samples; marker is the RTP marker bit of their packet.
func (a *analyzer) feed(samples []int16, marker bool, now time.Time) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if marker {
		a.lastMarker = now
		for w := range a.waiters {
			w.armed = true
		}
	}
	for len(samples) > 0 {
		k := copy(a.buf[a.n:], samples)
		a.n += k
		samples = samples[k:]
		if a.n == blockSamples {
			a.block(now)
			a.n = 0
		}
	}
}

// block analyses a full buffer; a.mu is held.
func (a *analyzer) block(now time.Time) {
	x := a.buf[:]
	var energy float64
	for _, v := range x {
		f := float64(v)
		energy += f * f
	}
	level := dBFS(energy, len(x))
	a.blocks++
	if level >= DefaultSpeechLevel {
		a.loud++
		a.lastLoud = now
	}
	for w := range a.waiters {
		if !w.armed || level < w.sound.MinLevel {
			continue
		}
		purity := 0.0
		if len(w.sound.Tones) > 0 {
			ok := true
			for _, f := range w.sound.Tones {
				share := goertzelShare(x, energy, f)
				// Each tone must carry a fair part of the purity on its own.
				if share < w.sound.Purity/float64(2*len(w.sound.Tones)) {
					ok = false
				}
				purity += share
			}
			if !ok || purity < w.sound.Purity {
				continue
			}
		}
		if w.heard.Blocks == 0 {
			w.heard.First = now
		}
		w.heard.Last = now
		w.heard.Blocks++
		w.sumLvl += level
		w.sumPur += purity
		if w.heard.Duration() >= w.sound.For {
			w.heard.Level = w.sumLvl / float64(w.heard.Blocks)
			w.heard.Purity = w.sumPur / float64(w.heard.Blocks)
			delete(a.waiters, w)
			close(w.done)
		}
	}
}

func (a *analyzer) add(s Sound) *waiter {
	w := &waiter{sound: s, armed: !s.NewTalkspurt, done: make(chan struct{})}
	a.mu.Lock()
	if !s.Since.IsZero() && !a.lastMarker.Before(s.Since) {
		w.armed = true // the talkspurt began between Since and now
	}
	a.waiters[w] = struct{}{}
	a.mu.Unlock()
	return w
}

func (a *analyzer) remove(w *waiter) (Heard, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, pending := a.waiters[w]
	delete(a.waiters, w)
	return w.heard, !pending
}

func (a *analyzer) quietSince() time.Time {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.lastLoud
}

// listen waits for s (see Call.Listen).
func (a *analyzer) listen(ctx context.Context, s Sound, closed <-chan struct{}) (Heard, error) {
	s = s.withDefaults()
	w := a.add(s)
	select {
	case <-w.done:
		h, _ := a.remove(w)
		return h, nil
	case <-ctx.Done():
		h, _ := a.remove(w)
		return h, fmt.Errorf("%w: %s (%v of %v heard): %w", ErrNotHeard, s, h.Duration(), s.For, ctx.Err())
	case <-closed:
		h, _ := a.remove(w)
		return h, fmt.Errorf("%w: %s: call ended", ErrNotHeard, s)
	}
}

// dBFS is the RMS level of n samples with the given energy relative to a full-scale
// square wave; silence is -120.
func dBFS(energy float64, n int) float64 {
	if n == 0 || energy <= 0 {
		return -120
	}
	rms := math.Sqrt(energy / float64(n))
	return max(-120, 20*math.Log10(rms/32768))
}

// goertzelShare is the share of the block's energy at freq (Goertzel algorithm,
// the DFT term at one frequency): about 1 for a pure tone at freq, about 0 for
// other tones, small for speech.
func goertzelShare(x []int16, energy, freq float64) float64 {
	if energy <= 0 {
		return 0
	}
	coeff := 2 * math.Cos(2*math.Pi*freq/sampleRate)
	var s1, s2 float64
	for _, v := range x {
		s0 := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	power := s1*s1 + s2*s2 - coeff*s1*s2
	return min(1, 2*power/(float64(len(x))*energy))
}

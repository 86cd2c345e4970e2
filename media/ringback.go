package media

import (
	"context"
	"errors"
	"math"
	"time"
)

// Call-progress and hold audio, generated (no files needed).
//
// The SIP side plays these on one leg while it talks to the other: every session has
// its own writer, so Play/PlayLoop on two sessions run independently and at the same
// time (e.g. the caller hears Ringback while the attorney hears the whisper).

// US ringback (ANSI T1.401 / the North American precise tone plan): 440 Hz + 480 Hz,
// 2 s on, 4 s off, each component at about -19 dBm0.
const (
	ringbackOn  = 2 * time.Second
	ringbackOff = 4 * time.Second
	// ringbackAmplitude is -19 dBm0 per tone: 0 dBm0 is 3.14 dB below a full-scale
	// G.711 sine, so -22.1 dBFS, i.e. 32767 * 10^(-22.1/20).
	ringbackAmplitude = 2578
)

// Ringback returns d of US ringback (440+480 Hz, 2 s on, 4 s off), starting with the
// tone. For an open-ended wait, loop one cadence with PlayLoop(ctx, Ringback(0)):
// d <= 0 means exactly one 6 s cycle.
func Ringback(d time.Duration) *Prompt {
	if d <= 0 {
		d = ringbackOn + ringbackOff
	}
	n := int(d * sampleRate / time.Second)
	s := make([]int16, n)
	cycle := int((ringbackOn + ringbackOff) * sampleRate / time.Second)
	on := int(ringbackOn * sampleRate / time.Second)
	const fade = sampleRate * 5 / 1000 // 5 ms ramps: no clicks at the cadence edges
	for i := range s {
		k := i % cycle
		if k >= on {
			continue
		}
		g := 1.0
		if k < fade {
			g = float64(k) / fade
		} else if tail := on - 1 - k; tail < fade {
			g = float64(tail) / fade
		}
		t := float64(i) / sampleRate
		v := math.Sin(2*math.Pi*440*t) + math.Sin(2*math.Pi*480*t)
		s[i] = int16(math.Round(ringbackAmplitude * g * v))
	}
	return &Prompt{Name: "ringback", Samples: s}
}

// HoldMusic returns d of a gentle looping melody (sine notes of 450 ms with soft
// attack and release, about -20 dBFS) for a caller waiting on hold; d <= 0 means one
// 4 s phrase, to be looped with PlayLoop.
func HoldMusic(d time.Duration) *Prompt {
	const noteDur = 500 * time.Millisecond
	// A slow arpeggio: C5 E5 G5 E5 D5 F5 A5 F5.
	holdNotes := [...]float64{523.25, 659.25, 783.99, 659.25, 587.33, 698.46, 880.00, 698.46}
	if d <= 0 {
		d = noteDur * time.Duration(len(holdNotes))
	}
	n := int(d * sampleRate / time.Second)
	s := make([]int16, n)
	note := int(noteDur * sampleRate / time.Second)
	sound := note * 9 / 10
	const amplitude = 3277 // -20 dBFS
	const attack = sampleRate * 20 / 1000
	for i := range s {
		k := i % note
		if k >= sound {
			continue
		}
		f := holdNotes[(i/note)%len(holdNotes)]
		g := 1.0
		if k < attack {
			g = float64(k) / attack
		} else {
			g = float64(sound-k) / float64(sound-attack) // linear release
		}
		// A touch of the octave makes it less like a test tone.
		t := float64(k) / sampleRate
		v := 0.8*math.Sin(2*math.Pi*f*t) + 0.2*math.Sin(4*math.Pi*f*t)
		s[i] = int16(math.Round(amplitude * g * v))
	}
	return &Prompt{Name: "hold_music", Samples: s}
}

// PlayLoop plays p over and over until ctx ends or the session closes, as one
// continuous stream (one marker bit at the start, no timestamp gaps between
// repetitions). It returns ctx's error, ErrSessionClosed, or ErrBridged; an empty
// prompt is an error. Meant for ringback and hold audio: cancel ctx when the other
// leg answers.
func (s *Session) PlayLoop(ctx context.Context, p *Prompt) error {
	if p == nil || len(p.Samples) == 0 {
		return errors.New("media: play loop: empty prompt")
	}
	release, err := s.acquirePlay(ctx)
	if err != nil {
		return err
	}
	defer release()
	marker := true
	for {
		if err := s.playLocked(ctx, p.Samples, marker); err != nil {
			return err
		}
		marker = false
	}
}

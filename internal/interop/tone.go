package interop

import "math"

// Thresholds of HearsTone.
const (
	// MinToneLevel is the level in dBFS the tone must reach (a tone written by
	// WriteToneWAV at amplitude 0.3 is about -10 dBFS; PCMU's noise floor
	// is far below -40).
	MinToneLevel = -40.0
	// MinToneShare is the share of the samples' energy the tone must carry:
	// another tone or noise leaves the bin near 0, a clean tone near 1.
	MinToneShare = 0.5
)

// goertzelPower is |X(freq)|² of samples (the Goertzel algorithm: one DFT term,
// not restricted to whole bins).
func goertzelPower(samples []int16, freq float64, rate int) float64 {
	coeff := 2 * math.Cos(2*math.Pi*freq/float64(rate))
	var s1, s2 float64
	for _, v := range samples {
		s0 := float64(v) + coeff*s1 - s2
		s2, s1 = s1, s0
	}
	return s1*s1 + s2*s2 - coeff*s1*s2
}

// ToneLevel is the level of the sine component at freq in samples (taken at
// rate Hz), in dBFS: 0 for a full-scale sine, -120 for silence or no samples.
func ToneLevel(samples []int16, freq float64, rate int) float64 {
	n := float64(len(samples))
	if n == 0 {
		return -120
	}
	// A sine of amplitude A gives |X|² = (A·N/2)².
	amp := 2 * math.Sqrt(goertzelPower(samples, freq, rate)) / n
	if amp <= 0 {
		return -120
	}
	return max(-120, 20*math.Log10(amp/32767))
}

// ToneShare is the share (0..1) of the energy of samples that is the sine at
// freq: near 1 for that tone alone, near 0 for silence, another tone or noise.
func ToneShare(samples []int16, freq float64, rate int) float64 {
	var energy float64
	for _, v := range samples {
		f := float64(v)
		energy += f * f
	}
	if energy == 0 {
		return 0
	}
	// A sine holds (A²/2)·N of energy, and (A·N/2)² = |X|², so its share is
	// 2|X|²/(N·energy).
	return min(1, 2*goertzelPower(samples, freq, rate)/(float64(len(samples))*energy))
}

// HearsTone reports whether 8 kHz samples (a recording of what a baresip heard)
// contain the tone at freq: loud enough (MinToneLevel) and dominant
// (MinToneShare of the energy), so silence, noise or another tone do not pass.
// Give it a window of at least 50 ms taken while the tone should be heard.
func HearsTone(samples []int16, freq float64) bool {
	return len(samples) >= SampleRate/20 &&
		ToneLevel(samples, freq, SampleRate) >= MinToneLevel &&
		ToneShare(samples, freq, SampleRate) >= MinToneShare
}

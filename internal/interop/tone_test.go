package interop

import (
	"math"
	"math/rand/v2"
	"testing"
)

func sine(freq, amplitude float64, n int) []int16 {
	s := make([]int16, n)
	for i := range s {
		s[i] = int16(amplitude * 32767 * math.Sin(2*math.Pi*freq*float64(i)/SampleRate))
	}
	return s
}

func mix(a, b []int16) []int16 {
	out := make([]int16, len(a))
	for i := range a {
		out[i] = a[i] + b[i]
	}
	return out
}

func TestHearsTone(t *testing.T) {
	const n = SampleRate * 4 / 10 // 400 ms
	rng := rand.New(rand.NewPCG(1, 2))
	noise := make([]int16, n)
	for i := range noise {
		noise[i] = int16(rng.NormFloat64() * 3000)
	}
	tests := []struct {
		name    string
		samples []int16
		freq    float64
		want    bool
	}{
		{"the tone", sine(1000, 0.3, n), 1000, true},
		{"quiet tone", sine(600, 0.02, n), 600, true},
		{"too quiet", sine(600, 0.001, n), 600, false},
		{"silence", make([]int16, n), 1000, false},
		{"another tone", sine(600, 0.3, n), 1000, false},
		{"close tone", sine(1100, 0.3, n), 1000, false},
		{"noise", noise, 1000, false},
		{"tone in light noise", mix(sine(1000, 0.3, n), noise), 1000, true},
		{"two tones, equal", mix(sine(600, 0.2, n), sine(1000, 0.2, n)), 1000, false},
		{"too short", sine(1000, 0.3, 100), 1000, false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := HearsTone(tc.samples, tc.freq); got != tc.want {
				t.Errorf("HearsTone = %v, want %v (level %.1f dBFS, share %.2f)", got, tc.want,
					ToneLevel(tc.samples, tc.freq, SampleRate), ToneShare(tc.samples, tc.freq, SampleRate))
			}
		})
	}
}

func TestToneLevel(t *testing.T) {
	for _, amp := range []float64{1, 0.3, 0.01} {
		want := 20 * math.Log10(amp)
		if got := ToneLevel(sine(1000, amp, 8000), 1000, SampleRate); math.Abs(got-want) > 0.1 {
			t.Errorf("amplitude %v: level %.2f dBFS, want %.2f", amp, got, want)
		}
	}
	if got := ToneLevel(nil, 1000, SampleRate); got != -120 {
		t.Errorf("no samples: level %v, want -120", got)
	}
}

package interop

import (
	"path/filepath"
	"testing"
)

func TestWAVRoundTrip(t *testing.T) {
	path := filepath.Join(t.TempDir(), "tone.wav")
	if err := WriteToneWAV(path, 600, 0.3, 1); err != nil {
		t.Fatal(err)
	}
	s, rate, err := ReadWAV(path)
	if err != nil {
		t.Fatal(err)
	}
	if rate != SampleRate || len(s) != SampleRate || !HearsTone(s, 600) {
		t.Errorf("read %d samples at %d Hz, tone heard %v", len(s), rate, HearsTone(s, 600))
	}
}

// unfinishedWAV is a header whose sizes a writer has not filled in yet, then
// two samples.
const unfinishedWAV = "RIFF\x00\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00" +
	"\x40\x1f\x00\x00\x80\x3e\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00\x05\x00\x06\x00"

func TestParseWAVUnfinished(t *testing.T) {
	got, rate, err := parseWAV([]byte(unfinishedWAV))
	if err != nil || rate != 8000 || len(got) != 2 || got[0] != 5 || got[1] != 6 {
		t.Errorf("parseWAV = %v, %d, %v", got, rate, err)
	}
	if _, _, err := parseWAV([]byte("not a wav")); err == nil {
		t.Error("parseWAV accepted garbage")
	}
}

func FuzzParseWAV(f *testing.F) {
	f.Add([]byte(unfinishedWAV))
	f.Add([]byte("RIFF\x24\x00\x00\x00WAVEdata\xff\xff\xff\xff"))
	f.Fuzz(func(t *testing.T, b []byte) {
		s, rate, err := parseWAV(b)
		if err == nil && (rate == 0 || 2*len(s) > len(b)) {
			t.Errorf("parseWAV: %d samples at %d Hz from %d bytes", len(s), rate, len(b))
		}
	})
}

package media

import (
	"encoding/binary"
	"errors"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// makeWAV builds a WAV file with the given format tag, channels, rate and bits from
// raw little-endian frames.
func makeWAV(tag uint16, channels, rate, bits int, data []byte) []byte {
	block := channels * bits / 8
	b := make([]byte, 0, 44+len(data))
	b = append(b, "RIFF"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(36+len(data)))
	b = append(b, "WAVEfmt "...)
	b = binary.LittleEndian.AppendUint32(b, 16)
	b = binary.LittleEndian.AppendUint16(b, tag)
	b = binary.LittleEndian.AppendUint16(b, uint16(channels))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate))
	b = binary.LittleEndian.AppendUint32(b, uint32(rate*block))
	b = binary.LittleEndian.AppendUint16(b, uint16(block))
	b = binary.LittleEndian.AppendUint16(b, uint16(bits))
	b = append(b, "data"...)
	b = binary.LittleEndian.AppendUint32(b, uint32(len(data)))
	return append(b, data...)
}

// sine16 is n frames of a sine at freq/rate on every channel (16-bit).
func sine16(n, channels, rate int, freq float64) []byte {
	var b []byte
	for i := range n {
		v := int16(10000 * math.Sin(2*math.Pi*freq*float64(i)/float64(rate)))
		for range channels {
			b = binary.LittleEndian.AppendUint16(b, uint16(v))
		}
	}
	return b
}

func rms(s []int16) float64 {
	var sum float64
	for _, v := range s {
		sum += float64(v) * float64(v)
	}
	return math.Sqrt(sum / float64(max(1, len(s))))
}

func TestParseWAVFormats(t *testing.T) {
	// 1 s at each rate: the output is 8000 samples of a 400 Hz tone at about the
	// input level (rms of amplitude 10000 is 7071).
	cases := []struct {
		name string
		data []byte
	}{
		{"8k mono 16", makeWAV(1, 1, 8000, 16, sine16(8000, 1, 8000, 400))},
		{"16k mono 16", makeWAV(1, 1, 16000, 16, sine16(16000, 1, 16000, 400))},
		{"44.1k stereo 16", makeWAV(1, 2, 44100, 16, sine16(44100, 2, 44100, 400))},
		{"48k stereo 16", makeWAV(1, 2, 48000, 16, sine16(48000, 2, 48000, 400))},
		{"22.05k mono 8-bit", func() []byte {
			var d []byte
			for i := range 22050 {
				d = append(d, byte(128+int(39*math.Sin(2*math.Pi*400*float64(i)/22050))))
			}
			return makeWAV(1, 1, 22050, 8, d)
		}()},
		{"8k mu-law", func() []byte {
			var d []byte
			for i := range 8000 {
				d = append(d, EncodeUlaw(int16(10000*math.Sin(2*math.Pi*400*float64(i)/8000))))
			}
			return makeWAV(7, 1, 8000, 8, d)
		}()},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, err := ParseWAV(c.name, c.data)
			if err != nil {
				t.Fatal(err)
			}
			if n := len(p.Samples); n < 7990 || n > 8000 {
				t.Errorf("%d samples, want ~8000", n)
			}
			if r := rms(p.Samples); r < 6000 || r > 8000 {
				// 8-bit has 39/128 of full scale * 256 = 9984 amplitude: same range.
				t.Errorf("rms %.0f, want ~7071", r)
			}
			if d := p.Duration(); d < 998*time.Millisecond || d > time.Second {
				t.Errorf("duration %v", d)
			}
		})
	}
}

func TestResampleLowPass(t *testing.T) {
	// A 6 kHz tone at 48 kHz is above the 4 kHz Nyquist limit of 8 kHz: the filter
	// must remove it instead of folding it down to 2 kHz.
	p, err := ParseWAV("hf", makeWAV(1, 1, 48000, 16, sine16(48000, 1, 48000, 6000)))
	if err != nil {
		t.Fatal(err)
	}
	if r := rms(p.Samples[100 : len(p.Samples)-100]); r > 300 {
		t.Errorf("6 kHz tone leaks with rms %.0f after resampling", r)
	}
}

func TestParseWAVErrors(t *testing.T) {
	good := makeWAV(1, 1, 8000, 16, sine16(800, 1, 8000, 400))
	bad := map[string][]byte{
		"empty":          nil,
		"not riff":       []byte("hello world, this is not a wav file"),
		"truncated data": good[:len(good)-301],
		"odd data":       makeWAV(1, 1, 8000, 16, []byte{1, 2, 3}),
		"truncated hdr":  good[:30],
		"no data chunk":  good[:36],
		"adpcm":          makeWAV(2, 1, 8000, 4, []byte{1, 2, 3, 4}),
		"mp3":            makeWAV(0x55, 1, 8000, 16, []byte{1, 2, 3, 4}),
		"zero channels":  makeWAV(1, 0, 8000, 16, []byte{1, 2}),
		"bad rate":       makeWAV(1, 1, 0, 16, []byte{1, 2}),
	}
	for name, data := range bad {
		t.Run(name, func(t *testing.T) {
			_, err := ParseWAV("/srv/prompts/"+name+".wav", data)
			if !errors.Is(err, ErrBadWAV) {
				t.Fatalf("err = %v, want ErrBadWAV", err)
			}
			if !strings.Contains(err.Error(), name+".wav") {
				t.Errorf("error %q does not name the file", err)
			}
		})
	}
}

func TestLoadPromptsBuiltin(t *testing.T) {
	ps, err := LoadPrompts("")
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range BuiltinPrompts() {
		p := ps.Get(name)
		if p == nil {
			t.Fatalf("missing built-in prompt %q", name)
		}
		if d := p.Duration(); d < 500*time.Millisecond || d > 20*time.Second {
			t.Errorf("%s: duration %v", name, d)
		}
		if rms(p.Samples) < 300 {
			t.Errorf("%s: nearly silent (rms %.0f)", name, rms(p.Samples))
		}
	}
	if ps.Get("nope") != nil {
		t.Error("Get of unknown name is not nil")
	}
}

func TestLoadPromptsOverride(t *testing.T) {
	dir := t.TempDir()
	// A 16 kHz stereo greeting replaces the built-in one; a custom prompt is added.
	if err := os.WriteFile(filepath.Join(dir, "greeting.wav"), makeWAV(1, 2, 16000, 16, sine16(16000, 2, 16000, 440)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "holiday.wav"), makeWAV(1, 1, 8000, 16, sine16(4000, 1, 8000, 440)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "README.txt"), []byte("not a prompt"), 0o644); err != nil {
		t.Fatal(err)
	}
	ps, err := LoadPrompts(dir)
	if err != nil {
		t.Fatal(err)
	}
	if d := ps.Get(PromptGreeting).Duration(); d != time.Second {
		t.Errorf("greeting override duration %v, want 1s", d)
	}
	if ps.Get("holiday") == nil || ps.Get(PromptGoodbye) == nil {
		t.Errorf("names = %v", ps.Names())
	}

	// A broken override is an error naming the file.
	if err := os.WriteFile(filepath.Join(dir, "goodbye.wav"), []byte("RIFF\x00\x00\x00\x00WAVE"), 0o644); err != nil {
		t.Fatal(err)
	}
	_, err = LoadPrompts(dir)
	if !errors.Is(err, ErrBadWAV) || !strings.Contains(err.Error(), "goodbye.wav") {
		t.Errorf("broken override: %v", err)
	}
	if _, err := LoadPrompts(filepath.Join(dir, "missing")); err == nil {
		t.Error("missing dir: no error")
	}
}

func TestTone(t *testing.T) {
	p := Tone(1000, 400*time.Millisecond)
	if len(p.Samples) != 3200 || p.Duration() != 400*time.Millisecond {
		t.Fatalf("tone of %d samples", len(p.Samples))
	}
	if p.Samples[0] != 0 || abs(int(p.Samples[len(p.Samples)-1])) > 100 {
		t.Errorf("tone does not fade: first %d last %d", p.Samples[0], p.Samples[len(p.Samples)-1])
	}
	if r := rms(p.Samples); r < 6500 || r > 7800 {
		t.Errorf("tone rms %.0f, want ~7300 (-10 dBFS)", r)
	}
	// Round trip through the WAV writer.
	back, err := ParseWAV("tone", EncodeWAV(p.Samples))
	if err != nil || len(back.Samples) != len(p.Samples) || back.Samples[100] != p.Samples[100] {
		t.Errorf("wav round trip: %v", err)
	}
}

func FuzzParseWAV(f *testing.F) {
	f.Add(makeWAV(1, 1, 8000, 16, sine16(80, 1, 8000, 400)))
	f.Add(makeWAV(1, 2, 44100, 16, sine16(441, 2, 44100, 400)))
	f.Add(makeWAV(7, 1, 8000, 8, []byte{1, 2, 3}))
	f.Fuzz(func(t *testing.T, data []byte) {
		p, err := ParseWAV("fuzz.wav", data)
		if err != nil {
			if !errors.Is(err, ErrBadWAV) {
				t.Fatalf("error %v does not wrap ErrBadWAV", err)
			}
			return
		}
		if p == nil {
			t.Fatal("nil prompt without error")
		}
	})
}

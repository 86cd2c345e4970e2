package records

import (
	"encoding/binary"
	"errors"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// parsedWAV is the header fields of a canonical 44-byte WAV header.
type parsedWAV struct {
	riffSize, fmtSize, dataSize                 uint32
	format, channels, blockAlign, bitsPerSample uint16
	sampleRate, byteRate                        uint32
	samples                                     []int16
}

func parseTestWAV(t *testing.T, b []byte) parsedWAV {
	t.Helper()
	if len(b) < 44 || string(b[0:4]) != "RIFF" || string(b[8:12]) != "WAVE" || string(b[12:16]) != "fmt " || string(b[36:40]) != "data" {
		t.Fatalf("not a canonical wav header: % x", b[:min(len(b), 44)])
	}
	le := binary.LittleEndian
	w := parsedWAV{
		riffSize: le.Uint32(b[4:]), fmtSize: le.Uint32(b[16:]),
		format: le.Uint16(b[20:]), channels: le.Uint16(b[22:]),
		sampleRate: le.Uint32(b[24:]), byteRate: le.Uint32(b[28:]),
		blockAlign: le.Uint16(b[32:]), bitsPerSample: le.Uint16(b[34:]),
		dataSize: le.Uint32(b[40:]),
	}
	for i := 44; i+1 < len(b); i += 2 {
		w.samples = append(w.samples, int16(le.Uint16(b[i:])))
	}
	return w
}

func TestWAVWriterOutput(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "messages")
	path := filepath.Join(dir, "m.wav")
	w, err := NewWAVWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	var want []int16
	for frame := range 50 { // 50 frames of 20 ms = 1 s
		s := make([]int16, 160)
		for i := range s {
			s[i] = int16(frame*160+i) * 7
			if i%2 == 1 {
				s[i] = -s[i]
			}
		}
		want = append(want, s...)
		if err := w.WriteSamples(s); err != nil {
			t.Fatal(err)
		}
	}
	if err := w.WriteSamples(nil); err != nil {
		t.Fatal(err)
	}
	if d := w.Duration(); d != time.Second {
		t.Fatalf("duration %v", d)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatalf("second close: %v", err)
	}
	if err := w.WriteSamples([]int16{1}); !errors.Is(err, ErrWAVClosed) {
		t.Fatalf("write after close: %v", err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(b)) != w.Size() || len(b) != 44+16000 {
		t.Fatalf("file %d bytes, Size %d", len(b), w.Size())
	}
	h := parseTestWAV(t, b)
	if h.riffSize != uint32(len(b)-8) || h.dataSize != 16000 || h.fmtSize != 16 {
		t.Fatalf("sizes riff %d data %d fmt %d", h.riffSize, h.dataSize, h.fmtSize)
	}
	if h.format != 1 || h.channels != 1 || h.sampleRate != 8000 || h.byteRate != 16000 || h.blockAlign != 2 || h.bitsPerSample != 16 {
		t.Fatalf("fmt %+v", h)
	}
	if len(h.samples) != len(want) {
		t.Fatalf("%d samples, want %d", len(h.samples), len(want))
	}
	for i := range want {
		if h.samples[i] != want[i] {
			t.Fatalf("sample %d = %d, want %d", i, h.samples[i], want[i])
		}
	}
	for p, mode := range map[string]os.FileMode{path: 0o600, dir: 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if st.Mode().Perm() != mode {
			t.Errorf("%s mode %v, want %v", p, st.Mode().Perm(), mode)
		}
	}
}

func TestWAVWriterHeaderBeforeClose(t *testing.T) {
	// Until Close, the sizes are the streaming "unknown" marker, so a recording cut
	// off by a crash is still read to the end of the file.
	path := filepath.Join(t.TempDir(), "m.wav")
	w, err := NewWAVWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	defer w.Close()
	if err := w.WriteSamples(make([]int16, 20000)); err != nil { // beyond the buffer
		t.Fatal(err)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	h := parseTestWAV(t, b)
	if h.riffSize != 0xFFFFFFFF || h.dataSize != 0xFFFFFFFF {
		t.Fatalf("riff %#x data %#x", h.riffSize, h.dataSize)
	}
}

func TestWAVWriterEmptyAndRefusesOverwrite(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.wav")
	w, err := NewWAVWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(path)
	h := parseTestWAV(t, b)
	if len(b) != 44 || h.dataSize != 0 || h.riffSize != 36 {
		t.Fatalf("empty wav: %d bytes %+v", len(b), h)
	}
	if _, err := NewWAVWriter(path); err == nil {
		t.Fatal("overwrote an existing recording")
	}
}

func TestWAVWriterDiscard(t *testing.T) {
	path := filepath.Join(t.TempDir(), "m.wav")
	w, err := NewWAVWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	_ = w.WriteSamples(make([]int16, 80))
	if err := w.Discard(); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(path); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file kept: %v", err)
	}
	if err := w.Discard(); err != nil {
		t.Fatalf("second discard: %v", err)
	}
}

func TestWAVWriterAfterWriteError(t *testing.T) {
	// Closing the file under the writer makes the next flush fail; the error is
	// sticky and Close reports it without panicking.
	path := filepath.Join(t.TempDir(), "m.wav")
	w, err := NewWAVWriter(path)
	if err != nil {
		t.Fatal(err)
	}
	w.f.Close()
	var werr error
	for range 100 {
		if werr = w.WriteSamples(make([]int16, 1000)); werr != nil {
			break
		}
	}
	if werr == nil {
		t.Fatal("no write error")
	}
	if err := w.WriteSamples([]int16{1}); !errors.Is(err, os.ErrClosed) {
		t.Fatalf("error not sticky: %v", err)
	}
	if err := w.Close(); err == nil {
		t.Fatal("close hid the write error")
	}
}

func TestWAVWriterConcurrentDuration(t *testing.T) {
	w, err := NewWAVWriter(filepath.Join(t.TempDir(), "m.wav"))
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range 100 {
			_ = w.WriteSamples(make([]int16, 160))
		}
	}()
	for range 100 {
		_ = w.Duration()
	}
	<-done
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	if w.Duration() != 2*time.Second {
		t.Fatalf("duration %v", w.Duration())
	}
}

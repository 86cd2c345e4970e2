package media

import (
	"math"
	"testing"

	"github.com/zaf/g711"
)

// The decoders are checked against zaf/g711 (an independent implementation of the
// ITU reference). The encoders too, except on one decision boundary per segment of
// negative μ-law samples: zaf folds negatives with one's complement (-x-1) in the
// 14-bit domain, we use the symmetric 16-bit reference (G.191 / Sun g711.c), so
// there the two codes differ by one level.
func TestG711Decode(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if got, want := DecodeUlaw(b), g711.DecodeUlawFrame(b); got != want {
			t.Errorf("DecodeUlaw(%#x) = %d, zaf %d", b, got, want)
		}
		if got, want := DecodeAlaw(b), g711.DecodeAlawFrame(b); got != want {
			t.Errorf("DecodeAlaw(%#x) = %d, zaf %d", b, got, want)
		}
	}
}

func TestG711Encode(t *testing.T) {
	mismatchU, mismatchA := 0, 0
	for x := math.MinInt16; x <= math.MaxInt16; x++ {
		s := int16(x)
		if mine, zaf := EncodeUlaw(s), g711.EncodeUlawFrame(s); mine != zaf {
			if x >= 0 || abs(int(mine)-int(zaf)) != 1 {
				t.Errorf("EncodeUlaw(%d) = %#x, zaf %#x", x, mine, zaf)
			}
			mismatchU++
		}
		if EncodeAlaw(s) != g711.EncodeAlawFrame(s) {
			mismatchA++
		}
		// Round trip error bounded by the largest segment step (1024 for μ-law
		// at full scale, 1024 for A-law).
		if d := abs(int(DecodeUlaw(EncodeUlaw(s))) - x); d > 1024 {
			t.Fatalf("ulaw round trip of %d off by %d", x, d)
		}
		if d := abs(int(DecodeAlaw(EncodeAlaw(s))) - x); d > 1024 {
			t.Fatalf("alaw round trip of %d off by %d", x, d)
		}
	}
	if mismatchU > 128 || mismatchA != 0 {
		t.Errorf("encoders differ from zaf/g711 for %d (ulaw) and %d (alaw) of 65536 samples", mismatchU, mismatchA)
	}
	if EncodeUlaw(0) != 0xFF || EncodeAlaw(0) != 0xD5 {
		t.Errorf("silence = %#x %#x, want 0xff 0xd5", EncodeUlaw(0), EncodeAlaw(0))
	}
}

func TestG711Transcode(t *testing.T) {
	for i := range 256 {
		b := byte(i)
		if got, want := UlawToAlaw(b), EncodeAlaw(DecodeUlaw(b)); got != want {
			t.Errorf("UlawToAlaw(%#x) = %#x, want %#x", b, got, want)
		}
		if got, want := AlawToUlaw(b), EncodeUlaw(DecodeAlaw(b)); got != want {
			t.Errorf("AlawToUlaw(%#x) = %#x, want %#x", b, got, want)
		}
		// A-law has fewer levels near zero and more at the top; a round trip through
		// the other law stays within one step.
		if d := abs(int(DecodeUlaw(AlawToUlaw(UlawToAlaw(b)))) - int(DecodeUlaw(b))); d > 1024 {
			t.Errorf("ulaw→alaw→ulaw of %#x off by %d", b, d)
		}
	}
	src := []byte{0xFF, 0x00, 0x7F, 0x80}
	dst := make([]byte, 4)
	Transcode(dst, src, PCMU, PCMA)
	for i, b := range src {
		if dst[i] != UlawToAlaw(b) {
			t.Errorf("Transcode[%d] = %#x", i, dst[i])
		}
	}
	Transcode(dst, dst, PCMA, PCMA)
	Transcode(dst, dst, PCMA, PCMU) // in place
	samples := make([]int16, 4)
	Decode(PCMU, samples, dst)
	enc := make([]byte, 4)
	Encode(PCMA, enc, samples)
	if silenceByte(PCMU) != 0xFF || silenceByte(PCMA) != 0xD5 {
		t.Errorf("silence bytes")
	}
}

func abs(x int) int {
	if x < 0 {
		return -x
	}
	return x
}

func benchSamples() []int16 {
	s := make([]int16, frameSamples)
	for i := range s {
		s[i] = int16(8000 * math.Sin(float64(i)/5))
	}
	return s
}

func BenchmarkEncodePCMU(b *testing.B) {
	src, dst := benchSamples(), make([]byte, frameSamples)
	b.SetBytes(frameSamples)
	b.ReportAllocs()
	for b.Loop() {
		Encode(PCMU, dst, src)
	}
}

func BenchmarkEncodePCMA(b *testing.B) {
	src, dst := benchSamples(), make([]byte, frameSamples)
	b.SetBytes(frameSamples)
	b.ReportAllocs()
	for b.Loop() {
		Encode(PCMA, dst, src)
	}
}

func BenchmarkDecodePCMU(b *testing.B) {
	src, dst := make([]byte, frameSamples), make([]int16, frameSamples)
	Encode(PCMU, src, benchSamples())
	b.SetBytes(frameSamples)
	b.ReportAllocs()
	for b.Loop() {
		Decode(PCMU, dst, src)
	}
}

func BenchmarkTranscodePCMUToPCMA(b *testing.B) {
	src, dst := make([]byte, frameSamples), make([]byte, frameSamples)
	Encode(PCMU, src, benchSamples())
	b.SetBytes(frameSamples)
	b.ReportAllocs()
	for b.Loop() {
		Transcode(dst, src, PCMU, PCMA)
	}
}

// BenchmarkZafEncodeUlaw is the reference point: zaf/g711 on the same 20 ms frame.
func BenchmarkZafEncodeUlaw(b *testing.B) {
	src := benchSamples()
	lpcm := make([]byte, 2*len(src))
	for i, s := range src {
		lpcm[2*i], lpcm[2*i+1] = byte(s), byte(uint16(s)>>8)
	}
	b.SetBytes(frameSamples)
	b.ReportAllocs()
	for b.Loop() {
		g711.EncodeUlaw(lpcm)
	}
}

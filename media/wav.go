package media

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
)

// ErrBadWAV is wrapped by every WAV decoding error; the message names the file.
var ErrBadWAV = errors.New("media: unusable wav")

// WAV format tags (RIFF WAVE fmt chunk, RFC 2361 appendix A).
const (
	wavFormatPCM        = 0x0001
	wavFormatFloat      = 0x0003
	wavFormatAlaw       = 0x0006
	wavFormatMulaw      = 0x0007
	wavFormatExtensible = 0xFFFE
)

// maxWAVSamples bounds a decoded prompt (10 minutes at 48 kHz stereo).
const maxWAVSamples = 10 * 60 * 48000 * 2

// wavFormat is the decoded fmt chunk.
type wavFormat struct {
	tag        uint16
	channels   int
	rate       int
	blockAlign int
	bits       int
}

// ParseWAV decodes a RIFF/WAVE file into an 8 kHz mono prompt called name. It reads
// PCM 8-bit unsigned, 16-, 24- and 32-bit signed, 32-bit float, μ-law and A-law, any
// number of channels (mixed down) at any rate (resampled). Broken, truncated or
// unsupported files give an error wrapping ErrBadWAV that names the file.
func ParseWAV(name string, data []byte) (*Prompt, error) {
	samples, err := decodeWAV(data)
	if err != nil {
		return nil, fmt.Errorf("%w %q: %w", ErrBadWAV, name, err)
	}
	return &Prompt{Name: name, Samples: samples}, nil
}

func decodeWAV(data []byte) ([]int16, error) {
	if len(data) < 12 || string(data[0:4]) != "RIFF" || string(data[8:12]) != "WAVE" {
		return nil, errors.New("not a riff/wave file")
	}
	var (
		format  *wavFormat
		payload []byte
	)
	rest := data[12:]
	for len(rest) > 0 {
		if len(rest) < 8 {
			return nil, errors.New("truncated chunk header")
		}
		id := string(rest[0:4])
		size := int64(binary.LittleEndian.Uint32(rest[4:8]))
		rest = rest[8:]
		if size > int64(len(rest)) {
			// 0xFFFFFFFF is written by streaming encoders that could not seek back:
			// take the rest of the file as the data chunk.
			if id == "data" && size == 0xFFFFFFFF {
				size = int64(len(rest))
			} else {
				return nil, fmt.Errorf("truncated %q chunk: %d bytes declared, %d present", id, size, len(rest))
			}
		}
		body := rest[:size]
		rest = rest[size:]
		if size%2 == 1 && len(rest) > 0 {
			rest = rest[1:] // RIFF chunks are padded to even sizes
		}
		switch id {
		case "fmt ":
			f, err := parseWAVFormat(body)
			if err != nil {
				return nil, err
			}
			format = &f
		case "data":
			if format == nil {
				return nil, errors.New("data chunk before fmt chunk")
			}
			payload = body
		}
		if payload != nil {
			break
		}
	}
	if format == nil {
		return nil, errors.New("no fmt chunk")
	}
	if payload == nil {
		return nil, errors.New("no data chunk")
	}
	if len(payload)%format.blockAlign != 0 {
		return nil, fmt.Errorf("truncated data: %d bytes is not a multiple of the %d-byte frame", len(payload), format.blockAlign)
	}
	frames := len(payload) / format.blockAlign
	if frames*format.channels > maxWAVSamples {
		return nil, fmt.Errorf("too long: %d frames", frames)
	}
	mono := mixToMono(payload, *format, frames)
	return resampleTo8k(mono, format.rate), nil
}

func parseWAVFormat(b []byte) (wavFormat, error) {
	if len(b) < 16 {
		return wavFormat{}, fmt.Errorf("fmt chunk of %d bytes is too short", len(b))
	}
	f := wavFormat{
		tag:        binary.LittleEndian.Uint16(b[0:2]),
		channels:   int(binary.LittleEndian.Uint16(b[2:4])),
		rate:       int(binary.LittleEndian.Uint32(b[4:8])),
		blockAlign: int(binary.LittleEndian.Uint16(b[12:14])),
		bits:       int(binary.LittleEndian.Uint16(b[14:16])),
	}
	if f.tag == wavFormatExtensible {
		// WAVE_FORMAT_EXTENSIBLE: the real tag is the first two bytes of the
		// sub-format GUID at offset 24.
		if len(b) < 26 {
			return wavFormat{}, errors.New("extensible fmt chunk is too short")
		}
		f.tag = binary.LittleEndian.Uint16(b[24:26])
	}
	if f.channels < 1 || f.channels > 8 {
		return wavFormat{}, fmt.Errorf("unsupported channel count %d", f.channels)
	}
	if f.rate < 4000 || f.rate > 192000 {
		return wavFormat{}, fmt.Errorf("unsupported sample rate %d", f.rate)
	}
	switch {
	case f.tag == wavFormatPCM && (f.bits == 8 || f.bits == 16 || f.bits == 24 || f.bits == 32):
	case f.tag == wavFormatFloat && f.bits == 32:
	case (f.tag == wavFormatMulaw || f.tag == wavFormatAlaw) && f.bits == 8:
	default:
		return wavFormat{}, fmt.Errorf("unsupported encoding: format tag %#x with %d bits (want pcm, float, mu-law or a-law)", f.tag, f.bits)
	}
	if want := f.channels * f.bits / 8; f.blockAlign != want {
		return wavFormat{}, fmt.Errorf("block align %d does not match %d channels of %d bits", f.blockAlign, f.channels, f.bits)
	}
	return f, nil
}

// mixToMono decodes frames of f from payload and averages the channels.
func mixToMono(payload []byte, f wavFormat, frames int) []float32 {
	out := make([]float32, frames)
	width := f.bits / 8
	scale := 1 / float32(f.channels)
	for i := range frames {
		var sum float32
		frame := payload[i*f.blockAlign:]
		for ch := range f.channels {
			sum += sampleAt(frame[ch*width:], f)
		}
		out[i] = sum * scale
	}
	return out
}

// sampleAt returns one sample scaled to the int16 range.
func sampleAt(b []byte, f wavFormat) float32 {
	switch f.tag {
	case wavFormatMulaw:
		return float32(DecodeUlaw(b[0]))
	case wavFormatAlaw:
		return float32(DecodeAlaw(b[0]))
	case wavFormatFloat:
		v := math.Float32frombits(binary.LittleEndian.Uint32(b))
		if v != v { // NaN
			return 0
		}
		return v * 32767
	}
	switch f.bits {
	case 8:
		return float32(int(b[0])-128) * 256 // 8-bit WAV is unsigned
	case 16:
		return float32(int16(binary.LittleEndian.Uint16(b)))
	case 24:
		v := int32(uint32(b[0])<<8|uint32(b[1])<<16|uint32(b[2])<<24) >> 8
		return float32(v) / 256
	default:
		return float32(int32(binary.LittleEndian.Uint32(b))) / 65536
	}
}

// resampleTo8k converts mono samples at rate to 8 kHz int16. Downsampling first runs
// a Blackman-windowed sinc low-pass at 3.6 kHz (below the 4 kHz Nyquist frequency of
// the target) so high frequencies do not alias; the filter is evaluated only at the
// input positions the linear interpolation needs.
func resampleTo8k(in []float32, rate int) []int16 {
	if rate == sampleRate {
		return toInt16(in)
	}
	at := func(j int) float32 { return in[j] }
	if rate > sampleRate {
		h := lowPassKernel(3600 / float64(rate))
		half := len(h) / 2
		at = func(j int) float32 {
			var acc float32
			for t, c := range h {
				if k := j + t - half; k >= 0 && k < len(in) {
					acc += in[k] * c
				}
			}
			return acc
		}
	}
	step := float64(rate) / sampleRate
	n := int(float64(len(in)) / step)
	out := make([]int16, n)
	for i := range out {
		pos := float64(i) * step
		j := int(pos)
		frac := float32(pos - float64(j))
		a := at(j)
		b := a
		if j+1 < len(in) && frac != 0 {
			b = at(j + 1)
		}
		out[i] = clamp16(a + (b-a)*frac)
	}
	return out
}

// lowPassKernel is a 63-tap Blackman-windowed sinc with normalized cutoff fc (cycles
// per sample) and unity gain at DC.
func lowPassKernel(fc float64) []float32 {
	const taps = 63
	const half = taps / 2
	k := make([]float64, taps)
	var sum float64
	for i := range k {
		m := float64(i - half)
		v := 2 * fc
		if m != 0 {
			v = math.Sin(2*math.Pi*fc*m) / (math.Pi * m)
		}
		w := 0.42 - 0.5*math.Cos(2*math.Pi*float64(i)/(taps-1)) + 0.08*math.Cos(4*math.Pi*float64(i)/(taps-1))
		k[i] = v * w
		sum += k[i]
	}
	h := make([]float32, taps)
	for i := range h {
		h[i] = float32(k[i] / sum)
	}
	return h
}

func toInt16(in []float32) []int16 {
	out := make([]int16, len(in))
	for i, v := range in {
		out[i] = clamp16(v)
	}
	return out
}

func clamp16(v float32) int16 {
	switch {
	case v >= math.MaxInt16:
		return math.MaxInt16
	case v <= math.MinInt16:
		return math.MinInt16
	}
	return int16(math.Round(float64(v)))
}

// EncodeWAV renders samples as an 8 kHz mono 16-bit PCM WAV file (for recordings
// and tests).
func EncodeWAV(samples []int16) []byte {
	data := len(samples) * 2
	b := make([]byte, 44+data)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], uint32(36+data))
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16)
	binary.LittleEndian.PutUint16(b[20:], wavFormatPCM)
	binary.LittleEndian.PutUint16(b[22:], 1)
	binary.LittleEndian.PutUint32(b[24:], sampleRate)
	binary.LittleEndian.PutUint32(b[28:], sampleRate*2)
	binary.LittleEndian.PutUint16(b[32:], 2)
	binary.LittleEndian.PutUint16(b[34:], 16)
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], uint32(data))
	for i, s := range samples {
		binary.LittleEndian.PutUint16(b[44+2*i:], uint16(s))
	}
	return b
}

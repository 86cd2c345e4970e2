package interop

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"os"
)

// SampleRate is the rate of every WAV file this package writes and of the
// recordings baresip makes of PCMU/PCMA calls.
const SampleRate = 8000

// ErrBadWAV is returned (wrapped) for a file that is not 16-bit mono PCM WAV.
var ErrBadWAV = errors.New("interop: not a 16-bit mono PCM WAV file")

// WriteToneWAV writes a sine tone at freq Hz (amplitude as a share of full
// scale, 0..1) lasting seconds as an 8 kHz mono 16-bit PCM WAV file.
func WriteToneWAV(path string, freq, amplitude float64, seconds int) error {
	n := seconds * SampleRate
	samples := make([]int16, n)
	for i := range samples {
		samples[i] = int16(math.Round(amplitude * 32767 * math.Sin(2*math.Pi*freq*float64(i)/SampleRate)))
	}
	return WriteWAV(path, samples, SampleRate)
}

// WriteWAV writes mono 16-bit PCM samples as a WAV file.
func WriteWAV(path string, samples []int16, rate int) error {
	var b bytes.Buffer
	dataLen := uint32(2 * len(samples))
	b.WriteString("RIFF")
	_ = binary.Write(&b, binary.LittleEndian, 36+dataLen)
	b.WriteString("WAVEfmt ")
	_ = binary.Write(&b, binary.LittleEndian, struct {
		Size                  uint32
		Format, Channels      uint16
		Rate, ByteRate        uint32
		BlockAlign, BitsPerSm uint16
	}{16, 1, 1, uint32(rate), uint32(2 * rate), 2, 16})
	b.WriteString("data")
	_ = binary.Write(&b, binary.LittleEndian, dataLen)
	_ = binary.Write(&b, binary.LittleEndian, samples)
	if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
		return fmt.Errorf("interop: write wav: %w", err)
	}
	return nil
}

// ReadWAV reads a mono 16-bit PCM WAV file and returns its samples and rate.
// A file still being written (its sizes not yet filled in, as baresip's
// sndfile module leaves them until the call ends) is read up to its end.
func ReadWAV(path string) ([]int16, int, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, 0, fmt.Errorf("interop: read wav: %w", err)
	}
	return parseWAV(b)
}

func parseWAV(b []byte) ([]int16, int, error) {
	if len(b) < 12 || string(b[:4]) != "RIFF" || string(b[8:12]) != "WAVE" {
		return nil, 0, ErrBadWAV
	}
	rate := 0
	for p := 12; p+8 <= len(b); {
		id := string(b[p : p+4])
		size := int(binary.LittleEndian.Uint32(b[p+4 : p+8]))
		body := b[p+8:]
		switch id {
		case "fmt ":
			if len(body) < 16 {
				return nil, 0, ErrBadWAV
			}
			format := binary.LittleEndian.Uint16(body[0:2])
			channels := binary.LittleEndian.Uint16(body[2:4])
			bits := binary.LittleEndian.Uint16(body[14:16])
			if format != 1 || channels != 1 || bits != 16 {
				return nil, 0, fmt.Errorf("%w (format %d, %d channels, %d bits)", ErrBadWAV, format, channels, bits)
			}
			rate = int(binary.LittleEndian.Uint32(body[4:8]))
		case "data":
			if rate == 0 {
				return nil, 0, ErrBadWAV
			}
			// Unfinished files say 0 (or too much): take what is there.
			if size == 0 || size > len(body) {
				size = len(body)
			}
			samples := make([]int16, size/2)
			for i := range samples {
				samples[i] = int16(binary.LittleEndian.Uint16(body[2*i:]))
			}
			return samples, rate, nil
		}
		p += 8 + size + size&1
	}
	return nil, 0, fmt.Errorf("%w: no data chunk", ErrBadWAV)
}

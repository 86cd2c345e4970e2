package records

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// Recording format: 8 kHz mono 16-bit little-endian PCM (RIFF WAVE, format tag 1).
const (
	WAVSampleRate = 8000
	wavHeaderLen  = 44
	wavBlockAlign = 2 // one channel of 16 bits
	// wavMaxData keeps the data chunk below the 4 GiB RIFF limit and away from the
	// 0xFFFFFFFF "unknown size" marker (about 74 hours of audio).
	wavMaxData = 0xFFFFFFFF - 64
	// wavUnknownSize is the size written while recording; streaming readers (and
	// media.ParseWAV) take it as "to the end of the file", so a recording cut off
	// by a crash before Close stays playable.
	wavUnknownSize = 0xFFFFFFFF
)

// ErrWAVFull is returned by WriteSamples when the recording would exceed the size
// a WAV file can describe.
var ErrWAVFull = errors.New("records: wav file full")

// ErrWAVClosed is returned by WriteSamples after Close or Discard.
var ErrWAVClosed = errors.New("records: wav writer closed")

// WAVWriter writes a recording incrementally to a new 8 kHz mono 16-bit PCM WAV
// file. The header carries placeholder sizes until Close patches in the real ones.
// After a write error every later WriteSamples returns that error, and Close still
// closes the file and patches the header to the bytes that reached the disk. It is
// safe for concurrent use (the recorder writes; another goroutine may ask Duration).
type WAVWriter struct {
	mu      sync.Mutex
	path    string
	f       *os.File
	bw      *bufio.Writer
	scratch []byte
	data    int64 // PCM bytes accepted
	err     error // first write error, sticky
	closed  bool
}

// NewWAVWriter creates the file at path (0600, failing if it exists) and writes the
// header. Missing parent folders are created 0700.
func NewWAVWriter(path string) (*WAVWriter, error) {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("records: create recording folder: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("records: create recording: %w", err)
	}
	w := &WAVWriter{path: path, f: f, bw: bufio.NewWriterSize(f, 16<<10)}
	if _, err := w.bw.Write(wavHeader(wavUnknownSize, wavUnknownSize)); err != nil {
		f.Close()
		os.Remove(path)
		return nil, fmt.Errorf("records: write wav header: %w", err)
	}
	return w, nil
}

// wavHeader renders the 44-byte RIFF/WAVE header with the given RIFF and data
// chunk sizes.
func wavHeader(riffSize, dataSize uint32) []byte {
	b := make([]byte, wavHeaderLen)
	copy(b[0:], "RIFF")
	binary.LittleEndian.PutUint32(b[4:], riffSize)
	copy(b[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(b[16:], 16) // fmt chunk size
	binary.LittleEndian.PutUint16(b[20:], 1)  // PCM
	binary.LittleEndian.PutUint16(b[22:], 1)  // mono
	binary.LittleEndian.PutUint32(b[24:], WAVSampleRate)
	binary.LittleEndian.PutUint32(b[28:], WAVSampleRate*wavBlockAlign) // byte rate
	binary.LittleEndian.PutUint16(b[32:], wavBlockAlign)
	binary.LittleEndian.PutUint16(b[34:], 16) // bits per sample
	copy(b[36:], "data")
	binary.LittleEndian.PutUint32(b[40:], dataSize)
	return b
}

// Path is the file being written.
func (w *WAVWriter) Path() string { return w.path }

// WriteSamples appends 8 kHz samples. It does not keep samples.
func (w *WAVWriter) WriteSamples(samples []int16) error {
	w.mu.Lock()
	defer w.mu.Unlock()
	switch {
	case w.closed:
		return ErrWAVClosed
	case w.err != nil:
		return w.err
	case len(samples) == 0:
		return nil
	}
	n := len(samples) * wavBlockAlign
	if w.data+int64(n) > wavMaxData {
		return ErrWAVFull
	}
	if cap(w.scratch) < n {
		w.scratch = make([]byte, n)
	}
	buf := w.scratch[:n]
	for i, s := range samples {
		binary.LittleEndian.PutUint16(buf[2*i:], uint16(s))
	}
	if _, err := w.bw.Write(buf); err != nil {
		w.err = fmt.Errorf("records: write recording: %w", err)
		return w.err
	}
	w.data += int64(n)
	return nil
}

// Duration is the length of the audio written so far.
func (w *WAVWriter) Duration() time.Duration {
	w.mu.Lock()
	defer w.mu.Unlock()
	return time.Duration(w.data/wavBlockAlign) * time.Second / WAVSampleRate
}

// Size is the file size the recording has so far (header included).
func (w *WAVWriter) Size() int64 {
	w.mu.Lock()
	defer w.mu.Unlock()
	return wavHeaderLen + w.data
}

// Close flushes the audio, patches the RIFF and data sizes into the header and
// closes the file. It is idempotent; the error is the first one met (an earlier
// write error included).
func (w *WAVWriter) Close() error {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.closed {
		return nil
	}
	w.closed = true
	err := w.err
	if ferr := w.bw.Flush(); ferr != nil && err == nil {
		err = fmt.Errorf("records: write recording: %w", ferr)
	}
	if perr := w.patchHeader(); perr != nil && err == nil {
		err = perr
	}
	if serr := w.f.Sync(); serr != nil && err == nil {
		err = fmt.Errorf("records: sync recording: %w", serr)
	}
	if cerr := w.f.Close(); cerr != nil && err == nil {
		err = fmt.Errorf("records: close recording: %w", cerr)
	}
	return err
}

// patchHeader writes the sizes of what is on disk, which after a failed write may
// be less than what WriteSamples accepted; an odd trailing byte is cut off.
func (w *WAVWriter) patchHeader() error {
	st, err := w.f.Stat()
	if err != nil {
		return fmt.Errorf("records: stat recording: %w", err)
	}
	data := max(st.Size()-wavHeaderLen, 0)
	data -= data % wavBlockAlign
	if data > wavMaxData {
		data = wavMaxData
	}
	if st.Size() > wavHeaderLen+data {
		if err := w.f.Truncate(wavHeaderLen + data); err != nil {
			return fmt.Errorf("records: truncate recording: %w", err)
		}
	}
	if st.Size() < wavHeaderLen {
		// The header itself never reached the disk; write it whole.
		if _, err := w.f.WriteAt(wavHeader(36, 0), 0); err != nil {
			return fmt.Errorf("records: write wav header: %w", err)
		}
		return nil
	}
	var sz [4]byte
	binary.LittleEndian.PutUint32(sz[:], uint32(36+data))
	if _, err := w.f.WriteAt(sz[:], 4); err != nil {
		return fmt.Errorf("records: patch wav header: %w", err)
	}
	binary.LittleEndian.PutUint32(sz[:], uint32(data))
	if _, err := w.f.WriteAt(sz[:], 40); err != nil {
		return fmt.Errorf("records: patch wav header: %w", err)
	}
	w.data = data
	return nil
}

// Discard closes the writer and removes the file (a recording too short to keep,
// or one whose call failed). Calling it after Close removes the finished file.
// A close error is irrelevant once the file is gone and is not reported.
func (w *WAVWriter) Discard() error {
	_ = w.Close()
	if err := os.Remove(w.path); err != nil && !errors.Is(err, os.ErrNotExist) {
		return fmt.Errorf("records: remove recording: %w", err)
	}
	return nil
}

package media

import (
	"errors"
	"fmt"
	"io"
	"os"
	"syscall"
)

// MaxWAVFileBytes caps a WAV file read from disk by LoadWAV (a prompt or a
// rule's message audio): 16 MiB is over 17 minutes of 8 kHz 16-bit mono and
// about 95 seconds of CD-quality stereo.
const MaxWAVFileBytes = 16 << 20

// ErrNotRegular is wrapped when a path names a device, FIFO, socket or
// directory instead of a regular file.
var ErrNotRegular = errors.New("not a regular file")

// ErrTooLarge is wrapped when a file is larger than the limit of the read.
var ErrTooLarge = errors.New("file too large")

// ReadWAVFile reads path whole when it is a regular file of at most limit bytes.
// The file is opened non-blocking (a FIFO cannot stall the caller), its type is
// checked on the open descriptor (no race with a rename), and the read stops at
// limit+1 bytes whatever the file claims (a file swapped for /dev/zero or one
// that grows cannot exhaust memory).
func ReadWAVFile(path string, limit int64) ([]byte, error) {
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, err
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("%s: %w (%s)", path, ErrNotRegular, st.Mode().Type())
	}
	if st.Size() > limit {
		return nil, fmt.Errorf("%s: %w: %d bytes, the limit is %d", path, ErrTooLarge, st.Size(), limit)
	}
	data, err := io.ReadAll(io.LimitReader(f, limit+1))
	if err != nil {
		return nil, err
	}
	if int64(len(data)) > limit {
		return nil, fmt.Errorf("%s: %w: more than %d bytes", path, ErrTooLarge, limit)
	}
	return data, nil
}

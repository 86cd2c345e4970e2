package interop

import (
	"encoding/binary"
	"fmt"
	"sync"
	"syscall"
	"time"
)

// The heard-audio tap: baresip's audio player is ALSA's "file" PCM (slave
// "null") writing raw 16-bit samples into a FIFO, and a goroutine here reads
// that FIFO at 8000 samples a second. ALSA's null device takes samples as fast
// as they come, so the reader's pace is what makes baresip's player consume its
// jitter buffer in real time, as a sound card would.
const (
	tapTick = 20 * time.Millisecond
	// tapMaxBurst caps how much the reader may catch up after a pause (no
	// call, or a stalled player): 100 ms.
	tapMaxBurst = SampleRate / 10
	// tapPipeSize shrinks the FIFO (Linux F_SETPIPE_SZ; one page is the
	// minimum) so little audio waits in it: 4096 bytes is 256 ms.
	tapPipeSize    = 4096
	fcntlSetPipeSz = 1031 // F_SETPIPE_SZ
)

// tap owns the FIFO's read end and the samples read from it.
type tap struct {
	fd   int
	stop chan struct{}
	done chan struct{}

	mu      sync.Mutex
	samples []int16

	closeOnce sync.Once
}

// openTap creates the FIFO at path and starts reading it. The read end is
// opened read-write: that never blocks, and the reader never sees end of file
// when baresip closes and reopens its player (it does on every hold/resume).
func openTap(path string) (*tap, error) {
	if err := syscall.Mkfifo(path, 0o600); err != nil {
		return nil, fmt.Errorf("interop: heard fifo: %w", err)
	}
	fd, err := syscall.Open(path, syscall.O_RDWR|syscall.O_NONBLOCK|syscall.O_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("interop: heard fifo: %w", err)
	}
	// Best effort: a bigger pipe only delays what is heard.
	_, _, _ = syscall.Syscall(syscall.SYS_FCNTL, uintptr(fd), fcntlSetPipeSz, tapPipeSize)
	t := &tap{fd: fd, stop: make(chan struct{}), done: make(chan struct{})}
	go t.run()
	return t, nil
}

// run reads at most the samples due since the last tick, until close.
func (t *tap) run() {
	defer close(t.done)
	defer syscall.Close(t.fd)
	tick := time.NewTicker(tapTick)
	defer tick.Stop()
	buf := make([]byte, 2*tapMaxBurst)
	var odd []byte // half a sample left from the previous read
	last := time.Now()
	budget := 0 // samples the reader may take now
	for {
		select {
		case <-t.stop:
			return
		case now := <-tick.C:
			budget = min(tapMaxBurst, budget+int(now.Sub(last).Seconds()*SampleRate))
			last = now
		}
		want := 2*budget - len(odd)
		if want <= 0 {
			continue
		}
		n, err := syscall.Read(t.fd, buf[:want])
		if err != nil || n <= 0 { // EAGAIN: the player is not writing
			// Idle time must not become a burst later.
			budget = 0
			continue
		}
		data := append(odd, buf[:n]...)
		whole := len(data) &^ 1
		got := make([]int16, whole/2)
		for i := range got {
			got[i] = int16(binary.LittleEndian.Uint16(data[2*i:]))
		}
		odd = append([]byte(nil), data[whole:]...)
		budget -= len(got)
		t.mu.Lock()
		t.samples = append(t.samples, got...)
		t.mu.Unlock()
	}
}

// heard is a copy of every sample read so far.
func (t *tap) heard() []int16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	return append([]int16(nil), t.samples...)
}

// count is how many samples have been read so far.
func (t *tap) count() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return len(t.samples)
}

// since is a copy of the samples read after the first n.
func (t *tap) since(n int) []int16 {
	t.mu.Lock()
	defer t.mu.Unlock()
	if n > len(t.samples) {
		return nil
	}
	return append([]int16(nil), t.samples[n:]...)
}

// close stops the reader and closes the FIFO. Idempotent.
func (t *tap) close() {
	t.closeOnce.Do(func() { close(t.stop) })
	<-t.done
}

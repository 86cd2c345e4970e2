package media

import (
	"errors"
	"os"
	"path/filepath"
	"syscall"
	"testing"
	"time"
)

// A prompt file swapped after it was checked (for /dev/zero, a FIFO or a huge
// file) is refused by the capped read, quickly and without reading it whole.
func TestLoadWAVSwappedFile(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "msg.wav")
	if err := os.WriteFile(path, EncodeWAV(make([]int16, 800)), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadWAV(path); err != nil {
		t.Fatal(err)
	}
	swap := func(create func(string) error) {
		t.Helper()
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		if err := create(path); err != nil {
			t.Fatal(err)
		}
	}
	load := func() error {
		t.Helper()
		done := make(chan error, 1)
		go func() { _, err := LoadWAV(path); done <- err }()
		select {
		case err := <-done:
			return err
		case <-time.After(5 * time.Second):
			t.Fatal("LoadWAV blocked")
			return nil
		}
	}
	swap(func(p string) error { return os.Symlink("/dev/zero", p) })
	if err := load(); !errors.Is(err, ErrNotRegular) {
		t.Errorf("/dev/zero: %v", err)
	}
	swap(func(p string) error { return syscall.Mkfifo(p, 0o644) })
	if err := load(); !errors.Is(err, ErrNotRegular) {
		t.Errorf("fifo: %v", err)
	}
	swap(func(p string) error {
		if err := os.WriteFile(p, EncodeWAV(nil), 0o644); err != nil {
			return err
		}
		return os.Truncate(p, MaxWAVFileBytes+1)
	})
	if err := load(); !errors.Is(err, ErrTooLarge) {
		t.Errorf("huge file: %v", err)
	}
}

package routing

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/matterline/matterline/media"
)

// MaxMessageAudioBytes caps a rule's message_audio file (5 MiB: over five
// minutes of 8 kHz 16-bit mono).
const MaxMessageAudioBytes = 5 << 20

// ErrBadAudio is wrapped by every message_audio validation error.
var ErrBadAudio = errors.New("unusable message audio")

// resolveAudio confines a rule's message_audio to dir: name is relative to dir
// or absolute inside it, symlinks are resolved and the target must still be
// inside dir, and the target must be a regular file of at most
// MaxMessageAudioBytes that media can play as a WAV. It returns the resolved
// absolute path (what a call reads).
func resolveAudio(dir, name string) (string, error) {
	bad := func(format string, args ...any) (string, error) {
		return "", fmt.Errorf("%w: "+format, append([]any{ErrBadAudio}, args...)...)
	}
	if dir == "" {
		return bad("%q: no directory for message audio is configured (media.prompts_dir, else audio/ next to the database)", name)
	}
	if strings.ContainsRune(name, 0) {
		return bad("%q contains a NUL byte", name)
	}
	absDir, err := filepath.Abs(dir)
	if err != nil {
		return bad("audio directory %s: %v", dir, err)
	}
	realDir, err := filepath.EvalSymlinks(absDir)
	if errors.Is(err, os.ErrNotExist) {
		return bad("the audio directory %s does not exist (create it and put the WAV file there)", absDir)
	}
	if err != nil {
		return bad("audio directory %s: %v", absDir, err)
	}
	p := filepath.Clean(name)
	if !filepath.IsAbs(p) {
		p = filepath.Join(absDir, p)
	}
	if !within(absDir, p) && !within(realDir, p) {
		return bad("%q is outside the audio directory %s (give a file name inside it)", name, absDir)
	}
	real, err := filepath.EvalSymlinks(p)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return bad("%q: no such file in the audio directory %s", name, absDir)
		}
		return bad("%q: %v", name, err)
	}
	if !within(realDir, real) {
		return bad("%q resolves to %s, outside the audio directory %s", name, real, absDir)
	}
	st, err := os.Stat(real)
	if err != nil {
		return bad("%q: %v", name, err)
	}
	if !st.Mode().IsRegular() {
		return bad("%q is not a regular file (%s)", name, fileKind(st.Mode()))
	}
	if st.Size() > MaxMessageAudioBytes {
		return bad("%q is %d bytes, over the %d-byte (5 MiB) limit", name, st.Size(), MaxMessageAudioBytes)
	}
	data, err := media.ReadWAVFile(real, MaxMessageAudioBytes)
	switch {
	case errors.Is(err, media.ErrTooLarge):
		return bad("%q grew over the %d-byte (5 MiB) limit", name, MaxMessageAudioBytes)
	case errors.Is(err, media.ErrNotRegular):
		return bad("%q is not a regular file", name)
	case err != nil:
		return bad("%q: %v", name, err)
	}
	if _, err := media.ParseWAV(name, data); err != nil {
		return bad("%q is not a playable WAV file (%v)", name, err)
	}
	return real, nil
}

// within reports whether p is dir or below it (both absolute and clean).
func within(dir, p string) bool {
	rel, err := filepath.Rel(dir, p)
	return err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) && !filepath.IsAbs(rel)
}

func fileKind(m os.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&os.ModeNamedPipe != 0:
		return "a FIFO"
	case m&os.ModeCharDevice != 0:
		return "a character device"
	case m&os.ModeDevice != 0:
		return "a device"
	case m&os.ModeSocket != 0:
		return "a socket"
	}
	return "not a plain file"
}

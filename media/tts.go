package media

import (
	"bytes"
	"container/list"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"
)

// ErrNoTTS is returned by TTS.Render when no speech synthesizer is installed: the
// caller falls back to a built-in prompt.
var ErrNoTTS = errors.New("media: text-to-speech not available")

// TTS defaults.
const (
	defaultTTSCommand = "espeak-ng"
	defaultTTSVoice   = "en-us"
	defaultTTSSpeed   = 150
	defaultTTSTimeout = 15 * time.Second
	defaultTTSChars   = 500
	// The disk cache holds spoken client names: files unused this long are
	// deleted, and at most defaultTTSCacheFiles are kept (least recently used go
	// first).
	defaultTTSCacheAge   = 30 * 24 * time.Hour
	defaultTTSCacheFiles = 2000
	// ttsPurgeEvery is how often renders purge the disk cache.
	ttsPurgeEvery    = time.Hour
	defaultTTSMemory = 64
	// maxTTSStderr bounds what is kept of the synthesizer's error output.
	maxTTSStderr = 512
)

// TTSConfig sets up a TTS. The zero value means espeak-ng from PATH, voice en-us at
// 150 words per minute, memory cache only.
type TTSConfig struct {
	// CacheDir keeps rendered prompts as WAV files (mode 0600; the directory is
	// created 0700) so they survive restarts; empty means memory only.
	CacheDir string
	// Command is the espeak-ng binary, a name looked up in PATH or a path; empty
	// means "espeak-ng". It is called as COMMAND -v VOICE -s SPEED -w FILE -- TEXT,
	// never through a shell.
	Command string
	// Voice is the espeak-ng voice; empty means "en-us".
	Voice string
	// Speed in words per minute; 0 means 150.
	Speed int
	// Timeout bounds one synthesis; 0 means 15 s.
	Timeout time.Duration
	// MaxChars caps the text (longer text is cut at a word boundary); 0 means 500.
	MaxChars int
	// MemoryEntries bounds the in-memory cache (least recently used evicted); 0
	// means 64.
	MemoryEntries int
	// CacheMaxAge deletes cache files not used for this long (they hold spoken
	// client names); 0 means 30 days.
	CacheMaxAge time.Duration
	// CacheMaxFiles bounds the disk cache (least recently used deleted first); 0
	// means 2,000.
	CacheMaxFiles int
	Logger        *slog.Logger
}

// TTS renders text to prompts with espeak-ng and caches them by (voice, speed,
// text), in memory (bounded LRU) and optionally on disk. Safe for concurrent use;
// concurrent renders of the same text run the synthesizer once.
type TTS struct {
	cfg  TTSConfig
	path string // resolved binary; empty when not installed
	log  *slog.Logger

	mu       sync.Mutex
	lru      *list.List // of *ttsEntry, most recent first
	byKey    map[string]*list.Element
	inflight map[string]*ttsCall
	purged   time.Time // last disk cache purge
}

type ttsEntry struct {
	key    string
	prompt *Prompt
}

type ttsCall struct {
	done   chan struct{}
	prompt *Prompt
	err    error
}

// NewTTS looks the synthesizer up (exec.LookPath) and prepares the cache
// directory. A missing synthesizer is not an error: Render then returns ErrNoTTS
// (unless the text is already cached on disk).
func NewTTS(cfg TTSConfig) (*TTS, error) {
	if cfg.Command == "" {
		cfg.Command = defaultTTSCommand
	}
	if cfg.Voice == "" {
		cfg.Voice = defaultTTSVoice
	}
	if cfg.Speed <= 0 {
		cfg.Speed = defaultTTSSpeed
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = defaultTTSTimeout
	}
	if cfg.MaxChars <= 0 {
		cfg.MaxChars = defaultTTSChars
	}
	if cfg.MemoryEntries <= 0 {
		cfg.MemoryEntries = defaultTTSMemory
	}
	if cfg.CacheMaxAge <= 0 {
		cfg.CacheMaxAge = defaultTTSCacheAge
	}
	if cfg.CacheMaxFiles <= 0 {
		cfg.CacheMaxFiles = defaultTTSCacheFiles
	}
	if strings.HasPrefix(cfg.Voice, "-") || strings.ContainsFunc(cfg.Voice, unicode.IsSpace) {
		return nil, fmt.Errorf("media: tts: invalid voice %q", cfg.Voice)
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &TTS{
		cfg:      cfg,
		log:      log,
		lru:      list.New(),
		byKey:    make(map[string]*list.Element),
		inflight: make(map[string]*ttsCall),
	}
	if p, err := exec.LookPath(cfg.Command); err == nil {
		t.path = p
	} else {
		log.Info("text-to-speech not available, built-in prompts will be used", "command", cfg.Command)
	}
	if cfg.CacheDir != "" {
		if err := os.MkdirAll(cfg.CacheDir, 0o700); err != nil {
			return nil, fmt.Errorf("media: tts cache dir: %w", err)
		}
		if n, err := t.Purge(time.Now()); err != nil {
			log.Warn("tts cache purge", "err", err)
		} else if n > 0 {
			log.Info("tts cache purged", "removed", n)
		}
	}
	return t, nil
}

// Purge deletes disk cache files unused for CacheMaxAge (a use refreshes a file's
// modification time), leftovers of interrupted renders, and the least recently
// used files beyond CacheMaxFiles. It reports how many files it removed. NewTTS
// purges once, and renders at most once an hour after that.
func (t *TTS) Purge(now time.Time) (int, error) {
	if t.cfg.CacheDir == "" {
		return 0, nil
	}
	t.mu.Lock()
	t.purged = now
	t.mu.Unlock()
	ents, err := os.ReadDir(t.cfg.CacheDir)
	if err != nil {
		return 0, fmt.Errorf("media: tts cache: %w", err)
	}
	type file struct {
		name string
		used time.Time
	}
	var keep []file
	removed := 0
	remove := func(name string) {
		if err := os.Remove(filepath.Join(t.cfg.CacheDir, name)); err == nil {
			removed++
		}
	}
	for _, e := range ents {
		name := e.Name()
		if !e.Type().IsRegular() || !strings.HasPrefix(name, "tts-") {
			continue // not ours
		}
		info, err := e.Info()
		if err != nil {
			continue
		}
		switch {
		case strings.HasSuffix(name, ".wav.tmp"):
			// A render in progress is younger than its timeout.
			if now.Sub(info.ModTime()) > 2*t.cfg.Timeout {
				remove(name)
			}
		case strings.HasSuffix(name, ".wav"):
			if now.Sub(info.ModTime()) > t.cfg.CacheMaxAge {
				remove(name)
			} else {
				keep = append(keep, file{name, info.ModTime()})
			}
		}
	}
	if extra := len(keep) - t.cfg.CacheMaxFiles; extra > 0 {
		slices.SortFunc(keep, func(a, b file) int { return a.used.Compare(b.used) })
		for _, f := range keep[:extra] {
			remove(f.name)
		}
	}
	return removed, nil
}

// purgeNow purges the disk cache when the last purge is ttsPurgeEvery old.
func (t *TTS) purgeNow() {
	now := time.Now()
	t.mu.Lock()
	due := t.cfg.CacheDir != "" && now.Sub(t.purged) >= ttsPurgeEvery
	t.mu.Unlock()
	if due {
		if _, err := t.Purge(now); err != nil {
			t.log.Warn("tts cache purge", "err", err)
		}
	}
}

// Available reports whether the synthesizer was found.
func (t *TTS) Available() bool { return t.path != "" }

// Render returns text spoken as an 8 kHz mono prompt. The text is cleaned first
// (control characters become spaces, runs of spaces collapse, invalid UTF-8 is
// dropped, the length is capped at MaxChars). The result comes from the memory
// cache, else the disk cache, else one espeak-ng run bounded by Timeout and ctx.
// The returned prompt is shared: do not modify it.
//
// Errors: ErrNoTTS when espeak-ng is not installed (fall back to a built-in
// prompt); an error for empty text or a failed synthesis.
func (t *TTS) Render(ctx context.Context, text string) (*Prompt, error) {
	text = cleanTTSText(text, t.cfg.MaxChars)
	if text == "" {
		return nil, errors.New("media: tts: empty text")
	}
	key := t.key(text)
	for {
		t.mu.Lock()
		if el, ok := t.byKey[key]; ok {
			t.lru.MoveToFront(el)
			p := el.Value.(*ttsEntry).prompt
			t.mu.Unlock()
			return p, nil
		}
		c, busy := t.inflight[key]
		if !busy {
			c = &ttsCall{done: make(chan struct{})}
			t.inflight[key] = c
			t.mu.Unlock()
			c.prompt, c.err = t.load(ctx, key, text)
			t.mu.Lock()
			delete(t.inflight, key)
			if c.err == nil {
				t.remember(key, c.prompt)
			}
			t.mu.Unlock()
			close(c.done)
			return c.prompt, c.err
		}
		t.mu.Unlock()
		select {
		case <-c.done:
			if c.err == nil {
				return c.prompt, nil
			}
			if errors.Is(c.err, ErrNoTTS) {
				return nil, c.err
			}
			// The other caller's render failed (maybe its ctx ended): try ourselves.
		case <-ctx.Done():
			return nil, fmt.Errorf("media: tts: %w", ctx.Err())
		}
	}
}

// key is the cache key: a SHA-256 of voice, speed and text.
func (t *TTS) key(text string) string {
	h := sha256.New()
	h.Write([]byte(t.cfg.Voice))
	h.Write([]byte{0})
	h.Write([]byte(strconv.Itoa(t.cfg.Speed)))
	h.Write([]byte{0})
	h.Write([]byte(text))
	return hex.EncodeToString(h.Sum(nil))
}

// remember adds to the memory cache, evicting the least recently used; t.mu held.
func (t *TTS) remember(key string, p *Prompt) {
	if el, ok := t.byKey[key]; ok {
		t.lru.MoveToFront(el)
		return
	}
	t.byKey[key] = t.lru.PushFront(&ttsEntry{key: key, prompt: p})
	for t.lru.Len() > t.cfg.MemoryEntries {
		old := t.lru.Back()
		t.lru.Remove(old)
		delete(t.byKey, old.Value.(*ttsEntry).key)
	}
}

func (t *TTS) cachePath(key string) string {
	return filepath.Join(t.cfg.CacheDir, "tts-"+key+".wav")
}

// load reads the disk cache or renders.
func (t *TTS) load(ctx context.Context, key, text string) (*Prompt, error) {
	name := "tts-" + key[:12]
	if t.cfg.CacheDir != "" {
		data, err := os.ReadFile(t.cachePath(key))
		switch {
		case err == nil:
			if p, perr := ParseWAV(name, data); perr == nil && len(p.Samples) > 0 {
				// Mark the file used, so the purge keeps it.
				now := time.Now()
				_ = os.Chtimes(t.cachePath(key), now, now)
				return p, nil
			}
			t.log.Warn("tts cache file unusable, rendering again", "file", t.cachePath(key))
		case !errors.Is(err, fs.ErrNotExist):
			t.log.Warn("tts cache read", "err", err)
		}
	}
	if t.path == "" {
		return nil, ErrNoTTS
	}
	return t.render(ctx, key, name, text)
}

// render runs the synthesizer into a private temporary file (0600) in the cache
// directory, decodes it, and moves it into place.
func (t *TTS) render(ctx context.Context, key, name, text string) (*Prompt, error) {
	dir := t.cfg.CacheDir
	if dir == "" {
		dir = os.TempDir()
	}
	tmp, err := os.CreateTemp(dir, "tts-*.wav.tmp")
	if err != nil {
		return nil, fmt.Errorf("media: tts: %w", err)
	}
	tmpName := tmp.Name()
	tmp.Close()
	keep := false
	defer func() {
		if !keep {
			os.Remove(tmpName)
		}
	}()

	ctx, cancel := context.WithTimeout(ctx, t.cfg.Timeout)
	defer cancel()
	// Arguments only, no shell; "--" ends the options so text starting with '-' is
	// spoken, not parsed.
	cmd := exec.CommandContext(ctx, t.path,
		"-v", t.cfg.Voice, "-s", strconv.Itoa(t.cfg.Speed), "-w", tmpName, "--", text)
	var stderr cappedBuffer
	cmd.Stdout = &stderr
	cmd.Stderr = &stderr
	cmd.WaitDelay = time.Second
	started := time.Now()
	if err := cmd.Run(); err != nil {
		if ctx.Err() != nil {
			return nil, fmt.Errorf("media: tts: espeak-ng: %w", ctx.Err())
		}
		return nil, fmt.Errorf("media: tts: espeak-ng: %w: %s", err, strings.TrimSpace(stderr.String()))
	}
	data, err := os.ReadFile(tmpName)
	if err != nil {
		return nil, fmt.Errorf("media: tts: %w", err)
	}
	p, err := ParseWAV(name, data)
	if err != nil {
		return nil, fmt.Errorf("media: tts: %w", err)
	}
	if len(p.Samples) == 0 {
		return nil, errors.New("media: tts: espeak-ng produced no audio")
	}
	if t.cfg.CacheDir != "" {
		if err := os.Rename(tmpName, t.cachePath(key)); err != nil {
			t.log.Warn("tts cache write", "err", err)
		} else {
			keep = true
		}
		t.purgeNow()
	}
	t.log.Debug("tts rendered", "chars", utf8.RuneCountInString(text), "audio", p.Duration(), "took", time.Since(started).Round(time.Millisecond))
	return p, nil
}

// cleanTTSText makes outside text safe and bounded for the synthesizer: invalid
// UTF-8 dropped, control and other non-printing characters turned into spaces,
// whitespace collapsed, at most maxChars runes (cut at a space when one is near).
func cleanTTSText(s string, maxChars int) string {
	s = strings.ToValidUTF8(s, "")
	var b strings.Builder
	b.Grow(min(len(s), 4*maxChars))
	space, cut := false, false
	n := 0
	for _, r := range s {
		if unicode.IsSpace(r) || unicode.IsControl(r) || !unicode.IsPrint(r) {
			space = b.Len() > 0
			continue
		}
		if n >= maxChars {
			cut = true
			break
		}
		if space {
			if n+1 >= maxChars {
				cut = true
				break
			}
			b.WriteByte(' ')
			n++
			space = false
		}
		b.WriteRune(r)
		n++
	}
	out := b.String()
	if cut {
		if i := strings.LastIndexByte(out, ' '); i > len(out)*3/4 {
			out = out[:i]
		}
	}
	return out
}

// cappedBuffer keeps the first maxTTSStderr bytes written to it.
type cappedBuffer struct{ bytes.Buffer }

func (c *cappedBuffer) Write(p []byte) (int, error) {
	if room := maxTTSStderr - c.Len(); room > 0 {
		c.Buffer.Write(p[:min(len(p), room)])
	}
	return len(p), nil
}

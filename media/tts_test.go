package media

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode"
	"unicode/utf8"
)

// fakeEspeak writes a shell script that behaves like espeak-ng -w: it logs its
// arguments (one per line, bracketed) and copies a prepared WAV to the -w file.
// Text containing "slow" sleeps, "hang" never ends, "fail" exits 1.
func fakeEspeak(t *testing.T) (cmd, log string) {
	t.Helper()
	if _, err := exec.LookPath("sh"); err != nil {
		t.Skip("no sh")
	}
	dir := t.TempDir()
	wav := filepath.Join(dir, "voice.wav")
	if err := os.WriteFile(wav, EncodeWAV(Tone(440, 300*time.Millisecond).Samples), 0o600); err != nil {
		t.Fatal(err)
	}
	log = filepath.Join(dir, "calls.log")
	script := `#!/bin/sh
for a in "$@"; do printf '[%s]\n' "$a"; done >> '` + log + `'
echo --- >> '` + log + `'
out=""
while [ $# -gt 0 ]; do
	case "$1" in
	-w) out="$2"; shift 2 ;;
	--) shift; break ;;
	*) shift ;;
	esac
done
[ $# -eq 1 ] || exit 3
case "$1" in
*hang*) exec sleep 30 ;;
*slow*) sleep 0.3 ;;
*fail*) echo "voice not found" >&2; exit 1 ;;
esac
cp '` + wav + `' "$out"
`
	cmd = filepath.Join(dir, "espeak-ng")
	if err := os.WriteFile(cmd, []byte(script), 0o700); err != nil {
		t.Fatal(err)
	}
	return cmd, log
}

// calls returns the argument lists the fake was run with.
func calls(t *testing.T, log string) [][]string {
	t.Helper()
	b, err := os.ReadFile(log)
	if errors.Is(err, os.ErrNotExist) {
		return nil
	}
	if err != nil {
		t.Fatal(err)
	}
	var out [][]string
	var cur []string
	for _, line := range strings.Split(strings.TrimSuffix(string(b), "\n"), "\n") {
		if line == "---" {
			out = append(out, cur)
			cur = nil
			continue
		}
		cur = append(cur, strings.TrimSuffix(strings.TrimPrefix(line, "["), "]"))
	}
	return out
}

func TestTTSFallbackWithoutSynthesizer(t *testing.T) {
	// This is the path CI takes: espeak-ng is optional at run time.
	tts, err := NewTTS(TTSConfig{Command: filepath.Join(t.TempDir(), "no-such-espeak")})
	if err != nil {
		t.Fatal(err)
	}
	if tts.Available() {
		t.Fatal("available without a binary")
	}
	p, err := tts.Render(context.Background(), "Call from Ada Quist")
	if !errors.Is(err, ErrNoTTS) || p != nil {
		t.Fatalf("Render = %v, %v; want ErrNoTTS", p, err)
	}
	if _, err := tts.Render(context.Background(), " \x00\t "); err == nil || errors.Is(err, ErrNoTTS) {
		t.Errorf("empty text: %v", err)
	}
}

func TestTTSRenderAndCache(t *testing.T) {
	cmd, log := fakeEspeak(t)
	dir := filepath.Join(t.TempDir(), "tts-cache")
	tts, err := NewTTS(TTSConfig{Command: cmd, CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if !tts.Available() {
		t.Fatal("fake not found")
	}
	// Outside text: an option-looking start, shell syntax, control characters.
	text := "-w /etc/passwd; $(touch pwned) `id`\x07\r\n  matter   00101"
	p, err := tts.Render(context.Background(), text)
	if err != nil {
		t.Fatal(err)
	}
	if p.Duration() != 300*time.Millisecond {
		t.Errorf("prompt of %v", p.Duration())
	}
	c := calls(t, log)
	if len(c) != 1 {
		t.Fatalf("%d calls", len(c))
	}
	args := c[0]
	want := []string{"-v", "en-us", "-s", "150", "-w", "", "--", "-w /etc/passwd; $(touch pwned) `id` matter 00101"}
	if len(args) != len(want) {
		t.Fatalf("args %q", args)
	}
	for i := range want {
		if i != 5 && args[i] != want[i] {
			t.Errorf("arg %d = %q, want %q", i, args[i], want[i])
		}
	}
	if _, err := os.Stat("pwned"); err == nil {
		t.Fatal("text went through a shell")
	}
	files, _ := filepath.Glob(filepath.Join(dir, "*"))
	if len(files) != 1 || !strings.HasSuffix(files[0], ".wav") {
		t.Fatalf("cache dir holds %q", files)
	}
	if fi, err := os.Stat(files[0]); err != nil || fi.Mode().Perm() != 0o600 {
		t.Errorf("cache file mode %v, %v", fi.Mode(), err)
	}
	if fi, err := os.Stat(dir); err != nil || fi.Mode().Perm() != 0o700 {
		t.Errorf("cache dir mode %v, %v", fi.Mode(), err)
	}

	// Memory hit: the same prompt, no new run.
	if p2, err := tts.Render(context.Background(), text); err != nil || p2 != p {
		t.Errorf("memory cache: %v", err)
	}
	// Disk hit from a fresh instance, even without the synthesizer.
	cold, err := NewTTS(TTSConfig{Command: "/nonexistent/espeak-ng", CacheDir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if p3, err := cold.Render(context.Background(), text); err != nil || len(p3.Samples) != len(p.Samples) {
		t.Errorf("disk cache: %v", err)
	}
	if n := len(calls(t, log)); n != 1 {
		t.Errorf("%d runs, want 1 (cached)", n)
	}
	// Another voice is another entry.
	other, _ := NewTTS(TTSConfig{Command: cmd, CacheDir: dir, Voice: "en-gb"})
	if _, err := other.Render(context.Background(), text); err != nil {
		t.Fatal(err)
	}
	if c := calls(t, log); len(c) != 2 || c[1][1] != "en-gb" {
		t.Errorf("calls %q", c)
	}
	if _, err := NewTTS(TTSConfig{Voice: "-x"}); err == nil {
		t.Error("option-like voice accepted")
	}
}

func TestTTSFailures(t *testing.T) {
	cmd, _ := fakeEspeak(t)
	tts, err := NewTTS(TTSConfig{Command: cmd, Timeout: 300 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tts.Render(context.Background(), "please fail"); err == nil || !strings.Contains(err.Error(), "voice not found") {
		t.Errorf("failure: %v", err)
	}
	start := time.Now()
	if _, err := tts.Render(context.Background(), "hang forever"); !errors.Is(err, context.DeadlineExceeded) || time.Since(start) > 5*time.Second {
		t.Errorf("timeout: %v after %v", err, time.Since(start))
	}
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := tts.Render(ctx, "hang again"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled: %v", err)
	}
	// No temporary files left behind.
	if left, _ := filepath.Glob(filepath.Join(os.TempDir(), "tts-*.wav.tmp")); len(left) > 0 {
		for _, f := range left {
			if fi, err := os.Stat(f); err == nil && time.Since(fi.ModTime()) < time.Minute {
				t.Errorf("left %s", f)
			}
		}
	}
}

func TestTTSConcurrentAndBounded(t *testing.T) {
	cmd, log := fakeEspeak(t)
	tts, err := NewTTS(TTSConfig{Command: cmd, MemoryEntries: 2})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 5 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := tts.Render(context.Background(), "slow whisper"); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if n := len(calls(t, log)); n != 1 {
		t.Errorf("5 concurrent renders ran the synthesizer %d times", n)
	}
	for _, s := range []string{"one", "two", "three", "one"} {
		if _, err := tts.Render(context.Background(), s); err != nil {
			t.Fatal(err)
		}
	}
	// "slow whisper", one, two, three: "one" was evicted by "three" (2 entries).
	if n := len(calls(t, log)); n != 5 {
		t.Errorf("%d runs, want 5 (LRU of 2)", n)
	}
	if tts.lru.Len() != 2 || len(tts.byKey) != 2 {
		t.Errorf("memory cache holds %d/%d", tts.lru.Len(), len(tts.byKey))
	}
}

func TestCleanTTSText(t *testing.T) {
	for _, tc := range []struct {
		in   string
		max  int
		want string
	}{
		{"Call from Ada Quist", 100, "Call from Ada Quist"},
		{"  a\tb\r\nc\x00d\x1b[31m ", 100, "a b c d [31m"},
		{"bad \xff utf8", 100, "bad utf8"},
		{"zero\u200bwidth", 100, "zero width"},
		{"one two three four five", 14, "one two three"},
		{"abcdefghij", 4, "abcd"},
		{"exactly ten", 11, "exactly ten"},
		{"", 10, ""},
	} {
		if got := cleanTTSText(tc.in, tc.max); got != tc.want {
			t.Errorf("clean(%q, %d) = %q, want %q", tc.in, tc.max, got, tc.want)
		}
	}
}

func TestTTSEspeakNG(t *testing.T) {
	if _, err := exec.LookPath("espeak-ng"); err != nil {
		// espeak-ng is optional at run time; the fallback is covered by
		// TestTTSFallbackWithoutSynthesizer. CI installs it, so there it must run.
		if os.Getenv("CI") == "true" {
			t.Fatal("espeak-ng not installed: .ci/run installs it")
		}
		t.Skip("espeak-ng not installed")
	}
	tts, err := NewTTS(TTSConfig{CacheDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	p, err := tts.Render(context.Background(), "Call from Ada Quist, matter 00101 Quist. Press 1 to accept.")
	if err != nil {
		t.Fatal(err)
	}
	if d := p.Duration(); d < time.Second || d > 15*time.Second {
		t.Errorf("speech of %v", d)
	}
	if r := rms(p.Samples); r < 300 {
		t.Errorf("speech rms %.0f", r)
	}
}

func FuzzCleanTTSText(f *testing.F) {
	for _, s := range []string{"Call from Ada Quist", "-v x", "a\x00b\r\nc", "\xff\xfe", "$(id) `id`", "\u202eevil"} {
		f.Add(s, 20)
	}
	f.Fuzz(func(t *testing.T, s string, limit int) {
		limit = 1 + int(uint(limit)%600)
		out := cleanTTSText(s, limit)
		if !utf8.ValidString(out) || utf8.RuneCountInString(out) > limit {
			t.Fatalf("clean(%q, %d) = %q", s, limit, out)
		}
		if strings.ContainsFunc(out, func(r rune) bool { return unicode.IsControl(r) || !unicode.IsPrint(r) && r != ' ' }) {
			t.Fatalf("clean(%q) kept a control character: %q", s, out)
		}
		if strings.HasPrefix(out, " ") || strings.HasSuffix(out, " ") || strings.Contains(out, "  ") {
			t.Fatalf("clean(%q) = %q: spaces not collapsed", s, out)
		}
	})
}

// The disk cache holds spoken client names: files unused for CacheMaxAge go,
// used ones stay, the least recently used beyond CacheMaxFiles go, stale
// half-written renders go, and files that are not the cache's are left alone.
func TestTTSCachePurge(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	write := func(name string, age time.Duration) {
		t.Helper()
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte("x"), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(p, now.Add(-age), now.Add(-age)); err != nil {
			t.Fatal(err)
		}
	}
	write("tts-old.wav", 40*24*time.Hour)
	write("tts-a.wav", 3*time.Hour)
	write("tts-b.wav", 2*time.Hour)
	write("tts-c.wav", time.Hour)
	write("tts-x.wav.tmp", time.Hour)
	write("tts-y.wav.tmp", time.Second)
	write("notes.txt", 400*24*time.Hour)
	tts, err := NewTTS(TTSConfig{Command: "/nonexistent/espeak-ng", CacheDir: dir, CacheMaxFiles: 2})
	if err != nil {
		t.Fatal(err)
	}
	var left []string
	ents, _ := os.ReadDir(dir)
	for _, e := range ents {
		left = append(left, e.Name())
	}
	want := []string{"notes.txt", "tts-b.wav", "tts-c.wav", "tts-y.wav.tmp"}
	if !slices.Equal(left, want) {
		t.Fatalf("after the purge at start: %v, want %v", left, want)
	}
	if n, err := tts.Purge(now); err != nil || n != 0 {
		t.Fatalf("second purge removed %d (%v), want 0", n, err)
	}
}

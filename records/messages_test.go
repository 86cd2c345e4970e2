package records

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"
	"time"
)

func newMessageStore(t *testing.T) *MessageStore {
	t.Helper()
	s, err := NewMessageStore(context.Background(), openTestDB(t), filepath.Join(t.TempDir(), "messages"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// record writes a short recording for call id at t and returns the closed writer.
func record(t *testing.T, s *MessageStore, at time.Time, id string) *WAVWriter {
	t.Helper()
	w, err := s.NewRecording(at, id)
	if err != nil {
		t.Fatal(err)
	}
	if err := w.WriteSamples(make([]int16, 8000*3)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return w
}

func TestMessageRoundTrip(t *testing.T) {
	ctx := context.Background()
	s := newMessageStore(t)
	if st, err := os.Stat(s.Dir()); err != nil || st.Mode().Perm() != 0o700 {
		t.Fatalf("messages folder: %v %v", st, err)
	}
	w := record(t, s, t0, "c-1")
	m, err := s.Add(ctx, Message{
		Time: t0, CallID: "c-1", Caller: "+12175552171", ContactID: 1001, MatterID: 2002,
		Rule: "felix", Duration: w.Duration(), File: w.Path(),
	})
	if err != nil {
		t.Fatal(err)
	}
	if m.ID == 0 || m.Size != 44+48000 || strings.Contains(m.File, "/") || m.Duration != 3*time.Second {
		t.Fatalf("added %+v", m)
	}
	got, err := s.Get(ctx, m.ID)
	if err != nil {
		t.Fatal(err)
	}
	if !reflect.DeepEqual(got, m) {
		t.Fatalf("get:\n got %+v\nwant %+v", got, m)
	}
	p, err := s.Path(got)
	if err != nil || p != w.Path() || !filepath.IsAbs(p) {
		t.Fatalf("path %q %v, want %q", p, err, w.Path())
	}
	if st, err := os.Stat(p); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("recording: %v %v", st, err)
	}
	list, err := s.List(ctx, MessageFilter{})
	if err != nil || len(list) != 1 || !reflect.DeepEqual(list[0], m) {
		t.Fatalf("list %+v %v", list, err)
	}
	if _, err := s.Get(ctx, 999); !errors.Is(err, ErrNotFound) {
		t.Fatalf("missing: %v", err)
	}

	b, _ := json.Marshal(m)
	var back Message
	if err := json.Unmarshal(b, &back); err != nil || !reflect.DeepEqual(back, m) {
		t.Fatalf("json %s -> %+v %v", b, back, err)
	}
	if !strings.Contains(string(b), `"duration_seconds":3`) {
		t.Fatalf("json %s", b)
	}
}

func TestMessageAddChecksFile(t *testing.T) {
	ctx := context.Background()
	s := newMessageStore(t)
	outside := filepath.Join(t.TempDir(), "x.wav")
	if err := os.WriteFile(outside, []byte("RIFF"), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, file := range map[string]string{
		"empty":   "",
		"missing": filepath.Join(s.Dir(), "nope.wav"),
		"outside": outside,
		"escape":  "../x.wav",
	} {
		if _, err := s.Add(ctx, Message{Time: t0, File: file}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	// A name relative to the folder is accepted as is.
	if err := os.WriteFile(filepath.Join(s.Dir(), "a.wav"), []byte("RIFF"), 0o600); err != nil {
		t.Fatal(err)
	}
	m, err := s.Add(ctx, Message{File: "a.wav"})
	if err != nil || m.File != "a.wav" || m.Size != 4 || m.Time.IsZero() {
		t.Fatalf("relative: %+v %v", m, err)
	}
}

func TestMessageListOrderAndFilter(t *testing.T) {
	ctx := context.Background()
	s := newMessageStore(t)
	var ids []int64
	for i := range 4 {
		at := t0.Add(time.Duration(i) * time.Hour)
		w := record(t, s, at, "c")
		m, err := s.Add(ctx, Message{Time: at, File: w.Path(), Duration: w.Duration()})
		if err != nil {
			t.Fatal(err)
		}
		ids = append(ids, m.ID)
	}
	got, err := s.List(ctx, MessageFilter{Since: t0.Add(time.Hour), Limit: 2})
	if err != nil || len(got) != 2 || got[0].ID != ids[3] || got[1].ID != ids[2] {
		t.Fatalf("list %+v %v", got, err)
	}
	got, err = s.List(ctx, MessageFilter{Until: t0.Add(time.Hour)})
	if err != nil || len(got) != 1 || got[0].ID != ids[0] {
		t.Fatalf("until %+v %v", got, err)
	}
}

func TestMessageDeleteRemovesFile(t *testing.T) {
	ctx := context.Background()
	s := newMessageStore(t)
	w := record(t, s, t0, "c-1")
	m, err := s.Add(ctx, Message{Time: t0, File: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, m.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(w.Path()); !errors.Is(err, os.ErrNotExist) {
		t.Fatalf("file kept: %v", err)
	}
	if _, err := s.Get(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("row kept: %v", err)
	}
	if err := s.Delete(ctx, m.ID); !errors.Is(err, ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}

	// A file already gone is not an error.
	w = record(t, s, t0, "c-2")
	m, err = s.Add(ctx, Message{Time: t0, File: w.Path()})
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(w.Path())
	if err := s.Delete(ctx, m.ID); err != nil {
		t.Fatalf("missing file: %v", err)
	}
	// IDs are not reused after a delete.
	w = record(t, s, t0, "c-3")
	m2, err := s.Add(ctx, Message{Time: t0, File: w.Path()})
	if err != nil || m2.ID <= m.ID {
		t.Fatalf("id %d after %d: %v", m2.ID, m.ID, err)
	}
}

func TestMessageDeleteStaysInFolder(t *testing.T) {
	// A row pointing through a symlink out of the folder cannot delete the target.
	ctx := context.Background()
	s := newMessageStore(t)
	victimDir := t.TempDir()
	victim := filepath.Join(victimDir, "keep.wav")
	if err := os.WriteFile(victim, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(victimDir, filepath.Join(s.Dir(), "link")); err != nil {
		t.Skip(err)
	}
	m, err := s.Add(ctx, Message{Time: t0, File: "link/keep.wav"})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, m.ID); err == nil {
		t.Error("delete through a symlink out of the folder succeeded")
	}
	if _, err := os.Stat(victim); err != nil {
		t.Fatalf("file outside the messages folder deleted: %v", err)
	}
}

func TestMessagePath(t *testing.T) {
	at := time.Date(2026, 11, 24, 10, 0, 5, 123e6, time.FixedZone("CST", -6*3600))
	seen := map[string]bool{}
	for range 100 {
		p := MessagePath("/var/lib/matterline/messages", at, "../../etc/passwd;rm -rf /\x00\n")
		if seen[p] {
			t.Fatalf("duplicate %s", p)
		}
		seen[p] = true
		dir, name := filepath.Split(p)
		if dir != "/var/lib/matterline/messages/" {
			t.Fatalf("dir %q", dir)
		}
		if !regexp.MustCompile(`^20261124T160005\.123Z-[A-Za-z0-9_-]+-[0-9a-f]{8}\.wav$`).MatchString(name) {
			t.Fatalf("name %q", name)
		}
	}
	long := MessagePath("d", at, strings.Repeat("a", 500))
	if len(filepath.Base(long)) > 80 {
		t.Fatalf("name too long: %s", long)
	}
	if name := filepath.Base(MessagePath("d", at, "")); !regexp.MustCompile(`^20261124T160005\.123Z-[0-9a-f]{8}\.wav$`).MatchString(name) {
		t.Fatalf("no id: %s", name)
	}
}

package routing

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/media"
)

// audioFirm makes an audio directory holding a good felix.wav, a sparse 50 MB
// WAV, a text file, a FIFO and links pointing out of the directory.
func audioFirm(t *testing.T) (Firm, string) {
	t.Helper()
	dir := filepath.Join(t.TempDir(), "audio")
	if err := os.MkdirAll(filepath.Join(dir, "staff"), 0o755); err != nil {
		t.Fatal(err)
	}
	write := func(name string, b []byte) {
		if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	write("felix.wav", media.EncodeWAV(make([]int16, 800)))
	write("staff/ada.wav", media.EncodeWAV(make([]int16, 800)))
	write("notes.wav", []byte("root:x:0:0:root:/root:/bin/bash\n"))
	// 50 MB: a valid header declaring a 50 MB data chunk, sparse on disk
	big := media.EncodeWAV(nil)
	big[40], big[41], big[42], big[43] = 0, 0, 0x20, 0x03 // data size 0x03200000
	write("big.wav", big)
	if err := os.Truncate(filepath.Join(dir, "big.wav"), 44+50<<20); err != nil {
		t.Fatal(err)
	}
	if err := syscall.Mkfifo(filepath.Join(dir, "pipe.wav"), 0o644); err != nil {
		t.Fatal(err)
	}
	outside := filepath.Join(t.TempDir(), "other-client-message.wav")
	if err := os.WriteFile(outside, media.EncodeWAV(make([]int16, 800)), 0o644); err != nil {
		t.Fatal(err)
	}
	for name, target := range map[string]string{"zero.wav": "/dev/zero", "passwd.wav": "/etc/passwd", "leak.wav": outside, "inside.wav": "felix.wav"} {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	return Firm{TimeZone: "America/New_York", AudioDir: dir}, dir
}

var audioAttacks = []struct{ audio, want string }{
	{"/dev/zero", `"/dev/zero" is outside the audio directory`},
	{"/etc/passwd", `"/etc/passwd" is outside the audio directory`},
	{"../../etc/passwd", `"../../etc/passwd" is outside the audio directory`},
	{"staff/../../x.wav", `is outside the audio directory`},
	{"zero.wav", `"zero.wav" resolves to /dev/zero, outside the audio directory`},
	{"passwd.wav", `"passwd.wav" resolves to /etc/passwd, outside the audio directory`},
	{"leak.wav", `"leak.wav" resolves to `},
	{"big.wav", `"big.wav" is 52428844 bytes, over the 5242880-byte (5 MiB) limit`},
	{"pipe.wav", `"pipe.wav" is not a regular file (a FIFO)`},
	{"staff", `"staff" is not a regular file (a directory)`},
	{"notes.wav", `"notes.wav" is not a playable WAV file`},
	{"missing.wav", `"missing.wav": no such file in the audio directory`},
}

// Every attack is refused when the rule is saved (Put: CLI and HTTP; ParseDoc
// and Import: rules import), with an error naming the rule and message_audio.
func TestMessageAudioRefusedAtSave(t *testing.T) {
	firm, dir := audioFirm(t)
	st, _ := openTestStoreFirm(t, firm)
	ctx := t.Context()
	for _, tt := range audioAttacks {
		done := make(chan error, 1)
		go func() {
			r := NewRule("felix", "101")
			r.MessageAudio = tt.audio
			done <- st.Put(ctx, r, false)
		}()
		var err error
		select {
		case err = <-done:
		case <-time.After(5 * time.Second):
			t.Fatalf("Put(message_audio=%q) blocked", tt.audio)
		}
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "message_audio" || !errors.Is(err, ErrBadAudio) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Put(message_audio=%q) = %v, want %q", tt.audio, err, tt.want)
		}
		file := "rules:\n  - name: felix\n    to: \"101\"\n    message_audio: " + tt.audio + "\n"
		if _, _, err := ParseDoc([]byte(file), firm); err == nil || !strings.Contains(err.Error(), `rule "felix": message_audio:`) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseDoc(message_audio=%q) = %v", tt.audio, err)
		}
		r := NewRule("felix", "101")
		r.MessageAudio = tt.audio
		if _, err := st.Import(ctx, []Rule{r}, nil, false); !errors.Is(err, ErrBadAudio) {
			t.Errorf("Import(message_audio=%q) = %v", tt.audio, err)
		}
	}
	if n := len(st.Rules().All()); n != 0 {
		t.Fatalf("%d rules written", n)
	}
	// accepted: relative, in a subfolder, absolute inside, a link that stays inside
	for name, audio := range map[string]string{"a": "felix.wav", "b": "staff/ada.wav", "c": filepath.Join(dir, "felix.wav"), "d": "inside.wav"} {
		r := NewRule(name, "101")
		r.MessageAudio = audio
		if err := st.Put(ctx, r, false); err != nil {
			t.Errorf("Put(message_audio=%q) = %v", audio, err)
		}
	}
	// calls read the resolved path; the stored value is what the admin wrote
	d := st.Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: "b"}, time.Now())
	if d.Def == nil || d.Def.MessageAudio != filepath.Join(realPath(t, dir), "staff", "ada.wav") {
		t.Errorf("Def = %+v", d.Def)
	}
	if rs, _ := st.Rules().Lookup("b"); rs.Rule.MessageAudio != "staff/ada.wav" {
		t.Errorf("stored message_audio = %q", rs.Rule.MessageAudio)
	}
	if _, err := media.LoadWAV(d.Def.MessageAudio); err != nil {
		t.Errorf("LoadWAV(Def.MessageAudio) = %v", err)
	}
}

func realPath(t *testing.T, p string) string {
	t.Helper()
	r, err := filepath.EvalSymlinks(p)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// The same attacks written with sqlite3 are skipped on load and listed invalid
// with the reason; a call never gets the path.
func TestMessageAudioHandEditedRowsSkipped(t *testing.T) {
	firm, _ := audioFirm(t)
	st, path := openTestStoreFirm(t, firm)
	other := secondConn(t, path)
	for i, tt := range audioAttacks {
		if _, err := other.Exec(`INSERT INTO rules (name, destination, message_audio) VALUES (?, ?, ?)`,
			"r"+string(rune('a'+i)), "10"+string(rune('0'+i%10)), tt.audio); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := other.Exec(`INSERT INTO rules (name, destination, message_audio) VALUES ('good', '200', 'felix.wav')`); err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(t.Context()); err != nil {
		t.Fatal(err)
	}
	for i, tt := range audioAttacks {
		name := "r" + string(rune('a'+i))
		rs, ok := st.Rules().Lookup(name)
		if !ok || rs.Valid() || !strings.Contains(rs.Err.Error(), tt.want) {
			t.Errorf("row %s (message_audio=%q) = %v, want invalid: %q", name, tt.audio, rs.Err, tt.want)
		}
		if d := st.Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: name}, time.Now()); d.Action != ActionNone || d.Reason != ReasonRuleInvalid || d.Def != nil {
			t.Errorf("decision for %s = %+v", name, d)
		}
	}
	if n := len(st.Rules().Invalid()); n != len(audioAttacks) {
		t.Errorf("%d invalid rows, want %d", n, len(audioAttacks))
	}
	if d := st.Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: "good"}, time.Now()); d.Action != ActionTransfer {
		t.Errorf("good row = %+v", d)
	}
}

// Without an audio directory no rule can name a file.
func TestMessageAudioNeedsDirectory(t *testing.T) {
	r := NewRule("felix", "101")
	r.MessageAudio = "felix.wav"
	if err := ValidateSet([]Rule{r}, Firm{TimeZone: "UTC"}); !errors.Is(err, ErrBadAudio) || !strings.Contains(err.Error(), "no directory for message audio is configured") {
		t.Errorf("ValidateSet = %v", err)
	}
}

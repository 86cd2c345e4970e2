package main

import (
	"bytes"
	"context"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
)

// TestDemoCall runs `matterline demo --call` and checks the steps it reports, in
// order, and that audio went both ways through the bridge.
func TestDemoCall(t *testing.T) {
	if testing.Short() {
		t.Skip("places a full call (about 12 s)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	before := runtime.NumGoroutine()
	var out, errb bytes.Buffer
	code := run(ctx, []string{"demo", "--call"}, stdio{&out, &errb})
	t.Logf("output:\n%s", out.String())
	if code != 0 {
		t.Fatalf("exit status %d; stderr:\n%s", code, errb.String())
	}
	steps := []string{
		"demo server up",
		"caller     INVITE sent from +12175552171 to sip:demo@127.0.0.1:",
		"caller     call answered: 200 OK",
		"lookup: found Ada Quist (Clio contact 1001), matter 00101-Quist, responsible staff Felix Dubinsky",
		"caller     greeting heard",
		// The attorney's phone rings as the key is pressed, while the message
		// plays: these four come in any order.
		"attorney   whisper heard",
		"attorney   presses key 1",
		"bridged:",
		"bridged:",
		"caller     hangs up: BYE sent",
		"attorney   BYE received",
		"call record: outcome bridged, rule felix (warm) to +12175550101, lookup found, ended caller_bye",
		"matterline as `matterline calls --limit 1` lists it with the demo's configuration file:",
		"matterline   TIME",
		"matterline   2", // the record's row, by its date
		"+12175552171",
		"bridged",
		"summary    demo call OK",
	}
	text := out.String()
	pos := 0
	for _, s := range steps {
		i := strings.Index(text[pos:], s)
		if i < 0 {
			t.Fatalf("step %q missing after offset %d", s, pos)
		}
		pos += i + len(s)
	}
	for _, s := range []string{
		"caller     presses key 1",
		"caller     message before transfer heard",
		"attorney   phone rings: INVITE to +12175550101 from +12175552171",
		"attorney   answers: 200 OK",
		"caller hears the attorney (820 Hz tone",
		"attorney hears the caller (1500 Hz tone",
		"caller     hears ringback (440+480 Hz)",
	} {
		if !strings.Contains(text, s) {
			t.Errorf("missing %q", s)
		}
	}
	// Every line starts with its time since the start.
	line := regexp.MustCompile(`^ *\d+\.\d{3}s  \S`)
	for _, l := range strings.Split(strings.TrimSpace(text), "\n") {
		if !line.MatchString(l) {
			t.Errorf("line without timing: %q", l)
		}
	}
	if errb.Len() != 0 {
		t.Errorf("stderr:\n%s", errb.String())
	}
	// Everything the run started has stopped: server, phones, sandbox Clio.
	deadline := time.Now().Add(10 * time.Second)
	for runtime.NumGoroutine() > before && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if n := runtime.NumGoroutine(); n > before {
		buf := make([]byte, 1<<20)
		t.Errorf("goroutines: %d before the run, %d after\n%s", before, n, buf[:runtime.Stack(buf, true)])
	}
}

// TestDemoAnswersACall starts plain `matterline demo`, calls it with the phone
// package's caller as the demo client, hears the greeting, hangs up, and stops
// the demo by cancelling its context.
func TestDemoAnswersACall(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var out, errb lockedBuffer
	done := make(chan int, 1)
	go func() { done <- run(ctx, []string{"demo"}, stdio{&out, &errb}) }()

	addr := regexp.MustCompile(`sip:demo@(\S+) \(UDP`)
	var target string
	deadline := time.Now().Add(20 * time.Second)
	for target == "" {
		if m := addr.FindStringSubmatch(out.String()); m != nil {
			target = "sip:demo@" + m[1]
			break
		}
		select {
		case code := <-done:
			t.Fatalf("demo exited with %d before it was ready; stderr:\n%s", code, errb.String())
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatalf("demo not ready; output:\n%s", out.String())
		}
	}

	caller, err := phone.NewCaller(phone.CallerConfig{From: "+12175552171", DisplayName: "Ada Quist"})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	call, err := caller.Dial(cctx, target, phone.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Listen(cctx, phone.Sound{For: 500 * time.Millisecond}); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	if err := call.Hangup(cctx); err != nil {
		t.Fatal(err)
	}

	cancel()
	select {
	case code := <-done:
		if code != 0 {
			t.Fatalf("demo exit status %d; stderr:\n%s", code, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop after its context was cancelled")
	}
}

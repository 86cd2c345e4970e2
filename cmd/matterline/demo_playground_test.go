package main

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/phone"
)

// buildMatterline builds this command into a temporary directory and returns the
// binary's path.
func buildMatterline(t *testing.T) string {
	t.Helper()
	goTool, err := exec.LookPath("go")
	if err != nil {
		t.Skip("no go tool on PATH to build the binary")
	}
	bin := filepath.Join(t.TempDir(), "matterline")
	build := exec.Command(goTool, "build", "-o", bin, ".")
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	return bin
}

// cleanEnv is the environment of this process without any MATTERLINE_ variable,
// so that only what the demo prints configures the commands.
func cleanEnv() []string {
	var env []string
	for _, kv := range os.Environ() {
		if !strings.HasPrefix(kv, "MATTERLINE_") {
			env = append(env, kv)
		}
	}
	return env
}

// demoBlock is the playground block the demo printed.
type demoBlock struct {
	export     string   // export MATTERLINE_CONFIG=...
	configPath string   // the file it names
	commands   []string // each line after the export line, as printed
	withConfig string   // the example with -config instead of the export
}

func parseDemoBlock(t *testing.T, out string) demoBlock {
	t.Helper()
	var b demoBlock
	lines := strings.Split(out, "\n")
	for i, l := range lines {
		if !strings.HasPrefix(l, "  export "+EnvConfig+"=") {
			continue
		}
		b.export = strings.TrimSpace(l)
		b.configPath = strings.TrimPrefix(b.export, "export "+EnvConfig+"=")
		j := i + 1
		for ; j < len(lines) && strings.HasPrefix(lines[j], "  "); j++ {
			b.commands = append(b.commands, strings.TrimSpace(lines[j]))
		}
		if j+1 < len(lines) && strings.HasPrefix(lines[j], "Without the export line") {
			b.withConfig = strings.TrimSpace(lines[j+1])
		}
		break
	}
	if b.export == "" || len(b.commands) == 0 || b.withConfig == "" {
		t.Fatalf("no playground block in the demo's output:\n%s", out)
	}
	return b
}

// shell runs script with sh -c in the clean environment and returns its
// output; the test fails unless it exits 0.
func shell(t *testing.T, ctx context.Context, script string) string {
	t.Helper()
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "sh", "-c", script)
	cmd.Env = cleanEnv()
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Run(); err != nil {
		t.Fatalf("sh -c %q: %v\nstdout:\n%s\nstderr:\n%s", script, err, out.String(), errb.String())
	}
	return out.String()
}

// TestDemoPlayground starts the built binary's `matterline demo`, runs every
// command it prints verbatim (with its export line, and once with -config
// instead) while it runs, places a call and finds it with the printed `calls`,
// then stops the demo and checks that its configuration file went with it.
func TestDemoPlayground(t *testing.T) {
	if testing.Short() {
		t.Skip("builds the binary and runs the demo as a process")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	bin := buildMatterline(t)

	// The demo's own configuration: a firm far from UTC, to see that the
	// written file carries the zone to rules test.
	cfgPath := filepath.Join(t.TempDir(), "demo-input.yaml")
	if err := os.WriteFile(cfgPath, []byte("firm:\n  time_zone: Pacific/Kiritimati\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	demo := exec.Command(bin, "demo", "-config", cfgPath)
	demo.Env = cleanEnv()
	var out, errb lockedBuffer
	demo.Stdout, demo.Stderr = &out, &errb
	if err := demo.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- demo.Wait() }()
	stopped := false
	defer func() {
		if !stopped {
			_ = demo.Process.Kill()
			<-exited
		}
	}()
	deadline := time.After(30 * time.Second)
	for !strings.Contains(out.String(), "Press Ctrl-C to stop.") {
		select {
		case err := <-exited:
			stopped = true
			t.Fatalf("demo exited before it was ready: %v\nstdout:\n%s\nstderr:\n%s", err, out.String(), errb.String())
		case <-deadline:
			t.Fatalf("demo not ready after 30s\nstdout:\n%s\nstderr:\n%s", out.String(), errb.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
	text := out.String()
	t.Logf("demo output:\n%s", text)
	b := parseDemoBlock(t, text)

	// The file: private, and pointing at what the demo runs.
	st, err := os.Stat(b.configPath)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("%s has mode %v, want 0600", b.configPath, st.Mode().Perm())
	}
	written, err := os.ReadFile(b.configPath)
	if err != nil {
		t.Fatal(err)
	}
	clioURL := regexp.MustCompile(`Sandbox Clio: (\S+)  token (\S+)`).FindStringSubmatch(text)
	dbPath := regexp.MustCompile(`database (\S+)\n`).FindStringSubmatch(text)
	sipAddr := regexp.MustCompile(`sip:demo@(\S+) \(UDP`).FindStringSubmatch(text)
	if clioURL == nil || dbPath == nil || sipAddr == nil {
		t.Fatalf("demo output lacks the sandbox Clio, database or SIP address:\n%s", text)
	}
	for _, w := range []string{"time_zone: Pacific/Kiritimati", "base_url: " + clioURL[1], "access_token: " + clioURL[2],
		"path: " + dbPath[1], "udp://" + sipAddr[1]} {
		if !strings.Contains(string(written), w) {
			t.Errorf("%s lacks %q:\n%s", b.configPath, w, written)
		}
	}

	// Every printed command, verbatim after the export line.
	exe, err := filepath.EvalSymlinks(bin)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][]string{
		"rules list":                     {"NAME", "felix", "marguerite", "tomas", "priya", "Felix Dubinsky #501"},
		"rules test --from +12175552171": {"lookup:    found, contact Ada Quist (#1001)", "+14:00 (Pacific/Kiritimati)", "decision:  transfer rule=felix"},
		"clio staff":                     {"ID", "NAME", "Felix Dubinsky", "Marguerite Okafor", "Priya Raman"},
		"calls":                          {"no call records"},
		"health":                         {"healthy"},
	}
	ran := map[string]bool{}
	var curlLine string
	for _, line := range b.commands {
		if strings.HasPrefix(line, "curl ") {
			curlLine = line
			continue
		}
		sub, ok := strings.CutPrefix(line, exe+" ")
		if !ok {
			t.Errorf("command %q does not run the demo's binary %s", line, exe)
			continue
		}
		got := shell(t, ctx, b.export+"\n"+line)
		for _, w := range want[sub] {
			if !strings.Contains(got, w) {
				t.Errorf("%s: output lacks %q:\n%s", sub, w, got)
			}
		}
		if want[sub] == nil {
			t.Errorf("unexpected command %q", line)
		}
		ran[sub] = true
	}
	for sub := range want {
		if !ran[sub] {
			t.Errorf("the demo does not print %q", sub)
		}
	}
	if got := shell(t, ctx, b.withConfig); !strings.Contains(got, "felix") {
		t.Errorf("%s:\n%s", b.withConfig, got)
	}
	if curlLine == "" {
		t.Fatal("the demo prints no curl line")
	}
	if got := runCurl(t, ctx, curlLine); !json.Valid([]byte(got)) || !strings.Contains(got, `"calls"`) {
		t.Errorf("%s: not the calls JSON: %s", curlLine, got)
	}

	// A call while the demo runs: the API lists it, then `calls` shows its record.
	caller, err := phone.NewCaller(phone.CallerConfig{From: demoCaller, DisplayName: demoCallerName})
	if err != nil {
		t.Fatal(err)
	}
	defer caller.Close()
	cctx, ccancel := context.WithTimeout(ctx, 20*time.Second)
	defer ccancel()
	call, err := caller.Dial(cctx, "sip:demo@"+sipAddr[1], phone.DialOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := call.Listen(cctx, phone.Sound{For: 500 * time.Millisecond}); err != nil {
		t.Fatalf("greeting: %v", err)
	}
	if got := runCurl(t, ctx, curlLine); !strings.Contains(got, demoCaller) {
		t.Errorf("%s during the call: %s", curlLine, got)
	}
	if err := call.Hangup(cctx); err != nil {
		t.Fatal(err)
	}
	callsLine := b.export + "\n" + exe + " calls"
	var got string
	for end := time.Now().Add(10 * time.Second); ; {
		got = shell(t, ctx, callsLine)
		if strings.Contains(got, demoCaller) && strings.Contains(got, "caller_bye") {
			break
		}
		if time.Now().After(end) {
			t.Fatalf("calls does not show the finished call:\n%s", got)
		}
		time.Sleep(200 * time.Millisecond)
	}
	if !strings.Contains(got, "+14") {
		t.Errorf("calls: time not in the firm's zone (+14):\n%s", got)
	}

	// Ctrl-C: the demo stops cleanly and takes its directory with it.
	if err := demo.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-exited:
		stopped = true
		if err != nil {
			t.Fatalf("demo after Ctrl-C: %v\nstderr:\n%s", err, errb.String())
		}
	case <-time.After(15 * time.Second):
		t.Fatal("demo did not stop within 15s of Ctrl-C")
	}
	if _, err := os.Stat(filepath.Dir(b.configPath)); !os.IsNotExist(err) {
		t.Errorf("the demo's directory %s is still there (%v)", filepath.Dir(b.configPath), err)
	}
}

// runCurl runs the printed curl line with sh when curl is installed, else makes
// the same request with net/http.
func runCurl(t *testing.T, ctx context.Context, line string) string {
	t.Helper()
	if _, err := exec.LookPath("curl"); err == nil {
		return shell(t, ctx, line)
	}
	m := regexp.MustCompile(`^curl -s -H "Authorization: Bearer (\S+)" (http://\S+)$`).FindStringSubmatch(line)
	if m == nil {
		t.Fatalf("cannot read the curl line %q", line)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, m[2], nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+m[1])
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	if res.StatusCode != http.StatusOK {
		t.Fatalf("%s: status %d: %s", line, res.StatusCode, body)
	}
	return string(body)
}

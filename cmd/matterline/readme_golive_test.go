package main

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// readmeGoLive names what the README's "Going live in short" steps are run
// against instead of a real host. Each pair is a literal text of the README
// and what the test puts in its place; nothing else differs from the README.
func readmeGoLive(work, sipPort, httpPort, clioURL string) []string {
	return []string{
		// the test runs as its own user: no sudo, no service user, no chown
		"sudo -u matterline ", "",
		"sudo ", "",
		" -o matterline -g matterline", "",
		" -o root -g matterline", "",
		// the system paths, under the test's temporary directory
		"/usr/local/bin", filepath.Join(work, "usr/local/bin"),
		"/etc/matterline", filepath.Join(work, "etc/matterline"),
		"/var/lib/matterline", filepath.Join(work, "var/lib/matterline"),
		// the PBX is a loopback address
		"10.0.0.5", "127.0.0.1",
		// loopback listeners on free ports, and the sandbox Clio with its static
		// token (step 4's comment: a static token in clio.access_token)
		"sip:\n", "sip:\n  listen: [\"udp://127.0.0.1:" + sipPort + "\"]\n",
		"time_zone: America/Chicago\n", "time_zone: America/Chicago\n" +
			"http:\n  listen: \"127.0.0.1:" + httpPort + "\"\n" +
			"media:\n  rtp_ports: \"" + e2eRTPPorts() + "\"\n" +
			"clio:\n  base_url: \"" + clioURL + "\"\n",
	}
}

// readmeNotRun are the README's lines the test does not run, and why.
var readmeNotRun = map[string]string{
	"CGO_ENABLED=0 go build -o matterline ./cmd/matterline": "the test builds the binary once with this command (docBinary) and copies it here",
	"useradd --system --home-dir":                           "creates a system user",
	"matterline clio connect":                               "OAuth in a browser; the commands get the sandbox's static token in MATTERLINE_CLIO_ACCESS_TOKEN instead, as step 4 allows (TestClioConnectCLI drives the OAuth flow)",
}

// readmeExpect is what each run command prints (stdout and stderr), by the
// command's words after "matterline".
var readmeExpect = map[string]*regexp.Regexp{
	"install":             regexp.MustCompile(`^$`),
	"tee":                 regexp.MustCompile(`(?s)^sip:.*time_zone: America/Chicago`),
	"config check":        regexp.MustCompile(`^config OK: \S+/etc/matterline/matterline.yaml from MATTERLINE_CONFIG$`),
	"clio status":         regexp.MustCompile(`(?m)^connected:\s+yes$(?s).*^clio user:\s+Morgan Reyes`),
	"clio staff":          regexp.MustCompile(`(?m)^ID\s+NAME\s+PHONE\s+ENABLED\s+RULE$(?s).*^501\s+Felix Dubinsky`),
	"rules add reception": regexp.MustCompile(`^added rule reception\ncreated database \S+/var/lib/matterline/matterline.db$`),
	"rules add felix":     regexp.MustCompile(`^added rule felix`),
	// Ada Quist's matter is Felix's; pressing 1 reaches his rule (or, outside
	// his hours, his rule's unavailable handling)
	"rules test": regexp.MustCompile(`(?m)^lookup:\s+found, contact Ada Quist .*responsible Felix Dubinsky .*\n^intent:\s+responsible at .*\n^decision:\s+(transfer|unavailable) rule=felix `),
	"health":     regexp.MustCompile(`^healthy: `),
}

// TestREADMEGoingLive runs the fenced sh block of README.md's "Going live in
// short" as written, but for the substitutions of readmeGoLive and the lines of
// readmeNotRun: a fresh machine's steps from install to a healthy server.
func TestREADMEGoingLive(t *testing.T) {
	bin := docBinary(t)
	script := goingLiveBlock(t).commands()
	if len(script) < 10 {
		t.Fatalf("the section's sh block has %d commands", len(script))
	}

	work := t.TempDir()
	for _, d := range []string{"usr/local/bin", "etc", "var/lib"} { // there on a fresh machine
		if err := os.MkdirAll(filepath.Join(work, d), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	clio := newClioCLI(t, "") // the sandbox Clio (demo data)
	sipPort, httpPort := freeUDPPort(t), freeTCPPort(t)
	subst := strings.NewReplacer(readmeGoLive(work, sipPort, httpPort, clio.srv.URL)...)
	env := []string{
		"PATH=" + filepath.Join(work, "usr/local/bin") + ":/usr/bin:/bin",
		"HOME=" + work,
		// the binary looks for /etc/matterline/matterline.yaml, here under work
		EnvConfig + "=" + filepath.Join(work, "etc/matterline/matterline.yaml"),
		"MATTERLINE_CLIO_ACCESS_TOKEN=demo-token", // step 4's static token
	}

	var serve *exec.Cmd
	served := make(chan error, 1)
	ran := 0
	for _, c := range script {
		if skip := notRun(c.text); skip != "" {
			t.Logf("%s: not run: %s (%s)", c.where(), c.text, skip)
			if strings.HasPrefix(c.text, "CGO_ENABLED=0 go build") {
				copyFile(t, bin, filepath.Join(work, "matterline"), 0o755)
			}
			continue
		}
		line := subst.Replace(c.text)
		if c.heredoc != "" {
			line += "\n" + subst.Replace(c.heredoc)
		}
		if strings.HasSuffix(line, "matterline serve") {
			serve = exec.Command("bash", "-c", "exec "+line)
			serve.Dir, serve.Env = work, env
			logs := &lockedBuffer{}
			serve.Stdout, serve.Stderr = logs, logs
			if err := serve.Start(); err != nil {
				t.Fatal(err)
			}
			go func() { served <- serve.Wait() }()
			t.Cleanup(func() {
				if serve.ProcessState == nil {
					serve.Process.Kill()
				}
				if t.Failed() {
					t.Logf("serve's log:\n%s", logs.String())
				}
			})
			ran++
			continue
		}
		deadline := time.Now().Add(15 * time.Second)
		for {
			out, code := runShell(t, work, env, line)
			if code == 0 || serve == nil || time.Now().After(deadline) {
				if code != 0 {
					t.Fatalf("%s: %s\nran: %s\nexit %d:\n%s", c.where(), c.text, line, code, out)
				}
				checkExpected(t, c, out)
				break
			}
			time.Sleep(100 * time.Millisecond) // the server is starting
		}
		ran++
	}
	if serve == nil {
		t.Fatal("the README never starts matterline serve")
	}
	if err := serve.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("serve after SIGTERM: %v", err)
		}
	case <-time.After(40 * time.Second):
		t.Errorf("serve did not stop within 40s of SIGTERM")
	}
	t.Logf("ran %d of the section's %d commands", ran, len(script))
}

func notRun(text string) string {
	for prefix, why := range readmeNotRun {
		if strings.Contains(text, prefix) {
			return why
		}
	}
	return ""
}

func checkExpected(t *testing.T, c docCommand, out string) {
	t.Helper()
	words := strings.Fields(strings.TrimPrefix(strings.TrimPrefix(c.text, "sudo "), "-u matterline "))
	if words[0] == "matterline" {
		words = words[1:]
	}
	for n := len(words); n > 0; n-- {
		if re, ok := readmeExpect[strings.Join(words[:n], " ")]; ok {
			if !re.MatchString(out) {
				t.Errorf("%s: %s printed\n%s\nwant it to match %s", c.where(), c.text, out, re)
			}
			return
		}
	}
	t.Errorf("%s: %s: no expected output in readmeExpect", c.where(), c.text)
}

// runShell runs one command line with bash in dir and returns its stdout and
// stderr together (trimmed) and its exit status.
func runShell(t *testing.T, dir string, env []string, line string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "bash", "-c", line)
	cmd.Dir, cmd.Env = dir, env
	var out, errb lockedBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if err != nil {
		code = -1
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
	}
	return combined([]byte(out.String()), []byte(errb.String())), code
}

func freeUDPPort(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	return fmt.Sprint(pc.LocalAddr().(*net.UDPAddr).Port)
}

func freeTCPPort(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return fmt.Sprint(l.Addr().(*net.TCPAddr).Port)
}

// goingLiveBlock is the sh block of README.md's "Going live in short".
func goingLiveBlock(t *testing.T) docBlock {
	t.Helper()
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	before, _, ok := strings.Cut(string(readme), "\n### Going live in short\n")
	if !ok {
		t.Fatal(`README.md has no "### Going live in short" section`)
	}
	heading := strings.Count(before, "\n") + 2
	for _, b := range fencedBlocks(t, "../../README.md") {
		if b.lang == "sh" && b.line > heading {
			return b
		}
	}
	t.Fatal(`README.md's "Going live in short" has no sh block`)
	return docBlock{}
}

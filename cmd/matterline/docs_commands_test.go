package main

import (
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/store"
	"github.com/matterline/matterline/writeback"
)

// TestDocCommands runs every matterline and curl command shown in a shell code
// block of README.md and docs/*.md, as the docs write it but for the
// substitutions of docSubstitutions, and checks it exits 0 (or as
// docOverrides says) and, where the doc prints the output after a "$ "
// command (or as a JSON comment after it), that the output has that shape.
//
// The commands run with the binary (docBinary) against a configuration of the
// test: the sandbox Clio (an OAuth token stored, one lookup cached), a database
// seeded with the demo's sample rules and closure, twelve messages and three
// call records; a server of the test answers the curl commands and
// `matterline health`. Each code block starts from that state and runs its
// commands in order; files a command writes (rules.yaml) stay for the rest of
// its page. A `rules add NAME` starts without a rule NAME: the docs show
// several ways of adding one rule.
//
// A command in a shell block is either run, or listed in docSkip (matterline
// commands that cannot run in a test), or a command of another tool listed in
// docOtherTools: a command that is none of these fails the test, so a new page
// or command stays covered.
func TestDocCommands(t *testing.T) {
	bin := docBinary(t)
	env := newDocEnv(t, bin)

	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append([]string{"../../README.md"}, files...)
	skipUsed := map[string]bool{}
	ran := 0
	for _, file := range files {
		work := env.workDir(t, file)
		for _, b := range fencedBlocks(t, file) {
			cmds := b.commands()
			if len(cmds) == 0 {
				continue
			}
			env.resetState(t)
			for _, c := range cmds {
				switch {
				case inGoingLive(t, c):
					continue // TestREADMEGoingLive runs that block
				case !isMatterline(c.text) && !strings.HasPrefix(c.text, "curl "):
					if why := otherTool(c.text); why == "" {
						t.Errorf("%s: %q is neither run nor listed (docSkip, docOtherTools)", c.where(), c.text)
					}
					continue
				}
				if prefix, why := docSkipped(c.text); why != "" {
					skipUsed[prefix] = true
					t.Logf("%s: not run: %s (%s)", c.where(), c.text, why)
					continue
				}
				for _, line := range expandSynopsis(c.text) {
					env.runDocCommand(t, work, c, line)
					ran++
				}
			}
		}
	}
	for _, s := range docSkip {
		if !skipUsed[s.prefix] {
			t.Errorf("docSkip lists %q, which no doc shows any more", s.prefix)
		}
	}
	t.Logf("ran %d commands", ran)
}

// docSkip are the matterline and curl commands the docs show that cannot run
// in a test, by the start of the command as written, and why.
var docSkip = []struct{ prefix, why string }{
	{"go run ./cmd/matterline demo", "runs the demo server in the foreground until Ctrl-C (TestDemoAnswersACall and TestDemoCall run the demo)"},
	{"matterline clio connect", "OAuth in a browser (TestClioConnectCLI drives it against the sandbox Clio)"},
	{"sudo -u matterline sh -c 'set -a; . /etc/matterline/matterline.env; exec matterline clio connect", "OAuth in a browser, with the systemd environment file"},
	{"docker exec matterline matterline", "needs the Docker image and a Docker daemon (.ci/docker runs matterline inside the image)"},
	{"systemd-run", "needs systemd and a credential file"},
}

// docOtherTools are the other programs the docs' shell blocks run (installing,
// systemd, Docker, capture tools): not matterline's to test.
var docOtherTools = map[string]string{
	"go":          "builds or tests from source (docBinary builds the binary as the docs do)",
	"useradd":     "creates a system user",
	"install":     "installs files as root",
	"cp":          "installs the systemd unit",
	"systemctl":   "systemd",
	"journalctl":  "systemd's journal",
	"docker":      "Docker",
	"debootstrap": "builds a Debian base image",
	"tar":         "imports the base image into Docker",
	"openssl":     "makes a key",
	"sqlite3":     "the SQLite shell on the production database",
	"sngrep":      "packet capture",
}

// docSubstitutions are what differs from the docs when a command runs: the
// system paths and addresses become the test's. A command also gets the
// environment of docEnv.vars ($CFG, $API, $AUTH, $ADMIN, $TOKEN, ...).
func (e *docEnv) docSubstitutions(work string) []string {
	return []string{
		"sudo -u matterline ", "", // the test runs as its own user
		"/etc/matterline/matterline.yaml", e.cfg,
		"/usr/local/share/man/man1", filepath.Join(work, "man1"),
		"http://127.0.0.1:8080", e.api,
		"127.0.0.1:8080", strings.TrimPrefix(e.api, "http://"),
		"CALL_ID", "no-such-call", // no call is up: the call routes answer 404
	}
}

// docPlaceholders are the upper-case words of a synopsis
// (`matterline messages show ID [--json]`) and the demo data put in their place.
var docPlaceholders = map[string]string{
	"ID":     "12",
	"NUMBER": "+12175552171",
	"NAME":   "felix",
	"D":      "7d",
	"T":      "2026-11-24",
	"O":      "no_answer",
	"N":      "10",
	"FILE":   "rules.yaml",
}

// docOverrides are commands the docs show failing, or that need a change to
// run in a test: the command as written, its trailing comment, and what the
// test does instead.
var docOverrides = []struct {
	text, comment string
	env           []string // more environment
	appendArgs    string   // appended to the command
	exit          int
}{
	// clio.md shows status with a token Clio rejects: exit 1
	{"matterline clio status", "a wrong static token", []string{"MATTERLINE_CLIO_ACCESS_TOKEN=wrong-token-9876543210"}, "", 1},
	// the event stream never ends: curl's --max-time ends it (exit 28)
	{`curl -sN -H "$AUTH" $API/v1/events`, "", nil, " --max-time 1", 28},
}

// docCurlErrors are the API error codes a curl command of the docs must not
// get: a wrong token, Host, method or body in the doc. not_found (no call is
// up, a rule already deleted) and conflict are the state's, not the doc's.
var docCurlErrors = map[string]bool{
	"unauthorized": true, "forbidden": true, "misdirected_request": true, "method_not_allowed": true,
	"bad_request": true, "unprocessable": true, "too_large": true, "not_implemented": true, "internal": true,
}

var matterlineCmd = regexp.MustCompile(`(^|[\s(/])matterline (serve|demo|version|rules|closures|clio|calls|messages|config|health|completion|man|help)\b`)

func isMatterline(text string) bool { return matterlineCmd.MatchString(text) }

var assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*=("[^"]*"|'[^']*'|\S*)\s*`)

func otherTool(text string) string {
	rest := text
	for assignment.MatchString(rest) {
		rest = assignment.ReplaceAllString(rest, "")
	}
	if rest == "" {
		return "a shell variable: the test sets its own (docEnv.vars)"
	}
	return docOtherTools[strings.Fields(rest)[0]]
}

func docSkipped(text string) (prefix, why string) {
	for _, s := range docSkip {
		if strings.HasPrefix(text, s.prefix) {
			return s.prefix, s.why
		}
	}
	return "", ""
}

// inGoingLive reports whether c is in README's "Going live in short" block.
func inGoingLive(t *testing.T, c docCommand) bool {
	if filepath.Base(c.file) != "README.md" {
		return false
	}
	b := goingLiveBlock(t)
	return c.line > b.line && c.line <= b.line+len(b.lines)
}

var optional = regexp.MustCompile(`\s*\[([^\]]*)\]`)

// expandSynopsis turns a synopsis into the command lines it stands for: without
// its optional parts and with all of them, placeholders replaced by demo data.
func expandSynopsis(text string) []string {
	fill := func(s string) string {
		f := strings.Fields(s)
		for i, w := range f {
			if v, ok := docPlaceholders[w]; ok {
				f[i] = v
			}
		}
		return strings.Join(f, " ")
	}
	if !optional.MatchString(text) {
		return []string{fill(text)}
	}
	return []string{fill(optional.ReplaceAllString(text, "")), fill(optional.ReplaceAllString(text, " $1"))}
}

// docEnv is what the doc commands run against.
type docEnv struct {
	bin      string
	dir      string // the test's directory
	cfg      string // the commands' configuration
	state    string // the database and messages the configuration names
	template string // the seeded state each block starts from
	api      string // the test server's http://HOST:PORT
	clio     *clioCLI
	felix    []byte // `rules show felix --json`, the felix.json of the PUT example
	vars     []string
}

const (
	docOAuthToken = "docs-oauth-token-0123456789"
	docAgentToken = "docs-agent-token-0123456789"
)

func newDocEnv(t *testing.T, bin string) *docEnv {
	t.Helper()
	ctx := context.Background()
	e := &docEnv{bin: bin, dir: t.TempDir(), clio: newClioCLI(t, "")}
	e.clio.srv.AddToken(docOAuthToken)
	srv := startE2E(t, e2eOptions{configure: func(cfg *config.Config) {
		cfg.HTTP.AgentToken = docAgentToken
		cfg.Clio.ClientID, cfg.Clio.ClientSecret = "demo-client-id", "demo-client-secret"
		if err := importDemoRules(ctx, cfg); err != nil {
			t.Fatal(err)
		}
	}})
	e.api = srv.base
	e.state = filepath.Join(e.dir, "state")
	e.template = filepath.Join(e.dir, "template")
	e.cfg = filepath.Join(e.dir, "matterline.yaml")
	body := fmt.Sprintf("store:\n  path: %q\ntransfer:\n  messages_dir: %q\nhttp:\n  listen: %q\n"+
		"clio:\n  base_url: %q\n  client_id: demo-client-id\n  client_secret: demo-client-secret\n"+
		"firm:\n  time_zone: America/Chicago\n",
		filepath.Join(e.state, "matterline.db"), filepath.Join(e.state, "messages"),
		strings.TrimPrefix(e.api, "http://"), e.clio.srv.URL)
	if err := os.WriteFile(e.cfg, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	e.vars = []string{
		"PATH=" + filepath.Dir(bin) + ":/usr/bin:/bin",
		"HOME=" + e.dir,
		EnvConfig + "=" + e.cfg,
		"CFG=-config " + e.cfg,
		"API=" + e.api,
		"AUTH=Authorization: Bearer " + docAgentToken,
		"ADMIN=Authorization: Bearer " + e2eToken,
		"TOKEN=" + e2eToken,
		"MATTERLINE_HTTP_TOKEN=" + e2eToken,
		"MATTERLINE_HTTP_AGENT_TOKEN=" + docAgentToken,
	}
	e.seed(t)
	return e
}

// seed builds the state every block starts from.
func (e *docEnv) seed(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	def := config.Default()
	cfg := &def
	cfg.Store.Path = filepath.Join(e.state, "matterline.db")
	cfg.Firm.TimeZone = "America/Chicago"
	if err := os.MkdirAll(e.state, 0o700); err != nil {
		t.Fatal(err)
	}
	if err := importDemoRules(ctx, cfg); err != nil {
		t.Fatal(err)
	}
	db, err := store.Open(cfg.Store.Path)
	if err != nil {
		t.Fatal(err)
	}
	st, err := clio.OpenStorage(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.SaveToken(ctx, clio.StoredToken{Region: clio.RegionUS, AccessToken: docOAuthToken,
		RefreshToken: "docs-refresh", Expiry: time.Now().Add(24 * time.Hour)}); err != nil {
		t.Fatal(err)
	}
	// The write-back outbox of clio.md's example: a call's communication and
	// task done, its time entry failed.
	ob, err := writeback.Open(ctx, db, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ob.Enqueue(ctx, []writeback.Item{{CallID: "call-1", Kind: writeback.KindCommunication},
		{CallID: "call-1", Kind: writeback.KindTimeEntry}, {CallID: "call-1", Kind: writeback.KindTask}}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{
		`UPDATE clio_outbox SET state = 'done', attempts = 1, clio_id = 9000 + id WHERE kind <> 'time_entry'`,
		`UPDATE clio_outbox SET state = 'failed', attempts = 1, error = 'Clio app lacks Activities read/write: grant the Activities permission' WHERE kind = 'time_entry'`,
	} {
		if _, err := db.ExecContext(ctx, q); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()
	rec := recordsEnv{db: cfg.Store.Path, messages: filepath.Join(e.state, "messages")}
	now := time.Now().UTC().Truncate(time.Second)
	rec.seedCalls(t, testCall("call-1", now.Add(-3*time.Hour), records.OutcomeBridged),
		testCall("call-2", now.Add(-2*time.Hour), records.OutcomeNoAnswer),
		testCall("call-3", now.Add(-time.Hour), records.OutcomeMessage))
	for i := range 12 {
		rec.seedMessage(t, records.Message{Time: now.Add(time.Duration(i-12) * time.Minute),
			CallID: fmt.Sprintf("call-%d", i), Caller: "+12175552171", ContactID: 1001, Rule: "felix"})
	}
	for _, args := range [][]string{{"clio", "lookup", "+12175552171"}, {"rules", "show", "felix", "--json"}} {
		out, code := runShell(t, e.dir, e.vars, "matterline "+strings.Join(args, " "))
		if code != 0 {
			t.Fatalf("seed: %v: exit %d\n%s", args, code, out)
		}
		e.felix = []byte(out + "\n")
	}
	if err := os.CopyFS(e.template, os.DirFS(e.state)); err != nil {
		t.Fatal(err)
	}
}

// resetState puts the seeded state back.
func (e *docEnv) resetState(t *testing.T) {
	t.Helper()
	if err := os.RemoveAll(e.state); err != nil {
		t.Fatal(err)
	}
	if err := os.CopyFS(e.state, os.DirFS(e.template)); err != nil {
		t.Fatal(err)
	}
	e.clio.srv.AddToken(docOAuthToken) // a `clio disconnect` revoked it
}

// workDir is the working directory of one page's commands: the binary as the
// docs build it (./matterline), felix.json for the PUT example, the man page
// directory.
func (e *docEnv) workDir(t *testing.T, file string) string {
	t.Helper()
	work := filepath.Join(e.dir, "work-"+strings.TrimSuffix(filepath.Base(file), ".md"))
	if err := os.MkdirAll(filepath.Join(work, "man1"), 0o755); err != nil {
		t.Fatal(err)
	}
	copyFile(t, e.bin, filepath.Join(work, "matterline"), 0o755)
	if err := os.WriteFile(filepath.Join(work, "felix.json"), e.felix, 0o600); err != nil {
		t.Fatal(err)
	}
	return work
}

var rulesAdd = regexp.MustCompile(`matterline rules add (\S+)`)

// runDocCommand runs one command line of c and checks its exit status and the
// shape of its output.
func (e *docEnv) runDocCommand(t *testing.T, work string, c docCommand, line string) {
	t.Helper()
	line = strings.NewReplacer(e.docSubstitutions(work)...).Replace(line)
	vars, want := e.vars, 0
	for _, o := range docOverrides {
		if o.text == c.text && o.comment == c.comment {
			vars = append(append([]string{}, vars...), o.env...)
			line += o.appendArgs
			want = o.exit
		}
	}
	if m := rulesAdd.FindStringSubmatch(line); m != nil {
		runShell(t, work, e.vars, "matterline rules rm "+m[1]) // the docs add it anew
	}
	out, code := runShell(t, work, vars, line)
	t.Logf("%s: ran %s: exit %d, %d bytes of output, sample lines %d", c.where(), line, code, len(out), len(c.output))
	if code != want {
		t.Errorf("%s: %s\nran: %s\nexit %d, want %d:\n%s", c.where(), c.text, line, code, want, out)
		return
	}
	if len(c.output) > 0 {
		if missing := outputShape(c.output, out); len(missing) > 0 {
			t.Errorf("%s: %s: the output lacks what the doc shows: %s\noutput:\n%s", c.where(), c.text, strings.Join(missing, "; "), out)
		}
	}
	if sample, ok := jsonComment(c.comment); ok {
		if missing := outputShape([]string{sample}, out); len(missing) > 0 {
			t.Errorf("%s: %s: the output lacks what the comment shows: %s\noutput:\n%s", c.where(), c.text, strings.Join(missing, "; "), out)
		}
	}
	if strings.HasPrefix(c.text, "curl ") {
		var body struct {
			Error string `json:"error"`
		}
		if json.Unmarshal([]byte(out), &body) == nil && docCurlErrors[body.Error] {
			t.Errorf("%s: %s\nran: %s\nthe API answered %s", c.where(), c.text, line, out)
		}
	}
}

var jsonSample = regexp.MustCompile(`^\{[^}]*\}`)

// jsonComment returns the JSON object a comment starts with ("{"calls":[...]} in
// progress"), its elisions removed.
func jsonComment(comment string) (string, bool) {
	s := jsonSample.FindString(strings.ReplaceAll(comment, "...", ""))
	return s, s != ""
}

// TestDocsCiteOnlyWhatUsersHave fails when the operator's guide cites a file
// users do not have (the project's design notes, the shared Clio API notes) or
// promises a feature as "being added".
func TestDocsCiteOnlyWhatUsersHave(t *testing.T) {
	files, err := filepath.Glob("../../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../../README.md", "../../SECURITY.md")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, bad := range []string{"DESIGN.md", "CLIO-API.md", "shared/", "being added"} {
				if strings.Contains(line, bad) {
					t.Errorf("%s:%d: mentions %q: %s", filepath.Base(f), i+1, bad, line)
				}
			}
		}
	}
}

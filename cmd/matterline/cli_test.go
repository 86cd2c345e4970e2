package main

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matterline/matterline/store"
)

// cliRun runs one command line with the given environment and system config
// path (no process environment, no /etc) and returns stdout, stderr, status.
func cliRun(t *testing.T, env map[string]string, system string, args ...string) (string, string, int) {
	t.Helper()
	var out, errb bytes.Buffer
	d := discovery{getenv: func(k string) string { return env[k] }, systemConfig: system}
	code := runWith(context.Background(), args, stdio{&out, &errb}, d)
	return out.String(), errb.String(), code
}

// noDBConfig writes a config whose database does not exist (yet).
func noDBConfig(t *testing.T, extra string) (cfg, db string) {
	t.Helper()
	dir := t.TempDir()
	db = filepath.Join(dir, "fresh.db")
	cfg = writeFile(t, dir, "matterline.yaml", "store:\n  path: "+db+"\n"+extra)
	return cfg, db
}

func TestHelpGoesToStdout(t *testing.T) {
	cfg, db := noDBConfig(t, "")
	for _, tc := range []struct {
		args []string
		want string // a line of the help of the right command
	}{
		{[]string{"--help"}, "Available Commands:"},
		{[]string{"-h"}, "Available Commands:"},
		{[]string{"help"}, "Available Commands:"},
		{[]string{"help", "rules", "add"}, "matterline rules add NAME --to DEST"},
		{[]string{"rules", "add", "--help"}, "matterline rules add NAME --to DEST"},
		{[]string{"rules", "add", "-h", "-config", cfg}, "matterline rules add NAME --to DEST"},
		{[]string{"rules", "help", "add"}, "matterline rules add NAME --to DEST"},
		{[]string{"rules", "help"}, "matterline rules [command]"},
		{[]string{"-help"}, "Available Commands:"},
		// help is never data: no lookup of "help", no server started
		{[]string{"clio", "lookup", "help", "-config", cfg}, "matterline clio lookup NUMBER"},
		{[]string{"clio", "lookup", "-config", cfg, "help", "--json"}, "matterline clio lookup NUMBER"},
		{[]string{"demo", "help"}, "matterline demo [--call | --agent | --agent-sip]"},
		{[]string{"serve", "help", "-config", cfg}, "matterline serve [flags]"},
		{[]string{"messages", "show", "help"}, "matterline messages show ID"},
	} {
		out, errs, code := cliRun(t, nil, "", tc.args...)
		if code != 0 || errs != "" || !strings.Contains(out, tc.want) || !strings.Contains(out, "Usage:") {
			t.Errorf("%q: exit %d, stderr %q, stdout lacks %q:\n%s", tc.args, code, errs, tc.want, out)
		}
		if !strings.Contains(out, "Examples:") {
			t.Errorf("%q: help without examples:\n%s", tc.args, out)
		}
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("help created the database: %v", err)
	}
}

// Every command has a short and long description and an example.
func TestEveryCommandDocumented(t *testing.T) {
	root := (&cli{stdio: stdio{&bytes.Buffer{}, &bytes.Buffer{}}}).newRoot()
	count := 0
	stack := root.Commands()
	for len(stack) > 0 {
		cmd := stack[0]
		stack = append(stack[1:], cmd.Commands()...)
		if cmd.Name() == "completion" || cmd.Parent().Name() == "completion" {
			continue // cobra's own
		}
		count++
		if cmd.Short == "" || cmd.Long == "" || cmd.Example == "" {
			t.Errorf("%s: Short %q, Long %d chars, Example %q", cmd.CommandPath(), cmd.Short, len(cmd.Long), cmd.Example)
		}
	}
	if count < 30 {
		t.Errorf("only %d commands found", count)
	}
}

func TestUsageErrorsExit2(t *testing.T) {
	c := newRulesCLI(t)
	c.ok("rules", "add", "felix", "--to", "101")
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"frobnicate"}, `unknown command "frobnicate"`},
		{[]string{"rulez", "list"}, `unknown command "rulez" (did you mean "rules"?)`},
		{[]string{"help", "nosuch"}, `unknown help topic "nosuch"`},
		{[]string{"rules", "list", "--colour"}, "unknown flag: --colour"},
		{[]string{"rules", "list", "-colour"}, "unknown shorthand flag"},
		{[]string{"rules", "list", "extra"}, `takes no arguments, got ["extra"]`},
		{[]string{"rules", "show", "felix", "extra"}, "wants NAME, got 2 argument(s)"},
		{[]string{"rules", "show"}, "wants NAME, got 0 argument(s)"},
		{[]string{"version", "now"}, "takes no arguments"},
		{[]string{"calls", "--limit", "many"}, `invalid argument "many"`},
		{[]string{"config", "check", "x"}, "takes no arguments"},
	} {
		out, errs, code := c.run(tc.args...)
		if code != 2 || out != "" || !strings.Contains(errs, tc.want) || !strings.Contains(errs, "Usage:") {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want exit 2 with %q and the usage", tc.args, code, out, errs, tc.want)
		}
	}
	// no command at all: usage on stderr, exit 2
	if out, errs, code := cliRun(t, nil, ""); code != 2 || out != "" || !strings.Contains(errs, "Available Commands:") {
		t.Errorf("no command: exit %d, stdout %q, stderr %q", code, out, errs)
	}
	// an error while running is exit 1 with "matterline CMD: err"
	if _, errs, code := c.run("rules", "show", "nope"); code != 1 || !strings.HasPrefix(errs, `matterline rules: rule "nope": not found`) || strings.Contains(errs, "Usage:") {
		t.Errorf("runtime error: exit %d, stderr %q", code, errs)
	}
}

func TestFlagSpellingsAndOrder(t *testing.T) {
	c := newRulesCLI(t)
	c.ok("rules", "add", "felix", "-to", "101", "-extension=102") // single-dash long flags, with and without =
	for _, args := range [][]string{
		{"rules", "show", "felix", "-json", "-config", "CFG"},        // flags after the positional
		{"rules", "show", "-config=CFG", "--json", "felix"},          // -flag=value
		{"rules", "-config", "CFG", "show", "felix", "--json"},       // flags before the subcommand
		{"-config", "CFG", "rules", "-json", "show", "felix"},        // before the command, json before show
		{"rules", "show", "--config", "CFG", "felix", "--json=true"}, // --flag value, --bool=true
	} {
		out := c.ok(args...)
		if !strings.Contains(out, `"name": "felix"`) || !strings.Contains(out, `"extension": "102"`) {
			t.Errorf("%q: %s", args, out)
		}
	}
	// "--" ends the flags: what follows is a positional even if it looks like one
	if _, errs, code := c.run("rules", "show", "-config", "CFG", "--", "--json"); code != 1 || !strings.Contains(errs, `rule "--json": not found`) {
		t.Errorf("after --: exit %d, %s", code, errs)
	}
	// a flag's value that says help is data, not a request for help
	c.ok("rules", "set", "felix", "--message", "help")
	if out := c.ok("rules", "show", "felix"); !strings.Contains(out, "message:       help") {
		t.Errorf("--message help: %s", out)
	}
}

func TestConfigDiscovery(t *testing.T) {
	envCfg, envDB := noDBConfig(t, "")
	sysCfg, sysDB := noDBConfig(t, "")
	flagCfg, flagDB := noDBConfig(t, "")
	env := map[string]string{EnvConfig: envCfg}

	// MATTERLINE_CONFIG without -config; a write creates that database and says so
	out, errs, code := cliRun(t, env, sysCfg, "rules", "add", "a", "--to", "101")
	if code != 0 || out != "added rule a\n" || errs != "created database "+envDB+"\n" {
		t.Fatalf("env: exit %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(sysDB); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the system config was used too: %v", err)
	}
	// the second write to it says nothing on stderr
	if _, errs, _ := cliRun(t, env, sysCfg, "rules", "add", "b", "--to", "102"); errs != "" {
		t.Errorf("second write: %q", errs)
	}
	// -config wins over the environment
	if _, errs, code := cliRun(t, env, sysCfg, "rules", "add", "c", "--to", "103", "-config", flagCfg); code != 0 || !strings.Contains(errs, flagDB) {
		t.Errorf("-config: %d %q", code, errs)
	}
	// without either, the system file when it exists
	cliRun(t, nil, sysCfg, "closures", "add", "2026-12-25")
	if _, err := os.Stat(sysDB); err != nil {
		t.Errorf("system config not used: %v", err)
	}
	// a missing system file means the embedded defaults (store.path matterline.db)
	out, errs, code = cliRun(t, nil, filepath.Join(t.TempDir(), "none.yaml"), "config", "show")
	if code != 0 || !strings.Contains(out, "# config: embedded defaults") || !strings.Contains(out, "path: matterline.db") {
		t.Errorf("defaults: %d %q %q", code, out, errs)
	}
	// a MATTERLINE_CONFIG that does not exist is an error naming it
	if _, errs, code := cliRun(t, map[string]string{EnvConfig: "/nonexistent/m.yaml"}, "", "rules", "list"); code != 1 || !strings.Contains(errs, "/nonexistent/m.yaml") {
		t.Errorf("missing env config: %d %q", code, errs)
	}
}

func TestReadOnlyCommandsNeverCreateTheDatabase(t *testing.T) {
	cfg, db := noDBConfig(t, "")
	abs, _ := filepath.Abs(db)
	for _, args := range [][]string{
		{"rules", "list"}, {"rules", "show", "x"}, {"rules", "export"}, {"rules", "test", "--from", "+12175552171"},
		{"rules", "rm", "x"}, {"closures", "list"}, {"closures", "rm", "2026-12-25"}, {"calls"},
		{"messages", "list"}, {"messages", "show", "1"}, {"messages", "rm", "1"},
		{"clio", "status"}, {"clio", "lookup", "+12175552171"}, {"clio", "staff"}, {"clio", "disconnect"},
	} {
		out, errs, code := cliRun(t, map[string]string{EnvConfig: cfg}, "", args...)
		want := "no database at " + abs + " (config: " + cfg + " from MATTERLINE_CONFIG) — run with -config FILE or set MATTERLINE_CONFIG"
		if code != 1 || out != "" || !strings.Contains(errs, want) {
			t.Errorf("%q: exit %d, stdout %q, stderr %q; want %q", args, code, out, errs, want)
		}
		if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("%q created the database", args)
		}
	}
	// with the embedded defaults, the message says so
	t.Chdir(t.TempDir())
	_, errs, _ := cliRun(t, nil, "", "rules", "list")
	if !strings.Contains(errs, "matterline.db (config: embedded defaults)") {
		t.Errorf("defaults: %q", errs)
	}
	// a dry-run import validates against an empty set and writes nothing
	file := writeFile(t, t.TempDir(), "r.yaml", "rules:\n  - name: a\n    to: \"101\"\n")
	if out, errs, code := cliRun(t, nil, "", "rules", "import", file, "--dry-run", "-config", cfg); code != 0 || !strings.Contains(out, "would import 1 rules") || errs != "" {
		t.Errorf("dry run: %d %q %q", code, out, errs)
	}
	if _, err := os.Stat(db); !errors.Is(err, os.ErrNotExist) {
		t.Fatal("dry run created the database")
	}
}

func TestConfigCheck(t *testing.T) {
	t.Setenv("MATTERLINE_HTTP_TOKEN", "")
	good, _ := noDBConfig(t, "http:\n  listen: 127.0.0.1:0\n")
	if out, errs, code := cliRun(t, nil, "", "config", "check", "-config", good); code != 0 || out != "config OK: "+good+"\n" {
		t.Errorf("good: %d %q %q", code, out, errs)
	}
	// Only serve checked this before: config.Load accepts it.
	open, _ := noDBConfig(t, "http:\n  listen: 0.0.0.0:0\n")
	out, errs, code := cliRun(t, nil, "", "config", "check", "-config", open)
	if code != 1 || out != "" || !strings.Contains(errs, "http.listen: ") || !strings.Contains(errs, "set http.token") {
		t.Errorf("insecure listen: %d %q %q", code, out, errs)
	}
	// serve refuses it with the same message, before opening anything
	_, serveErrs, code := cliRun(t, nil, "", "serve", "-config", open)
	if code != 1 || !strings.Contains(serveErrs, "is reachable from the network; set http.token") {
		t.Errorf("serve: %d %q", code, serveErrs)
	}
	// a syntax error, and an unknown key
	bad := writeFile(t, t.TempDir(), "bad.yaml", "sip:\n  lissen: []\n")
	if _, errs, code := cliRun(t, nil, "", "config", "check", "-config", bad); code != 1 || !strings.Contains(errs, "lissen") {
		t.Errorf("unknown key: %d %q", code, errs)
	}
	// a config file with a secret readable by others is a warning, still OK
	loose := writeFile(t, t.TempDir(), "loose.yaml", "http:\n  listen: 127.0.0.1:0\n  token: 0123456789abcdef0123456789abcdef\nstore:\n  path: "+filepath.Join(t.TempDir(), "x.db")+"\n")
	if err := os.Chmod(loose, 0o644); err != nil {
		t.Fatal(err)
	}
	if out, errs, code := cliRun(t, nil, "", "config", "check", "-config", loose); code != 0 || !strings.Contains(out, "config OK") ||
		!strings.Contains(errs, "readable by other users") || !strings.Contains(errs, "http.token") || strings.Contains(errs, "0123456789abcdef") {
		t.Errorf("loose permissions: %d %q %q", code, out, errs)
	}
	// an invalid rule in an existing database is reported as serve would skip it
	c := newRulesCLI(t)
	c.ok("rules", "add", "felix", "--to", "101")
	db, err := openTestDB(c.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO rules (name, destination, time_zone) VALUES ('moon', '102', 'Mars/Base')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if out, errs, code := c.run("config", "check"); code != 0 || !strings.Contains(out, "config OK") || !strings.Contains(errs, `warning: rule "moon": tz: unknown IANA time zone "Mars/Base"`) {
		t.Errorf("invalid rule: %d %q %q", code, out, errs)
	}
}

func TestConfigShowMasksSecrets(t *testing.T) {
	secrets := map[string]string{
		"MATTERLINE_CLIO_ACCESS_TOKEN":  "access-SECRET-1",
		"MATTERLINE_CLIO_CLIENT_SECRET": "client-SECRET-2",
		"MATTERLINE_HTTP_AGENT_TOKEN":   "agent-SECRET-3-0123456789abcdef",
		"MATTERLINE_HEP_PASSWORD":       "hep-SECRET-4",
		"MATTERLINE_SIP_PASSWORD":       "sip-SECRET-5",
	}
	for k, v := range secrets {
		t.Setenv(k, v)
	}
	t.Setenv("MATTERLINE_HTTP_TOKEN", "")
	cfg, _ := noDBConfig(t, "http:\n  token: http-SECRET-6-0123456789abcdef\nclio:\n  client_id: visible-client-id\n")
	out, errs, code := cliRun(t, nil, "", "config", "show", "-config", cfg)
	if code != 0 {
		t.Fatalf("exit %d: %s", code, errs)
	}
	if strings.Contains(out+errs, "SECRET") {
		t.Errorf("a secret is shown:\n%s", out)
	}
	for _, w := range []string{"access_token: '***'", "client_secret: '***'", "token: '***'", "agent_token: '***'",
		"password: '***'", "client_id: visible-client-id", "listen: 127.0.0.1:8080", "# config: " + cfg} {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	if n := strings.Count(out, "'***'"); n != 6 {
		t.Errorf("%d secrets masked, want 6:\n%s", n, out)
	}
}

func TestClosuresAddKeepsNote(t *testing.T) {
	c := newRulesCLI(t)
	c.ok("closures", "add", "2026-12-25", "--note", "Christmas Day")
	if out := c.ok("closures", "add", "2026-12-25"); out != "updated closure 2026-12-25\n" {
		t.Errorf("re-add: %q", out)
	}
	if out := c.ok("closures", "list"); out != "2026-12-25  Christmas Day\n" {
		t.Errorf("note lost: %q", out)
	}
	c.ok("closures", "add", "2026-12-25", "--note", "Noël")
	c.ok("closures", "add", "2026-12-25")
	if out := c.ok("closures", "list"); out != "2026-12-25  Noël\n" {
		t.Errorf("note not replaced: %q", out)
	}
	c.ok("closures", "add", "2026-12-25", "--note", "") // an explicit empty note clears it
	if out := c.ok("closures", "list"); out != "2026-12-25  \n" {
		t.Errorf("note not cleared: %q", out)
	}
}

func TestAdminCommandsQuietWithoutVerbose(t *testing.T) {
	c := newRulesCLIWith(t, "log:\n  level: debug\n")
	c.ok("rules", "add", "felix", "--to", "101")
	_, errs, code := c.run("rules", "list")
	if code != 0 || strings.Contains(errs, "level=INFO") || strings.Contains(errs, "level=DEBUG") {
		t.Errorf("without -v: exit %d, stderr %q", code, errs)
	}
	for _, v := range []string{"-v", "--verbose", "-verbose"} {
		_, errs, code = c.run("rules", "list", v)
		if code != 0 || !strings.Contains(errs, "level=INFO") || !strings.Contains(errs, "rules loaded") {
			t.Errorf("with %s: exit %d, stderr %q", v, code, errs)
		}
	}
	// WARN still prints without -v: an invalid row is logged when loaded
	db, err := openTestDB(c.db)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := db.Exec(`INSERT INTO rules (name, destination, time_zone) VALUES ('moon', '102', 'Mars/Base')`); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, errs, _ := c.run("rules", "list"); !strings.Contains(errs, "level=WARN") || strings.Contains(errs, "level=INFO") {
		t.Errorf("warn without -v: %q", errs)
	}
}

func TestVersionCompletionMan(t *testing.T) {
	for _, args := range [][]string{{"version"}, {"--version"}, {"-version"}} {
		if out, errs, code := cliRun(t, nil, "", args...); code != 0 || out != "matterline "+version+"\n" || errs != "" {
			t.Errorf("%q: %d %q %q", args, code, out, errs)
		}
	}
	for _, sh := range []string{"bash", "zsh", "fish", "powershell"} {
		out, errs, code := cliRun(t, nil, "", "completion", sh)
		if code != 0 || len(out) < 500 || !strings.Contains(out, "matterline") || errs != "" {
			t.Errorf("completion %s: exit %d, %d bytes, stderr %q", sh, code, len(out), errs)
		}
	}
	if _, _, code := cliRun(t, nil, "", "health", "--url"); code != 2 {
		t.Errorf("health --url without a value: exit %d", code)
	}
	if _, _, code := cliRun(t, nil, "", "completion", "tcsh"); code != 2 {
		t.Errorf("completion tcsh: exit %d", code)
	}
	dir := t.TempDir()
	if _, errs, code := cliRun(t, nil, "", "man", dir); code != 0 {
		t.Fatalf("man: %d %s", code, errs)
	}
	page, err := os.ReadFile(filepath.Join(dir, "matterline-rules-add.1"))
	if err != nil || !bytes.Contains(page, []byte("--unavailable")) || !bytes.Contains(page, []byte(".TH")) {
		t.Errorf("man page: %v\n%s", err, page)
	}
	if _, err := os.Stat(filepath.Join(dir, "matterline.1")); err != nil {
		t.Error(err)
	}
}

func TestHealthCommand(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/healthz" {
			http.NotFound(w, r)
			return
		}
		w.WriteHeader(status)
		w.Write([]byte("draining\n"))
	}))
	defer srv.Close()
	_, port, _ := net.SplitHostPort(srv.Listener.Addr().String())
	// 0.0.0.0 in http.listen is asked on loopback
	cfg, _ := noDBConfig(t, "http:\n  listen: 0.0.0.0:"+port+"\n  token: 0123456789abcdef0123456789abcdef\n")
	if out, errs, code := cliRun(t, nil, "", "health", "-config", cfg); code != 0 || !strings.Contains(out, "healthy") {
		t.Errorf("200: %d %q %q", code, out, errs)
	}
	status = http.StatusServiceUnavailable
	if out, errs, code := cliRun(t, nil, "", "health", "-config", cfg); code != 1 || out != "" ||
		!strings.Contains(errs, "matterline health: http://127.0.0.1:"+port+"/healthz: 503 Service Unavailable: draining") {
		t.Errorf("503: %d %q %q", code, out, errs)
	}
	if _, errs, code := cliRun(t, nil, "", "health", "--url", srv.URL+"/nothing"); code != 1 || !strings.Contains(errs, "404") {
		t.Errorf("--url: %d %q", code, errs)
	}
	// nothing listening
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	addr := ln.Addr().String()
	ln.Close()
	if _, errs, code := cliRun(t, nil, "", "health", "--url", "http://"+addr+"/healthz"); code != 1 || !strings.Contains(errs, "connection refused") {
		t.Errorf("refused: %d %q", code, errs)
	}
	for in, want := range map[string]string{
		"0.0.0.0:8080": "http://127.0.0.1:8080/healthz", "[::]:8080": "http://[::1]:8080/healthz",
		":8080": "http://127.0.0.1:8080/healthz", "10.0.0.5:80": "http://10.0.0.5:80/healthz",
	} {
		if got, err := healthURL(in); err != nil || got != want {
			t.Errorf("healthURL(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
}

func openTestDB(path string) (*sql.DB, error) { return store.Open(path) }

func TestNormaliseArgs(t *testing.T) {
	root := (&cli{stdio: stdio{&bytes.Buffer{}, &bytes.Buffer{}}}).newRoot()
	for _, tc := range []struct{ in, want string }{
		{"rules add x -to 1 -config F", "rules add x --to 1 --config F"},
		{"rules -config F list -json", "rules list --config F --json"},
		{"clio lookup help", "clio lookup --help"},
		{"clio lookup -- help", "clio lookup -- help"},
		{"rules add x --message help", "rules add x --message help"},
		{"rules add x -message help -v", "rules add x --message help -v"},
		{"help rules add", "help rules add"},
		{"rules add list --to 1", "rules add list --to 1"},
		{"calls --limit -1", "calls --limit -1"},
		{"calls -limit -1", "calls --limit -1"},
		{"rules -colour", "rules -colour"},
	} {
		if got := strings.Join(normaliseArgs(root, strings.Fields(tc.in)), " "); got != tc.want {
			t.Errorf("%q -> %q, want %q", tc.in, got, tc.want)
		}
	}
}

// The demo is a sandbox: it reads only a -config given on its command line,
// never $MATTERLINE_CONFIG or the system file (a production configuration with
// the firm's real Clio credentials).
func TestDemoIgnoresDiscoveredConfig(t *testing.T) {
	prod := writeFile(t, t.TempDir(), "matterline.yaml", "store:\n  path: /nonexistent/prod.db\n")
	c := &cli{disc: discovery{getenv: func(k string) string { return map[string]string{EnvConfig: prod}[k] }, systemConfig: prod}}
	cfg, err := c.loadExplicit()
	if err != nil || c.src.path != "" || cfg.Store.Path == "/nonexistent/prod.db" {
		t.Fatalf("demo config: %v, from %q, store %q; want the embedded defaults", err, c.src, cfg.Store.Path)
	}
	if _, err := c.load(); err != nil || c.src.path != prod {
		t.Fatalf("other commands still discover it: %v %q", err, c.src)
	}
	c.configFlag = prod
	if cfg, err := c.loadExplicit(); err != nil || cfg.Store.Path != "/nonexistent/prod.db" {
		t.Fatalf("an explicit -config: %v %+v", err, cfg.Store)
	}
}

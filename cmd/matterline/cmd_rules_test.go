package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/store"
)

// rulesCLI is a temp config whose database lives in t.TempDir().
type rulesCLI struct {
	t      *testing.T
	dir    string
	config string
	db     string
}

func newRulesCLI(t *testing.T) *rulesCLI {
	t.Helper()
	return newRulesCLIWith(t, "")
}

// newRulesCLIWith adds extra to the test configuration and creates the audio
// directory next to the database with felix.wav in it.
func newRulesCLIWith(t *testing.T, extra string) *rulesCLI {
	t.Helper()
	dir := t.TempDir()
	c := &rulesCLI{t: t, dir: dir, config: filepath.Join(dir, "matterline.yaml"), db: filepath.Join(dir, "m.db")}
	if err := os.Mkdir(filepath.Join(dir, "audio"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "audio", "felix.wav"), media.EncodeWAV(make([]int16, 800)), 0o644); err != nil {
		t.Fatal(err)
	}
	mustCreateDB(t, c.db)
	yaml := "store:\n  path: " + c.db + "\nfirm:\n  time_zone: America/Chicago\nivr:\n  operator: \"+13125550100\"\n" + extra
	if err := os.WriteFile(c.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	return c
}

// run runs matterline with args; "CFG" in args is replaced by the config path
// (so tests place -config anywhere), else "-config PATH" is appended.
func (c *rulesCLI) run(args ...string) (stdout, stderr string, code int) {
	c.t.Helper()
	full := make([]string, 0, len(args)+2)
	placed := false
	for _, a := range args {
		if a == "CFG" {
			a, placed = c.config, true
		}
		full = append(full, a)
	}
	if !placed {
		full = append(full, "-config", c.config)
	}
	var out, errb bytes.Buffer
	code = run(context.Background(), full, stdio{&out, &errb})
	return out.String(), errb.String(), code
}

// ok runs and fails the test unless the exit status is 0.
func (c *rulesCLI) ok(args ...string) string {
	c.t.Helper()
	out, errs, code := c.run(args...)
	if code != 0 {
		c.t.Fatalf("matterline %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), code, out, errs)
	}
	return out
}

// fails runs, expects exit status code and stderr containing every want.
func (c *rulesCLI) fails(code int, wants []string, args ...string) {
	c.t.Helper()
	out, errs, got := c.run(args...)
	if got != code {
		c.t.Errorf("matterline %s: exit %d, want %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), got, code, out, errs)
		return
	}
	for _, w := range wants {
		if !strings.Contains(errs, w) {
			c.t.Errorf("matterline %s: stderr %q does not contain %q", strings.Join(args, " "), errs, w)
		}
	}
}

func TestRulesAddListShowSetRm(t *testing.T) {
	c := newRulesCLI(t)
	// flags and positionals in any order, -flag and --flag, -config first or last
	c.ok("rules", "add", "reception", "--to", "sip:reception@pbx.example.com", "-extension", "100", "--unavailable=hangup")
	c.ok("rules", "-config", "CFG", "add", "--to", "+1 (217) 555-0101", "--staff", "Felix  Dubinsky", "--staff-id", "501",
		"--mode", "warm", "--caller-id", "service", "--whisper", "Call from {caller_name}, matter {matter}, press 1 to accept",
		"--accept-digit", "1", "--hours", "mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00", "--tz", "America/New_York",
		"--ring-timeout", "25s", "--unavailable", "rule:reception", "--message", "Transferring you now",
		"--message-audio", "felix.wav", "felix")
	c.ok("rules", "add", "-config", "CFG", "--disabled", "old", "--to", "102")

	out := c.ok("rules", "list")
	for _, w := range []string{"NAME", "felix", "Felix Dubinsky #501", "+12175550101", "warm", "rule:reception", "reception", "100", "always", "disabled"} {
		if !strings.Contains(out, w) {
			t.Errorf("list lacks %q:\n%s", w, out)
		}
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(c.ok("rules", "list", "--json")), &list); err != nil || len(list) != 3 {
		t.Fatalf("list --json: %v %v", list, err)
	}
	if list[0]["name"] != "felix" || list[0]["valid"] != true || list[0]["ring_timeout"] != "25s" || list[0]["staff_id"] != float64(501) {
		t.Errorf("list --json[0] = %v", list[0])
	}

	out = c.ok("rules", "show", "felix")
	for _, w := range []string{"staff:         Felix Dubinsky", "to:            +12175550101 (number)", "accept_digit:  1", "tz:            America/New_York", "status:        ok"} {
		if !strings.Contains(out, w) {
			t.Errorf("show lacks %q:\n%s", w, out)
		}
	}
	var one map[string]any
	if err := json.Unmarshal([]byte(c.ok("rules", "show", "--json", "FELIX")), &one); err != nil || one["whisper"] != "Call from {caller_name}, matter {matter}, press 1 to accept" {
		t.Fatalf("show --json: %v %v", one, err)
	}

	// set changes only the given fields
	c.ok("rules", "set", "felix", "--mode", "cold", "--extension", "101")
	c.ok("rules", "set", "--enable", "old")
	if err := json.Unmarshal([]byte(c.ok("rules", "show", "felix", "--json")), &one); err != nil {
		t.Fatal(err)
	}
	if one["mode"] != "cold" || one["extension"] != "101" || one["caller_id"] != "service" || one["hours"] != "mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00" {
		t.Errorf("after set: %v", one)
	}
	if out := c.ok("rules", "show", "old"); !strings.Contains(out, "enabled:       true") {
		t.Errorf("enable: %s", out)
	}
	c.ok("rules", "set", "old", "--disable")
	if out := c.ok("rules", "show", "old"); !strings.Contains(out, "status:        disabled") {
		t.Errorf("disable: %s", out)
	}

	c.fails(1, []string{`rule "reception" is the unavailable fallback of rule "felix"`}, "rules", "rm", "reception")
	c.ok("rules", "rm", "old")
	c.fails(1, []string{`rule "old": not found`}, "rules", "rm", "old")
	c.fails(1, []string{`rule "old": not found`}, "rules", "show", "old")
	c.fails(1, []string{`rule "nope": not found`}, "rules", "set", "nope", "--mode", "warm")
}

func TestRulesErrors(t *testing.T) {
	c := newRulesCLI(t)
	c.ok("rules", "add", "reception", "--to", "100", "--extension", "100")
	tests := []struct {
		code  int
		wants []string
		args  []string
	}{
		{1, []string{`rule "a": tz: unknown IANA time zone "Mars/Base"`}, []string{"rules", "add", "a", "--to", "101", "--tz", "Mars/Base"}},
		{1, []string{`rule "a": hours: at position 5: unknown day "fry"`}, []string{"rules", "add", "a", "--to", "101", "--hours", "mon-fry 09:00-17:00"}},
		{1, []string{`rule "a": hours: at position 9: bad time "9:00"`}, []string{"rules", "add", "a", "--to", "101", "--hours", "mon-fri 9:00-17:00"}},
		{1, []string{`rule "a": extension: 100 is already used by rule "reception"`}, []string{"rules", "add", "a", "--to", "101", "--extension", "100"}},
		{1, []string{`rule "a": unavailable: unknown rule "nope" in fallback`}, []string{"rules", "add", "a", "--to", "101", "--unavailable", "rule:nope"}},
		{1, []string{`rule "a": unavailable: "voicemail" is not message, menu, hangup or rule:NAME`}, []string{"rules", "add", "a", "--to", "101", "--unavailable", "voicemail"}},
		{1, []string{`rule "reception": name: duplicate name`}, []string{"rules", "add", "reception", "--to", "101"}},
		{1, []string{`rule "a": to: "12 34" contains spaces`}, []string{"rules", "add", "a", "--to", "12 34"}},
		{1, []string{`rule "a": to: "ftp://x" is not an E.164 number`}, []string{"rules", "add", "a", "--to", "ftp://x"}},
		{1, []string{`rule "a": mode: "tepid" is not cold or warm`}, []string{"rules", "add", "a", "--to", "101", "--mode", "tepid"}},
		{1, []string{`rule "a": caller-id: "me" is not caller or service`}, []string{"rules", "add", "a", "--to", "101", "--caller-id", "me"}},
		{1, []string{`rule "a": accept_digit: "11" is not one digit`}, []string{"rules", "add", "a", "--to", "101", "--accept-digit", "11"}},
		{1, []string{`rule "a": ring-timeout: bad duration "soon"`}, []string{"rules", "add", "a", "--to", "101", "--ring-timeout", "soon"}},
		{1, []string{`rule "a": staff-id: "x" is not a Clio user id`}, []string{"rules", "add", "a", "--to", "101", "--staff-id", "x"}},
		{1, []string{`rule "a": whisper: unknown placeholder {client}`}, []string{"rules", "add", "a", "--to", "101", "--whisper", "hi {client}"}},
		{1, []string{`rule "reception": unavailable: fallback loop reception -> reception`}, []string{"rules", "set", "reception", "--unavailable", "rule:reception"}},
		{1, []string{`rule "a/b": name:`}, []string{"rules", "add", "a/b", "--to", "101"}},
		{2, []string{"--to is required"}, []string{"rules", "add", "a"}},
		{2, []string{"wants NAME"}, []string{"rules", "add", "--to", "101"}},
		{2, []string{"nothing to change"}, []string{"rules", "set", "reception"}},
		{2, []string{"unknown flag: --colour", "Usage:\n  matterline rules add NAME"}, []string{"rules", "add", "a", "--to", "101", "--colour", "red"}},
		{2, []string{`unknown subcommand "frobnicate"`}, []string{"rules", "frobnicate"}},
		{2, []string{"missing subcommand", "Usage:\n  matterline rules [flags]"}, []string{"rules"}},
		{2, []string{"missing subcommand", "Usage:\n  matterline closures [flags]"}, []string{"closures"}},
		{2, []string{"--from is required"}, []string{"rules", "test"}},
		{1, []string{`intent: routing: unknown intent "boss"`}, []string{"rules", "test", "--from", "+12175552171", "--intent", "boss"}},
		{2, []string{`--at: bad time: "tomorrow"`}, []string{"rules", "test", "--from", "+12175552171", "--at", "tomorrow"}},
	}
	for _, tt := range tests {
		c.fails(tt.code, tt.wants, tt.args...)
	}
	// nothing of the failed adds was written
	var list []map[string]any
	if err := json.Unmarshal([]byte(c.ok("rules", "list", "--json")), &list); err != nil || len(list) != 1 {
		t.Fatalf("after errors: %v %v", list, err)
	}
}

func TestRulesListShowsInvalidRow(t *testing.T) {
	c := newRulesCLI(t)
	c.ok("rules", "add", "felix", "--to", "101")
	// an admin edits the table with the sqlite3 shell
	db, err := store.Open(c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, q := range []string{
		`INSERT INTO rules (name, destination, time_zone) VALUES ('moon', '102', 'Mars/Base')`,
		`INSERT INTO rules (name, destination, hours) VALUES ('late', '103', 'mon-fri 09:00-17:60')`,
		`INSERT INTO rules (name, destination) VALUES ('spacey', '+1 217 555')`,
		`INSERT INTO closures (date, note) VALUES ('2026-02-30', 'no such day')`,
	} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	out := c.ok("rules", "list")
	for _, w := range []string{
		`INVALID: rule "moon": tz: unknown IANA time zone "Mars/Base"`,
		`INVALID: rule "late": hours: at position 15: bad time "17:60"`,
		`INVALID: rule "spacey": to:`,
	} {
		if !strings.Contains(out, w) {
			t.Errorf("list lacks %q:\n%s", w, out)
		}
	}
	var list []struct {
		Name  string `json:"name"`
		Valid bool   `json:"valid"`
		Error string `json:"error"`
	}
	if err := json.Unmarshal([]byte(c.ok("rules", "list", "--json")), &list); err != nil {
		t.Fatal(err)
	}
	valid := map[string]bool{}
	for _, r := range list {
		valid[r.Name] = r.Valid
	}
	if !valid["felix"] || valid["moon"] || valid["late"] || valid["spacey"] {
		t.Errorf("validity = %v", valid)
	}
	if out := c.ok("closures", "list"); !strings.Contains(out, `2026-02-30  INVALID: date: bad date "2026-02-30"`) {
		t.Errorf("closures list: %s", out)
	}
	// the valid rule still routes; the bad one says why not
	out = c.ok("rules", "test", "--from", "+12175552171", "--intent", "rule:moon", "--json")
	if !strings.Contains(out, `"reason":"rule_invalid"`) {
		t.Errorf("test on invalid rule: %s", out)
	}
	// an admin can fix it with set
	c.ok("rules", "set", "moon", "--tz", "Europe/London")
	if out := c.ok("rules", "show", "moon"); !strings.Contains(out, "status:        ok") {
		t.Errorf("after fix: %s", out)
	}
}

func TestRulesTestJSON(t *testing.T) {
	c := newRulesCLI(t)
	c.ok("rules", "add", "reception", "--to", "sip:reception@pbx.example.com")
	c.ok("rules", "add", "felix", "--to", "+12175550101", "--staff", "Felix Dubinsky", "--staff-id", "501",
		"--mode", "warm", "--caller-id", "service", "--hours", "mon-fri 09:00-17:00", "--extension", "101",
		"--unavailable", "rule:reception")
	c.ok("closures", "add", "2026-12-25", "--note", "Christmas")

	lookupNone := `{"status":"unconfigured","contact":null,"matter":null,"responsible_staff":null}`
	tests := []struct {
		args     []string
		decision string
	}{
		{[]string{"--intent", "staff:Felix", "--at", "2026-11-24T10:00:00-06:00"},
			`{"action":"transfer","rule":"felix","mode":"warm","destination":"+12175550101","caller_id":"service","reason":"matched"}`},
		{[]string{"--at", "2026-11-24T10:00:00-06:00", "--intent", "extension:101"},
			`{"action":"transfer","rule":"felix","mode":"warm","destination":"+12175550101","caller_id":"service","reason":"matched"}`},
		{[]string{"--intent", "rule:felix", "--at", "2026-11-24T17:00:00-06:00"},
			`{"action":"unavailable","rule":"felix","mode":"","destination":"","caller_id":"","reason":"outside_hours"}`},
		{[]string{"--intent", "rule:felix", "--at", "2026-12-25T10:00:00-06:00"},
			`{"action":"unavailable","rule":"felix","mode":"","destination":"","caller_id":"","reason":"closed_today"}`},
		{[]string{"--intent", "operator"},
			`{"action":"transfer","rule":"","mode":"cold","destination":"+13125550100","caller_id":"caller","reason":"matched"}`},
		{[]string{"--at", "2026-11-24T10:00:00-06:00"}, // responsible without a Clio connection
			`{"action":"none","rule":"","mode":"","destination":"","caller_id":"","reason":"no_lookup"}`},
	}
	for _, tt := range tests {
		args := append([]string{"rules", "test", "--json", "--from", "+12175552171"}, tt.args...)
		out := c.ok(args...)
		want := `{"lookup":` + lookupNone + `,"decision":` + tt.decision + "}\n"
		if out != want {
			t.Errorf("%v:\n got %s\nwant %s", tt.args, out, want)
		}
	}
	out := c.ok("rules", "test", "--from", "+12175552171", "--intent", "rule:felix", "--at", "2026-11-24T18:00:00-06:00")
	for _, w := range []string{"decision:  unavailable rule=felix reason=outside_hours", "unavailable handling: rule:reception",
		"fallback:  transfer rule=reception mode=cold destination=sip:reception@pbx.example.com"} {
		if !strings.Contains(out, w) {
			t.Errorf("text output lacks %q:\n%s", w, out)
		}
	}
}

// TestRulesTestFirmZone: rules test shows the call's time in firm.time_zone,
// here UTC+14, where a Tuesday evening in UTC is already Wednesday morning, and
// decides hours without a tz in that zone too.
func TestRulesTestFirmZone(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "m.db")
	mustCreateDB(t, db)
	c := &rulesCLI{t: t, dir: dir, config: filepath.Join(dir, "matterline.yaml"), db: db}
	yaml := "store:\n  path: " + db + "\nfirm:\n  time_zone: Pacific/Kiritimati\n"
	if err := os.WriteFile(c.config, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	c.ok("rules", "add", "felix", "--to", "+12175550101", "--hours", "mon-fri 09:00-17:00")
	tests := []struct{ at, want []string }{
		// Tuesday 20:00 UTC = Wednesday 10:00 in Kiritimati: open.
		{[]string{"--at", "2026-11-24T20:00:00Z"}, []string{
			"intent:    rule:felix at 2026-11-25T10:00:00+14:00 (Pacific/Kiritimati)",
			"decision:  transfer rule=felix"}},
		// Tuesday 10:00 in Chicago = Wednesday 06:00 in Kiritimati: closed.
		{[]string{"--at", "2026-11-24T10:00:00-06:00"}, []string{
			"intent:    rule:felix at 2026-11-25T06:00:00+14:00 (Pacific/Kiritimati)",
			"decision:  unavailable rule=felix reason=outside_hours"}},
		// Now, also in the firm's zone.
		{nil, []string{"+14:00 (Pacific/Kiritimati)"}},
	}
	for _, tt := range tests {
		out := c.ok(append([]string{"rules", "test", "--from", "+12175552171", "--intent", "rule:felix"}, tt.at...)...)
		for _, w := range tt.want {
			if !strings.Contains(out, w) {
				t.Errorf("%v: output lacks %q:\n%s", tt.at, w, out)
			}
		}
	}
}

func TestRulesExportImport(t *testing.T) {
	c := newRulesCLI(t)
	c.ok("rules", "add", "reception", "--to", "sip:reception@pbx.example.com", "--extension", "100")
	c.ok("rules", "add", "felix", "--to", "+12175550101", "--staff", "Felix Dubinsky", "--staff-id", "501", "--mode", "warm",
		"--whisper", "Call from {caller_name}, matter {matter}", "--accept-digit", "#", "--hours", "mon-fri 09:00-17:00",
		"--tz", "Europe/London", "--unavailable", "rule:reception", "--ring-timeout", "30", "--disabled")
	c.ok("closures", "add", "2026-12-25", "--note", "Christmas Day")
	exported := c.ok("rules", "export")
	for _, w := range []string{"name: felix", "staff_id: 501", `accept_digit: '#'`, "ring_timeout: 30s", "enabled: false", `date: "2026-12-25"`, "note: Christmas Day"} {
		if !strings.Contains(exported, w) {
			t.Errorf("export lacks %q:\n%s", w, exported)
		}
	}
	file := filepath.Join(c.dir, "rules.yaml")
	if err := os.WriteFile(file, []byte(exported), 0o600); err != nil {
		t.Fatal(err)
	}

	// into a fresh database: same export back
	d := newRulesCLI(t)
	if out := d.ok("rules", "import", file, "--dry-run"); !strings.Contains(out, "dry run, nothing written: would import 2 rules (2 added") {
		t.Errorf("dry run: %s", out)
	}
	if out := d.ok("rules", "list"); !strings.Contains(out, "no rules") {
		t.Errorf("dry run wrote: %s", out)
	}
	if out := d.ok("rules", "import", file); !strings.Contains(out, "imported 2 rules (2 added, 0 changed, 0 removed, 0 unchanged), 1 closures") {
		t.Errorf("import: %s", out)
	}
	if got := d.ok("rules", "export"); got != exported {
		t.Errorf("round trip differs:\n%s\n---\n%s", exported, got)
	}
	if out := d.ok("rules", "import", file, "-config", "CFG"); !strings.Contains(out, "2 unchanged") {
		t.Errorf("re-import: %s", out)
	}

	// a bad file names rule and field, and writes nothing
	bad := filepath.Join(c.dir, "bad.yaml")
	os.WriteFile(bad, []byte(`rules:
  - name: a
    to: "101"
    hours: mon-fri 09:00-17:00
    tz: Mars/Base
  - name: b
    to: "102"
    unavailable: rule:ghost
  - name: c
    to: "103"
    extension: "100"
  - name: d
    to: "104"
    extension: "100"
`), 0o600)
	d.fails(1, []string{"nothing written", `rule "a": tz: unknown IANA time zone "Mars/Base"`,
		`rule "b": unavailable: unknown rule "ghost" in fallback`, `rule "d": extension: 100 is already used by rule "c"`},
		"rules", "import", bad)
	if got := d.ok("rules", "export"); got != exported {
		t.Errorf("failed import changed the rules:\n%s", got)
	}
	d.fails(1, []string{"field colour not found"}, "rules", "import", writeFile(t, c.dir, "x.yaml", "rules:\n  - name: a\n    to: '1'\n    colour: red\n"))
	d.fails(1, []string{"no such file"}, "rules", "import", filepath.Join(c.dir, "missing.yaml"))
	d.fails(2, []string{"wants FILE"}, "rules", "import")

	// a file listing fewer rules replaces the set; without closures: they stay
	small := writeFile(t, c.dir, "small.yaml", "rules:\n  - name: solo\n    to: sip:solo@pbx.example.com\n")
	if out := d.ok("rules", "import", small); !strings.Contains(out, "1 added, 0 changed, 2 removed") || !strings.Contains(out, "closures kept") {
		t.Errorf("small import: %s", out)
	}
	if out := d.ok("closures", "list"); !strings.Contains(out, "2026-12-25  Christmas Day") {
		t.Errorf("closures after import: %s", out)
	}
}

// mustCreateDB creates the database at path, as serve or a writing command would.
func mustCreateDB(t *testing.T, path string) {
	t.Helper()
	db, err := store.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	db.Close()
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestClosuresCLI(t *testing.T) {
	c := newRulesCLI(t)
	if out := c.ok("closures", "list"); !strings.Contains(out, "no closures") {
		t.Errorf("empty: %s", out)
	}
	if out := c.ok("closures", "add", "--note", "Christmas", "2026-12-25"); out != "added closure 2026-12-25\n" {
		t.Errorf("add: %q", out)
	}
	if out := c.ok("closures", "-config", "CFG", "add", "2026-12-25", "--note", "Christmas Day"); out != "updated closure 2026-12-25\n" {
		t.Errorf("update: %q", out)
	}
	c.ok("closures", "add", "2027-01-01")
	if out := c.ok("closures", "list"); out != "2026-12-25  Christmas Day\n2027-01-01  \n" {
		t.Errorf("list: %q", out)
	}
	var list []map[string]any
	if err := json.Unmarshal([]byte(c.ok("closures", "list", "--json")), &list); err != nil || len(list) != 2 || list[0]["note"] != "Christmas Day" {
		t.Errorf("list --json: %v %v", list, err)
	}
	c.fails(1, []string{`date: bad date "2026-02-30" (want YYYY-MM-DD`}, "closures", "add", "2026-02-30")
	c.fails(1, []string{`date: bad date "25/12/2026"`}, "closures", "add", "25/12/2026")
	c.ok("closures", "rm", "2027-01-01")
	c.fails(1, []string{"closure 2027-01-01: not found"}, "closures", "rm", "2027-01-01")
	c.fails(2, []string{"wants DATE"}, "closures", "add")
	c.fails(2, []string{`unknown subcommand "clear"`}, "closures", "clear")
}

func TestRulesAddFromClioUser(t *testing.T) {
	c := newRulesCLI(t)
	c.fails(1, []string{`rule "felix": from-clio-user 501: clio is not connected`}, "rules", "add", "felix", "--from-clio-user", "501")

	saved := clioUserByID
	t.Cleanup(func() { clioUserByID = saved })
	clioUserByID = func(_ context.Context, cfg *config.Config, id int64) (string, string, error) {
		if cfg == nil || id != 501 {
			t.Errorf("hook got cfg=%v id=%d", cfg, id)
		}
		return "Felix  Dubinsky", "+1 (217) 555-0101", nil
	}
	c.ok("rules", "add", "felix", "--from-clio-user", "501", "--mode", "warm")
	var r map[string]any
	if err := json.Unmarshal([]byte(c.ok("rules", "show", "felix", "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r["staff"] != "Felix Dubinsky" || r["staff_id"] != float64(501) || r["to"] != "+12175550101" || r["mode"] != "warm" {
		t.Errorf("rule from clio user: %v", r)
	}
	// explicit flags win over the Clio user's values
	c.ok("rules", "add", "felix-desk", "--from-clio-user", "501", "--to", "sip:felix@pbx.example.com", "--staff-id", "0")
	if err := json.Unmarshal([]byte(c.ok("rules", "show", "felix-desk", "--json")), &r); err != nil {
		t.Fatal(err)
	}
	if r["to"] != "sip:felix@pbx.example.com" || r["staff_id"] != float64(0) {
		t.Errorf("explicit flags: %v", r)
	}
	c.fails(1, []string{`rule "x": from-clio-user: "abc" is not a Clio user id`}, "rules", "add", "x", "--from-clio-user", "abc")
}

// With routing.allowed_destinations set, rules add refuses premium and
// international numbers and names the list; message_audio attacks are refused
// with the file named; a row written with sqlite3 is listed INVALID.
func TestRulesAddRefusesDestinationsAndAudio(t *testing.T) {
	c := newRulesCLIWith(t, "routing:\n  allowed_destinations: [\"+1217555*\", \"1??\", \"+13125550100\"]\n")
	c.ok("rules", "add", "felix", "--to", "+1 217 555 0101", "--message-audio", "felix.wav")
	c.ok("rules", "add", "desk", "--to", "101")
	for _, tt := range []struct{ to, audio, want string }{
		{"+19005550123", "", `rule "bad": to: destination not allowed: "+19005550123" matches none of routing.allowed_destinations ["+1217555*" "1??" "+13125550100"]`},
		{"+44 20 7123 4567", "", `"+442071234567" matches none of routing.allowed_destinations`},
		{"102", "/dev/zero", `rule "bad": message_audio: unusable message audio: "/dev/zero" is outside the audio directory`},
		{"102", "../../etc/passwd", `"../../etc/passwd" is outside the audio directory`},
	} {
		args := []string{"rules", "add", "bad", "--to", tt.to}
		if tt.audio != "" {
			args = append(args, "--message-audio", tt.audio)
		}
		_, errs, code := c.run(args...)
		if code == 0 || !strings.Contains(errs, tt.want) {
			t.Errorf("rules add --to %s --message-audio %q: exit %d, stderr %q, want %q", tt.to, tt.audio, code, errs, tt.want)
		}
	}
	db, err := store.Open(c.db)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Exec(`INSERT INTO rules (name, destination, message_audio) VALUES ('premium', '+19005550123', ''), ('zero', '103', '/dev/zero')`); err != nil {
		t.Fatal(err)
	}
	out := c.ok("rules", "list")
	for _, w := range []string{"matches none of routing.allowed_destinations", `"/dev/zero" is outside the audio directory`} {
		if !strings.Contains(out, w) {
			t.Errorf("list lacks %q:\n%s", w, out)
		}
	}
}

// A setting that does nothing for the rule's mode is saved but warned about on
// stderr, by add and by set; a warm rule with the same settings is not.
func TestRulesWarnUselessSettings(t *testing.T) {
	c := newRulesCLI(t)
	out, errs, code := c.run("rules", "add", "Felix Dubinsky", "--to", "+12175550101", "--mode", "cold", "--whisper", "Call from {caller_name}")
	if code != 0 || !strings.Contains(out, "added rule Felix Dubinsky") {
		t.Fatalf("add: %d %q %q", code, out, errs)
	}
	if !strings.Contains(errs, "warning: rule Felix Dubinsky: whisper: ignored by a cold rule") {
		t.Fatalf("add: no warning about the whisper on a cold rule: %q", errs)
	}
	_, errs, code = c.run("rules", "set", "felix dubinsky", "--accept-digit", "1")
	if code != 0 || !strings.Contains(errs, "accept_digit: ignored by a cold rule") {
		t.Fatalf("set: %d %q", code, errs)
	}
	_, errs, code = c.run("rules", "set", "Felix Dubinsky", "--mode", "warm")
	if code != 0 || strings.Contains(errs, "warning") {
		t.Fatalf("set --mode warm: %d, stderr %q, want no warning", code, errs)
	}
}

// rules set --srtp on|off|default is stored and shown; anything else is refused.
func TestRulesSRTPFlag(t *testing.T) {
	c := newRulesCLI(t)
	if _, errs, code := c.run("rules", "add", "felix", "--to", "+12175550101", "--srtp", "on"); code != 0 {
		t.Fatalf("add --srtp on: %d %s", code, errs)
	}
	out, _, _ := c.run("rules", "show", "felix", "--json")
	if !strings.Contains(out, `"srtp":true`) && !strings.Contains(out, `"srtp": true`) {
		t.Fatalf("show after --srtp on: %s", out)
	}
	if _, _, code := c.run("rules", "set", "felix", "--srtp", "default"); code != 0 {
		t.Fatal("set --srtp default")
	}
	out, _, _ = c.run("rules", "show", "felix", "--json")
	if !strings.Contains(out, `"srtp":null`) && !strings.Contains(out, `"srtp": null`) {
		t.Fatalf("show after --srtp default: %s", out)
	}
	if _, errs, code := c.run("rules", "set", "felix", "--srtp", "maybe"); code == 0 || !strings.Contains(errs, "srtp") {
		t.Fatalf("set --srtp maybe: %d %q, want refused", code, errs)
	}
}

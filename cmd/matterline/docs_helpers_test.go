package main

// Helpers of the tests that run what the operator's guide shows (README.md and
// docs/*.md): fenced code blocks, the commands in them, the sample output the
// doc prints after a command, the output's shape, and the matterline binary
// the commands run (built once per test binary).

import (
	"bytes"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
)

// docBlock is one fenced code block of a markdown file.
type docBlock struct {
	file  string
	line  int    // line number of the opening fence
	lang  string // info string: sh, console, json, "" ...
	lines []string
}

// fencedBlocks returns the fenced code blocks of a markdown file, the fence's
// indentation (a block inside a list item) removed from their lines.
func fencedBlocks(t *testing.T, path string) []docBlock {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var blocks []docBlock
	var cur *docBlock
	indent := 0
	for i, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimLeft(line, " ")
		if cur == nil {
			if rest, ok := strings.CutPrefix(trimmed, "```"); ok {
				indent = len(line) - len(trimmed)
				cur = &docBlock{file: path, line: i + 1, lang: strings.TrimSpace(rest)}
			}
			continue
		}
		if strings.TrimSpace(line) == "```" {
			blocks = append(blocks, *cur)
			cur = nil
			continue
		}
		n := min(indent, len(line)-len(trimmed))
		cur.lines = append(cur.lines, line[n:])
	}
	if cur != nil {
		t.Fatalf("%s:%d: code block never closed", path, cur.line)
	}
	return blocks
}

// docCommand is one command a doc shows in a code block.
type docCommand struct {
	file    string
	line    int
	text    string   // as written, continuation lines joined, without "$ " and the trailing comment
	comment string   // the trailing "# ..." comment, without "#"
	heredoc string   // the here-document's body and end line, when the command has one
	output  []string // the sample output the doc prints after a "$ " command
}

func (c docCommand) String() string { return c.text }

// where names the command's place in the docs for messages.
func (c docCommand) where() string {
	return filepath.Base(c.file) + ":" + itoa(c.line)
}

func itoa(n int) string {
	b, _ := json.Marshal(n)
	return string(b)
}

var heredocStart = regexp.MustCompile(`<<-?\s*'?"?([A-Za-z_]+)'?"?`)

// commands returns the commands of a shell block. In sh, bash and shell blocks
// every line that is not blank or a comment is a command (a trailing "\" joins
// the next line, a here-document is kept with its command). In console and
// untagged blocks, "$ " lines are commands followed by their sample output, and
// lines starting with "matterline " (a synopsis) are commands without one.
// Other languages have no commands.
func (b docBlock) commands() []docCommand {
	var cmds []docCommand
	prompt := false
	switch b.lang {
	case "sh", "bash", "shell":
	case "console", "":
		prompt = true
	default:
		return nil
	}
	for i := 0; i < len(b.lines); i++ {
		line := b.lines[i]
		start := i
		if prompt {
			rest, ok := strings.CutPrefix(line, "$ ")
			if !ok && !strings.HasPrefix(line, "matterline ") {
				continue
			}
			if ok {
				line = rest
			}
		} else if t := strings.TrimSpace(line); t == "" || strings.HasPrefix(t, "#") {
			continue
		}
		for strings.HasSuffix(line, "\\") && i+1 < len(b.lines) {
			i++
			line = strings.TrimSuffix(line, "\\") + " " + strings.TrimSpace(b.lines[i])
		}
		text, comment := splitComment(line)
		c := docCommand{file: b.file, line: b.line + 1 + start, text: strings.Join(strings.Fields(text), " "), comment: comment}
		if m := heredocStart.FindStringSubmatch(text); m != nil && !prompt {
			var body []string
			for i+1 < len(b.lines) {
				i++
				body = append(body, b.lines[i])
				if strings.TrimSpace(b.lines[i]) == m[1] {
					break
				}
			}
			c.heredoc = strings.Join(body, "\n") + "\n"
		}
		if prompt && strings.HasPrefix(b.lines[start], "$ ") {
			for i+1 < len(b.lines) && !strings.HasPrefix(b.lines[i+1], "$ ") {
				i++
				c.output = append(c.output, b.lines[i])
			}
			for len(c.output) > 0 && strings.TrimSpace(c.output[len(c.output)-1]) == "" {
				c.output = c.output[:len(c.output)-1]
			}
		}
		cmds = append(cmds, c)
	}
	return cmds
}

// splitComment cuts a shell line at a "#" that starts a comment: outside quotes,
// after a blank.
func splitComment(line string) (text, comment string) {
	var quote rune
	for i, r := range line {
		switch {
		case quote != 0:
			if r == quote {
				quote = 0
			}
		case r == '\'' || r == '"':
			quote = r
		case r == '#' && i > 0 && (line[i-1] == ' ' || line[i-1] == '\t'):
			return strings.TrimSpace(line[:i]), strings.TrimSpace(line[i+1:])
		}
	}
	return strings.TrimSpace(line), ""
}

// outputShape checks that got has the shape of the sample output a doc shows:
// for JSON, every key of the sample's top-level object is in got's; for text,
// every line's label (the words before "label:   value", else the first
// column) is the label of a line of got. Values are not compared. It returns
// what is missing.
func outputShape(sample []string, got string) []string {
	text := strings.TrimSpace(strings.Join(sample, "\n"))
	if strings.HasPrefix(text, "{") {
		want, have := jsonKeys(text), jsonKeys(strings.TrimSpace(got))
		if want == nil {
			return []string{"the sample is not a JSON object"}
		}
		if have == nil {
			return []string{"the output is not a JSON object"}
		}
		var missing []string
		for k := range want {
			if !have[k] {
				missing = append(missing, "key "+k)
			}
		}
		return missing
	}
	have := map[string]bool{}
	for _, l := range strings.Split(got, "\n") {
		have[lineLabel(l)] = true
	}
	var missing []string
	for _, l := range sample {
		lbl := lineLabel(l)
		if lbl == "" || lbl == "..." || strings.HasPrefix(l, " ") {
			continue // an elision, a blank line, or a continuation (a URL, a wrapped value)
		}
		if !have[lbl] {
			missing = append(missing, "line "+strings.TrimSpace(l))
		}
	}
	return missing
}

var labelled = regexp.MustCompile(`^([A-Za-z][A-Za-z ]*):(\s|$)`)

func lineLabel(l string) string {
	if m := labelled.FindStringSubmatch(l); m != nil {
		return m[1]
	}
	if f := strings.Fields(l); len(f) > 0 {
		return f[0]
	}
	return ""
}

// jsonKeys returns the keys of a JSON object (the first line that is one, for
// output with several lines), nested ones as "parent.key", or nil.
func jsonKeys(s string) map[string]bool {
	var m map[string]any
	if json.Unmarshal([]byte(s), &m) != nil {
		first, _, _ := strings.Cut(s, "\n")
		if json.Unmarshal([]byte(first), &m) != nil {
			return nil
		}
	}
	keys := map[string]bool{}
	var walk func(prefix string, m map[string]any)
	walk = func(prefix string, m map[string]any) {
		for k, v := range m {
			keys[prefix+k] = true
			if sub, ok := v.(map[string]any); ok {
				walk(prefix+k+".", sub)
			}
		}
	}
	walk("", m)
	return keys
}

var (
	docBinOnce sync.Once
	docBinPath string
	docBinErr  error
	docBinOut  []byte
)

// docBinary builds the matterline binary once per test binary, as the docs
// build it (CGO_ENABLED=0 go build ./cmd/matterline), and returns its path. It
// lives in a directory of its own so a test can put it on PATH.
func docBinary(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("builds the matterline binary (-short)")
	}
	docBinOnce.Do(func() {
		var dir string
		if dir, docBinErr = os.MkdirTemp("", "matterline-docbin-"); docBinErr != nil {
			return
		}
		docBinPath = filepath.Join(dir, "matterline")
		cmd := exec.Command("go", "build", "-o", docBinPath, ".")
		cmd.Env = append(os.Environ(), "CGO_ENABLED=0")
		docBinOut, docBinErr = cmd.CombinedOutput()
	})
	if docBinErr != nil {
		t.Fatalf("go build: %v\n%s", docBinErr, docBinOut)
	}
	return docBinPath
}

// copyFile copies src to dst with mode perm.
func copyFile(t *testing.T, src, dst string, perm os.FileMode) {
	t.Helper()
	data, err := os.ReadFile(src)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(dst, data, perm); err != nil {
		t.Fatal(err)
	}
}

// combined is a command's stdout and stderr for messages.
func combined(out, errs []byte) string {
	out, errs = bytes.TrimSpace(out), bytes.TrimSpace(errs)
	if len(out) == 0 || len(errs) == 0 {
		return string(out) + string(errs)
	}
	return string(out) + "\n" + string(errs)
}

// TestMain removes the binary docBinary built.
func TestMain(m *testing.M) {
	code := m.Run()
	if docBinPath != "" {
		os.RemoveAll(filepath.Dir(docBinPath))
	}
	os.Exit(code)
}

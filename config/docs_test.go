package config

import (
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// The operator's guide documents every configuration key in docs/configuration.md,
// one table row per key: | `sip.listen` | type | `default` | meaning |. These tests
// keep that page and the Config struct in step, both ways.

const configDoc = "../docs/configuration.md"

// docRow is one key's row of the reference tables.
type docRow struct {
	key, typ, def string
	line          int
}

var keyCell = regexp.MustCompile("^`([a-z_]+(?:\\.[a-z_]+)*)`$")

// readDocRows returns the key rows of every table in the page whose first column
// header is "key".
func readDocRows(t *testing.T) (map[string]docRow, string) {
	t.Helper()
	data, err := os.ReadFile(configDoc)
	if err != nil {
		t.Fatalf("read the configuration reference: %v", err)
	}
	text := string(data)
	rows := map[string]docRow{}
	inKeyTable := false
	for i, line := range strings.Split(text, "\n") {
		line = strings.TrimSpace(line)
		if !strings.HasPrefix(line, "|") {
			inKeyTable = false
			continue
		}
		cells := splitRow(line)
		if len(cells) == 0 {
			continue
		}
		if cells[0] == "key" {
			inKeyTable = true
			if len(cells) < 4 || cells[1] != "type" || cells[2] != "default" {
				t.Errorf("%s:%d: a key table needs the columns | key | type | default | meaning |", configDoc, i+1)
			}
			continue
		}
		if !inKeyTable || strings.Trim(cells[0], "-: ") == "" {
			continue
		}
		m := keyCell.FindStringSubmatch(cells[0])
		if m == nil {
			t.Errorf("%s:%d: first cell %q is not a `key`", configDoc, i+1, cells[0])
			continue
		}
		if len(cells) < 4 {
			t.Errorf("%s:%d: row of %s has %d cells, want 4", configDoc, i+1, m[1], len(cells))
			continue
		}
		if prev, dup := rows[m[1]]; dup {
			t.Errorf("%s:%d: %s documented twice (first on line %d)", configDoc, i+1, m[1], prev.line)
		}
		rows[m[1]] = docRow{key: m[1], typ: cells[1], def: cells[2], line: i + 1}
	}
	return rows, text
}

// splitRow splits a Markdown table row into trimmed cells. Pipes inside
// backticks (none expected) are not special-cased.
func splitRow(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	parts := strings.Split(line, "|")
	for i := range parts {
		parts[i] = strings.TrimSpace(parts[i])
	}
	return parts
}

// fieldAt returns the value of the dotted YAML key path in v (a Config).
func fieldAt(v reflect.Value, path string) (reflect.Value, bool) {
	for _, name := range strings.Split(path, ".") {
		if v.Kind() != reflect.Struct {
			return reflect.Value{}, false
		}
		f, ok := fieldByTag(v.Type(), name)
		if !ok {
			return reflect.Value{}, false
		}
		v = v.FieldByIndex(f.Index)
	}
	return v, true
}

// docType is the word the type column must start with for a field type.
func docType(t reflect.Type) string {
	if t == reflect.TypeOf(Duration(0)) {
		return "duration"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int64, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Slice:
		if t.Elem().Kind() == reflect.String {
			return "list of strings"
		}
	case reflect.Map:
		return "map"
	}
	return t.String()
}

func TestDocEveryKeyDocumented(t *testing.T) {
	rows, _ := readDocRows(t)
	known := map[string]bool{}
	for _, k := range AllKeys() {
		known[k] = true
		if _, ok := rows[k]; !ok {
			t.Errorf("config key %s is missing from %s (add a table row | `%s` | type | `default` | meaning |)", k, configDoc, k)
		}
	}
	for k, r := range rows {
		if !known[k] {
			t.Errorf("%s:%d: documents %s, which is not a configuration key", configDoc, r.line, k)
		}
	}
}

// TestDocTypesAndDefaults decodes each documented default as YAML into the
// field's own type and compares it with Default().
func TestDocTypesAndDefaults(t *testing.T) {
	rows, _ := readDocRows(t)
	def := reflect.ValueOf(Default())
	for _, k := range AllKeys() {
		r, ok := rows[k]
		if !ok {
			continue // reported by TestDocEveryKeyDocumented
		}
		want, ok := fieldAt(def, k)
		if !ok {
			t.Fatalf("AllKeys returned %s, which fieldAt cannot find", k)
		}
		if wt := docType(want.Type()); !strings.HasPrefix(r.typ, wt) {
			t.Errorf("%s:%d: %s: type %q, want it to start with %q", configDoc, r.line, k, r.typ, wt)
		}
		if len(r.def) < 2 || r.def[0] != '`' || r.def[len(r.def)-1] != '`' {
			t.Errorf("%s:%d: %s: default %q must be one `YAML value`", configDoc, r.line, k, r.def)
			continue
		}
		got := reflect.New(want.Type())
		if err := yaml.Unmarshal([]byte(r.def[1:len(r.def)-1]), got.Interface()); err != nil {
			t.Errorf("%s:%d: %s: default %s does not parse as %s: %v", configDoc, r.line, k, r.def, want.Type(), err)
			continue
		}
		if !equalValue(got.Elem(), want) {
			t.Errorf("%s:%d: %s: documented default %s, but Default() has %#v", configDoc, r.line, k, r.def, want.Interface())
		}
	}
}

// equalValue treats nil and empty slices and maps as equal (`[]` and `""` both
// stand for "nothing").
func equalValue(a, b reflect.Value) bool {
	if (a.Kind() == reflect.Slice || a.Kind() == reflect.Map) && a.Len() == 0 && b.Len() == 0 {
		return true
	}
	return reflect.DeepEqual(a.Interface(), b.Interface())
}

var yamlBlock = regexp.MustCompile("(?s)## Complete example\n.*?```yaml\n(.*?)```")

// TestDocExampleParsesAndValidates checks that the complete example parses with
// Parse, validates, and sets every key.
func TestDocExampleParsesAndValidates(t *testing.T) {
	_, text := readDocRows(t)
	m := yamlBlock.FindStringSubmatch(text)
	if m == nil {
		t.Fatalf("%s: no ```yaml block under \"## Complete example\"", configDoc)
	}
	c := Default()
	if err := Parse([]byte(m[1]), &c); err != nil {
		t.Fatalf("the complete example does not parse: %v", err)
	}
	if err := c.Validate(); err != nil {
		t.Fatalf("the complete example does not validate: %v", err)
	}
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(m[1]), &root); err != nil {
		t.Fatal(err)
	}
	for _, k := range AllKeys() {
		if !hasKey(&root, strings.Split(k, ".")...) {
			t.Errorf("the complete example does not set %s", k)
		}
	}
}

// configRef is a backticked mention of a configuration key in prose, optionally
// followed by a value: `clio.match`, `sip.mode: redirect`, `sip.listen[0]`.
var configRef = regexp.MustCompile("`((?:sip|media|http|store|clio|ivr|transfer|firm|log|hep)\\.[a-z_]+)(?:\\[[0-9]+\\])?(?::[^`]*)?`")

// TestDocsMentionOnlyRealKeys checks every key named in the operator's guide
// (README and docs/) exists, so a renamed key cannot linger in the prose.
func TestDocsMentionOnlyRealKeys(t *testing.T) {
	known := map[string]bool{}
	for _, k := range AllKeys() {
		known[k] = true
	}
	files, err := filepath.Glob("../docs/*.md")
	if err != nil {
		t.Fatal(err)
	}
	files = append(files, "../README.md")
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, line := range strings.Split(string(data), "\n") {
			for _, m := range configRef.FindAllStringSubmatch(line, -1) {
				if !known[m[1]] {
					t.Errorf("%s:%d: mentions %s, which is not a configuration key", f, i+1, m[1])
				}
			}
		}
	}
}

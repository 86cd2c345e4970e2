package config

import (
	"errors"
	"os"
	"regexp"
	"testing"
)

var anyYAMLBlock = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// A configuration file is operator input: Parse over the defaults, then
// Validate, never panics on any bytes, and every refusal wraps ErrInvalid.
// Seeded with the documented example file and one file per kind of mistake.
func FuzzParseValidate(f *testing.F) {
	doc, err := os.ReadFile(configDoc)
	if err != nil {
		f.Fatal(err)
	}
	for _, m := range anyYAMLBlock.FindAllSubmatch(doc, -1) {
		f.Add(m[1])
	}
	for _, s := range []string{
		"",
		"sip:\n  lisen: []\n",
		"sip:\n  trusted_sources: [\"10.0.0/8\"]\n",
		"media:\n  rtp_ports: \"20000-10000\"\n",
		"sip:\n  listen: [\"udp://nohost\"]\n",
		"clio:\n  answer_wait: soon\n",
		"ivr:\n  menu: {\"1\": \"dial:5551234\"}\n",
		"sip: [1,2]\n",
		"::: not yaml",
		"http:\n  allowed_hosts: [\"a.example:99999\"]\n",
		"routing:\n  allowed_destinations: [\"+1217555*\"]\nivr:\n  operator: \"+19005550123\"\n",
		"a: &a [*a, *a]\n",
		"sip: !!binary aGVsbG8=\n",
		"---\nsip: {}\n---\nbogus: 1\n",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		c := Default()
		if err := Parse(data, &c); err != nil {
			if !errors.Is(err, ErrInvalid) {
				t.Fatalf("parse error %v does not wrap ErrInvalid", err)
			}
			return
		}
		if err := c.Validate(); err != nil && !errors.Is(err, ErrInvalid) {
			t.Fatalf("validate error %v does not wrap ErrInvalid", err)
		}
	})
}

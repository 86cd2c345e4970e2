package routing

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"
)

// Destinations come from rules files, the HTTP API and ivr.operator:
// DestinationKindOf never panics, a number is digits (with a leading + for
// E.164), a URI is sip:/sips: without spaces, quotes or angle brackets (nothing
// that could break a Refer-To or Request-URI), and NormalizeNumber is idempotent.
func FuzzDestinationKindOf(f *testing.F) {
	for _, s := range []string{
		"+12175550101", "2175550101", "101", "sip:felix@pbx.firm.example", "sips:pbx.firm.example:5061;transport=tls",
		"sip:[2001:db8::1]:5060", "sip:a@b?X-Head=1", "+1 (217) 555-2171", "217.555.2171", "tel:+12175550101",
		"sip:a b@c", "sip:x@y>", "sip:@host", "+0123", "1", "\u00a0101", "SIP:UPPER@HOST",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if n := NormalizeNumber(s); NormalizeNumber(n) != n {
			t.Fatalf("NormalizeNumber(%q) = %q, then %q", s, n, NormalizeNumber(n))
		}
		k, err := DestinationKindOf(s)
		if (err != nil) != (k == DestInvalid) {
			t.Fatalf("DestinationKindOf(%q) = %v, %v", s, k, err)
		}
		switch k {
		case DestNumber, DestInternal:
			if strings.Trim(strings.TrimPrefix(s, "+"), "0123456789") != "" {
				t.Fatalf("%q classified %v", s, k)
			}
		case DestURI:
			lower := strings.ToLower(s)
			if !strings.HasPrefix(lower, "sip:") && !strings.HasPrefix(lower, "sips:") || strings.ContainsAny(s, " \t\r\n<>\"") {
				t.Fatalf("%q classified %v", s, k)
			}
		}
	})
}

// Intents are typed by callers on the IVR menu config, the CLI and the HTTP API:
// ParseIntent never panics and what it accepts prints back to an equal intent.
func FuzzParseIntent(f *testing.F) {
	for _, s := range []string{"responsible", "operator", "rule:felix", "extension:201", "staff:Felix Dubinsky", " rule: a ", "rule:", "dial:5551234", ":", "staff::"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		i, err := ParseIntent(s)
		if err != nil {
			return
		}
		back, err := ParseIntent(i.String())
		if err != nil || back != i {
			t.Fatalf("ParseIntent(%q) = %+v, printed %q, parsed again %+v, %v", s, i, i.String(), back, err)
		}
	})
}

// Ring timeouts and closure dates are rule fields from files and the API.
func FuzzParseRuleFields(f *testing.F) {
	for _, s := range []string{"20s", "1m", "30", "1.5s", "-5", "9999999999999999999", "2026-12-25", " 2026-02-29 ", "2026-13-01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if d, err := ParseRingTimeout(s); err == nil && (d < MinRingTimeout || d > MaxRingTimeout || d%time.Second != 0) {
			t.Fatalf("ParseRingTimeout(%q) = %v", s, d)
		}
		if d, err := ParseDate(s); err == nil {
			if again, err := ParseDate(d); err != nil || again != d {
				t.Fatalf("ParseDate(%q) = %q, then %q, %v", s, d, again, err)
			}
		}
	})
}

var rulesYAML = regexp.MustCompile("(?s)```yaml\n(.*?)```")

// A rules file (matterline rules import, or a PUT of the whole set) is user
// input: ParseDoc never panics, and what it accepts builds a rule set.
func FuzzParseDoc(f *testing.F) {
	for _, path := range []string{"../docs/rules.md"} {
		doc, err := os.ReadFile(path)
		if err != nil {
			f.Fatal(err)
		}
		for _, m := range rulesYAML.FindAllSubmatch(doc, -1) {
			f.Add(m[1])
		}
	}
	demo, err := os.ReadFile("../configs/demo/rules.yaml")
	if err != nil {
		f.Fatal(err)
	}
	f.Add(demo)
	for _, s := range []string{
		"rules: []\n",
		"rules:\n  - name: a\n    to: \"101\"\n  - name: b\n    to: \"+442071234567\"\n",
		"rules:\n  - name: a\n    to: \"101\"\n    unavailable: rule:a\n",
		"rules:\n  - name: a\n    to: \"101\"\n    hours: mon-fri 09:00-17:00\n    tz: ../../etc/passwd\n",
		"rules:\n  - name: a\n    to: sip:x@pbx.firm.example\n    extension: \"1\"\n  - name: b\n    to: \"102\"\n    extension: \"1\"\n",
		"closures:\n  - date: \"2026-02-30\"\n",
		"rules:\n  - {name: a, to: \"101\", bogus: 1}\n",
		"",
	} {
		f.Add([]byte(s))
	}
	firm := Firm{TimeZone: "America/Chicago", Operator: "+12175550100", AllowedDestinations: []string{"+1217555*", "1??", "sip:*@pbx.firm.example"}}
	f.Fuzz(func(t *testing.T, data []byte) {
		rules, closures, err := ParseDoc(data, firm)
		if err != nil {
			return
		}
		if _, err := NewRuleSet(rules, closures, firm); err != nil {
			t.Fatalf("ParseDoc accepted what NewRuleSet refuses: %v\n%s", err, data)
		}
	})
}

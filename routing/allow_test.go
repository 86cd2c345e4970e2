package routing

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
)

func TestAllowList(t *testing.T) {
	allow, err := ParseAllowList([]string{"+1 217 555*", "1??", "sip:*@PBX.firm.example", "sips:reception@pbx.firm.example;transport=tls"})
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		dest string
		want bool
	}{
		{"+12175550101", true},
		{"+1 (217) 555-0101", true}, // normalized like --to
		{"101", true},
		{"199", true},
		{"10", false},
		{"1011", false},
		{"201", false},
		{"12175550101", false},  // the national form is another pattern
		{"+19005550123", false}, // premium rate
		{"+442071234567", false},
		{"+1217555", true}, // '*' matches an empty run
		{"sip:felix@pbx.firm.example", true},
		{"SIP:Felix@Pbx.Firm.Example", true},
		{"sip:pbx.firm.example", false},
		{"sip:felix@pbx.firm.example;maddr=evil.example", false},
		{"sip:x@evil.example;a=@pbx.firm.example", false}, // '*' never crosses '@' or ';'
		{"sip:felix@pbx.firm.example.evil.example", false},
		{"sip:felix@pbx.firm.example:5070", false},
		{"sips:felix@pbx.firm.example", false},
		{"sips:reception@pbx.firm.example;transport=tls", true},
		{"sip:+12175550101@trunk.example", false}, // number patterns never match URIs
		{"", false},
	}
	for _, tt := range tests {
		if got := allow.Allows(tt.dest); got != tt.want {
			t.Errorf("Allows(%q) = %v, want %v", tt.dest, got, tt.want)
		}
	}
	if got, want := allow.String(), `["+1217555*" "1??" "sip:*@PBX.firm.example" "sips:reception@pbx.firm.example;transport=tls"]`; got != want {
		t.Errorf("String() = %s, want %s", got, want)
	}
	var any AllowList
	if !any.Allows("+19005550123") || !any.Empty() {
		t.Error("the empty list must allow any destination")
	}
	star, _ := ParseAllowList([]string{"*"})
	if !star.Allows("+442071234567") || star.Allows("sip:a@b.example") {
		t.Error(`"*" allows every number and no URI`)
	}
}

func TestParseAllowListErrors(t *testing.T) {
	for _, p := range []string{"", "  ", "+", "12a4", "1+2", "tel:+1217*", "a@b", "sip:a b@x", "+1\n2", strings.Repeat("1", 300)} {
		if _, err := ParseAllowList([]string{"101", p}); err == nil || !strings.Contains(err.Error(), "[1]") {
			t.Errorf("ParseAllowList(%q) = %v, want an error naming [1]", p, err)
		}
	}
	if _, err := NewRuleSet(nil, nil, Firm{TimeZone: "UTC", AllowedDestinations: []string{"x"}}); err == nil {
		t.Error("NewRuleSet accepted a bad pattern")
	}
}

func FuzzAllowList(f *testing.F) {
	f.Add("+1217555*", "+12175550101")
	f.Add("sip:*@pbx.firm.example", "sip:x@evil.example;a=@pbx.firm.example")
	f.Add("1??", "101")
	f.Fuzz(func(t *testing.T, pattern, dest string) {
		a, err := ParseAllowList([]string{pattern})
		if err != nil {
			return
		}
		if a.Allows(dest) && strings.Contains(pattern, "@") && strings.Count(NormalizeNumber(dest), "@") != strings.Count(pattern, "@") {
			t.Errorf("%q allowed %q: a wildcard crossed '@'", pattern, dest)
		}
	})
}

var testAllow = []string{"+1217555*", "1??"}

// Destinations outside routing.allowed_destinations are refused on every way in
// (Put as the CLI and HTTP use it, ParseDoc/Import, a hand-edited row) and named
// with the pattern list.
func TestAllowedDestinationsEnforced(t *testing.T) {
	firm := Firm{TimeZone: "America/New_York", AllowedDestinations: testAllow}
	st, path := openTestStoreFirm(t, firm)
	ctx := t.Context()
	for name, to := range map[string]string{"did": "+12175550101", "ext": "101"} {
		if err := st.Put(ctx, NewRule(name, to), false); err != nil {
			t.Errorf("Put(%s) = %v, want accepted", to, err)
		}
	}
	const want = `matches none of routing.allowed_destinations ["+1217555*" "1??"]`
	for _, to := range []string{"+19005550123", "+442071234567", "sip:felix@pbx.example.com", "2017"} {
		err := st.Put(ctx, NewRule("bad", to), false)
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != "to" || !errors.Is(err, ErrNotAllowed) || !strings.Contains(err.Error(), want) {
			t.Errorf("Put(%s) = %v, want a to: error naming the list", to, err)
		}
	}
	// rules set on an existing rule
	r := NewRule("ext", "+19005550123")
	if err := st.Put(ctx, r, true); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("replace with a premium number = %v", err)
	}
	// import
	file := "rules:\n  - name: a\n    to: \"101\"\n  - name: b\n    to: \"+442071234567\"\n"
	if _, _, err := ParseDoc([]byte(file), firm); err == nil || !strings.Contains(err.Error(), `rule "b": to:`) || !strings.Contains(err.Error(), want) {
		t.Errorf("ParseDoc = %v", err)
	}
	if _, err := st.Import(ctx, []Rule{NewRule("b", "+442071234567")}, nil, false); !errors.Is(err, ErrNotAllowed) {
		t.Errorf("Import = %v", err)
	}
	// a row written by hand: skipped, listed invalid with the reason
	other := secondConn(t, path)
	if _, err := other.Exec(`INSERT INTO rules (name, destination) VALUES ('premium', '+19005550123')`); err != nil {
		t.Fatal(err)
	}
	if err := st.Reload(ctx); err != nil {
		t.Fatal(err)
	}
	rs, ok := st.Rules().Lookup("premium")
	if !ok || rs.Valid() || !strings.Contains(rs.Err.Error(), want) {
		t.Fatalf("hand-made premium row = %+v, want invalid naming the list", rs)
	}
	if d := st.Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: "premium"}, time.Now()); d.Action != ActionNone || d.Destination != "" {
		t.Errorf("decision on the hand-made row = %+v", d)
	}
	if d := st.Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: "ext"}, time.Now()); d.Action != ActionTransfer || d.Destination != "101" {
		t.Errorf("decision on an allowed rule = %+v", d)
	}
}

// The engine never returns a destination outside the list, even for a rule
// that got into a snapshot unchecked and for the configured operator.
func TestEngineDefenceInDepth(t *testing.T) {
	set, err := NewRuleSet([]Rule{NewRule("felix", "+12175550101")}, nil,
		Firm{TimeZone: "UTC", Operator: "+442071234567", AllowedDestinations: testAllow})
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	if d := Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: "felix"}, set, now); d.Action != ActionTransfer {
		t.Fatalf("allowed rule = %+v", d)
	}
	// simulate a bug that let a bad destination past validation
	set.byName["felix"].rule.Destination = "+19005550123"
	for _, in := range []Intent{{Kind: IntentRule, Arg: "felix"}, {Kind: IntentOperator}} {
		d := Decide(lookup.Result{}, in, set, now)
		if d.Action != ActionNone || d.Reason != ReasonNotAllowed || d.Destination != "" {
			t.Errorf("Decide(%v) = %+v, want none/destination_not_allowed", in, d)
		}
	}
	// a fallback chain goes through the same check
	set2, err := NewRuleSet([]Rule{
		rule("a", "101", func(r *Rule) {
			r.Hours, r.Unavailable = "sat 00:00-00:01", Unavailable{Kind: UnavailableRule, Rule: "b"}
		}),
		NewRule("b", "102"),
	}, nil, Firm{TimeZone: "UTC", AllowedDestinations: testAllow})
	if err != nil {
		t.Fatal(err)
	}
	set2.byName["b"].rule.Destination = "+19005550123"
	if d := Fallback(set2, "a", now); d.Action != ActionNone || d.Reason != ReasonNotAllowed {
		t.Errorf("Fallback = %+v", d)
	}
	// and the operator with no list at all still works
	open, _ := NewRuleSet(nil, nil, Firm{TimeZone: "UTC", Operator: "+442071234567"})
	if d := Decide(lookup.Result{}, Intent{Kind: IntentOperator}, open, now); d.Action != ActionTransfer {
		t.Errorf("operator without a list = %+v", d)
	}
}

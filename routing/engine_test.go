package routing

import (
	"strings"
	"testing"
	"time"

	"github.com/matterline/matterline/lookup"
)

func rule(name, to string, edit func(*Rule)) Rule {
	r := NewRule(name, to)
	if edit != nil {
		edit(&r)
	}
	return r
}

// fixture is the firm used by the engine tables: New York firm with an operator,
// Christmas closed.
func fixture(t testing.TB) *RuleSet {
	t.Helper()
	rules := []Rule{
		rule("felix", "+12175550101", func(r *Rule) {
			r.StaffName, r.StaffID = "Felix Dubinsky", 501
			r.Mode, r.CallerID = ModeWarm, CallerIDService
			r.Whisper, r.AcceptDigit = "Call from {caller_name}, matter {matter}, press 1 to accept", "1"
			r.Hours = "mon-fri 09:00-17:00"
			r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "reception"}
		}),
		rule("felix-wong", "+12175550105", func(r *Rule) { r.StaffName, r.StaffID = "Felix  Wong", 505 }),
		rule("reception", "sip:reception@pbx.example.com", func(r *Rule) {
			r.Extension = "100"
			r.Unavailable = Unavailable{Kind: UnavailableHangup}
		}),
		rule("ada", "201", func(r *Rule) {
			r.StaffName, r.Extension = "Ada Quist", "101"
			r.Hours, r.TimeZone = "mon-fri 09:00-17:00", "Europe/London"
		}),
		rule("ldn", "202", func(r *Rule) { r.TimeZone, r.Extension = "Europe/London", "102" }),
		rule("off", "203", func(r *Rule) { r.StaffName, r.StaffID, r.Enabled, r.Extension = "Otto Off", 503, false, "103" }),
		rule("broken", "204", func(r *Rule) { r.StaffID, r.TimeZone, r.Extension = 504, "Mars/Base", "104" }),
		rule("night", "205", func(r *Rule) { r.Hours = "mon-fri 22:00-06:00" }),
		rule("dst-ny", "206", func(r *Rule) { r.Hours, r.TimeZone = "sun 01:30-03:30", "America/New_York" }),
		rule("dst-ldn", "207", func(r *Rule) { r.Hours, r.TimeZone = "sun 01:30-03:30", "Europe/London" }),
		// a chain: chain-a (closed) -> chain-b (closed) -> chain-c (open)
		rule("chain-a", "208", func(r *Rule) {
			r.Hours, r.Unavailable = "sat 00:00-00:01", Unavailable{Kind: UnavailableRule, Rule: "chain-b"}
		}),
		rule("chain-b", "209", func(r *Rule) {
			r.Hours, r.Unavailable = "sat 00:00-00:01", Unavailable{Kind: UnavailableRule, Rule: "chain-c"}
		}),
		rule("chain-c", "210", nil),
		rule("stop-b", "211", func(r *Rule) { r.Hours, r.Unavailable = "sat 00:00-00:01", Unavailable{Kind: UnavailableMenu} }),
		rule("to-stop", "212", func(r *Rule) { r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "stop-b"} }),
		rule("to-off", "213", func(r *Rule) { r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "off"} }),
		rule("loop1", "214", func(r *Rule) { r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "loop2"} }),
		rule("loop2", "215", func(r *Rule) { r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "loop1"} }),
		rule("to-loop", "216", func(r *Rule) { r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "loop1"} }),
		rule("sam-desk", "217", func(r *Rule) { r.StaffName = "Sam Same" }),
		rule("sam-mobile", "218", func(r *Rule) { r.StaffName = "sam same" }),
	}
	set, err := NewRuleSet(rules, []Closure{{Date: "2026-12-25", Note: "Christmas"}},
		Firm{TimeZone: "America/New_York", Operator: "+13125550100"})
	if err != nil {
		t.Fatal(err)
	}
	return set
}

func at(s string) time.Time {
	t, err := time.Parse(time.RFC3339, s)
	if err != nil {
		panic(err)
	}
	return t
}

func found(id int64, name string) lookup.Result {
	return lookup.Result{Status: lookup.StatusFound,
		Contact: &lookup.Contact{ID: 1001, Name: "Ada Client"},
		Matter:  &lookup.Matter{ID: 2001, DisplayNumber: "00101-Client"},
		Staff:   &lookup.Staff{ID: id, Name: name}}
}

// tuesday 2026-11-24 10:00 in New York (EST, UTC-5): felix is open.
const tueNY10 = "2026-11-24T15:00:00Z"

func TestDecide(t *testing.T) {
	set := fixture(t)
	noop := Firm{TimeZone: "America/New_York"}
	bare, err := NewRuleSet(nil, nil, noop)
	if err != nil {
		t.Fatal(err)
	}
	withOperatorRule, err := NewRuleSet([]Rule{rule("operator", "sip:op@pbx.example.com", func(r *Rule) { r.Mode = ModeWarm })}, nil,
		Firm{TimeZone: "America/New_York", Operator: "+13125550100"})
	if err != nil {
		t.Fatal(err)
	}
	type want struct {
		action Action
		rule   string
		mode   Mode
		dest   string
		cid    CallerID
		reason Reason
	}
	transfer := func(rule string, m Mode, dest string, c CallerID) want {
		return want{ActionTransfer, rule, m, dest, c, ReasonMatched}
	}
	tests := []struct {
		name   string
		set    *RuleSet
		lk     lookup.Result
		intent string
		now    string
		want   want
	}{
		// responsible: lookup outcomes
		{"responsible by id", set, found(501, "F. Dubinsky"), "responsible", tueNY10, transfer("felix", ModeWarm, "+12175550101", CallerIDService)},
		{"responsible by name, case and spaces", set, found(999, "  ada   QUIST "), "responsible", "2026-11-24T12:00:00Z", transfer("ada", ModeCold, "201", CallerIDCaller)},
		{"responsible id beats name", set, found(505, "Felix Dubinsky"), "responsible", tueNY10, transfer("felix-wong", ModeCold, "+12175550105", CallerIDCaller)},
		{"responsible no staff", set, lookup.Result{Status: lookup.StatusFound, Contact: &lookup.Contact{ID: 1}}, "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoStaff}},
		{"responsible not found", set, lookup.Result{Status: lookup.StatusNotFound}, "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNotFound}},
		{"responsible ambiguous", set, lookup.Result{Status: lookup.StatusAmbiguous}, "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonAmbiguous}},
		{"responsible ambiguous resolved by policy", set, lookup.Result{Status: lookup.StatusAmbiguous, Staff: &lookup.Staff{ID: 501}}, "responsible", tueNY10, transfer("felix", ModeWarm, "+12175550101", CallerIDService)},
		{"responsible lookup error", set, lookup.Result{Status: lookup.StatusError}, "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoLookup}},
		{"responsible unconfigured", set, lookup.Result{Status: lookup.StatusUnconfigured}, "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoLookup}},
		{"responsible no lookup ran", set, lookup.Result{}, "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoLookup}},
		{"responsible two rules by name", set, found(888, "Sam Same"), "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonAmbiguous}},
		{"responsible no rule", set, found(777, "Nobody Here"), "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoRule}},
		{"responsible disabled", set, found(503, "Otto Off"), "responsible", tueNY10, want{ActionNone, "off", 0, "", 0, ReasonRuleDisabled}},
		{"responsible invalid", set, found(504, ""), "responsible", tueNY10, want{ActionNone, "broken", 0, "", 0, ReasonRuleInvalid}},
		{"responsible outside hours", set, found(501, ""), "responsible", "2026-11-24T22:00:00Z", want{ActionUnavailable, "felix", 0, "", 0, ReasonOutsideHours}},
		{"responsible weekend", set, found(501, ""), "responsible", "2026-11-28T15:00:00Z", want{ActionUnavailable, "felix", 0, "", 0, ReasonOutsideHours}},
		{"responsible closed today", set, found(501, ""), "responsible", "2026-12-25T15:00:00Z", want{ActionUnavailable, "felix", 0, "", 0, ReasonClosedToday}},

		// hours at the edges (New York, EST)
		{"08:59:59 closed", set, found(501, ""), "responsible", "2026-11-24T13:59:59Z", want{ActionUnavailable, "felix", 0, "", 0, ReasonOutsideHours}},
		{"09:00 open", set, found(501, ""), "responsible", "2026-11-24T14:00:00Z", transfer("felix", ModeWarm, "+12175550101", CallerIDService)},
		{"16:59:59 open", set, found(501, ""), "responsible", "2026-11-24T21:59:59Z", transfer("felix", ModeWarm, "+12175550101", CallerIDService)},
		{"17:00 closed", set, found(501, ""), "responsible", "2026-11-24T22:00:00Z", want{ActionUnavailable, "felix", 0, "", 0, ReasonOutsideHours}},
		{"edge in summer time (EDT)", set, found(501, ""), "responsible", "2026-07-14T12:59:59Z", want{ActionUnavailable, "felix", 0, "", 0, ReasonOutsideHours}},
		{"09:00 EDT open", set, found(501, ""), "responsible", "2026-07-14T13:00:00Z", transfer("felix", ModeWarm, "+12175550101", CallerIDService)},

		// a rule in London while the firm is in New York
		{"london 08:59:59 closed", set, lookup.Result{}, "rule:ada", "2026-11-24T08:59:59Z", want{ActionUnavailable, "ada", 0, "", 0, ReasonOutsideHours}},
		{"london 09:00 open (04:00 in NY)", set, lookup.Result{}, "rule:ada", "2026-11-24T09:00:00Z", transfer("ada", ModeCold, "201", CallerIDCaller)},
		{"london 16:59:59 open", set, lookup.Result{}, "rule:ada", "2026-11-24T16:59:59Z", transfer("ada", ModeCold, "201", CallerIDCaller)},
		{"london 17:00 closed (12:00 in NY)", set, lookup.Result{}, "rule:ada", "2026-11-24T17:00:00Z", want{ActionUnavailable, "ada", 0, "", 0, ReasonOutsideHours}},
		{"london summer 09:00 BST", set, lookup.Result{}, "rule:ada", "2026-07-14T08:00:00Z", transfer("ada", ModeCold, "201", CallerIDCaller)},
		{"london summer 08:59:59 BST", set, lookup.Result{}, "rule:ada", "2026-07-14T07:59:59Z", want{ActionUnavailable, "ada", 0, "", 0, ReasonOutsideHours}},

		// closures: a date in each rule's own zone; closures win over hours
		{"closure in NY zone", set, lookup.Result{}, "rule:reception", "2026-12-26T03:00:00Z", want{ActionUnavailable, "reception", 0, "", 0, ReasonClosedToday}},
		{"closure over: London is on the 26th", set, lookup.Result{}, "rule:ldn", "2026-12-26T03:00:00Z", transfer("ldn", ModeCold, "202", CallerIDCaller)},
		{"closure starts at London midnight", set, lookup.Result{}, "rule:ldn", "2026-12-25T00:00:00Z", want{ActionUnavailable, "ldn", 0, "", 0, ReasonClosedToday}},
		{"day before closure, NY late evening", set, lookup.Result{}, "rule:reception", "2026-12-25T04:59:59Z", transfer("reception", ModeCold, "sip:reception@pbx.example.com", CallerIDCaller)},
		{"closure wins over open hours", set, lookup.Result{}, "rule:felix", "2026-12-25T15:00:00Z", want{ActionUnavailable, "felix", 0, "", 0, ReasonClosedToday}},

		// overnight window mon-fri 22:00-06:00 (New York)
		{"overnight tue 22:00 open", set, lookup.Result{}, "rule:night", "2026-11-25T03:00:00Z", transfer("night", ModeCold, "205", CallerIDCaller)},
		{"overnight tue 21:59:59 closed", set, lookup.Result{}, "rule:night", "2026-11-25T02:59:59Z", want{ActionUnavailable, "night", 0, "", 0, ReasonOutsideHours}},
		{"overnight sat 05:59 open (from fri)", set, lookup.Result{}, "rule:night", "2026-11-28T10:59:00Z", transfer("night", ModeCold, "205", CallerIDCaller)},
		{"overnight sat 06:00 closed", set, lookup.Result{}, "rule:night", "2026-11-28T11:00:00Z", want{ActionUnavailable, "night", 0, "", 0, ReasonOutsideHours}},
		{"overnight mon 05:00 closed (sun not listed)", set, lookup.Result{}, "rule:night", "2026-11-23T10:00:00Z", want{ActionUnavailable, "night", 0, "", 0, ReasonOutsideHours}},
		{"overnight sat 22:00 closed", set, lookup.Result{}, "rule:night", "2026-11-29T03:00:00Z", want{ActionUnavailable, "night", 0, "", 0, ReasonOutsideHours}},

		// operator
		{"operator from config", set, lookup.Result{}, "operator", tueNY10, transfer("", ModeCold, "+13125550100", CallerIDCaller)},
		{"operator rule wins", withOperatorRule, lookup.Result{}, "operator", tueNY10, transfer("operator", ModeWarm, "sip:op@pbx.example.com", CallerIDCaller)},
		{"no operator", bare, lookup.Result{}, "operator", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoOperator}},

		// rule:NAME
		{"rule by name, case-insensitive", set, lookup.Result{}, "rule:RECEPTION", tueNY10, transfer("reception", ModeCold, "sip:reception@pbx.example.com", CallerIDCaller)},
		{"rule unknown", set, lookup.Result{}, "rule:nope", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoRule}},
		{"rule disabled", set, lookup.Result{}, "rule:off", tueNY10, want{ActionNone, "off", 0, "", 0, ReasonRuleDisabled}},
		{"rule invalid", set, lookup.Result{}, "rule:broken", tueNY10, want{ActionNone, "broken", 0, "", 0, ReasonRuleInvalid}},
		{"rule in a fallback loop is invalid", set, lookup.Result{}, "rule:loop1", tueNY10, want{ActionNone, "loop1", 0, "", 0, ReasonRuleInvalid}},

		// extension:N
		{"extension", set, lookup.Result{}, "extension:100", tueNY10, transfer("reception", ModeCold, "sip:reception@pbx.example.com", CallerIDCaller)},
		{"extension unknown", set, lookup.Result{}, "extension:999", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoRule}},
		{"extension disabled", set, lookup.Result{}, "extension:103", tueNY10, want{ActionNone, "off", 0, "", 0, ReasonRuleDisabled}},
		{"extension invalid", set, lookup.Result{}, "extension:104", tueNY10, want{ActionNone, "broken", 0, "", 0, ReasonRuleInvalid}},

		// staff:NAME
		{"staff full name", set, lookup.Result{}, "staff:felix  DUBINSKY", tueNY10, transfer("felix", ModeWarm, "+12175550101", CallerIDService)},
		{"staff last name", set, lookup.Result{}, "staff:Dubinsky", tueNY10, transfer("felix", ModeWarm, "+12175550101", CallerIDService)},
		{"staff first name unique", set, lookup.Result{}, "staff:ada", "2026-11-24T12:00:00Z", transfer("ada", ModeCold, "201", CallerIDCaller)},
		{"staff first name ambiguous", set, lookup.Result{}, "staff:Felix", tueNY10, want{ActionNone, "", 0, "", 0, ReasonAmbiguous}},
		{"staff unknown", set, lookup.Result{}, "staff:Zed", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoRule}},
		{"staff disabled", set, lookup.Result{}, "staff:otto", tueNY10, want{ActionNone, "off", 0, "", 0, ReasonRuleDisabled}},

		// no snapshot, bad intent
		{"nil set", nil, found(501, ""), "responsible", tueNY10, want{ActionNone, "", 0, "", 0, ReasonNoRule}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in, err := ParseIntent(tt.intent)
			if err != nil {
				t.Fatal(err)
			}
			d := Decide(tt.lk, in, tt.set, at(tt.now))
			got := want{d.Action, d.Rule, d.Mode, d.Destination, d.CallerID, d.Reason}
			if got != tt.want {
				t.Errorf("Decide(%s at %s)\n got %+v\nwant %+v", tt.intent, tt.now, got, tt.want)
			}
			if d.Action == ActionUnavailable && (d.Def == nil || d.Unavailable.Kind == UnavailableUnknown) {
				t.Errorf("unavailable decision without its rule: %+v", d)
			}
			// pure: same inputs, same output
			if d2 := Decide(tt.lk, in, tt.set, at(tt.now)); d2 != d {
				t.Errorf("not deterministic: %+v then %+v", d, d2)
			}
		})
	}
	if d := Decide(found(501, ""), Intent{}, set, at(tueNY10)); d.Action != ActionNone || d.Reason != ReasonBadIntent {
		t.Errorf("bad intent: %+v", d)
	}
}

// TestDecideDST checks a sun 01:30-03:30 window on the days the clocks change
// in New York and London. Hours are wall-clock time: on spring-forward day the
// skipped hour never happens, on fall-back day the repeated hour counts twice.
func TestDecideDST(t *testing.T) {
	set := fixture(t)
	tests := []struct {
		rule, now, note string
		open            bool
	}{
		// New York spring forward 2026-03-08 02:00 EST -> 03:00 EDT (07:00Z)
		{"dst-ny", "2026-03-08T06:29:59Z", "01:29:59 EST", false},
		{"dst-ny", "2026-03-08T06:30:00Z", "01:30 EST", true},
		{"dst-ny", "2026-03-08T06:59:59Z", "01:59:59 EST", true},
		{"dst-ny", "2026-03-08T07:00:00Z", "03:00 EDT, right after the jump", true},
		{"dst-ny", "2026-03-08T07:29:59Z", "03:29:59 EDT", true},
		{"dst-ny", "2026-03-08T07:30:00Z", "03:30 EDT", false},
		// New York fall back 2026-11-01 02:00 EDT -> 01:00 EST (06:00Z)
		{"dst-ny", "2026-11-01T05:29:59Z", "01:29:59 EDT", false},
		{"dst-ny", "2026-11-01T05:30:00Z", "01:30 EDT", true},
		{"dst-ny", "2026-11-01T05:59:59Z", "01:59:59 EDT", true},
		{"dst-ny", "2026-11-01T06:00:00Z", "01:00 EST, second time round", false},
		{"dst-ny", "2026-11-01T06:30:00Z", "01:30 EST, second time round", true},
		{"dst-ny", "2026-11-01T08:29:59Z", "03:29:59 EST", true},
		{"dst-ny", "2026-11-01T08:30:00Z", "03:30 EST", false},
		// London spring forward 2026-03-29 01:00 GMT -> 02:00 BST (01:00Z)
		{"dst-ldn", "2026-03-29T00:59:59Z", "00:59:59 GMT", false},
		{"dst-ldn", "2026-03-29T01:00:00Z", "02:00 BST, right after the jump", true},
		{"dst-ldn", "2026-03-29T02:29:59Z", "03:29:59 BST", true},
		{"dst-ldn", "2026-03-29T02:30:00Z", "03:30 BST", false},
		// London fall back 2026-10-25 02:00 BST -> 01:00 GMT (01:00Z)
		{"dst-ldn", "2026-10-25T00:29:59Z", "01:29:59 BST", false},
		{"dst-ldn", "2026-10-25T00:30:00Z", "01:30 BST", true},
		{"dst-ldn", "2026-10-25T01:00:00Z", "01:00 GMT, second time round", false},
		{"dst-ldn", "2026-10-25T01:30:00Z", "01:30 GMT, second time round", true},
		{"dst-ldn", "2026-10-25T03:29:59Z", "03:29:59 GMT", true},
		{"dst-ldn", "2026-10-25T03:30:00Z", "03:30 GMT", false},
	}
	for _, tt := range tests {
		d := Decide(lookup.Result{}, Intent{Kind: IntentRule, Arg: tt.rule}, set, at(tt.now))
		if open := d.Action == ActionTransfer; open != tt.open {
			t.Errorf("%s at %s (%s): open=%v, want %v (%s)", tt.rule, tt.now, tt.note, open, tt.open, d.Reason)
		}
	}
}

func TestFallback(t *testing.T) {
	set := fixture(t)
	closed := at("2026-11-24T22:00:00Z") // tue 17:00 New York: felix closed, chain-a/b closed
	tests := []struct {
		from   string
		action Action
		rule   string
		reason Reason
		unav   string
	}{
		{"felix", ActionTransfer, "reception", ReasonMatched, "hangup"},
		{"chain-a", ActionTransfer, "chain-c", ReasonMatched, "message"},
		{"to-stop", ActionUnavailable, "stop-b", ReasonOutsideHours, "menu"},
		{"to-off", ActionNone, "off", ReasonRuleDisabled, ""},
		{"to-loop", ActionNone, "loop1", ReasonRuleInvalid, ""},
		{"reception", ActionNone, "reception", ReasonNoFallback, "hangup"},
		{"nope", ActionNone, "", ReasonNoRule, ""},
	}
	for _, tt := range tests {
		d := Fallback(set, tt.from, closed)
		if d.Action != tt.action || d.Rule != tt.rule || d.Reason != tt.reason || d.Unavailable.String() != tt.unav {
			t.Errorf("Fallback(%s) = %v %q %s %q, want %v %q %s %q", tt.from, d.Action, d.Rule, d.Reason, d.Unavailable,
				tt.action, tt.rule, tt.reason, tt.unav)
		}
	}
	if d := Fallback(nil, "felix", closed); d.Reason != ReasonNoRule {
		t.Errorf("Fallback(nil set) = %+v", d)
	}

	// The loop guard holds even for a set whose validation was bypassed.
	set.byName["loop1"].err = nil
	set.byName["loop2"].err = nil
	set.byName["loop1"].hours, _ = ParseHours("sat 00:00-00:01")
	set.byName["loop2"].hours, _ = ParseHours("sat 00:00-00:01")
	if d := Fallback(set, "loop1", closed); d.Action != ActionNone || d.Reason != ReasonFallbackLoop {
		t.Errorf("Fallback on a loop = %+v, want none/fallback_loop", d)
	}
}

func TestRuleSetValidation(t *testing.T) {
	set := fixture(t)
	for name, want := range map[string]string{
		"broken": `tz: unknown IANA time zone "Mars/Base"`,
		"loop1":  "fallback loop loop1 -> loop2 -> loop1",
		"loop2":  "fallback loop loop2 -> loop1 -> loop2",
	} {
		st, ok := set.Lookup(name)
		if !ok || st.Err == nil || !strings.Contains(st.Err.Error(), want) {
			t.Errorf("%s: err = %v, want %q", name, st.Err, want)
		}
	}
	if st, _ := set.Lookup("to-loop"); st.Err != nil {
		t.Errorf("to-loop leads into a loop but is not in it: %v", st.Err)
	}
	if n := len(set.Invalid()); n != 3 {
		t.Errorf("invalid = %d, want 3: %v", n, set.Invalid())
	}
	if got, ok := set.ServedBy(501, ""); !ok || got != "felix" {
		t.Errorf("ServedBy(501) = %q %v", got, ok)
	}
	if got, ok := set.ServedBy(0, "ADA quist"); !ok || got != "ada" {
		t.Errorf("ServedBy(ada) = %q %v", got, ok)
	}
}

func TestValidateSet(t *testing.T) {
	tests := []struct {
		name  string
		rules []Rule
		want  string // substring of the error; empty = valid
	}{
		{"ok", []Rule{rule("a", "+12175550101", nil)}, ""},
		{"duplicate name", []Rule{rule("a", "101", nil), rule("A", "102", nil)}, `rule "A": name: duplicate name`},
		{"duplicate extension", []Rule{rule("a", "101", func(r *Rule) { r.Extension = "7" }), rule("b", "102", func(r *Rule) { r.Extension = "7" })}, `rule "b": extension: 7 is already used by rule "a"`},
		{"duplicate staff id", []Rule{rule("a", "101", func(r *Rule) { r.StaffID = 5 }), rule("b", "102", func(r *Rule) { r.StaffID = 5 })}, `rule "b": staff_id: 5 is already served`},
		{"unknown fallback", []Rule{rule("a", "101", func(r *Rule) { r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "zz"} })}, `rule "a": unavailable: unknown rule "zz" in fallback`},
		{"self fallback", []Rule{rule("a", "101", func(r *Rule) { r.Unavailable = Unavailable{Kind: UnavailableRule, Rule: "a"} })}, "fallback loop a -> a"},
		{"bad zone", []Rule{rule("a", "101", func(r *Rule) { r.TimeZone = "Local" })}, `tz: unknown IANA time zone "Local"`},
		{"bad hours", []Rule{rule("a", "101", func(r *Rule) { r.Hours = "mon-fri 9:00-17:00" })}, `hours: at position 9: bad time "9:00"`},
		{"undialable", []Rule{rule("a", "+1 217", nil)}, `rule "a": to:`},
		{"crlf in uri", []Rule{rule("a", "sip:a@b\r\nVia: x", nil)}, "forbidden characters"},
		{"bad accept digit", []Rule{rule("a", "101", func(r *Rule) { r.AcceptDigit = "12" })}, "accept_digit"},
		{"bad whisper", []Rule{rule("a", "101", func(r *Rule) { r.Whisper = "hi {client}" })}, "unknown placeholder {client}"},
		{"bad name", []Rule{rule("a/b", "101", nil)}, "name:"},
		{"name with spaces", []Rule{rule("Felix Dubinsky", "101", nil)}, ""},
		{"duplicate unicode name", []Rule{rule("Émile", "101", nil), rule("ÉMILE", "102", nil)}, `rule "ÉMILE": name: duplicate name`},
		{"bad ring timeout", []Rule{rule("a", "101", func(r *Rule) { r.RingTimeout = 0 })}, "ring_timeout"},
		{"unknown mode", []Rule{rule("a", "101", func(r *Rule) { r.Mode = ModeUnknown })}, "mode: must be cold or warm"},
		{"bad extension", []Rule{rule("a", "101", func(r *Rule) { r.Extension = "1a" })}, "extension"},
	}
	for _, tt := range tests {
		err := ValidateSet(tt.rules, Firm{TimeZone: "America/New_York"})
		switch {
		case tt.want == "" && err != nil:
			t.Errorf("%s: unexpected error %v", tt.name, err)
		case tt.want != "" && (err == nil || !strings.Contains(err.Error(), tt.want)):
			t.Errorf("%s: err = %v, want %q", tt.name, err, tt.want)
		}
	}
}

func TestDestinationKindOf(t *testing.T) {
	tests := []struct {
		in   string
		want DestinationKind
	}{
		{"+12175550101", DestNumber},
		{"2175550101", DestNumber},
		{"101", DestInternal},
		{"12", DestInternal},
		{"1", DestInvalid},
		{"sip:felix@pbx.example.com", DestURI},
		{"sips:felix@10.0.0.5:5061;transport=tls", DestURI},
		{"SIP:101@[2001:db8::1]", DestURI},
		{"sip:pbx.example.com", DestURI},
		{"sip:", DestInvalid},
		{"sip:@host", DestInvalid},
		{"sip:a b@host", DestInvalid},
		{"sip:a@host\r\n", DestInvalid},
		{"tel:+12175550101", DestInvalid},
		{"+1 217 555 0101", DestInvalid},
		{"+1234567890123456", DestInvalid},
		{"<sip:a@b>", DestInvalid},
		{"", DestInvalid},
	}
	for _, tt := range tests {
		got, err := DestinationKindOf(tt.in)
		if got != tt.want || (err == nil) != (tt.want != DestInvalid) {
			t.Errorf("DestinationKindOf(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
	if !DestNumber.IsNumber() || !DestInternal.IsNumber() || DestURI.IsNumber() {
		t.Error("IsNumber")
	}
	for in, want := range map[string]string{
		"+1 (217) 555-0101": "+12175550101",
		"217.555.0101":      "2175550101",
		"12 34":             "12 34",
		"sip:a@b":           "sip:a@b",
		" 101 ":             "101",
	} {
		if got := NormalizeNumber(in); got != want {
			t.Errorf("NormalizeNumber(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestRenderWhisper(t *testing.T) {
	got := RenderWhisper("Call from {caller_name}, matter {matter}, press 1 to accept", "Ada Quist", "00101-Quist")
	if want := "Call from Ada Quist, matter 00101-Quist, press 1 to accept"; got != want {
		t.Errorf("got %q", got)
	}
	if got := RenderWhisper("{caller_name} {matter}", "", ""); got != "unknown caller unknown" {
		t.Errorf("got %q", got)
	}
}

func TestUnavailableRoundTrip(t *testing.T) {
	for _, s := range []string{"message", "menu", "hangup", "rule:reception", "rule:Felix Dubinsky", "rule:O'Brien & Co."} {
		u, err := ParseUnavailable(s)
		if err != nil || u.String() != s {
			t.Errorf("ParseUnavailable(%q) = %v, %v", s, u, err)
		}
	}
	for _, s := range []string{"", "voicemail", "rule:", "rule:a  b", "rule:a/b", "rule:-a"} {
		if _, err := ParseUnavailable(s); err == nil {
			t.Errorf("ParseUnavailable(%q) accepted", s)
		}
	}
}

package routing

import (
	"context"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"
	"time"
)

func TestCheckName(t *testing.T) {
	for _, ok := range []string{
		"felix", "Felix Dubinsky", "O'Brien & Co.", "Tax, Estates", "reception-2", "a_b.c",
		"José Núñez", "Zoë", "Łukasz Żółć", "山田 太郎", "7th floor", "D’Angelo",
		"Cafe\u0301", // e + combining acute
		strings.Repeat("é", 64),
	} {
		if err := checkName(ok); err != nil {
			t.Errorf("checkName(%q) = %v, want ok", ok, err)
		}
	}
	for _, tt := range []struct{ name, want string }{
		{"", "empty"},
		{" felix", "start with a letter or digit"},
		{"-felix", "start with a letter or digit"},
		{"'quoted'", "start with a letter or digit"},
		{"felix ", "ends with a space"},
		{"Felix  Dubinsky", "two spaces"},
		{"a/b", `'/'`},
		{"a:b", `':'`},
		{"a\tb", `'\t'`},
		{"a\nb", `'\n'`},
		{"a\x00b", `'\x00'`},
		{"a<b>", `'<'`},
		{"a%20b", `'%'`},
		{"a\u202eb", `'\u202e'`}, // right-to-left override
		{strings.Repeat("é", 65), "65 characters, over 64"},
		{"\xff", "not valid UTF-8"},
	} {
		err := checkName(tt.name)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("checkName(%q) = %v, want an error containing %q", tt.name, err, tt.want)
		}
	}
}

func TestNamesWithSpacesEverywhere(t *testing.T) {
	st, _ := openTestStore(t)
	ctx := context.Background()
	felix := rule("Felix Dubinsky", "+12125550101", func(r *Rule) { r.StaffID = 501; r.Unavailable, _ = ParseUnavailable("rule: O'Brien & Co.") })
	obrien := rule("O'Brien & Co.", "101", nil)
	if err := st.Put(ctx, obrien, false); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, felix, false); err != nil {
		t.Fatal(err)
	}
	if felix.Unavailable.Rule != "O'Brien & Co." || felix.Unavailable.String() != "rule:O'Brien & Co." {
		t.Fatalf("unavailable = %+v", felix.Unavailable)
	}
	// case-insensitive uniqueness, also beyond ASCII
	if err := st.Put(ctx, rule("felix dubinsky", "102", nil), false); err == nil || !strings.Contains(err.Error(), "duplicate name") {
		t.Fatalf("duplicate in other case: %v", err)
	}
	if err := st.Put(ctx, rule("ÉMILE", "103", nil), false); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, rule("émile", "104", nil), false); err == nil {
		t.Fatal("émile next to ÉMILE accepted")
	}
	in, err := ParseIntent("rule:felix dubinsky")
	if err != nil || in.Arg != "felix dubinsky" {
		t.Fatalf("ParseIntent = %+v, %v", in, err)
	}
	now := time.Date(2026, 11, 24, 15, 0, 0, 0, time.UTC)
	if d := st.Decide(found(1, "x"), in, now); d.Action != ActionTransfer || d.Rule != "Felix Dubinsky" {
		t.Fatalf("Decide rule:felix dubinsky = %+v", d)
	}
	if d := st.Fallback("Felix Dubinsky", now); d.Action != ActionTransfer || d.Rule != "O'Brien & Co." {
		t.Fatalf("Fallback = %+v", d)
	}
	// export and import keep the names
	y, err := st.Export(ctx)
	if err != nil {
		t.Fatal(err)
	}
	rules, _, err := ParseDoc(y, testFirm)
	if err != nil {
		t.Fatalf("ParseDoc of export: %v\n%s", err, y)
	}
	if len(rules) != 3 || rules[0] != felix || rules[1] != obrien {
		t.Fatalf("round trip: %+v\n%s", rules, y)
	}
	if err := st.Delete(ctx, "O'BRIEN & CO."); err == nil || !strings.Contains(err.Error(), "fallback") {
		t.Fatalf("delete a fallback target: %v", err)
	}
}

func TestWarnings(t *testing.T) {
	for _, tt := range []struct {
		name string
		edit func(*Rule)
		want []string
	}{
		{"plain cold", nil, nil},
		{"warm with everything", func(r *Rule) {
			r.Mode, r.Whisper, r.AcceptDigit, r.RingTimeout = ModeWarm, "hi {caller_name}", "1", time.Minute
		}, nil},
		{"cold whisper", func(r *Rule) { r.Whisper = "hi" }, []string{"whisper: ignored by a cold rule"}},
		{"cold accept digit", func(r *Rule) { r.AcceptDigit = "1" }, []string{"accept_digit: ignored by a cold rule"}},
		{"cold ring timeout", func(r *Rule) { r.RingTimeout = 45 * time.Second }, []string{"ring_timeout: 45s is used by a cold rule only when its REFER fails"}},
		{"cold all three", func(r *Rule) { r.Whisper, r.AcceptDigit, r.RingTimeout = "hi", "#", time.Second },
			[]string{"whisper:", "accept_digit:", "ring_timeout:"}},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got := rule("x", "101", tt.edit).Warnings()
			if len(got) != len(tt.want) {
				t.Fatalf("Warnings() = %q, want %d matching %q", got, len(tt.want), tt.want)
			}
			for i := range got {
				if !strings.HasPrefix(got[i], tt.want[i]) {
					t.Errorf("warning %d = %q, want prefix %q", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestRuleJSONRoundTrip(t *testing.T) {
	r := rule("Felix Dubinsky", "+12125550101", func(r *Rule) {
		r.StaffName, r.StaffID, r.Mode, r.CallerID = "Felix Dubinsky", 501, ModeCold, CallerIDService
		r.Whisper, r.Hours, r.TimeZone, r.Extension, r.Enabled = "hi", "mon-fri 09:00-17:00", "America/Chicago", "101", false
	})
	b, err := json.Marshal(JSONOf(RuleStatus{Rule: r, Err: errors.New("broken")}))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	if m["valid"] != false || m["error"] != "broken" || len(m["warnings"].([]any)) != 1 {
		t.Fatalf("read-only fields: %s", b)
	}
	doc, err := DecodeRuleJSON(b)
	if err != nil {
		t.Fatalf("DecodeRuleJSON(its own output): %v", err)
	}
	back, err := doc.Rule()
	if err != nil || back != r {
		t.Fatalf("round trip = %+v, %v; want %+v", back, err, r)
	}
	// a valid rule without warnings: "warnings": [], no "error"
	b, _ = json.Marshal(JSONOf(RuleStatus{Rule: rule("x", "101", nil)}))
	if !strings.Contains(string(b), `"valid":true,"warnings":[]}`) || strings.Contains(string(b), `"error"`) {
		t.Fatalf("valid rule: %s", b)
	}
}

func TestDecodeRuleJSON(t *testing.T) {
	doc, err := DecodeRuleJSON([]byte(`{"name":"x","to":"101","valid":false,"error":"whatever","warnings":["a"],"staff_id":null,"enabled":null,"mode":"warm"}`))
	if err != nil {
		t.Fatal(err)
	}
	want := RuleDoc{Name: "x", To: "101", Mode: "warm"}
	if !reflect.DeepEqual(doc, want) {
		t.Fatalf("doc = %+v, want %+v", doc, want)
	}
	if r, _ := doc.Rule(); !r.Enabled || r.RingTimeout != DefaultRingTimeout {
		t.Fatalf("omitted fields are not their defaults: %+v", r)
	}
	for _, tt := range []struct {
		body, field string
		err         error
	}{
		{`{"name":"x","to":"101","bogus":1}`, "bogus", ErrUnknownField},
		{`{"name":"x","To":"101"}`, "To", ErrUnknownField},
		{`{"name":"x","staff_id":"501"}`, "staff_id", ErrWrongType},
		{`{"name":"x","staff_id":1.5}`, "staff_id", ErrWrongType},
		{`{"name":"x","enabled":"yes"}`, "enabled", ErrWrongType},
		{`{"name":1}`, "name", ErrWrongType},
		{`[]`, "body", ErrWrongType},
		{`null`, "body", ErrWrongType},
	} {
		_, err := DecodeRuleJSON([]byte(tt.body))
		var fe *FieldError
		if !errors.As(err, &fe) || fe.Field != tt.field || !errors.Is(err, tt.err) {
			t.Errorf("DecodeRuleJSON(%s) = %v, want %v on %s", tt.body, err, tt.err, tt.field)
		}
	}
}

// Every member RuleJSON prints is a writable or a read-only field, and the
// two lists cover all of them.
func TestRuleFieldsCoverRuleJSON(t *testing.T) {
	b, _ := json.Marshal(JSONOf(RuleStatus{Rule: rule("x", "101", nil), Err: errors.New("e")}))
	var m map[string]any
	_ = json.Unmarshal(b, &m)
	writable, readOnly := RuleFields()
	all := map[string]bool{}
	for _, f := range append(writable, readOnly...) {
		all[f] = true
	}
	for k := range m {
		if !all[k] {
			t.Errorf("member %q is in neither list", k)
		}
		delete(all, k)
	}
	if len(all) != 0 {
		t.Errorf("fields never printed: %v", all)
	}
}

func TestStoreStatuses(t *testing.T) {
	st, path := openTestStore(t)
	ctx := context.Background()
	if err := st.Put(ctx, rule("Felix Dubinsky", "101", func(r *Rule) { r.Whisper = "hi" }), false); err != nil {
		t.Fatal(err)
	}
	// a row the shell wrote, invalid, not yet reloaded
	db := secondConn(t, path)
	if _, err := db.Exec(`INSERT INTO rules (name, destination, hours) VALUES ('moon', '102', 'fry 09:00-17:00')`); err != nil {
		t.Fatal(err)
	}
	sts, err := st.Statuses(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(sts) != 2 || !sts[0].Valid() || sts[1].Rule.Name != "moon" || sts[1].Valid() || !strings.Contains(sts[1].Err.Error(), "fry") {
		t.Fatalf("Statuses = %+v", sts)
	}
}

// FuzzDecodeRuleJSON: decoding never panics, refuses with a FieldError, and a
// rule it accepts prints (JSONOf) as an object that decodes to the same rule.
func FuzzDecodeRuleJSON(f *testing.F) {
	for _, s := range []string{
		`{"name":"Felix Dubinsky","to":"+12175550101","mode":"warm","valid":true,"warnings":[]}`,
		`{"name":"x","to":"101","staff_id":null,"enabled":false}`,
		`{"name":"x","bogus":1}`, `{"to":1}`, `[]`, `null`, `{"ring_timeout":"45s","unavailable":"rule:a b"}`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		doc, err := DecodeRuleJSON(data)
		if err != nil {
			var fe *FieldError
			if !errors.As(err, &fe) {
				t.Fatalf("error %v is not a FieldError", err)
			}
			return
		}
		r, err := doc.Rule()
		if err != nil {
			return
		}
		b, err := json.Marshal(JSONOf(RuleStatus{Rule: r}))
		if err != nil {
			t.Fatal(err)
		}
		doc2, err := DecodeRuleJSON(b)
		if err != nil {
			t.Fatalf("own output %s refused: %v", b, err)
		}
		r2, err := doc2.Rule()
		if err != nil || r2 != r {
			t.Fatalf("round trip %+v -> %s -> %+v, %v", r, b, r2, err)
		}
	})
}

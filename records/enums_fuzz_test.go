package records

import (
	"encoding/json"
	"errors"
	"testing"
)

// Outcomes and end reasons come back from the database and from the HTTP API's
// query strings: parsing never panics, refusals wrap ErrInvalid, and what
// parses prints back as the same text.
func FuzzParseOutcome(f *testing.F) {
	for _, s := range append(outcomeNames[:], endReasonNames[:]...) {
		f.Add(s)
	}
	f.Add("")
	f.Add("Bridged")
	f.Add("no_answer ")
	f.Fuzz(func(t *testing.T, s string) {
		o, err := ParseOutcome(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || o != OutcomeUnknown {
				t.Fatalf("ParseOutcome(%q) = %v, %v", s, o, err)
			}
		} else if s != "" && o.String() != s {
			t.Fatalf("ParseOutcome(%q) = %v", s, o)
		}
		r, err := ParseEndReason(s)
		if err != nil {
			if !errors.Is(err, ErrInvalid) || r != EndUnknown {
				t.Fatalf("ParseEndReason(%q) = %v, %v", s, r, err)
			}
		} else if s != "" && r.String() != s {
			t.Fatalf("ParseEndReason(%q) = %v", s, r)
		}
	})
}

// Stored times may be written by hand with the sqlite3 shell: parseTime never
// panics and returns UTC.
func FuzzParseTime(f *testing.F) {
	for _, s := range []string{"2026-11-24T10:00:00.123456789Z", "2026-11-24T10:00:00-06:00", "2026-11-24 10:00:00", "2026-11-24T10:00:00", "2026-11-24", " 2026-02-30 ", "yesterday", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		tm, err := parseTime(s)
		if err == nil && tm.Location() != nil && tm.Location().String() != "UTC" {
			t.Fatalf("parseTime(%q) = %v, not UTC", s, tm)
		}
	})
}

// A call record or message as JSON (the HTTP API and exports): decoding any
// bytes never panics, and what decodes encodes and decodes again.
func FuzzRecordJSON(f *testing.F) {
	if b, err := json.Marshal(sampleCall()); err == nil {
		f.Add(b)
	}
	for _, s := range []string{
		`{"id":"x","mode":"warm","outcome":"bridged","end_reason":"caller_bye"}`,
		`{"id":"x","mode":"loud"}`,
		`{"outcome":"sideways"}`,
		`{"id":"m1","duration_seconds":1e300}`,
		`{"duration_seconds":-9.3e18}`,
		`{"intents":null,"answer":"0001-01-01T00:00:00Z"}`,
		`[]`,
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		var rec CallRecord
		if json.Unmarshal(b, &rec) == nil {
			out, err := json.Marshal(rec)
			if err != nil {
				t.Fatalf("decoded %s but cannot encode it: %v", b, err)
			}
			if err := json.Unmarshal(out, new(CallRecord)); err != nil {
				t.Fatalf("%s from %s does not decode: %v", out, b, err)
			}
		}
		var m Message
		if json.Unmarshal(b, &m) == nil {
			out, err := json.Marshal(m)
			if err != nil {
				t.Fatalf("decoded %s but cannot encode it: %v", b, err)
			}
			if err := json.Unmarshal(out, new(Message)); err != nil {
				t.Fatalf("%s from %s does not decode: %v", out, b, err)
			}
		}
	})
}

package routing

import (
	"reflect"
	"strings"
	"testing"
)

var hoursSeeds = []string{
	"",
	"24/7",
	"mon-fri 09:00-17:00",
	"mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00",
	"MON-FRI 09:00-17:00",
	"mon,wed,fri 08:00-12:00",
	"fri-mon 10:00-14:00",
	"mon-fri 22:00-06:00",
	"sun 00:00-24:00",
	"sat 10:00-12:00 ; sun 11:00-13:00",
	"  mon  09:00-10:00  ",
	"mon-sun 00:00-24:00",
	"tue 09:00 - 17:00",
}

func TestParseHours(t *testing.T) {
	tests := []struct {
		in, canon string
	}{
		{"", ""},
		{"24/7", ""},
		{"mon-fri 09:00-17:00", "mon-fri 09:00-17:00"},
		{"mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00", "mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00"},
		{"MON-Fri 09:00-17:00", "mon-fri 09:00-17:00"},
		{"fri-mon 10:00-14:00", "mon,fri-sun 10:00-14:00"},
		{"mon,tue,wed 08:00-09:00", "mon-wed 08:00-09:00"},
		{"sun 00:00-24:00", "sun 00:00-24:00"},
		{"mon-fri 22:00-06:00", "mon-fri 22:00-06:00"},
		{"tue 09:00 - 17:00", "tue 09:00-17:00"},
	}
	for _, tt := range tests {
		h, err := ParseHours(tt.in)
		if err != nil {
			t.Errorf("ParseHours(%q): %v", tt.in, err)
			continue
		}
		if got := h.String(); got != tt.canon {
			t.Errorf("ParseHours(%q).String() = %q, want %q", tt.in, got, tt.canon)
		}
	}
}

func TestParseHoursErrors(t *testing.T) {
	tests := []struct {
		in, want string
	}{
		{"mon-fry 09:00-17:00", `at position 5: unknown day "fry"`},
		{"mnn 09:00-17:00", `at position 1: unknown day "mnn"`},
		{"mon-fri", "needs days and times"},
		{"mon-fri 9:00-17:00", `at position 9: bad time "9:00"`},
		{"mon-fri 09:00-17:60", `bad time "17:60"`},
		{"mon-fri 09:00-25:00", `bad time "25:00"`},
		{"mon-fri 24:00-10:00", `bad time "24:00"`},
		{"mon-fri 09:00", `at position 9: "09:00" is not a time range`},
		{"mon-fri 09:00-09:00", "empty range"},
		{"mon-fri 09:00-17:00;", "at position 21: empty group"},
		{"mon-fri 09:00-17:00; sat 10:00-1200", `at position 32: bad time "1200"`},
		{"always", "needs days and times"},
		{"mon-fri 09:00-12:00,", "is not a time range"},
	}
	for _, tt := range tests {
		_, err := ParseHours(tt.in)
		if err == nil || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("ParseHours(%q) = %v, want %q", tt.in, err, tt.want)
		}
	}
}

// FuzzParseHours: never panics, and every accepted input round-trips through
// String, and Open agrees between the two.
func FuzzParseHours(f *testing.F) {
	for _, s := range hoursSeeds {
		f.Add(s)
	}
	ny, err := LoadZone("America/New_York")
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, err := ParseHours(s)
		if err != nil {
			return
		}
		canon := h.String()
		h2, err := ParseHours(canon)
		if err != nil {
			t.Fatalf("ParseHours(%q) ok, but its String %q does not parse: %v", s, canon, err)
		}
		if !reflect.DeepEqual(h, h2) && !(h.Always() && h2.Always()) {
			t.Fatalf("round trip of %q via %q changed: %#v vs %#v", s, canon, h, h2)
		}
		if h2.String() != canon {
			t.Fatalf("String not stable: %q then %q", canon, h2.String())
		}
		now := at("2026-11-01T06:30:00Z")
		if h.Open(now, ny) != h2.Open(now, ny) {
			t.Fatalf("Open differs after round trip of %q", s)
		}
	})
}

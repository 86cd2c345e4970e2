package timeflag

import (
	"errors"
	"strings"
	"testing"
	"time"
)

func TestParse(t *testing.T) {
	chicago, err := time.LoadLocation("America/Chicago")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)
	tests := []struct {
		in   string
		loc  *time.Location
		want time.Time
	}{
		{"2026-11-24T10:00:00-06:00", chicago, time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)},
		{"2026-11-20T00:00:00Z", chicago, time.Date(2026, 11, 20, 0, 0, 0, 0, time.UTC)},
		{"2026-11-20T00:00:00.5Z", nil, time.Date(2026, 11, 20, 0, 0, 0, 5e8, time.UTC)},
		{"2026-11-24 10:00", chicago, time.Date(2026, 11, 24, 10, 0, 0, 0, chicago)},
		{" 2026-11-24 10:00:30 ", chicago, time.Date(2026, 11, 24, 10, 0, 30, 0, chicago)},
		{"2026-11-24T10:00", chicago, time.Date(2026, 11, 24, 10, 0, 0, 0, chicago)},
		{"2026-11-24", chicago, time.Date(2026, 11, 24, 0, 0, 0, 0, chicago)},
		{"2026-11-24 10:00", nil, time.Date(2026, 11, 24, 10, 0, 0, 0, time.UTC)},
		// summer time in Chicago is UTC-5
		{"2026-07-01 10:00", chicago, time.Date(2026, 7, 1, 15, 0, 0, 0, time.UTC)},
		{"90m", nil, now.Add(-90 * time.Minute)},
		{"24h", nil, now.Add(-24 * time.Hour)},
		{"1h30m", nil, now.Add(-90 * time.Minute)},
		{"7d", nil, now.Add(-7 * 24 * time.Hour)},
		{"2w", nil, now.Add(-14 * 24 * time.Hour)},
	}
	for _, tt := range tests {
		got, err := Parse(tt.in, now, tt.loc)
		if err != nil || !got.Equal(tt.want) {
			t.Errorf("Parse(%q) = %v, %v; want %v", tt.in, got, err, tt.want)
		}
	}
}

func TestParseRejects(t *testing.T) {
	now := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)
	for _, tt := range []struct{ in, want string }{
		{"", "empty"},
		{"yesterday", "is not an RFC 3339 time"},
		{"-1h", "must be positive"},
		{"-7d", "must be positive"},
		{"0h", "must be positive"},
		{"0d", "must be positive"},
		{"7 d", "is not"},
		{"7y", "is not"},
		{"2026-13-01", "is not"},
		{"2026-11-24 25:00", "is not"},
		{"24/11/2026", "is not"},
		{"99999999999999999999d", "too large"},
		{"999999w", "too large"},
		{"2000000h", "too large"},
	} {
		_, err := Parse(tt.in, now, time.UTC)
		if !errors.Is(err, ErrBadTime) || !strings.Contains(err.Error(), tt.want) {
			t.Errorf("Parse(%q) = %v, want an error containing %q", tt.in, err, tt.want)
		}
	}
}

// FuzzParse: Parse never panics, and an accepted age lies before now.
func FuzzParse(f *testing.F) {
	for _, s := range []string{"2026-11-24T10:00:00-06:00", "2026-11-24 10:00", "2026-11-24", "90m", "7d", "2w", "-1h", "yesterday", "1h30m", "9223372036854775807d"} {
		f.Add(s)
	}
	now := time.Date(2026, 11, 24, 16, 0, 0, 0, time.UTC)
	f.Fuzz(func(t *testing.T, s string) {
		got, err := Parse(s, now, time.UTC)
		if err != nil {
			if !errors.Is(err, ErrBadTime) {
				t.Fatalf("Parse(%q): error %v does not wrap ErrBadTime", s, err)
			}
			return
		}
		if _, ok, aerr := parseAge(strings.TrimSpace(s)); ok && aerr == nil && !got.Before(now) {
			t.Fatalf("Parse(%q) = %v, an age not before now", s, got)
		}
	})
}

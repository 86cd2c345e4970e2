// Package timeflag reads the time values people type into matterline's CLI
// flags (rules test --at, calls --since) and HTTP query parameters (?since=):
// one parser, so every place accepts the same forms.
//
// Accepted forms, tried in this order:
//
//   - RFC 3339 (RFC 3339 §5.6): 2026-11-24T10:00:00-06:00, 2026-11-24T16:00:00Z,
//     with or without fractional seconds;
//   - a wall-clock time in the firm's zone: "2026-11-24 10:00",
//     "2026-11-24 10:00:30", "2026-11-24T10:00" (no offset), or a date
//     "2026-11-24" (midnight). On a daylight-saving change a time that does not
//     exist or happens twice resolves as time.Date does;
//   - a relative age meaning that long before now: a positive Go duration
//     ("90m", "24h", "1h30m") or a whole number of days or weeks ("7d", "2w").
//
// Anything else ("yesterday", "-1h", "0h", "") is an error that lists the
// accepted forms.
package timeflag

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// ErrBadTime is wrapped by every error Parse returns.
var ErrBadTime = errors.New("bad time")

// Forms is the accepted forms in one line, for flag usage and error messages.
const Forms = `an RFC 3339 time (2026-11-24T10:00:00-06:00), a local date and time (2026-11-24 10:00, 2026-11-24) or an age (90m, 24h, 7d, 2w)`

// maxAge bounds relative ages (about 100 years) so that the subtraction does
// not overflow.
const maxAge = 100 * 365 * 24 * time.Hour

// localLayouts are the wall-clock layouts read in the firm's zone.
var localLayouts = []string{
	"2006-01-02 15:04",
	"2006-01-02 15:04:05",
	"2006-01-02T15:04",
	"2006-01-02T15:04:05",
	"2006-01-02",
}

// Parse reads s as described in the package documentation. now is the clock
// relative ages count back from; loc is the firm's zone for local forms (nil
// means UTC).
func Parse(s string, now time.Time, loc *time.Location) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" {
		return time.Time{}, fmt.Errorf("%w: empty; want %s", ErrBadTime, Forms)
	}
	if loc == nil {
		loc = time.UTC
	}
	if t, err := time.Parse(time.RFC3339Nano, s); err == nil {
		return t, nil
	}
	for _, layout := range localLayouts {
		if t, err := time.ParseInLocation(layout, s, loc); err == nil {
			return t, nil
		}
	}
	if d, ok, err := parseAge(s); ok {
		if err != nil {
			return time.Time{}, fmt.Errorf("%w: %q: %v", ErrBadTime, s, err)
		}
		return now.Add(-d), nil
	}
	return time.Time{}, fmt.Errorf("%w: %q is not %s", ErrBadTime, s, Forms)
}

// parseAge reads a relative age; ok is false when s does not look like one.
func parseAge(s string) (d time.Duration, ok bool, err error) {
	if s[0] == '-' || s[0] == '+' {
		if _, err := time.ParseDuration(s[1:]); err == nil || isDays(s[1:]) {
			return 0, true, errors.New("an age must be positive (24h means 24 hours ago)")
		}
		return 0, false, nil
	}
	if isDays(s) {
		n, err := strconv.ParseInt(s[:len(s)-1], 10, 64)
		if err != nil {
			return 0, true, errors.New("too large")
		}
		unit := 24 * time.Hour
		if s[len(s)-1] == 'w' {
			unit *= 7
		}
		if n > int64(maxAge/unit) {
			return 0, true, errors.New("too large")
		}
		d = time.Duration(n) * unit
	} else {
		d, err = time.ParseDuration(s)
		if err != nil {
			return 0, false, nil
		}
		if d > maxAge {
			return 0, true, errors.New("too large")
		}
	}
	if d <= 0 {
		return 0, true, errors.New("an age must be positive (24h means 24 hours ago)")
	}
	return d, true, nil
}

// isDays reports whether s is digits followed by d or w.
func isDays(s string) bool {
	if len(s) < 2 || (s[len(s)-1] != 'd' && s[len(s)-1] != 'w') {
		return false
	}
	for _, c := range s[:len(s)-1] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

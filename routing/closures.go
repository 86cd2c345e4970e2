package routing

import (
	"fmt"
	"strings"
	"time"
)

// Closure is a day the firm is closed (a public holiday, an office day out).
// Date is a calendar date "YYYY-MM-DD"; it is compared with the date of the call
// in each rule's own zone (a London rule is closed on the London date), so a
// firm with offices in several zones closes each office for its local day.
type Closure struct {
	Date string
	Note string
}

// ParseDate checks a closure date "YYYY-MM-DD" and returns it in canonical form.
func ParseDate(s string) (string, error) {
	s = strings.TrimSpace(s)
	t, err := time.Parse(time.DateOnly, s)
	if err != nil {
		return "", fmt.Errorf("bad date %q (want YYYY-MM-DD, e.g. 2026-12-25)", s)
	}
	return t.Format(time.DateOnly), nil
}

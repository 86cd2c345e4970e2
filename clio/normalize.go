package clio

import (
	"strings"
)

// NumberProblem says why a caller ID is not a usable number.
type NumberProblem uint8

const (
	NumberOK       NumberProblem = iota
	NumberWithheld               // anonymous, withheld, private, restricted, empty
	NumberTooShort               // fewer than 7 digits: an extension or garbage
	NumberInvalid                // letters, or no E.164 form for the country
)

func (p NumberProblem) String() string {
	switch p {
	case NumberOK:
		return "ok"
	case NumberWithheld:
		return "withheld"
	case NumberTooShort:
		return "too_short"
	case NumberInvalid:
		return "invalid_number"
	}
	return "unknown"
}

// Country is how national numbers of one country become E.164.
type Country struct {
	Code  string // calling code without '+', e.g. "1", "44"
	Trunk string // national trunk prefix dropped before the code ("0"), or ""
	Intl  string // international call prefix ("011", "00")
	// NationalLen is the length of a national significant number when fixed (10 for NANP), else 0.
	NationalLen int
}

// countries are the national-number rules matterline knows. Others fall back to
// treating the digits as already international.
var countries = map[string]Country{
	"US": {Code: "1", Intl: "011", NationalLen: 10},
	"CA": {Code: "1", Intl: "011", NationalLen: 10},
	"GB": {Code: "44", Trunk: "0", Intl: "00"},
	"IE": {Code: "353", Trunk: "0", Intl: "00"},
	"AU": {Code: "61", Trunk: "0", Intl: "0011", NationalLen: 9},
	"NZ": {Code: "64", Trunk: "0", Intl: "00"},
	"DE": {Code: "49", Trunk: "0", Intl: "00"},
	"FR": {Code: "33", Trunk: "0", Intl: "00", NationalLen: 9},
	"NL": {Code: "31", Trunk: "0", Intl: "00", NationalLen: 9},
}

// CountryRules returns the rules of an ISO country code and whether it is known.
func CountryRules(iso string) (Country, bool) {
	c, ok := countries[strings.ToUpper(strings.TrimSpace(iso))]
	return c, ok
}

var withheldWords = map[string]bool{
	"": true, "anonymous": true, "withheld": true, "private": true, "restricted": true,
	"unknown": true, "unavailable": true, "anonymous.invalid": true, "blocked": true,
}

// NormalizeCallerID turns what a PBX sends as the caller ID into E.164 with a
// leading '+' ("+12175552171"): a SIP or tel URI (with or without display name and
// angle brackets; the user part is used), "+1…", 11 or 10 digits, spaces and
// punctuation. National numbers are read with the rules of country (ISO code).
func NormalizeCallerID(raw, country string) (string, NumberProblem) {
	s := strings.TrimSpace(raw)
	if i := strings.IndexByte(s, '<'); i >= 0 {
		s = s[i+1:]
		if j := strings.IndexByte(s, '>'); j >= 0 {
			s = s[:j]
		}
	}
	s = strings.TrimSpace(s)
	low := strings.ToLower(s)
	for _, scheme := range []string{"sips:", "sip:", "tel:"} {
		if strings.HasPrefix(low, scheme) {
			s = s[len(scheme):]
			if at := strings.IndexByte(s, '@'); at >= 0 {
				s = s[:at]
			}
			break
		}
	}
	if i := strings.IndexByte(s, ';'); i >= 0 { // tel: or user parameters
		s = s[:i]
	}
	s = strings.TrimSpace(strings.Trim(s, `"`))
	if withheldWords[strings.ToLower(s)] {
		return "", NumberWithheld
	}
	var digits strings.Builder
	plus := false
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9':
			digits.WriteRune(r)
		case r == '+' && i == 0:
			plus = true
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')' || r == '/' || r == '\t':
		default:
			return "", NumberInvalid
		}
	}
	return toE164(digits.String(), plus, country)
}

// NormalizeStored turns a phone number as staff typed it into Clio into E.164:
// every format of CLIO-API.md ("(217) 555-2171", "217.555.2171", "1 (217)
// 555-2171", "+1 217-555-2171", ...), with a leading label ("Cell: ...") skipped
// and an extension ("ext 2", "ext. 2", "x2", "#2") or trailing note dropped.
func NormalizeStored(raw, country string) (string, NumberProblem) {
	s := strings.ReplaceAll(raw, "\u00a0", " ")
	// Skip a leading label up to the first digit or '+'.
	start := strings.IndexAny(s, "+0123456789")
	if start < 0 {
		return "", NumberInvalid
	}
	s = s[start:]
	var digits strings.Builder
	plus := false
	n := 0
scan:
	for i := 0; i < len(s); i++ {
		ch := s[i]
		switch {
		case ch >= '0' && ch <= '9':
			digits.WriteByte(ch)
			n++
		case ch == '+' && i == 0:
			plus = true
		case ch == '(' && plus && strings.HasPrefix(s[i:], "(0)"):
			i += 2 // "+44 (0)20 …": the trunk zero in brackets is not dialled
		case ch == '(' || ch == ')':
			if n >= 7 { // brackets after the number are a note: "(cell)"
				break scan
			}
		case ch == ' ' || ch == '-' || ch == '.' || ch == '/' || ch == '\t':
		default: // x, ext, #, comma, letters of a note
			break scan
		}
	}
	return toE164(digits.String(), plus, country)
}

// toE164 applies the country's rules to digits ('+' seen when plus).
func toE164(d string, plus bool, country string) (string, NumberProblem) {
	if len(d) < 7 {
		if d == "" && !plus {
			return "", NumberWithheld
		}
		return "", NumberTooShort
	}
	if len(d) > 15+4 {
		return "", NumberInvalid
	}
	if plus {
		return e164(d)
	}
	c, known := CountryRules(country)
	if !known {
		if strings.HasPrefix(d, "00") {
			d = d[2:]
		}
		return e164(d)
	}
	if c.Intl != "" && strings.HasPrefix(d, c.Intl) {
		return e164(d[len(c.Intl):])
	}
	if c.Trunk != "" && strings.HasPrefix(d, c.Trunk) {
		return e164(c.Code + d[len(c.Trunk):])
	}
	if c.NationalLen > 0 {
		switch {
		case len(d) == c.NationalLen:
			return e164(c.Code + d)
		case len(d) == len(c.Code)+c.NationalLen && strings.HasPrefix(d, c.Code):
			return e164(d)
		case c.Code == "1":
			// NANP: neither 10 digits nor 1+10 digits is not a number (7-digit local
			// numbers have no area code).
			return "", NumberInvalid
		}
	}
	if strings.HasPrefix(d, c.Code) && len(d) > len(c.Code)+6 {
		return e164(d) // already international without '+'
	}
	return e164(c.Code + d)
}

func e164(d string) (string, NumberProblem) {
	if len(d) < 8 || len(d) > 15 || d[0] == '0' {
		return "", NumberInvalid
	}
	return "+" + d, NumberOK
}

// MaskNumber keeps the last four digits of a number for logs: "…2171".
func MaskNumber(n string) string {
	d := make([]byte, 0, len(n))
	for i := 0; i < len(n); i++ {
		if n[i] >= '0' && n[i] <= '9' {
			d = append(d, n[i])
		}
	}
	if len(d) <= 4 {
		return "…"
	}
	return "…" + string(d[len(d)-4:])
}

// last4 returns the last four digits of an E.164 number.
func last4(n string) string {
	if len(n) < 4 {
		return ""
	}
	return n[len(n)-4:]
}

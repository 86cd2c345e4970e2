package routing

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
)

// AllowList is the firm's list of destination patterns (config
// routing.allowed_destinations): when it is not empty, every rule's destination
// and the operator destination must match one of them. The zero value allows
// any destination.
//
// Pattern syntax: '*' matches any run of characters (also none), '?' exactly
// one character; everything else matches itself. Number patterns ("+1217555*",
// "1??") are normalized like destinations (spaces, dashes, dots and parentheses
// removed, see NormalizeNumber) and compared exactly. URI patterns
// ("sip:*@pbx.firm.example") start with sip: or sips: and are compared without
// regard to case; in them a wildcard never matches '@', ';' or '?', so the
// user part cannot swallow a host and URI parameters (maddr, transport) or
// headers must be written out in the pattern to be allowed.
type AllowList struct {
	patterns []string
}

// maxPatternLen bounds a pattern (the matcher is quadratic in the lengths).
const maxPatternLen = 256

var errPattern = errors.New("bad destination pattern")

// ParseAllowList checks and normalizes patterns; an empty list allows any
// destination.
func ParseAllowList(patterns []string) (AllowList, error) {
	out := make([]string, 0, len(patterns))
	for i, p := range patterns {
		n, err := normPattern(p)
		if err != nil {
			return AllowList{}, fmt.Errorf("%w [%d] %q: %w", errPattern, i, p, err)
		}
		out = append(out, n)
	}
	return AllowList{patterns: out}, nil
}

func normPattern(p string) (string, error) {
	p = strings.TrimSpace(p)
	switch {
	case p == "":
		return "", errors.New("empty")
	case len(p) > maxPatternLen:
		return "", fmt.Errorf("longer than %d bytes", maxPatternLen)
	case strings.ContainsFunc(p, func(r rune) bool { return r < ' ' || r == 0x7f || r > 0x7e || strings.ContainsRune(`<>"`, r) }):
		return "", errors.New("contains control or forbidden characters")
	}
	if isURIPattern(p) {
		if strings.ContainsRune(p, ' ') {
			return "", errors.New("contains spaces")
		}
		return p, nil
	}
	if strings.ContainsAny(p, ":@") {
		return "", errors.New("want a number pattern (+1217555*, 1??) or a sip:/sips: URI pattern")
	}
	var b strings.Builder
	for i, r := range p {
		switch {
		case r >= '0' && r <= '9', r == '*', r == '?', r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return "", fmt.Errorf("%q is not a digit, '+' (first only), '*' or '?'", r)
		}
	}
	if b.Len() == 0 || b.String() == "+" {
		return "", errors.New("no digits or wildcards")
	}
	return b.String(), nil
}

func isURIPattern(p string) bool {
	l := strings.ToLower(p)
	return strings.HasPrefix(l, "sip:") || strings.HasPrefix(l, "sips:")
}

// Empty reports whether the list allows any destination.
func (a AllowList) Empty() bool { return len(a.patterns) == 0 }

// Patterns returns the normalized patterns.
func (a AllowList) Patterns() []string { return append([]string(nil), a.patterns...) }

// String is the list as error messages show it: ["+1217555*" "1??"].
func (a AllowList) String() string {
	q := make([]string, len(a.patterns))
	for i, p := range a.patterns {
		q[i] = strconv.Quote(p)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// Allows reports whether dest (a rule destination or the operator) may be
// dialled: the list is empty or one pattern matches dest after normalization.
func (a AllowList) Allows(dest string) bool {
	if len(a.patterns) == 0 {
		return true
	}
	d := NormalizeNumber(dest)
	if d == "" || len(d) > 4*maxPatternLen {
		return false
	}
	for _, p := range a.patterns {
		if isURIPattern(p) {
			if !strings.Contains(d, ":") {
				continue
			}
			if globMatch(strings.ToLower(p), strings.ToLower(d), "@;?") {
				return true
			}
			continue
		}
		if globMatch(p, d, ":@;?") {
			return true
		}
	}
	return false
}

// check returns the error of a destination the list does not allow.
func (a AllowList) check(dest string) error {
	if a.Allows(dest) {
		return nil
	}
	return fmt.Errorf("%w: %q matches none of routing.allowed_destinations %s", ErrNotAllowed, dest, a)
}

// ErrNotAllowed is wrapped when a destination is outside routing.allowed_destinations.
var ErrNotAllowed = errors.New("destination not allowed")

// globMatch matches s against pattern p ('*' any run, '?' one character);
// wildcards never match a byte of stop. Dynamic programming over bytes: no
// backtracking blow-up.
func globMatch(p, s, stop string) bool {
	// cur[j]: p[:i] matches s[:j]
	prev := make([]bool, len(s)+1)
	cur := make([]bool, len(s)+1)
	prev[0] = true
	for i := 0; i < len(p); i++ {
		c := p[i]
		cur[0] = prev[0] && c == '*'
		for j := 1; j <= len(s); j++ {
			b := s[j-1]
			switch c {
			case '*':
				cur[j] = prev[j] || (cur[j-1] && strings.IndexByte(stop, b) < 0)
			case '?':
				cur[j] = prev[j-1] && strings.IndexByte(stop, b) < 0
			default:
				cur[j] = prev[j-1] && b == c
			}
		}
		prev, cur = cur, prev
	}
	return prev[len(s)]
}

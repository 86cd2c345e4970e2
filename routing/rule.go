package routing

import (
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// Rule is one transfer rule as an admin wrote it: plain fields, no behaviour.
// Rules are validated as a set (NewRuleSet, ValidateSet) because names,
// extensions and staff ids are unique and fallbacks refer to other rules.
type Rule struct {
	// Name is unique (compared case-insensitively); intents say rule:NAME. Names
	// may hold spaces and some punctuation ("Felix Dubinsky", see checkName). A
	// rule named "operator" serves the operator intent.
	Name string
	// StaffName and StaffID say which Clio user the rule serves (either or both;
	// neither for rules reached only by name or extension). StaffID 0 = none.
	StaffName string
	StaffID   int64
	// Destination is the dial string: an E.164 number (+12175550101), a national
	// number (7-15 digits), a short internal number (2-6 digits) or a sip:/sips: URI.
	// Numbers are sent via sip.outbound_proxy; see DestinationKindOf.
	Destination string
	Mode        Mode
	CallerID    CallerID
	// Message is said to the caller before the transfer; MessageAudio, when set,
	// is a WAV file played instead.
	Message      string
	MessageAudio string
	// Whisper (warm only) is said to the person answering; it may contain
	// {caller_name} and {matter}. See RenderWhisper.
	Whisper string
	// AcceptDigit (warm only) is the DTMF digit that accepts the call after the
	// whisper; empty = the call is accepted on answer.
	AcceptDigit string
	// RingTimeout is how long a warm transfer rings before it counts as no answer.
	RingTimeout time.Duration
	// Unavailable is what happens when the rule cannot take the call (outside
	// hours, closed, no answer, declined).
	Unavailable Unavailable
	// Extension is an optional number a caller can dial from the menu (digits).
	Extension string
	// Hours is the weekly schedule in ParseHours syntax; empty = always open.
	Hours string
	// TimeZone is the IANA zone of Hours and closures; empty = the firm's zone.
	TimeZone string
	Enabled  bool
	// Writeback overrides the Clio write-back defaults for this rule's calls.
	Writeback RuleWriteback
	// SRTP is SDES-SRTP toward the destination: on requires it, off offers plain
	// RTP, the default follows media.srtp and the destination (sips:/TLS).
	SRTP Toggle
}

// DefaultRingTimeout is the ring timeout of a rule that names none.
const DefaultRingTimeout = 20 * time.Second

// Limits of a rule's ring timeout.
const (
	MinRingTimeout = time.Second
	MaxRingTimeout = 10 * time.Minute
)

// UnavailableKind is what a rule does when it cannot take the call. The zero
// value means unknown.
type UnavailableKind uint8

const (
	UnavailableUnknown UnavailableKind = iota
	UnavailableMessage                 // record a message
	UnavailableMenu                    // return the caller to the menu
	UnavailableHangup                  // say goodbye and hang up
	UnavailableRule                    // try another rule (Unavailable.Rule); see Fallback
)

// Unavailable is a rule's unavailable handling: message, menu, hangup or rule:NAME.
type Unavailable struct {
	Kind UnavailableKind
	Rule string // the fallback rule when Kind is UnavailableRule
}

// ParseUnavailable reads "message", "menu", "hangup" or "rule:NAME".
func ParseUnavailable(s string) (Unavailable, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "message":
		return Unavailable{Kind: UnavailableMessage}, nil
	case "menu":
		return Unavailable{Kind: UnavailableMenu}, nil
	case "hangup":
		return Unavailable{Kind: UnavailableHangup}, nil
	}
	if name, ok := strings.CutPrefix(s, "rule:"); ok {
		name = strings.TrimSpace(name)
		if err := checkName(name); err != nil {
			return Unavailable{}, fmt.Errorf("bad fallback rule name: %w", err)
		}
		return Unavailable{Kind: UnavailableRule, Rule: name}, nil
	}
	return Unavailable{}, fmt.Errorf("%q is not message, menu, hangup or rule:NAME", s)
}

func (u Unavailable) String() string {
	switch u.Kind {
	case UnavailableMessage:
		return "message"
	case UnavailableMenu:
		return "menu"
	case UnavailableHangup:
		return "hangup"
	case UnavailableRule:
		return "rule:" + u.Rule
	}
	return ""
}

func (u Unavailable) MarshalText() ([]byte, error) { return []byte(u.String()), nil }

// ParseMode reads "cold" or "warm".
func ParseMode(s string) (Mode, error) {
	switch strings.TrimSpace(s) {
	case "cold":
		return ModeCold, nil
	case "warm":
		return ModeWarm, nil
	}
	return ModeUnknown, fmt.Errorf("%q is not cold or warm", s)
}

// ParseCallerID reads "caller" or "service".
func ParseCallerID(s string) (CallerID, error) {
	switch strings.TrimSpace(s) {
	case "caller":
		return CallerIDCaller, nil
	case "service":
		return CallerIDService, nil
	}
	return CallerIDUnknown, fmt.Errorf("%q is not caller or service", s)
}

// DestinationKind classifies a destination dial string. The zero value means
// not dialable.
type DestinationKind uint8

const (
	DestInvalid  DestinationKind = iota
	DestNumber                   // E.164 (+ and 7-15 digits) or national number (7-15 digits): via sip.outbound_proxy
	DestInternal                 // short internal number, 2-6 digits: via sip.outbound_proxy
	DestURI                      // sip: or sips: URI, dialled as is
)

func (k DestinationKind) String() string {
	switch k {
	case DestNumber:
		return "number"
	case DestInternal:
		return "internal"
	case DestURI:
		return "uri"
	}
	return "invalid"
}

// IsNumber reports whether destinations of this kind are numbers sent through
// sip.outbound_proxy (as opposed to SIP URIs dialled directly).
func (k DestinationKind) IsNumber() bool { return k == DestNumber || k == DestInternal }

var (
	e164RE     = regexp.MustCompile(`^\+[1-9][0-9]{6,14}$`)
	nationalRE = regexp.MustCompile(`^[0-9]{7,15}$`)
	internalRE = regexp.MustCompile(`^[0-9]{2,6}$`)
	uriUserRE  = regexp.MustCompile(`^[A-Za-z0-9\-_.!~*'()&=+$,;?/%]+$`)
	uriHostRE  = regexp.MustCompile(`^(\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9.\-]+)(:[0-9]{1,5})?$`)
	uriParamRE = regexp.MustCompile(`^[A-Za-z0-9\-_.!~*'()&=+$,;?/%:\[\]@]*$`)
	digitsRE   = regexp.MustCompile(`^[0-9]{1,8}$`)
)

// DestinationKindOf classifies s, or returns an error saying why it is not
// dialable. Spaces, CR/LF, angle brackets and quotes are never accepted.
func DestinationKindOf(s string) (DestinationKind, error) {
	switch {
	case s == "":
		return DestInvalid, errors.New("empty destination")
	case strings.ContainsFunc(s, func(r rune) bool { return r <= ' ' || r == 0x7f || r > 0x7e || strings.ContainsRune(`<>"`, r) }):
		return DestInvalid, fmt.Errorf("%q contains spaces, control or forbidden characters", s)
	case e164RE.MatchString(s) || nationalRE.MatchString(s):
		return DestNumber, nil
	case internalRE.MatchString(s):
		return DestInternal, nil
	}
	lower := strings.ToLower(s)
	var rest string
	switch {
	case strings.HasPrefix(lower, "sip:"):
		rest = s[4:]
	case strings.HasPrefix(lower, "sips:"):
		rest = s[5:]
	default:
		return DestInvalid, fmt.Errorf("%q is not an E.164 number (+12175550101), an internal number (2-6 digits) or a sip:/sips: URI", s)
	}
	hostPart, params := rest, ""
	if i := strings.IndexAny(rest, ";?"); i >= 0 {
		hostPart, params = rest[:i], rest[i:]
	}
	if user, host, ok := strings.Cut(hostPart, "@"); ok {
		if user == "" || !uriUserRE.MatchString(user) {
			return DestInvalid, fmt.Errorf("%q has a bad user part", s)
		}
		hostPart = host
	}
	if !uriHostRE.MatchString(hostPart) {
		return DestInvalid, fmt.Errorf("%q has no valid host", s)
	}
	if !uriParamRE.MatchString(params) {
		return DestInvalid, fmt.Errorf("%q has bad parameters", s)
	}
	return DestURI, nil
}

// NormalizeNumber turns a phone number as people type it ("+1 (217) 555-2171",
// "217.555.2171") into a dial string by removing spaces, dashes, dots and
// parentheses. Anything else (URIs, short numbers with separators, text) is
// returned trimmed and unchanged, for validation to accept or reject.
func NormalizeNumber(s string) string {
	s = strings.TrimSpace(s)
	if strings.ContainsAny(s, ":@") {
		return s
	}
	var b strings.Builder
	for i, r := range s {
		switch {
		case r >= '0' && r <= '9', r == '+' && i == 0:
			b.WriteRune(r)
		case r == ' ' || r == '-' || r == '.' || r == '(' || r == ')':
		default:
			return s
		}
	}
	if n := strings.TrimPrefix(b.String(), "+"); len(n) < 7 && b.Len() != len(s) {
		return s
	}
	return b.String()
}

// MaxNameLen is the longest rule name, in characters (not bytes).
const MaxNameLen = 64

// namePunct is the punctuation a rule name may contain besides letters, digits
// and single spaces: "Felix Dubinsky", "O'Brien & Co.", "Tax, Estates".
const namePunct = ".-_'’&,"

// checkName accepts rule names as admins write them: 1-64 characters, letters
// (any script, with combining marks), digits, single spaces and the punctuation
// of namePunct; it must start with a letter or digit and not end with a space.
// '/' and ':' are refused (names appear in URL paths and after "rule:"), as are
// control characters and other symbols.
func checkName(s string) error {
	const want = "1-64 letters, digits, spaces and . - _ ' ’ & , starting with a letter or digit"
	if !utf8.ValidString(s) {
		return fmt.Errorf("%q is not valid UTF-8", s)
	}
	n := utf8.RuneCountInString(s)
	if n == 0 {
		return fmt.Errorf("empty name: want %s", want)
	}
	if n > MaxNameLen {
		return fmt.Errorf("%q is %d characters, over %d", s, n, MaxNameLen)
	}
	first, _ := utf8.DecodeRuneInString(s)
	if !unicode.IsLetter(first) && !unicode.IsDigit(first) {
		return fmt.Errorf("%q must start with a letter or digit", s)
	}
	if strings.HasSuffix(s, " ") {
		return fmt.Errorf("%q ends with a space", s)
	}
	if strings.Contains(s, "  ") {
		return fmt.Errorf("%q has two spaces in a row", s)
	}
	for _, r := range s {
		if unicode.IsLetter(r) || unicode.IsDigit(r) || unicode.Is(unicode.M, r) || r == ' ' || strings.ContainsRune(namePunct, r) {
			continue
		}
		return fmt.Errorf("%q contains %q: want %s", s, r, want)
	}
	return nil
}

// whisperPlaceholders are the placeholders RenderWhisper fills in.
var whisperPlaceholders = map[string]bool{"caller_name": true, "matter": true}

var placeholderRE = regexp.MustCompile(`\{([^{}]*)\}`)

func checkWhisper(s string) error {
	for _, m := range placeholderRE.FindAllStringSubmatch(s, -1) {
		if !whisperPlaceholders[m[1]] {
			return fmt.Errorf("unknown placeholder {%s} (want {caller_name} or {matter})", m[1])
		}
	}
	return checkText(s)
}

func checkText(s string) error {
	if strings.ContainsFunc(s, func(r rune) bool { return r < ' ' && r != '\t' }) {
		return errors.New("contains control characters or line breaks")
	}
	if len(s) > 1000 {
		return errors.New("longer than 1000 bytes")
	}
	return nil
}

// RenderWhisper fills {caller_name} and {matter} in a whisper template. Empty
// values become "unknown caller" and "unknown".
func RenderWhisper(tmpl, callerName, matter string) string {
	if callerName == "" {
		callerName = "unknown caller"
	}
	if matter == "" {
		matter = "unknown"
	}
	return strings.NewReplacer("{caller_name}", callerName, "{matter}", matter).Replace(tmpl)
}

// FieldError is a validation error that names the rule and the field (as the
// CLI flag and YAML key spell it).
type FieldError struct {
	Rule  string
	Field string
	Err   error
}

func (e *FieldError) Error() string {
	if e.Rule == "" {
		return fmt.Sprintf("%s: %v", e.Field, e.Err)
	}
	return fmt.Sprintf("rule %q: %s: %v", e.Rule, e.Field, e.Err)
}

func (e *FieldError) Unwrap() error { return e.Err }

// ErrInvalidRule is wrapped (via FieldError) by every rule validation error.
var ErrInvalidRule = errors.New("invalid rule")

// compiled is a rule's parsed hours and zone, and the resolved path of its
// message audio.
type compiled struct {
	hours Hours
	loc   *time.Location
	audio string
}

// validate checks r on its own (not uniqueness or fallbacks) under the firm's
// policy: its zone is used when r names none, the destination must be on its
// allow-list and the message audio inside its audio directory.
func (r *Rule) validate(pol policy) (compiled, error) {
	bad := func(field string, err error) (compiled, error) {
		return compiled{}, &FieldError{Rule: r.Name, Field: field, Err: err}
	}
	if err := checkName(r.Name); err != nil {
		return bad("name", err)
	}
	if err := checkText(r.StaffName); err != nil {
		return bad("staff", err)
	}
	if r.StaffID < 0 {
		return bad("staff_id", fmt.Errorf("%d is negative", r.StaffID))
	}
	if _, err := DestinationKindOf(r.Destination); err != nil {
		return bad("to", err)
	}
	if err := pol.allow.check(r.Destination); err != nil {
		return bad("to", err)
	}
	if r.Mode != ModeCold && r.Mode != ModeWarm {
		return bad("mode", errors.New("must be cold or warm"))
	}
	if r.CallerID != CallerIDCaller && r.CallerID != CallerIDService {
		return bad("caller_id", errors.New("must be caller or service"))
	}
	if err := checkText(r.Message); err != nil {
		return bad("message", err)
	}
	if err := checkText(r.MessageAudio); err != nil {
		return bad("message_audio", err)
	}
	var audio string
	if r.MessageAudio != "" {
		var err error
		if audio, err = resolveAudio(pol.audioDir, r.MessageAudio); err != nil {
			return bad("message_audio", err)
		}
	}
	if err := checkWhisper(r.Whisper); err != nil {
		return bad("whisper", err)
	}
	if r.AcceptDigit != "" && (len(r.AcceptDigit) != 1 || !strings.Contains("0123456789*#", r.AcceptDigit)) {
		return bad("accept_digit", fmt.Errorf("%q is not one digit 0-9, * or # (empty = accept on answer)", r.AcceptDigit))
	}
	if r.RingTimeout < MinRingTimeout || r.RingTimeout > MaxRingTimeout {
		return bad("ring_timeout", fmt.Errorf("%v is outside %v..%v", r.RingTimeout, MinRingTimeout, MaxRingTimeout))
	}
	switch r.Unavailable.Kind {
	case UnavailableMessage, UnavailableMenu, UnavailableHangup:
	case UnavailableRule:
		if err := checkName(r.Unavailable.Rule); err != nil {
			return bad("unavailable", err)
		}
	default:
		return bad("unavailable", errors.New("must be message, menu, hangup or rule:NAME"))
	}
	if r.Extension != "" && !digitsRE.MatchString(r.Extension) {
		return bad("extension", fmt.Errorf("%q is not 1-8 digits", r.Extension))
	}
	h, err := ParseHours(r.Hours)
	if err != nil {
		return bad("hours", err)
	}
	loc := pol.zone
	if r.TimeZone != "" {
		if loc, err = LoadZone(r.TimeZone); err != nil {
			return bad("tz", err)
		}
	}
	return compiled{hours: h, loc: loc, audio: audio}, nil
}

// LoadZone loads an IANA zone; "Local" and "" are refused because they depend on
// the host.
func LoadZone(name string) (*time.Location, error) {
	if name == "" || strings.EqualFold(name, "local") {
		return nil, fmt.Errorf("unknown IANA time zone %q", name)
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, fmt.Errorf("unknown IANA time zone %q", name)
	}
	return loc, nil
}

// normName folds a staff name for comparison: lower case, runs of white space
// collapsed to one space.
func normName(s string) string {
	return strings.Join(strings.Fields(strings.ToLower(s)), " ")
}

func nameKey(s string) string { return strings.ToLower(s) }

// Warnings lists the settings of r that do nothing for its mode, each as
// "FIELD: why" (FIELD as the CLI flag and YAML key spell it); nil when there
// are none. They are advice: a rule with warnings is valid and works.
//
// A cold rule hands the call over with a SIP REFER (RFC 3515), so nobody hears
// a whisper and nobody can press an accept digit; it rings for ring_timeout
// only when the REFER fails and transfer.fallback bridges the call
// instead, so a ring_timeout other than the default is flagged too.
func (r Rule) Warnings() []string {
	var w []string
	if r.Mode == ModeCold {
		if r.Whisper != "" {
			w = append(w, "whisper: ignored by a cold rule: only warm transfers whisper to the person answering")
		}
		if r.AcceptDigit != "" {
			w = append(w, "accept_digit: ignored by a cold rule: only warm transfers wait for an accept digit")
		}
		if r.RingTimeout != DefaultRingTimeout && r.RingTimeout != 0 {
			w = append(w, fmt.Sprintf("ring_timeout: %v is used by a cold rule only when its REFER fails and the call is bridged instead (transfer.fallback)", r.RingTimeout))
		}
	}
	return w
}

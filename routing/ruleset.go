package routing

import (
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"
)

// Firm holds the firm-wide routing settings that come from configuration.
type Firm struct {
	// TimeZone is the IANA zone of rules that name none (config firm.time_zone).
	TimeZone string
	// Operator is the destination of the operator intent (config ivr.operator)
	// when no rule is named "operator".
	Operator string
	// AllowedDestinations are the patterns every rule destination and the
	// operator must match (config routing.allowed_destinations, see AllowList);
	// empty = any destination.
	AllowedDestinations []string
	// AudioDir is the directory rules' message_audio files must be in (config
	// media.prompts_dir, else audio/ next to the database); empty = rules cannot
	// have message audio.
	AudioDir string
}

// policy is what validating a rule needs from the firm settings.
type policy struct {
	zone     *time.Location
	allow    AllowList
	audioDir string
}

// policyOf loads the firm's zone and parses its allow-list.
func policyOf(f Firm) (policy, error) {
	zone, err := LoadZone(f.TimeZone)
	if err != nil {
		return policy{}, fmt.Errorf("routing: firm time zone: %w", err)
	}
	allow, err := ParseAllowList(f.AllowedDestinations)
	if err != nil {
		return policy{}, fmt.Errorf("routing: allowed destinations: %w", err)
	}
	return policy{zone: zone, allow: allow, audioDir: f.AudioDir}, nil
}

// RuleStatus is a rule with the reason it is unusable (nil when valid).
type RuleStatus struct {
	Rule Rule
	Err  error
}

// Valid reports whether the rule passed validation.
func (s RuleStatus) Valid() bool { return s.Err == nil }

// RuleSet is an immutable snapshot of all rules (valid or not), the closures and
// the firm settings. Build one with NewRuleSet; Store swaps them atomically. It
// is safe for concurrent use.
type RuleSet struct {
	entries  []*entry // sorted by name
	byName   map[string]*entry
	byExt    map[string]*entry
	closures []Closure
	closed   map[string]string // date -> note
	badDays  []ClosureStatus   // closures that failed validation
	firm     Firm
	zone     *time.Location
	allow    AllowList
}

type entry struct {
	rule Rule
	// def is rule as calls see it (Decision.Def): MessageAudio is the resolved
	// absolute path inside the audio directory.
	def Rule
	compiled
	err error
}

// NewRuleSet validates rules and closures and builds a snapshot. Invalid rules
// are kept with their reason (Decide answers rule_invalid for them); invalid
// closures are dropped and reported by InvalidClosures. Only a bad firm zone or
// allow-list is an error.
func NewRuleSet(rules []Rule, closures []Closure, firm Firm) (*RuleSet, error) {
	pol, err := policyOf(firm)
	if err != nil {
		return nil, err
	}
	s := &RuleSet{
		byName: make(map[string]*entry, len(rules)),
		byExt:  make(map[string]*entry),
		closed: make(map[string]string, len(closures)),
		firm:   firm,
		zone:   pol.zone,
		allow:  pol.allow,
	}
	errs := checkSet(rules, pol)
	for i, r := range rules {
		e := &entry{rule: r, def: r, err: errs[i].err, compiled: errs[i].c}
		if e.err == nil && e.audio != "" {
			e.def.MessageAudio = e.audio
		}
		s.entries = append(s.entries, e)
		if _, dup := s.byName[nameKey(r.Name)]; !dup {
			s.byName[nameKey(r.Name)] = e
		}
		if r.Extension != "" && e.err == nil {
			s.byExt[r.Extension] = e
		}
	}
	sort.SliceStable(s.entries, func(i, j int) bool { return nameKey(s.entries[i].rule.Name) < nameKey(s.entries[j].rule.Name) })
	for _, c := range closures {
		d, err := ParseDate(c.Date)
		if err != nil {
			s.badDays = append(s.badDays, ClosureStatus{Closure: c, Err: &FieldError{Field: "date", Err: err}})
			continue
		}
		c.Date = d
		s.closed[d] = c.Note
		s.closures = append(s.closures, c)
	}
	sort.Slice(s.closures, func(i, j int) bool { return s.closures[i].Date < s.closures[j].Date })
	return s, nil
}

type checked struct {
	c   compiled
	err error
}

// checkSet validates every rule and the set-wide constraints: unique names,
// extensions and staff ids, fallbacks to existing rules and no fallback loops.
// The first rule (in input order) to claim a name, extension or staff id keeps
// it; later ones are invalid.
func checkSet(rules []Rule, pol policy) []checked {
	out := make([]checked, len(rules))
	names := map[string]int{}
	exts := map[string]int{}
	staff := map[int64]int{}
	for i := range rules {
		r := &rules[i]
		c, err := r.validate(pol)
		out[i] = checked{c: c, err: err}
		if err != nil {
			if _, dup := names[nameKey(r.Name)]; !dup {
				names[nameKey(r.Name)] = i
			}
			continue
		}
		if j, dup := names[nameKey(r.Name)]; dup {
			out[i].err = &FieldError{Rule: r.Name, Field: "name", Err: fmt.Errorf("duplicate name (rule %q exists)", rules[j].Name)}
			continue
		}
		names[nameKey(r.Name)] = i
		if r.Extension != "" {
			if j, dup := exts[r.Extension]; dup {
				out[i].err = &FieldError{Rule: r.Name, Field: "extension", Err: fmt.Errorf("%s is already used by rule %q", r.Extension, rules[j].Name)}
				continue
			}
			exts[r.Extension] = i
		}
		if r.StaffID != 0 {
			if j, dup := staff[r.StaffID]; dup {
				out[i].err = &FieldError{Rule: r.Name, Field: "staff_id", Err: fmt.Errorf("%d is already served by rule %q", r.StaffID, rules[j].Name)}
				continue
			}
			staff[r.StaffID] = i
		}
	}
	for i := range rules {
		r := &rules[i]
		if out[i].err != nil || r.Unavailable.Kind != UnavailableRule {
			continue
		}
		if _, ok := names[nameKey(r.Unavailable.Rule)]; !ok {
			out[i].err = &FieldError{Rule: r.Name, Field: "unavailable", Err: fmt.Errorf("unknown rule %q in fallback", r.Unavailable.Rule)}
			continue
		}
		// follow the chain; a loop through r makes r invalid
		path := []string{r.Name}
		seen := map[string]bool{nameKey(r.Name): true}
		cur := r
		for cur.Unavailable.Kind == UnavailableRule {
			j, ok := names[nameKey(cur.Unavailable.Rule)]
			if !ok {
				break
			}
			next := &rules[j]
			path = append(path, next.Name)
			if nameKey(next.Name) == nameKey(r.Name) {
				out[i].err = &FieldError{Rule: r.Name, Field: "unavailable", Err: fmt.Errorf("fallback loop %s", strings.Join(path, " -> "))}
				break
			}
			if seen[nameKey(next.Name)] {
				break // a loop further down the chain, reported on its own members
			}
			seen[nameKey(next.Name)] = true
			cur = next
		}
	}
	return out
}

// ValidateSet checks rules as a whole (each rule and the set-wide constraints)
// under firm's settings: its zone as the default zone, its allow-list and its
// audio directory. The error joins one FieldError per bad rule.
func ValidateSet(rules []Rule, firm Firm) error {
	pol, err := policyOf(firm)
	if err != nil {
		return err
	}
	var errs []error
	for _, c := range checkSet(rules, pol) {
		if c.err != nil {
			errs = append(errs, c.err)
		}
	}
	return errors.Join(errs...)
}

// All returns every rule, valid or not, sorted by name.
func (s *RuleSet) All() []RuleStatus {
	out := make([]RuleStatus, 0, len(s.entries))
	for _, e := range s.entries {
		out = append(out, RuleStatus{Rule: e.rule, Err: e.err})
	}
	return out
}

// Invalid returns the rules that failed validation, sorted by name.
func (s *RuleSet) Invalid() []RuleStatus {
	var out []RuleStatus
	for _, e := range s.entries {
		if e.err != nil {
			out = append(out, RuleStatus{Rule: e.rule, Err: e.err})
		}
	}
	return out
}

// Lookup finds a rule by name (case-insensitive).
func (s *RuleSet) Lookup(name string) (RuleStatus, bool) {
	e, ok := s.byName[nameKey(name)]
	if !ok {
		return RuleStatus{}, false
	}
	return RuleStatus{Rule: e.rule, Err: e.err}, true
}

// ServedBy returns the name of the valid rule that serves the Clio user with this
// id or (when the rule has no id) this name, as the responsible intent would
// find it.
func (s *RuleSet) ServedBy(staffID int64, name string) (string, bool) {
	e, _ := s.staffRule(staffID, name)
	if e == nil {
		return "", false
	}
	return e.rule.Name, true
}

// Closures returns the valid closures sorted by date.
func (s *RuleSet) Closures() []Closure { return append([]Closure(nil), s.closures...) }

// ClosureStatus is a stored closure that failed validation, with the reason.
type ClosureStatus struct {
	Closure Closure
	Err     error
}

// InvalidClosures returns the stored closures that failed validation (bad dates).
func (s *RuleSet) InvalidClosures() []ClosureStatus {
	return append([]ClosureStatus(nil), s.badDays...)
}

// Zone is the firm's default zone.
func (s *RuleSet) Zone() *time.Location { return s.zone }

// AllowList returns the parsed routing.allowed_destinations of the snapshot.
func (s *RuleSet) AllowList() AllowList { return s.allow }

// Firm returns the firm settings the snapshot was built with.
func (s *RuleSet) Firm() Firm { return s.firm }

// closedOn reports whether a closure covers the date of t in loc.
func (s *RuleSet) closedOn(t time.Time, loc *time.Location) (string, bool) {
	note, ok := s.closed[t.In(loc).Format(time.DateOnly)]
	return note, ok
}

// staffRule finds the rule serving a looked-up staff member: by Clio user id
// first, then by normalized name among rules that carry no other id. Several
// rules matching by name, not exactly one of them usable, is ambiguous.
func (s *RuleSet) staffRule(id int64, name string) (e *entry, ambiguous bool) {
	if id != 0 {
		var first *entry
		for _, c := range s.entries {
			if c.rule.StaffID == id {
				if c.err == nil {
					return c, false // a duplicate id makes only the later rule invalid
				}
				if first == nil {
					first = c
				}
			}
		}
		if first != nil {
			return first, false
		}
	}
	n := normName(name)
	if n == "" {
		return nil, false
	}
	var found []*entry
	for _, c := range s.entries {
		if (c.rule.StaffID == 0 || id == 0) && c.rule.StaffName != "" && normName(c.rule.StaffName) == n {
			found = append(found, c)
		}
	}
	return pickOne(found)
}

// pickOne returns the only entry, or the only usable one among several.
func pickOne(found []*entry) (*entry, bool) {
	switch len(found) {
	case 0:
		return nil, false
	case 1:
		return found[0], false
	}
	var usable []*entry
	for _, e := range found {
		if e.err == nil && e.rule.Enabled {
			usable = append(usable, e)
		}
	}
	if len(usable) == 1 {
		return usable[0], false
	}
	return nil, true
}

// staffByName finds the rule for an agent's staff:NAME request: a unique rule
// whose staff name equals the request, else whose first or last name does.
func (s *RuleSet) staffByName(q string) (*entry, bool) {
	n := normName(q)
	if n == "" {
		return nil, false
	}
	var exact, partial []*entry
	for _, c := range s.entries {
		sn := normName(c.rule.StaffName)
		if sn == "" {
			continue
		}
		if sn == n {
			exact = append(exact, c)
			continue
		}
		f := strings.Fields(sn)
		if f[0] == n || f[len(f)-1] == n {
			partial = append(partial, c)
		}
	}
	if len(exact) > 0 {
		return pickOne(exact)
	}
	return pickOne(partial)
}

// Extensions lists the extensions of the valid rules, for a menu that collects
// multi-digit input.
func (s *RuleSet) Extensions() []string {
	var out []string
	for _, st := range s.All() {
		if st.Valid() && st.Rule.Extension != "" {
			out = append(out, st.Rule.Extension)
		}
	}
	return out
}

// RuleByDestination returns the name of the valid rule whose destination is
// the number n (both normalized with NormalizeNumber; a leading '+' is not
// significant), the first by name when several share it. SIP URI destinations
// never match. A voice agent's transfer to a number becomes rule:NAME this way.
func (s *RuleSet) RuleByDestination(n string) (string, bool) {
	want := strings.TrimPrefix(NormalizeNumber(n), "+")
	if want == "" {
		return "", false
	}
	for _, st := range s.All() {
		if !st.Valid() {
			continue
		}
		d := NormalizeNumber(st.Rule.Destination)
		if k, err := DestinationKindOf(d); err != nil || !k.IsNumber() {
			continue
		}
		if strings.TrimPrefix(d, "+") == want {
			return st.Rule.Name, true
		}
	}
	return "", false
}

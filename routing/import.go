package routing

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"go.yaml.in/yaml/v3"
)

// RuleDoc is the external form of a rule in `rules export` / `rules import` YAML
// and in `rules list --json` / `rules show --json`. Keys match the CLI flags.
type RuleDoc struct {
	Name         string `yaml:"name" json:"name"`
	Staff        string `yaml:"staff,omitempty" json:"staff"`
	StaffID      int64  `yaml:"staff_id,omitempty" json:"staff_id"`
	To           string `yaml:"to" json:"to"`
	Mode         string `yaml:"mode,omitempty" json:"mode"`
	CallerID     string `yaml:"caller_id,omitempty" json:"caller_id"`
	Message      string `yaml:"message,omitempty" json:"message"`
	MessageAudio string `yaml:"message_audio,omitempty" json:"message_audio"`
	Whisper      string `yaml:"whisper,omitempty" json:"whisper"`
	AcceptDigit  string `yaml:"accept_digit,omitempty" json:"accept_digit"`
	RingTimeout  string `yaml:"ring_timeout,omitempty" json:"ring_timeout"`
	Unavailable  string `yaml:"unavailable,omitempty" json:"unavailable"`
	Extension    string `yaml:"extension,omitempty" json:"extension"`
	Hours        string `yaml:"hours,omitempty" json:"hours"`
	TZ           string `yaml:"tz,omitempty" json:"tz"`
	Enabled      *bool  `yaml:"enabled,omitempty" json:"enabled"`
	// Clio write-back overrides; null or absent follows clio.writeback.*.
	TimeEntry    *bool  `yaml:"time_entry,omitempty" json:"time_entry"`
	NonBillable  *bool  `yaml:"non_billable,omitempty" json:"non_billable"`
	TaskPriority string `yaml:"task_priority,omitempty" json:"task_priority"`
	// SRTP toward the destination: true requires it, false offers plain RTP;
	// null or absent follows media.srtp and the destination.
	SRTP *bool `yaml:"srtp,omitempty" json:"srtp"`
}

// ClosureDoc is the external form of a closure.
type ClosureDoc struct {
	Date string `yaml:"date" json:"date"`
	Note string `yaml:"note,omitempty" json:"note"`
}

// Doc is a whole rules file. A nil Closures (the key absent) leaves the stored
// closures alone on import; a present list, even empty, replaces them.
type Doc struct {
	Rules    []RuleDoc    `yaml:"rules"`
	Closures []ClosureDoc `yaml:"closures"`
}

// DocOf returns the external form of r (every field explicit).
func DocOf(r Rule) RuleDoc {
	en := r.Enabled
	return RuleDoc{
		Name: r.Name, Staff: r.StaffName, StaffID: r.StaffID, To: r.Destination,
		Mode: r.Mode.String(), CallerID: r.CallerID.String(), Message: r.Message,
		MessageAudio: r.MessageAudio, Whisper: r.Whisper, AcceptDigit: r.AcceptDigit,
		RingTimeout: r.RingTimeout.String(), Unavailable: r.Unavailable.String(),
		Extension: r.Extension, Hours: r.Hours, TZ: r.TimeZone, Enabled: &en,
		TimeEntry: r.Writeback.TimeEntry.Bool(), NonBillable: r.Writeback.NonBillable.Bool(),
		TaskPriority: r.Writeback.TaskPriority, SRTP: r.SRTP.Bool(),
	}
}

// NewRule returns a rule with the defaults of an omitted field: cold, caller's
// ID, 20 s ring timeout, unavailable message, enabled.
func NewRule(name, to string) Rule {
	return Rule{Name: name, Destination: to, Mode: ModeCold, CallerID: CallerIDCaller,
		RingTimeout: DefaultRingTimeout, Unavailable: Unavailable{Kind: UnavailableMessage}, Enabled: true}
}

// Rule converts d to a rule, applying defaults for omitted fields. Errors name
// the field.
func (d RuleDoc) Rule() (Rule, error) {
	r := NewRule(strings.TrimSpace(d.Name), strings.TrimSpace(d.To))
	bad := func(field string, err error) (Rule, error) {
		return Rule{}, &FieldError{Rule: r.Name, Field: field, Err: err}
	}
	r.StaffName = strings.TrimSpace(d.Staff)
	r.StaffID = d.StaffID
	r.Message, r.MessageAudio, r.Whisper = d.Message, d.MessageAudio, d.Whisper
	r.AcceptDigit, r.Extension = d.AcceptDigit, strings.TrimSpace(d.Extension)
	r.Hours, r.TimeZone = strings.TrimSpace(d.Hours), strings.TrimSpace(d.TZ)
	var err error
	if d.Mode != "" {
		if r.Mode, err = ParseMode(d.Mode); err != nil {
			return bad("mode", err)
		}
	}
	if d.CallerID != "" {
		if r.CallerID, err = ParseCallerID(d.CallerID); err != nil {
			return bad("caller_id", err)
		}
	}
	if d.RingTimeout != "" {
		if r.RingTimeout, err = ParseRingTimeout(d.RingTimeout); err != nil {
			return bad("ring_timeout", err)
		}
	}
	if d.Unavailable != "" {
		if r.Unavailable, err = ParseUnavailable(d.Unavailable); err != nil {
			return bad("unavailable", err)
		}
	}
	if d.Enabled != nil {
		r.Enabled = *d.Enabled
	}
	r.Writeback.TimeEntry, r.Writeback.NonBillable = ToggleOf(d.TimeEntry), ToggleOf(d.NonBillable)
	r.SRTP = ToggleOf(d.SRTP)
	if r.Writeback.TaskPriority, err = ParseTaskPriority(d.TaskPriority); err != nil {
		return bad("task_priority", err)
	}
	return r, nil
}

// ParseRingTimeout reads "20s", "1m" or a bare number of seconds; it must be
// whole seconds.
func ParseRingTimeout(s string) (time.Duration, error) {
	s = strings.TrimSpace(s)
	d, err := time.ParseDuration(s)
	if err != nil {
		n, err2 := strconv.Atoi(s)
		if err2 != nil {
			return 0, fmt.Errorf("bad duration %q (want e.g. 20s)", s)
		}
		d = time.Duration(n) * time.Second
	}
	if d%time.Second != 0 {
		return 0, fmt.Errorf("%q is not whole seconds", s)
	}
	if d < MinRingTimeout || d > MaxRingTimeout {
		return 0, fmt.Errorf("%v is outside %v..%v", d, MinRingTimeout, MaxRingTimeout)
	}
	return d, nil
}

// Export writes all rules and closures as YAML (the `rules import` format).
func (s *Store) Export(ctx context.Context) ([]byte, error) {
	rules, err := s.ListRules(ctx)
	if err != nil {
		return nil, err
	}
	closures, err := s.ListClosures(ctx)
	if err != nil {
		return nil, err
	}
	doc := Doc{Rules: []RuleDoc{}, Closures: []ClosureDoc{}}
	for _, r := range rules {
		doc.Rules = append(doc.Rules, DocOf(r))
	}
	for _, c := range closures {
		doc.Closures = append(doc.Closures, ClosureDoc(c))
	}
	var buf bytes.Buffer
	enc := yaml.NewEncoder(&buf)
	enc.SetIndent(2)
	if err := enc.Encode(doc); err != nil {
		return nil, fmt.Errorf("routing: export: %w", err)
	}
	if err := enc.Close(); err != nil {
		return nil, fmt.Errorf("routing: export: %w", err)
	}
	return buf.Bytes(), nil
}

// ParseDoc decodes a rules file strictly (unknown keys are errors) and converts
// and validates it as a whole. The error joins one error per bad rule or
// closure, each naming the rule (or date) and the field.
func ParseDoc(data []byte, firm Firm) ([]Rule, []Closure, error) {
	var doc Doc
	dec := yaml.NewDecoder(bytes.NewReader(data))
	dec.KnownFields(true)
	if err := dec.Decode(&doc); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, nil, errors.New("routing: rules file is empty (an import replaces all rules; write \"rules: []\" to remove them all)")
		}
		return nil, nil, fmt.Errorf("routing: rules file: %w", err)
	}
	var errs []error
	rules := make([]Rule, 0, len(doc.Rules))
	for i, d := range doc.Rules {
		r, err := d.Rule()
		if err != nil {
			errs = append(errs, fmt.Errorf("rules[%d]: %w", i, err))
			continue
		}
		rules = append(rules, r)
	}
	if len(errs) == 0 {
		if err := ValidateSet(rules, firm); err != nil {
			errs = append(errs, err)
		}
	}
	var closures []Closure
	if doc.Closures != nil {
		closures = []Closure{}
		seen := map[string]bool{}
		for i, c := range doc.Closures {
			d, err := ParseDate(c.Date)
			if err == nil {
				err = checkText(c.Note)
			}
			if err == nil && seen[d] {
				err = fmt.Errorf("duplicate date %s", d)
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("closures[%d]: %w", i, err))
				continue
			}
			seen[d] = true
			closures = append(closures, Closure{Date: d, Note: c.Note})
		}
	}
	if err := errors.Join(errs...); err != nil {
		return nil, nil, err
	}
	return rules, closures, nil
}

// ImportResult counts what an import changed (or would change).
type ImportResult struct {
	Added, Changed, Removed, Unchanged int
	// Closures is the number of closures written; -1 when the file had none
	// and the stored closures were kept.
	Closures int
}

// Import replaces all rules (and the closures, when closures is not nil) in one
// transaction. With dryRun nothing is written. The rules must have passed
// ParseDoc or ValidateSet.
func (s *Store) Import(ctx context.Context, rules []Rule, closures []Closure, dryRun bool) (ImportResult, error) {
	if err := ValidateSet(rules, s.firm); err != nil {
		return ImportResult{}, err
	}
	tx, err := s.db.BeginTx(ctx, nil)
	if err != nil {
		return ImportResult{}, fmt.Errorf("routing: begin: %w", err)
	}
	defer tx.Rollback()
	before, err := listRules(ctx, tx)
	if err != nil {
		return ImportResult{}, err
	}
	res := ImportResult{Closures: -1}
	old := map[string]Rule{}
	for _, r := range before {
		old[nameKey(r.Name)] = r
	}
	seen := map[string]bool{}
	for _, r := range rules {
		seen[nameKey(r.Name)] = true
		switch o, ok := old[nameKey(r.Name)]; {
		case !ok:
			res.Added++
		case o != r:
			res.Changed++
		default:
			res.Unchanged++
		}
	}
	for k := range old {
		if !seen[k] {
			res.Removed++
		}
	}
	if closures != nil {
		res.Closures = len(closures)
	}
	if dryRun {
		return res, nil
	}
	if err := writeDiff(ctx, tx, before, rules); err != nil {
		return ImportResult{}, err
	}
	if closures != nil {
		if _, err := tx.ExecContext(ctx, `DELETE FROM closures`); err != nil {
			return ImportResult{}, fmt.Errorf("routing: import closures: %w", err)
		}
		for _, c := range closures {
			if _, err := tx.ExecContext(ctx, `INSERT INTO closures (date, note) VALUES (?, ?)`, c.Date, c.Note); err != nil {
				return ImportResult{}, fmt.Errorf("routing: import closure %s: %w", c.Date, err)
			}
		}
	}
	if err := tx.Commit(); err != nil {
		return ImportResult{}, fmt.Errorf("routing: commit: %w", err)
	}
	return res, s.Reload(ctx)
}

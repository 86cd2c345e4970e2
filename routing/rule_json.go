package routing

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"sort"
	"strings"
)

// RuleJSON is a rule as `matterline rules show --json`, `rules list --json` and
// the HTTP API (GET, POST, PUT and PATCH /v1/rules...) show it: the export form
// (RuleDoc, every field explicit) and read-only fields computed from the rule.
// DecodeRuleJSON reads the same shape back, ignoring the read-only fields.
type RuleJSON struct {
	RuleDoc
	// Valid reports whether the rule passed validation as part of the whole
	// set; Error says why not.
	Valid bool   `json:"valid"`
	Error string `json:"error,omitempty"`
	// Warnings name settings that do nothing for the rule's mode (Rule.Warnings);
	// never null.
	Warnings []string `json:"warnings"`
}

// ReadOnlyFields are the members of RuleJSON that are computed, not stored:
// DecodeRuleJSON accepts and ignores them.
var ReadOnlyFields = []string{"valid", "error", "warnings"}

// Errors of a rule object's JSON shape (as opposed to its values), wrapped in a
// FieldError naming the member.
var (
	ErrUnknownField = errors.New("unknown field")
	ErrWrongType    = errors.New("wrong JSON type")
)

// JSONOf returns the JSON form of a rule with its status.
func JSONOf(st RuleStatus) RuleJSON {
	j := RuleJSON{RuleDoc: DocOf(st.Rule), Valid: st.Valid(), Warnings: st.Rule.Warnings()}
	if st.Err != nil {
		j.Error = st.Err.Error()
	}
	if j.Warnings == nil {
		j.Warnings = []string{}
	}
	return j
}

// RuleFields returns the JSON member names of a rule object: the writable ones
// (RuleDoc's) and the read-only ones, each sorted.
func RuleFields() (writable, readOnly []string) {
	t := reflect.TypeFor[RuleDoc]()
	for i := range t.NumField() {
		name, _, _ := strings.Cut(t.Field(i).Tag.Get("json"), ",")
		writable = append(writable, name)
	}
	sort.Strings(writable)
	readOnly = append([]string(nil), ReadOnlyFields...)
	sort.Strings(readOnly)
	return writable, readOnly
}

// DecodeRuleJSON reads one rule object in the RuleJSON shape (what GET
// /v1/rules/NAME and `rules show --json` print). Read-only members are ignored;
// any other member RuleDoc lacks is an ErrUnknownField error and a value of the
// wrong JSON type an ErrWrongType error, both a *FieldError naming the member.
// Member names are matched exactly (case-sensitively). An omitted member, or
// null, means the field's default when the doc becomes a Rule (RuleDoc.Rule).
func DecodeRuleJSON(data []byte) (RuleDoc, error) {
	var members map[string]json.RawMessage
	if err := json.Unmarshal(data, &members); err != nil {
		return RuleDoc{}, &FieldError{Field: "body", Err: fmt.Errorf("%w: want one JSON object: %v", ErrWrongType, err)}
	}
	if members == nil {
		return RuleDoc{}, &FieldError{Field: "body", Err: fmt.Errorf("%w: want one JSON object, not null", ErrWrongType)}
	}
	writable, readOnly := RuleFields()
	known := map[string]bool{}
	for _, f := range writable {
		known[f] = true
	}
	keys := make([]string, 0, len(members))
	for k := range members {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		if known[k] {
			continue
		}
		if i := sort.SearchStrings(readOnly, k); i < len(readOnly) && readOnly[i] == k {
			delete(members, k)
			continue
		}
		return RuleDoc{}, &FieldError{Field: k, Err: fmt.Errorf("%w (want %s; %s are read-only and ignored)", ErrUnknownField, strings.Join(writable, ", "), strings.Join(readOnly, ", "))}
	}
	var doc RuleDoc
	for _, k := range keys {
		raw, ok := members[k]
		if !ok || bytes.Equal(bytes.TrimSpace(raw), []byte("null")) {
			continue
		}
		one, _ := json.Marshal(map[string]json.RawMessage{k: raw})
		if err := json.Unmarshal(one, &doc); err != nil {
			var ute *json.UnmarshalTypeError
			if errors.As(err, &ute) {
				return RuleDoc{}, &FieldError{Field: k, Err: fmt.Errorf("%w: got %s, want %s", ErrWrongType, ute.Value, jsonKind(ute.Type.Kind()))}
			}
			return RuleDoc{}, &FieldError{Field: k, Err: fmt.Errorf("%w: %v", ErrWrongType, err)}
		}
	}
	return doc, nil
}

func jsonKind(k reflect.Kind) string {
	switch k {
	case reflect.String:
		return "string"
	case reflect.Bool, reflect.Pointer:
		return "true or false"
	case reflect.Int64:
		return "integer"
	}
	return k.String()
}

package routing

import (
	"fmt"
	"strings"
)

// Toggle is a per-rule override of a global switch. The zero value means
// "follow the configuration".
type Toggle uint8

const (
	ToggleDefault Toggle = iota // follow the configuration
	ToggleOn
	ToggleOff
)

func (t Toggle) String() string {
	switch t {
	case ToggleOn:
		return "on"
	case ToggleOff:
		return "off"
	}
	return ""
}

// Bool returns the toggle as a JSON/YAML value: nil for the default.
func (t Toggle) Bool() *bool {
	if t == ToggleDefault {
		return nil
	}
	b := t == ToggleOn
	return &b
}

// ToggleOf is the inverse of Bool.
func ToggleOf(b *bool) Toggle {
	switch {
	case b == nil:
		return ToggleDefault
	case *b:
		return ToggleOn
	}
	return ToggleOff
}

func parseToggle(s string) (Toggle, error) {
	switch s {
	case "":
		return ToggleDefault, nil
	case "on":
		return ToggleOn, nil
	case "off":
		return ToggleOff, nil
	}
	return ToggleDefault, fmt.Errorf("%q is not on, off or empty", s)
}

// RuleWriteback overrides, for calls this rule transferred, the Clio write-back
// defaults of the configuration (clio.writeback.*): zero values follow it.
type RuleWriteback struct {
	// TimeEntry: a draft time entry for a bridged call (clio.writeback.time_entry).
	TimeEntry Toggle
	// NonBillable: the time entry is non-billable (clio.writeback.non_billable).
	NonBillable Toggle
	// TaskPriority of callback tasks: High, Normal, Low; "" = clio.writeback.task_priority.
	TaskPriority string
}

// ParseTaskPriority accepts High, Normal or Low in any case and returns Clio's
// spelling; "" stays "".
func ParseTaskPriority(s string) (string, error) {
	switch strings.ToLower(strings.TrimSpace(s)) {
	case "":
		return "", nil
	case "high":
		return "High", nil
	case "normal":
		return "Normal", nil
	case "low":
		return "Low", nil
	}
	return "", fmt.Errorf("%q is not High, Normal or Low", s)
}

package routing

import (
	"fmt"
	"strings"
)

// IntentKind is what a caller (menu digit, dialled extension) or an external voice
// agent asked for. The zero value means unknown.
type IntentKind uint8

const (
	IntentUnknown     IntentKind = iota
	IntentResponsible            // the looked-up caller's responsible staff member
	IntentOperator               // the firm's operator destination
	IntentRule                   // a rule by name: "rule:NAME"
	IntentExtension              // an extension dialled from the menu: "extension:N"
	IntentStaff                  // a staff member by (part of) name: "staff:Felix"
)

// Intent is a parsed transfer request. Arg is the rule name, extension or staff name.
type Intent struct {
	Kind IntentKind
	Arg  string
}

// ParseIntent reads the text forms used in config (ivr.menu), the CLI and the HTTP API:
// "responsible", "operator", "rule:NAME", "extension:N", "staff:NAME".
func ParseIntent(s string) (Intent, error) {
	s = strings.TrimSpace(s)
	switch s {
	case "responsible":
		return Intent{Kind: IntentResponsible}, nil
	case "operator":
		return Intent{Kind: IntentOperator}, nil
	}
	kind, arg, ok := strings.Cut(s, ":")
	arg = strings.TrimSpace(arg)
	if ok && arg != "" {
		switch kind {
		case "rule":
			return Intent{Kind: IntentRule, Arg: arg}, nil
		case "extension":
			return Intent{Kind: IntentExtension, Arg: arg}, nil
		case "staff":
			return Intent{Kind: IntentStaff, Arg: arg}, nil
		}
	}
	return Intent{}, fmt.Errorf("routing: unknown intent %q (want responsible, operator, rule:NAME, extension:N or staff:NAME)", s)
}

func (i Intent) String() string {
	switch i.Kind {
	case IntentResponsible:
		return "responsible"
	case IntentOperator:
		return "operator"
	case IntentRule:
		return "rule:" + i.Arg
	case IntentExtension:
		return "extension:" + i.Arg
	case IntentStaff:
		return "staff:" + i.Arg
	}
	return "unknown"
}

// Action is what the call should do after a decision. The zero value means unknown.
type Action uint8

const (
	ActionUnknown     Action = iota
	ActionTransfer           // send the call to Decision.Destination
	ActionUnavailable        // a rule applies but cannot take the call now: run its unavailable handling
	ActionNone               // nothing to do (no rule, no match): the caller stays in the menu
)

func (a Action) String() string {
	switch a {
	case ActionTransfer:
		return "transfer"
	case ActionUnavailable:
		return "unavailable"
	case ActionNone:
		return "none"
	}
	return "unknown"
}

func (a Action) MarshalText() ([]byte, error) { return []byte(a.String()), nil }

// Mode is how a transfer is carried out. The zero value means unknown.
type Mode uint8

const (
	ModeUnknown Mode = iota
	ModeCold         // SIP REFER on the caller's dialog
	ModeWarm         // call the destination, whisper, bridge
)

func (m Mode) String() string {
	switch m {
	case ModeCold:
		return "cold"
	case ModeWarm:
		return "warm"
	}
	return ""
}

func (m Mode) MarshalText() ([]byte, error) { return []byte(m.String()), nil }

// CallerID is which number the transfer destination sees. The zero value means unknown.
type CallerID uint8

const (
	CallerIDUnknown CallerID = iota
	CallerIDCaller           // the original caller's number
	CallerIDService          // sip.service_number
)

func (c CallerID) String() string {
	switch c {
	case CallerIDCaller:
		return "caller"
	case CallerIDService:
		return "service"
	}
	return ""
}

func (c CallerID) MarshalText() ([]byte, error) { return []byte(c.String()), nil }

// Reason is a machine-readable explanation of a decision, stable for logs, call
// records and the HTTP API.
type Reason string

const (
	ReasonMatched      Reason = "matched"       // a rule applies and is open
	ReasonNoLookup     Reason = "no_lookup"     // intent needs a lookup that did not run or failed
	ReasonNotFound     Reason = "not_found"     // caller not found in Clio
	ReasonAmbiguous    Reason = "ambiguous"     // several contacts on the number
	ReasonNoStaff      Reason = "no_staff"      // contact found but no responsible staff
	ReasonNoRule       Reason = "no_rule"       // no rule serves the staff member / name / extension
	ReasonRuleDisabled Reason = "rule_disabled" // the rule exists but is disabled
	ReasonRuleInvalid  Reason = "rule_invalid"  // the rule exists but failed validation
	ReasonOutsideHours Reason = "outside_hours" // outside the rule's hours
	ReasonClosedToday  Reason = "closed_today"  // a firm closure covers today
	ReasonNoOperator   Reason = "no_operator"   // operator intent with no operator destination
	ReasonBadIntent    Reason = "bad_intent"    // the intent could not be understood
	ReasonNoFallback   Reason = "no_fallback"   // Fallback on a rule whose unavailable handling is not rule:NAME
	ReasonFallbackLoop Reason = "fallback_loop" // Fallback met a rule twice
	// ReasonNotAllowed: the destination is outside routing.allowed_destinations.
	ReasonNotAllowed Reason = "destination_not_allowed"
)

// Decision is the typed outcome of routing one intent. sip executes it; routing never
// touches sockets.
type Decision struct {
	Action Action
	// Rule is the name of the rule that applied (empty for the operator or none).
	Rule string
	Mode Mode
	// Destination is the dial string from the rule or configuration: an E.164 number,
	// a short internal number, or a SIP URI. It never comes from the caller.
	Destination string
	CallerID    CallerID
	Reason      Reason
	// Unavailable is the rule's unavailable handling; set when a rule applied
	// (transfer or unavailable) so the call side can run it after a failed or
	// impossible transfer (Fallback resolves rule:NAME).
	Unavailable Unavailable
	// Def is the rule that applied (message, whisper, accept digit, ring timeout);
	// nil for the configured operator and for none. It is shared with the
	// snapshot: read only.
	Def *Rule
}

// DecisionContract is the `decision` object of DESIGN.md's `rules test --json`
// (also used by the HTTP API): empty fields are empty strings.
type DecisionContract struct {
	Action      string `json:"action"`
	Rule        string `json:"rule"`
	Mode        string `json:"mode"`
	Destination string `json:"destination"`
	CallerID    string `json:"caller_id"`
	Reason      string `json:"reason"`
}

// Contract returns the DESIGN.md shape of d.
func (d Decision) Contract() DecisionContract {
	return DecisionContract{
		Action:      d.Action.String(),
		Rule:        d.Rule,
		Mode:        d.Mode.String(),
		Destination: d.Destination,
		CallerID:    d.CallerID.String(),
		Reason:      string(d.Reason),
	}
}

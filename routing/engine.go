package routing

import (
	"strings"
	"time"

	"github.com/matterline/matterline/lookup"
)

// Decide routes one intent. It is pure and deterministic: the same lookup,
// intent, snapshot and instant always give the same decision.
//
//   - responsible: the rule serving the looked-up staff member, matched by Clio
//     user id first, then by name (case- and space-insensitive) among rules
//     without an id.
//   - operator: a rule named "operator" if one exists (so the operator can have
//     hours, warm mode and unavailable handling), else the configured operator
//     destination as a cold transfer with the caller's ID, always open.
//   - rule:NAME, extension:N: that rule.
//   - staff:NAME: the unique rule whose staff name equals NAME, else whose staff
//     first or last name equals NAME; several: none/ambiguous.
//
// For a rule: invalid → none/rule_invalid; disabled → none/rule_disabled; a
// closure on today's date in the rule's zone → unavailable/closed_today (closures
// win over hours); outside its hours → unavailable/outside_hours; otherwise
// transfer/matched.
//
// A transfer's destination always matches the firm's allow-list
// (routing.allowed_destinations): a rule or operator destination that does not
// gives none/destination_not_allowed, even though validation refuses such
// rules already.
func Decide(lk lookup.Result, in Intent, set *RuleSet, now time.Time) Decision {
	if set == nil {
		return none(ReasonNoRule, "")
	}
	switch in.Kind {
	case IntentResponsible:
		return decideResponsible(lk, set, now)
	case IntentOperator:
		if e, ok := set.byName["operator"]; ok {
			return decideRule(set, e, now)
		}
		if set.firm.Operator == "" {
			return none(ReasonNoOperator, "")
		}
		if !set.allow.Allows(set.firm.Operator) {
			return none(ReasonNotAllowed, "")
		}
		return Decision{
			Action:      ActionTransfer,
			Mode:        ModeCold,
			Destination: set.firm.Operator,
			CallerID:    CallerIDCaller,
			Reason:      ReasonMatched,
		}
	case IntentRule:
		e, ok := set.byName[nameKey(strings.TrimSpace(in.Arg))]
		if !ok {
			return none(ReasonNoRule, "")
		}
		return decideRule(set, e, now)
	case IntentExtension:
		ext := strings.TrimSpace(in.Arg)
		e, ok := set.byExt[ext]
		if !ok {
			// an invalid rule keeps its extension out of byExt; say why
			for _, c := range set.entries {
				if c.rule.Extension == ext {
					return decideRule(set, c, now)
				}
			}
			return none(ReasonNoRule, "")
		}
		return decideRule(set, e, now)
	case IntentStaff:
		e, ambiguous := set.staffByName(in.Arg)
		if ambiguous {
			return none(ReasonAmbiguous, "")
		}
		if e == nil {
			return none(ReasonNoRule, "")
		}
		return decideRule(set, e, now)
	}
	return none(ReasonBadIntent, "")
}

func decideResponsible(lk lookup.Result, set *RuleSet, now time.Time) Decision {
	switch lk.Status {
	case lookup.StatusFound, lookup.StatusAmbiguous:
		// an ambiguous lookup that a policy resolved to one staff member carries Staff
		if lk.Staff == nil {
			if lk.Status == lookup.StatusAmbiguous {
				return none(ReasonAmbiguous, "")
			}
			return none(ReasonNoStaff, "")
		}
	case lookup.StatusNotFound:
		return none(ReasonNotFound, "")
	default: // unknown, error, unconfigured
		return none(ReasonNoLookup, "")
	}
	e, ambiguous := set.staffRule(lk.Staff.ID, lk.Staff.Name)
	if ambiguous {
		return none(ReasonAmbiguous, "")
	}
	if e == nil {
		return none(ReasonNoRule, "")
	}
	return decideRule(set, e, now)
}

func none(r Reason, rule string) Decision {
	return Decision{Action: ActionNone, Rule: rule, Reason: r}
}

func decideRule(set *RuleSet, e *entry, now time.Time) Decision {
	switch {
	case e.err != nil:
		return none(ReasonRuleInvalid, e.rule.Name)
	case !e.rule.Enabled:
		return none(ReasonRuleDisabled, e.rule.Name)
	}
	d := Decision{Rule: e.rule.Name, Unavailable: e.rule.Unavailable, Def: &e.def}
	if _, closed := set.closedOn(now, e.loc); closed {
		d.Action, d.Reason = ActionUnavailable, ReasonClosedToday
		return d
	}
	if !e.hours.Open(now, e.loc) {
		d.Action, d.Reason = ActionUnavailable, ReasonOutsideHours
		return d
	}
	// Defence in depth: validation already refused such a rule.
	if !set.allow.Allows(e.rule.Destination) {
		return none(ReasonNotAllowed, e.rule.Name)
	}
	d.Action, d.Reason = ActionTransfer, ReasonMatched
	d.Mode, d.CallerID, d.Destination = e.rule.Mode, e.rule.CallerID, e.rule.Destination
	return d
}

// Fallback resolves the unavailable handling of the rule named from when it is
// rule:NAME: it decides for the next rule, and while that one is unavailable
// with rule:NAME handling of its own, for the one after. It returns the first
// transfer, or the first unavailable decision whose handling is message, menu
// or hangup (the call side runs it), or none: no_fallback (from's handling is
// not rule:NAME), no_rule (a missing rule), rule_disabled / rule_invalid (a
// rule in the chain), fallback_loop (a rule met twice).
func Fallback(set *RuleSet, from string, now time.Time) Decision {
	if set == nil {
		return none(ReasonNoRule, "")
	}
	cur, ok := set.byName[nameKey(from)]
	if !ok {
		return none(ReasonNoRule, "")
	}
	seen := map[string]bool{nameKey(cur.rule.Name): true}
	for {
		if cur.rule.Unavailable.Kind != UnavailableRule {
			d := none(ReasonNoFallback, cur.rule.Name)
			d.Unavailable = cur.rule.Unavailable
			return d
		}
		next, ok := set.byName[nameKey(cur.rule.Unavailable.Rule)]
		if !ok {
			return none(ReasonNoRule, "")
		}
		if seen[nameKey(next.rule.Name)] {
			return none(ReasonFallbackLoop, next.rule.Name)
		}
		seen[nameKey(next.rule.Name)] = true
		d := decideRule(set, next, now)
		if d.Action == ActionUnavailable && next.rule.Unavailable.Kind == UnavailableRule {
			cur = next
			continue
		}
		return d
	}
}

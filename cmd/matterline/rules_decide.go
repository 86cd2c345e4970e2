package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/routing"
)

// testOutput is DESIGN.md's `rules test --json` object, exactly.
type testOutput struct {
	Lookup   lookup.Contract          `json:"lookup"`
	Decision routing.DecisionContract `json:"decision"`
}

// rulesTest runs the real caller lookup of the configuration and the decision
// engine for one call, without placing it.
func rulesTest(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules test")
	from := fs.String("from", "", "caller number, e.g. +12175552171")
	at := fs.String("at", "", "time of the call, RFC 3339 (default now)")
	intentText := fs.String("intent", "responsible", "responsible, operator, rule:NAME, extension:N or staff:NAME")
	asJSON := fs.Bool("json", false, "print the DESIGN.md JSON object")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionals(fs, pos); err != nil {
		return err
	}
	if strings.TrimSpace(*from) == "" {
		return fmt.Errorf("%w: rules test: --from is required\n%s", errUsage, flagUsage(fs))
	}
	intent, err := routing.ParseIntent(*intentText)
	if err != nil {
		return fmt.Errorf("intent: %w", err)
	}
	now := time.Now()
	if *at != "" {
		if now, err = time.Parse(time.RFC3339, strings.TrimSpace(*at)); err != nil {
			return fmt.Errorf("at: bad time %q (want RFC 3339, e.g. 2026-11-24T10:00:00-06:00)", *at)
		}
	}
	env, err := openRules(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer env.close()
	lk, closeLookup, err := openLookup(ctx, env.cfg, env.store.DB(), newLogger(env.cfg.Log, s.err))
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	defer closeLookup()
	res := lk.Lookup(ctx, strings.TrimSpace(*from))
	set := env.store.Rules()
	d := routing.Decide(res, intent, set, now)
	if *asJSON {
		b, err := json.Marshal(testOutput{Lookup: res.Contract(), Decision: d.Contract()})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(s.out, "%s\n", b)
		return err
	}
	fmt.Fprintf(s.out, "lookup:    %s\n", describeLookup(res))
	fmt.Fprintf(s.out, "intent:    %s at %s\n", intent, now.Format(time.RFC3339))
	fmt.Fprintf(s.out, "decision:  %s\n", describeDecision(d))
	if d.Action == routing.ActionUnavailable {
		fmt.Fprintf(s.out, "unavailable handling: %s\n", d.Unavailable)
		if d.Unavailable.Kind == routing.UnavailableRule {
			fmt.Fprintf(s.out, "fallback:  %s\n", describeDecision(routing.Fallback(set, d.Rule, now)))
		}
	}
	return nil
}

func describeLookup(r lookup.Result) string {
	var b strings.Builder
	b.WriteString(r.Contract().Status)
	if r.Contact != nil {
		fmt.Fprintf(&b, ", contact %s (#%d)", r.Contact.Name, r.Contact.ID)
	}
	if r.Matter != nil {
		fmt.Fprintf(&b, ", matter %s (#%d)", r.Matter.DisplayNumber, r.Matter.ID)
	}
	if r.Staff != nil {
		fmt.Fprintf(&b, ", responsible %s (#%d)", r.Staff.Name, r.Staff.ID)
	}
	if r.Reason != "" {
		fmt.Fprintf(&b, " [%s]", r.Reason)
	}
	return b.String()
}

func describeDecision(d routing.Decision) string {
	parts := []string{d.Action.String()}
	add := func(k, v string) {
		if v != "" {
			parts = append(parts, k+"="+v)
		}
	}
	add("rule", d.Rule)
	add("mode", d.Mode.String())
	add("destination", d.Destination)
	add("caller_id", d.CallerID.String())
	add("reason", string(d.Reason))
	return strings.Join(parts, " ")
}

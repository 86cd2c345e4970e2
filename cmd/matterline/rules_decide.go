package main

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/internal/timeflag"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/routing"
)

// testOutput is DESIGN.md's `rules test --json` object, exactly.
type testOutput struct {
	Lookup   lookup.Contract          `json:"lookup"`
	Decision routing.DecisionContract `json:"decision"`
}

func (c *cli) newRulesTestCmd() *cobra.Command {
	var o testOptions
	cmd := &cobra.Command{
		Use:   "test --from NUMBER [flags]",
		Short: "Show what a call would do, without placing it",
		Long: `Run the real caller lookup of the configuration and the decision engine for one
call from --from at --at (default now) with the caller's --intent, and print
the lookup and the decision. Nothing is dialled. The time is shown in the
firm's zone (firm.time_zone), the zone of every rule that names none.`,
		Example: `  matterline rules test --from +12175552171
  matterline rules test --from +12175552171 --intent rule:felix --at 2026-11-24T18:00:00-06:00 --json`,
		Args: wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.rulesTest(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.from, "from", "", "caller number, e.g. +12175552171")
	fs.StringVar(&o.at, "at", "", "time of the call (default now): "+timeflag.Forms)
	fs.StringVar(&o.intent, "intent", "responsible", "responsible, operator, rule:NAME, extension:N or staff:NAME")
	fs.BoolVar(&o.json, "json", false, "print the DESIGN.md JSON object")
	return cmd
}

type testOptions struct {
	from, at, intent string
	json             bool
}

// rulesTest runs the real caller lookup of the configuration and the decision
// engine for one call, without placing it.
func (c *cli) rulesTest(ctx context.Context, o testOptions) error {
	if strings.TrimSpace(o.from) == "" {
		return usagef("rules test: --from is required")
	}
	intent, err := routing.ParseIntent(o.intent)
	if err != nil {
		return fmt.Errorf("intent: %w", err)
	}
	env, err := c.openRules(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.close()
	now := time.Now()
	if strings.TrimSpace(o.at) != "" {
		if now, err = timeflag.Parse(o.at, now, recordsLocation(env.cfg)); err != nil {
			return usagef("--at: %v", err)
		}
	}
	lk, closeLookup, err := openLookup(ctx, env.cfg, env.store.DB(), c.logger(env.cfg))
	if err != nil {
		return fmt.Errorf("lookup: %w", err)
	}
	defer closeLookup()
	res := lk.Lookup(ctx, strings.TrimSpace(o.from))
	set := env.store.Rules()
	d := routing.Decide(res, intent, set, now)
	if o.json {
		b, err := json.Marshal(testOutput{Lookup: res.Contract(), Decision: d.Contract()})
		if err != nil {
			return err
		}
		_, err = fmt.Fprintf(c.out, "%s\n", b)
		return err
	}
	fmt.Fprintf(c.out, "lookup:    %s\n", describeLookup(res))
	loc := recordsLocation(env.cfg)
	fmt.Fprintf(c.out, "intent:    %s at %s (%s)\n", intent, now.In(loc).Format(time.RFC3339), loc)
	fmt.Fprintf(c.out, "decision:  %s\n", describeDecision(d))
	if d.Action == routing.ActionUnavailable {
		fmt.Fprintf(c.out, "unavailable handling: %s\n", d.Unavailable)
		if d.Unavailable.Kind == routing.UnavailableRule {
			fmt.Fprintf(c.out, "fallback:  %s\n", describeDecision(routing.Fallback(set, d.Rule, now)))
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

package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

// clioUserByID returns a Clio user's name and phone number for
// `rules add NAME --from-clio-user ID`. It is the one deliberate package-level
// hook of this command: the lead wires it to the clio package; tests stub it.
var clioUserByID = clioUserFromConfig

func (c *cli) newRulesCmd() *cobra.Command {
	add := &cobra.Command{
		Use:   "add NAME --to DEST [flags]",
		Short: "Add a transfer rule",
		Long: `Add a transfer rule: where a call goes (--to: an E.164 number, an internal
number of 2-6 digits or a sip:/sips: URI), how (--mode cold|warm), when
(--hours, --tz) and what happens outside those hours (--unavailable).
--from-clio-user ID fills the staff name, staff id and destination from a Clio
user; explicit flags win over it.`,
		Example: `  matterline rules add reception --to sip:reception@pbx.example.com --extension 100
  matterline rules add felix --to +12175550101 --staff "Felix Dubinsky" --staff-id 501 \
      --mode warm --hours "mon-fri 09:00-17:00" --unavailable rule:reception
  matterline rules add felix --from-clio-user 501 --mode warm`,
		Args: wantArgs("NAME"),
	}
	addFlags := newRuleFlags(add.Flags(), false)
	add.RunE = func(cmd *cobra.Command, args []string) error {
		return c.rulesAdd(cmd.Context(), cmd.Flags(), addFlags, args[0])
	}
	set := &cobra.Command{
		Use:   "set NAME [flags]",
		Short: "Change fields of a rule",
		Long: `Change only the fields given as flags (the flags of rules add, plus --enable
and --disable); the others keep their values.`,
		Example: "  matterline rules set felix --mode cold --extension 101\n  matterline rules set old --disable",
		Args:    wantArgs("NAME"),
	}
	setFlags := newRuleFlags(set.Flags(), true)
	set.RunE = func(cmd *cobra.Command, args []string) error {
		return c.rulesSet(cmd.Context(), cmd.Flags(), setFlags, args[0])
	}
	rm := &cobra.Command{
		Use:     "rm NAME",
		Short:   "Remove a rule",
		Long:    "Remove a rule. A rule that another rule falls back to (--unavailable rule:NAME) cannot be removed.",
		Example: "  matterline rules rm old",
		Args:    wantArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.rulesRm(cmd.Context(), args[0])
		},
	}
	var listJSON, showJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the rules and whether each is valid",
		Long:    "List every stored rule with its destination, hours and status (ok, disabled, or INVALID with the reason).",
		Example: "  matterline rules list\n  matterline rules list --json",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.rulesList(cmd.Context(), listJSON)
		},
	}
	list.Flags().BoolVar(&listJSON, "json", false, "print JSON")
	show := &cobra.Command{
		Use:     "show NAME",
		Short:   "Show one rule",
		Long:    "Show every field of one rule, its destination kind and its status.",
		Example: "  matterline rules show felix\n  matterline rules show felix --json",
		Args:    wantArgs("NAME"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.rulesShow(cmd.Context(), args[0], showJSON)
		},
	}
	show.Flags().BoolVar(&showJSON, "json", false, "print JSON")
	return c.group("rules", "Manage transfer rules",
		`Manage the transfer rules in the database: add, change, remove, list, show,
test a call against them, export them as YAML and import a YAML file. A running
server picks up changes within a second.`,
		`  matterline rules list
  matterline rules add reception --to 100
  matterline rules test --from +12175552171 --intent operator`,
		add, set, rm, list, show, c.newRulesTestCmd(), c.newRulesExportCmd(), c.newRulesImportCmd())
}

// rulesEnv is what every rules/closures subcommand opens.
type rulesEnv struct {
	cfg   *config.Config
	store *routing.Store
	close func()
}

func (c *cli) openRules(ctx context.Context, access dbAccess) (*rulesEnv, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	var db *sql.DB
	cleanup := func() {}
	if _, err := os.Stat(cfg.Store.Path); access == dbScratch && errors.Is(err, os.ErrNotExist) {
		dir, err := os.MkdirTemp("", "matterline-dry-run-")
		if err != nil {
			return nil, err
		}
		cleanup = func() { os.RemoveAll(dir) }
		db, err = store.Open(filepath.Join(dir, "scratch.db"))
		if err != nil {
			cleanup()
			return nil, err
		}
	} else if db, err = c.openDB(cfg, access); err != nil {
		return nil, err
	}
	st, err := routing.NewStore(ctx, db, firmOf(cfg), routing.WithLogger(c.logger(cfg)))
	if err != nil {
		db.Close()
		cleanup()
		return nil, err
	}
	return &rulesEnv{cfg: cfg, store: st, close: func() { st.Close(); db.Close(); cleanup() }}, nil
}

// firmOf maps the configuration to routing's firm settings.
func firmOf(cfg *config.Config) routing.Firm {
	return routing.Firm{TimeZone: cfg.Firm.TimeZone, Operator: cfg.IVR.Operator,
		AllowedDestinations: cfg.Routing.AllowedDestinations, AudioDir: audioDir(cfg)}
}

// audioDir is where rules' message_audio files must be: media.prompts_dir when
// set (site prompts and rule audio together), else audio/ next to the database.
// Never transfer.messages_dir: recorded messages must not become playable.
func audioDir(cfg *config.Config) string {
	if cfg.Media.PromptsDir != "" {
		return cfg.Media.PromptsDir
	}
	return filepath.Join(filepath.Dir(cfg.Store.Path), "audio")
}

// ruleFlags are the flags of rules add and rules set. All are strings so that
// set can tell which were given (Visit) and report bad values by field.
type ruleFlags struct {
	to, staff, staffID, mode, callerID, message, audio, whisper, digit string
	hours, tz, ring, unavailable, extension, fromClio, srtp            string
	disabled, enable, disable                                          bool
}

func newRuleFlags(fs *pflag.FlagSet, set bool) *ruleFlags {
	f := &ruleFlags{}
	fs.StringVar(&f.to, "to", "", "destination: E.164 number, internal number (2-6 digits) or sip:/sips: URI")
	fs.StringVar(&f.staff, "staff", "", "name of the Clio user the rule serves")
	fs.StringVar(&f.staffID, "staff-id", "", "Clio user id the rule serves (0 or empty = none)")
	fs.StringVar(&f.mode, "mode", "", "cold (REFER) or warm (call, whisper, bridge); default cold")
	fs.StringVar(&f.callerID, "caller-id", "", "caller ID shown to the destination: caller or service; default caller")
	fs.StringVar(&f.message, "message", "", "text said to the caller before the transfer")
	fs.StringVar(&f.audio, "message-audio", "", "WAV file played to the caller before the transfer")
	fs.StringVar(&f.whisper, "whisper", "", "warm only: text said to the answering person; {caller_name} and {matter} are filled in")
	fs.StringVar(&f.digit, "accept-digit", "", "warm only: DTMF digit that accepts the call (empty = accept on answer)")
	fs.StringVar(&f.hours, "hours", "", `opening hours, e.g. "mon-fri 09:00-12:30,13:30-17:00; sat 10:00-12:00" (empty = always)`)
	fs.StringVar(&f.tz, "tz", "", "IANA time zone of the hours (empty = firm.time_zone)")
	fs.StringVar(&f.ring, "ring-timeout", "", "how long a warm transfer rings, e.g. 20s")
	fs.StringVar(&f.unavailable, "unavailable", "", "when unavailable: message, menu, hangup or rule:NAME; default message")
	fs.StringVar(&f.extension, "extension", "", "number a caller can dial from the menu (digits; empty = none)")
	fs.StringVar(&f.srtp, "srtp", "", "SDES-SRTP toward the destination: on (required), off (plain RTP) or default (media.srtp and the destination)")
	if set {
		fs.BoolVar(&f.enable, "enable", false, "enable the rule")
		fs.BoolVar(&f.disable, "disable", false, "disable the rule")
	} else {
		fs.StringVar(&f.fromClio, "from-clio-user", "", "fill staff, staff id and destination from this Clio user id")
		fs.BoolVar(&f.disabled, "disabled", false, "create the rule disabled")
	}
	return f
}

// apply writes the given flags into r. Errors name the field (the flag).
func (f *ruleFlags) apply(fs *pflag.FlagSet, r *routing.Rule) error {
	var err error
	bad := func(field string, e error) {
		if err == nil {
			err = &routing.FieldError{Rule: r.Name, Field: field, Err: e}
		}
	}
	fs.Visit(func(fl *pflag.Flag) {
		switch fl.Name {
		case "to":
			to := routing.NormalizeNumber(f.to)
			if _, e := routing.DestinationKindOf(to); e != nil {
				bad("to", e)
			}
			r.Destination = to
		case "staff":
			r.StaffName = strings.Join(strings.Fields(f.staff), " ")
		case "staff-id":
			r.StaffID = 0
			if s := strings.TrimSpace(f.staffID); s != "" {
				n, e := strconv.ParseInt(s, 10, 64)
				if e != nil || n < 0 {
					bad("staff-id", fmt.Errorf("%q is not a Clio user id", f.staffID))
				}
				r.StaffID = n
			}
		case "mode":
			m, e := routing.ParseMode(f.mode)
			if e != nil {
				bad("mode", e)
			}
			r.Mode = m
		case "caller-id":
			c, e := routing.ParseCallerID(f.callerID)
			if e != nil {
				bad("caller-id", e)
			}
			r.CallerID = c
		case "message":
			r.Message = f.message
		case "message-audio":
			r.MessageAudio = f.audio
		case "whisper":
			r.Whisper = f.whisper
		case "accept-digit":
			r.AcceptDigit = strings.TrimSpace(f.digit)
		case "hours":
			r.Hours = strings.TrimSpace(f.hours)
		case "tz":
			r.TimeZone = strings.TrimSpace(f.tz)
			if r.TimeZone != "" {
				if _, e := routing.LoadZone(r.TimeZone); e != nil {
					bad("tz", e)
				}
			}
		case "ring-timeout":
			d, e := routing.ParseRingTimeout(f.ring)
			if e != nil {
				bad("ring-timeout", e)
			}
			r.RingTimeout = d
		case "unavailable":
			u, e := routing.ParseUnavailable(f.unavailable)
			if e != nil {
				bad("unavailable", e)
			}
			r.Unavailable = u
		case "extension":
			r.Extension = strings.TrimSpace(f.extension)
		case "srtp":
			switch strings.ToLower(strings.TrimSpace(f.srtp)) {
			case "on":
				r.SRTP = routing.ToggleOn
			case "off":
				r.SRTP = routing.ToggleOff
			case "default", "":
				r.SRTP = routing.ToggleDefault
			default:
				bad("srtp", fmt.Errorf("%q: want on, off or default", f.srtp))
			}
		case "enable":
			r.Enabled = f.enable
		case "disable":
			r.Enabled = !f.disable
		case "disabled":
			r.Enabled = !f.disabled
		}
	})
	if f.enable && f.disable {
		bad("enable", errors.New("--enable and --disable together"))
	}
	return err
}

func (c *cli) rulesAdd(ctx context.Context, fs *pflag.FlagSet, f *ruleFlags, name string) error {
	if !fs.Changed("to") && !fs.Changed("from-clio-user") {
		return usagef("rules add: --to is required (or --from-clio-user)")
	}
	env, err := c.openRules(ctx, dbCreate)
	if err != nil {
		return err
	}
	defer env.close()
	r := routing.NewRule(name, "")
	if fs.Changed("from-clio-user") {
		id, err := strconv.ParseInt(strings.TrimSpace(f.fromClio), 10, 64)
		if err != nil || id <= 0 {
			return &routing.FieldError{Rule: r.Name, Field: "from-clio-user", Err: fmt.Errorf("%q is not a Clio user id", f.fromClio)}
		}
		name, phone, err := clioUserByID(ctx, env.cfg, id)
		if err != nil {
			return fmt.Errorf("rule %q: from-clio-user %d: %w", r.Name, id, err)
		}
		r.StaffName, r.StaffID, r.Destination = strings.Join(strings.Fields(name), " "), id, routing.NormalizeNumber(phone)
		if !fs.Changed("to") && r.Destination == "" {
			return &routing.FieldError{Rule: r.Name, Field: "to", Err: fmt.Errorf("Clio user %d has no phone number; give --to", id)}
		}
	}
	if err := f.apply(fs, &r); err != nil {
		return err
	}
	if err := env.store.Put(ctx, r, false); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "added rule %s\n", r.Name)
	c.warnRule(r)
	return nil
}

// warnRule prints on stderr the rule's settings that do nothing for its mode.
func (c *cli) warnRule(r routing.Rule) {
	for _, w := range r.Warnings() {
		fmt.Fprintf(c.err, "warning: rule %s: %s\n", r.Name, w)
	}
}

func (c *cli) rulesSet(ctx context.Context, fs *pflag.FlagSet, f *ruleFlags, name string) error {
	n := 0
	fs.Visit(func(fl *pflag.Flag) {
		if fl.Name != "config" && fl.Name != "verbose" {
			n++
		}
	})
	if n == 0 {
		return usagef("rules set %s: nothing to change (give at least one field flag)", name)
	}
	env, err := c.openRules(ctx, dbCreate)
	if err != nil {
		return err
	}
	defer env.close()
	r, err := findRule(ctx, env.store, name)
	if err != nil {
		return err
	}
	if err := f.apply(fs, &r); err != nil {
		return err
	}
	if err := env.store.Put(ctx, r, true); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "updated rule %s\n", r.Name)
	c.warnRule(r)
	return nil
}

// findRule reads the stored row of name (valid or not).
func findRule(ctx context.Context, st *routing.Store, name string) (routing.Rule, error) {
	rules, err := st.ListRules(ctx)
	if err != nil {
		return routing.Rule{}, err
	}
	for _, r := range rules {
		if strings.EqualFold(r.Name, name) {
			return r, nil
		}
	}
	return routing.Rule{}, fmt.Errorf("rule %q: %w", name, routing.ErrNotFound)
}

func (c *cli) rulesRm(ctx context.Context, name string) error {
	env, err := c.openRules(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.close()
	if err := env.store.Delete(ctx, name); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "removed rule %s\n", name)
	return nil
}

// ruleJSON is a rule in list/show --json: the same object as GET /v1/rules/NAME
// (the export form plus valid, error and warnings).
type ruleJSON = routing.RuleJSON

func toJSON(st routing.RuleStatus) ruleJSON { return routing.JSONOf(st) }

func status(st routing.RuleStatus) string {
	switch {
	case st.Err != nil:
		return "INVALID: " + st.Err.Error()
	case !st.Rule.Enabled:
		return "disabled"
	}
	return "ok"
}

func (c *cli) rulesList(ctx context.Context, asJSON bool) error {
	env, err := c.openRules(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.close()
	all := env.store.Rules().All()
	if asJSON {
		out := make([]ruleJSON, 0, len(all))
		for _, st := range all {
			out = append(out, toJSON(st))
		}
		return writeJSON(c.out, out)
	}
	if len(all) == 0 {
		fmt.Fprintln(c.out, "no rules (add one with: matterline rules add NAME --to DEST)")
		return nil
	}
	tw := tabwriter.NewWriter(c.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tSTAFF\tTO\tMODE\tEXT\tHOURS\tTZ\tUNAVAILABLE\tSTATUS")
	for _, st := range all {
		r := st.Rule
		staff := r.StaffName
		if r.StaffID != 0 {
			staff = strings.TrimSpace(fmt.Sprintf("%s #%d", staff, r.StaffID))
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Name, dash(staff), r.Destination, dash(r.Mode.String()),
			dash(r.Extension), orAlways(r.Hours), dash(r.TimeZone), dash(r.Unavailable.String()), status(st))
	}
	return tw.Flush()
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func orAlways(s string) string {
	if s == "" {
		return "always"
	}
	return s
}

func (c *cli) rulesShow(ctx context.Context, name string, asJSON bool) error {
	env, err := c.openRules(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.close()
	st, ok := env.store.Rules().Lookup(name)
	if !ok {
		return fmt.Errorf("rule %q: %w", name, routing.ErrNotFound)
	}
	if asJSON {
		return writeJSON(c.out, toJSON(st))
	}
	r := st.Rule
	tz := r.TimeZone
	if tz == "" {
		tz = env.cfg.Firm.TimeZone + " (firm default)"
	}
	kind, _ := routing.DestinationKindOf(r.Destination)
	tw := tabwriter.NewWriter(c.out, 0, 4, 1, ' ', 0)
	for _, kv := range [][2]string{
		{"name", r.Name},
		{"staff", dash(r.StaffName)},
		{"staff_id", dash(idString(r.StaffID))},
		{"to", r.Destination + " (" + kind.String() + ")"},
		{"mode", r.Mode.String()},
		{"caller_id", r.CallerID.String()},
		{"message", dash(r.Message)},
		{"message_audio", dash(r.MessageAudio)},
		{"whisper", dash(r.Whisper)},
		{"accept_digit", orText(r.AcceptDigit, "accept on answer")},
		{"ring_timeout", r.RingTimeout.String()},
		{"unavailable", r.Unavailable.String()},
		{"extension", dash(r.Extension)},
		{"hours", orAlways(r.Hours)},
		{"tz", tz},
		{"enabled", strconv.FormatBool(r.Enabled)},
		{"status", status(st)},
	} {
		fmt.Fprintf(tw, "%s:\t%s\n", kv[0], kv[1])
	}
	return tw.Flush()
}

func idString(id int64) string {
	if id == 0 {
		return ""
	}
	return strconv.FormatInt(id, 10)
}

func orText(s, alt string) string {
	if s == "" {
		return alt
	}
	return s
}

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"path/filepath"
	"strconv"
	"strings"
	"text/tabwriter"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/routing"
)

// clioUserByID returns a Clio user's name and phone number for
// `rules add NAME --from-clio-user ID`. It is the one deliberate package-level
// hook of this command: the lead wires it to the clio package; tests stub it.
var clioUserByID = clioUserFromConfig

const rulesUsage = `usage: matterline rules COMMAND [flags]
  add NAME --to DEST [--staff NAME] [--staff-id N] [--from-clio-user ID] [--mode cold|warm]
      [--caller-id caller|service] [--message TEXT] [--message-audio FILE] [--whisper TEXT]
      [--accept-digit D] [--hours "mon-fri 09:00-17:00"] [--tz ZONE] [--ring-timeout 20s]
      [--unavailable message|menu|hangup|rule:NAME] [--extension N] [--disabled]
  set NAME [same flags as add] [--enable|--disable]   change only the given fields
  rm NAME
  list [--json]
  show NAME [--json]
  test --from NUMBER [--at RFC3339] [--intent responsible|operator|rule:NAME|extension:N|staff:NAME] [--json]
  export                      YAML of all rules and closures to stdout
  import FILE [--dry-run]     replace all rules (and closures, if the file lists them)
Every command accepts -config FILE.`

const closuresUsage = `usage: matterline closures COMMAND [flags]
  add DATE [--note TEXT]      DATE is YYYY-MM-DD, in each rule's time zone
  list [--json]
  rm DATE
Every command accepts -config FILE.`

func cmdRules(ctx context.Context, s stdio, args []string) error {
	sub, rest, err := subcommand(args, rulesUsage, "add", "set", "rm", "list", "show", "test", "export", "import")
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		return rulesAdd(ctx, s, rest)
	case "set":
		return rulesSet(ctx, s, rest)
	case "rm":
		return rulesRm(ctx, s, rest)
	case "list":
		return rulesList(ctx, s, rest)
	case "show":
		return rulesShow(ctx, s, rest)
	case "test":
		return rulesTest(ctx, s, rest)
	case "export":
		return rulesExport(ctx, s, rest)
	default:
		return rulesImport(ctx, s, rest)
	}
}

func cmdClosures(ctx context.Context, s stdio, args []string) error {
	sub, rest, err := subcommand(args, closuresUsage, "add", "list", "rm")
	if err != nil {
		return err
	}
	switch sub {
	case "add":
		return closuresAdd(ctx, s, rest)
	case "list":
		return closuresList(ctx, s, rest)
	default:
		return closuresRm(ctx, s, rest)
	}
}

// subcommand finds the subcommand word: the first argument, or (when flags come
// first, as in "rules -config F list") the first argument that names one.
func subcommand(args []string, usage string, names ...string) (string, []string, error) {
	known := func(a string) bool {
		for _, n := range names {
			if a == n {
				return true
			}
		}
		return false
	}
	for i, a := range args {
		if a == "-h" || a == "--help" || a == "help" {
			break
		}
		if known(a) && (i == 0 || strings.HasPrefix(args[0], "-")) {
			rest := append(append([]string(nil), args[:i]...), args[i+1:]...)
			return a, rest, nil
		}
		if i == 0 && !strings.HasPrefix(a, "-") {
			return "", nil, fmt.Errorf("%w: unknown subcommand %q\n%s", errUsage, a, usage)
		}
	}
	return "", nil, fmt.Errorf("%w: %s", errUsage, usage)
}

// rulesEnv is what every rules/closures subcommand opens.
type rulesEnv struct {
	cfg   *config.Config
	store *routing.Store
	close func()
}

func openRules(ctx context.Context, cfgPath string) (*rulesEnv, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	st, err := routing.NewStore(ctx, db, firmOf(cfg))
	if err != nil {
		db.Close()
		return nil, err
	}
	return &rulesEnv{cfg: cfg, store: st, close: func() { st.Close(); db.Close() }}, nil
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

// positionals checks the number of positional arguments.
func positionals(fs *flag.FlagSet, pos []string, want ...string) error {
	if len(pos) != len(want) {
		return fmt.Errorf("%w: %s wants %s, got %d argument(s)\n%s", errUsage, fs.Name(), strings.Join(want, " "), len(pos), flagUsage(fs))
	}
	return nil
}

// startRulesCmd parses a rules/closures subcommand's flags and exactly the
// positional arguments named by want, then opens the rules store of -config.
func startRulesCmd(ctx context.Context, fs *flag.FlagSet, cfgPath *string, args []string, want ...string) ([]string, *rulesEnv, error) {
	pos, err := parseArgs(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if err := positionals(fs, pos, want...); err != nil {
		return nil, nil, err
	}
	env, err := openRules(ctx, *cfgPath) // -config is known only after parsing
	if err != nil {
		return nil, nil, err
	}
	return pos, env, nil
}

// ruleFlags are the flags of rules add and rules set. All are strings so that
// set can tell which were given (fs.Visit) and report bad values by field.
type ruleFlags struct {
	to, staff, staffID, mode, callerID, message, audio, whisper, digit string
	hours, tz, ring, unavailable, extension, fromClio                  string
	disabled, enable, disable                                          bool
}

func newRuleFlags(fs *flag.FlagSet, set bool) *ruleFlags {
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
func (f *ruleFlags) apply(fs *flag.FlagSet, r *routing.Rule) error {
	var err error
	bad := func(field string, e error) {
		if err == nil {
			err = &routing.FieldError{Rule: r.Name, Field: field, Err: e}
		}
	}
	fs.Visit(func(fl *flag.Flag) {
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

func rulesAdd(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules add")
	f := newRuleFlags(fs, false)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionals(fs, pos, "NAME"); err != nil {
		return err
	}
	given := map[string]bool{}
	fs.Visit(func(fl *flag.Flag) { given[fl.Name] = true })
	if !given["to"] && !given["from-clio-user"] {
		return fmt.Errorf("%w: rules add: --to is required (or --from-clio-user)\n%s", errUsage, flagUsage(fs))
	}
	env, err := openRules(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer env.close()
	r := routing.NewRule(pos[0], "")
	if given["from-clio-user"] {
		id, err := strconv.ParseInt(strings.TrimSpace(f.fromClio), 10, 64)
		if err != nil || id <= 0 {
			return &routing.FieldError{Rule: r.Name, Field: "from-clio-user", Err: fmt.Errorf("%q is not a Clio user id", f.fromClio)}
		}
		name, phone, err := clioUserByID(ctx, env.cfg, id)
		if err != nil {
			return fmt.Errorf("rule %q: from-clio-user %d: %w", r.Name, id, err)
		}
		r.StaffName, r.StaffID, r.Destination = strings.Join(strings.Fields(name), " "), id, routing.NormalizeNumber(phone)
		if !given["to"] && r.Destination == "" {
			return &routing.FieldError{Rule: r.Name, Field: "to", Err: fmt.Errorf("Clio user %d has no phone number; give --to", id)}
		}
	}
	if err := f.apply(fs, &r); err != nil {
		return err
	}
	if err := env.store.Put(ctx, r, false); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "added rule %s\n", r.Name)
	return nil
}

func rulesSet(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules set")
	f := newRuleFlags(fs, true)
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionals(fs, pos, "NAME"); err != nil {
		return err
	}
	n := 0
	fs.Visit(func(fl *flag.Flag) {
		if fl.Name != "config" {
			n++
		}
	})
	if n == 0 {
		return fmt.Errorf("%w: rules set %s: nothing to change (give at least one field flag)\n%s", errUsage, pos[0], flagUsage(fs))
	}
	env, err := openRules(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer env.close()
	r, err := findRule(ctx, env.store, pos[0])
	if err != nil {
		return err
	}
	if err := f.apply(fs, &r); err != nil {
		return err
	}
	if err := env.store.Put(ctx, r, true); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "updated rule %s\n", r.Name)
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

func rulesRm(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules rm")
	pos, env, err := startRulesCmd(ctx, fs, cfgPath, args, "NAME")
	if err != nil {
		return err
	}
	defer env.close()
	if err := env.store.Delete(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "removed rule %s\n", pos[0])
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

func rulesList(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules list")
	asJSON := fs.Bool("json", false, "print JSON")
	_, env, err := startRulesCmd(ctx, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer env.close()
	all := env.store.Rules().All()
	if *asJSON {
		out := make([]ruleJSON, 0, len(all))
		for _, st := range all {
			out = append(out, toJSON(st))
		}
		return writeJSON(s.out, out)
	}
	if len(all) == 0 {
		fmt.Fprintln(s.out, "no rules (add one with: matterline rules add NAME --to DEST)")
		return nil
	}
	tw := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
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

func rulesShow(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules show")
	asJSON := fs.Bool("json", false, "print JSON")
	pos, env, err := startRulesCmd(ctx, fs, cfgPath, args, "NAME")
	if err != nil {
		return err
	}
	defer env.close()
	st, ok := env.store.Rules().Lookup(pos[0])
	if !ok {
		return fmt.Errorf("rule %q: %w", pos[0], routing.ErrNotFound)
	}
	if *asJSON {
		return writeJSON(s.out, toJSON(st))
	}
	r := st.Rule
	tz := r.TimeZone
	if tz == "" {
		tz = env.cfg.Firm.TimeZone + " (firm default)"
	}
	kind, _ := routing.DestinationKindOf(r.Destination)
	tw := tabwriter.NewWriter(s.out, 0, 4, 1, ' ', 0)
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

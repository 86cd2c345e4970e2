package main

// The command tree (spf13/cobra): one root, a builder per command group in its
// own file (cmd_rules.go, cmd_clio.go, ...). This file holds what every command
// shares: the global flags, argument normalisation (single-dash long flags,
// "help" as a word), exit statuses and the logger of the non-server commands.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/cobra/doc"
	"github.com/spf13/pflag"

	"github.com/matterline/matterline/config"
)

// stdio is where a command writes; tests pass buffers.
type stdio struct {
	out, err io.Writer
}

// discovery is where a command looks for its configuration when -config is not
// given: the environment, then the system file (DESIGN.md "Contracts added in
// the second round"). Tests point both elsewhere.
type discovery struct {
	getenv func(string) string
	// systemConfig is /etc/matterline/matterline.yaml; used only when it exists.
	systemConfig string
}

func defaultDiscovery(getenv func(string) string) discovery {
	return discovery{getenv: getenv, systemConfig: "/etc/matterline/matterline.yaml"}
}

// cli is one command line being run: where it writes, how it finds its
// configuration, the global flags, and (after load) which configuration it used.
type cli struct {
	stdio
	disc       discovery
	configFlag string
	verbose    bool
	src        configSource
}

// usageError is a command line that cannot be run as written: a missing or
// extra argument, an unknown flag or a bad flag value. Exit status 2, with the
// command's usage.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error {
	return &usageError{msg: fmt.Sprintf(format, args...)}
}

// runWith executes one command line and returns the exit status.
func runWith(ctx context.Context, args []string, s stdio, d discovery) int {
	c := &cli{stdio: s, disc: d}
	root := c.newRoot()
	root.SetArgs(normaliseArgs(root, args))
	cmd, err := root.ExecuteContextC(ctx)
	if err == nil {
		return 0
	}
	if cmd == nil {
		cmd = root
	}
	var ue *usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(s.err, "%s: %v\n\n%s", cmd.CommandPath(), err, cmd.UsageString())
		return 2
	}
	fmt.Fprintf(s.err, "matterline %s: %v\n", topName(cmd), err)
	return 1
}

// topName is the name of cmd's top-level command ("rules" for "rules add").
func topName(cmd *cobra.Command) string {
	for cmd.HasParent() && cmd.Parent().HasParent() {
		cmd = cmd.Parent()
	}
	return cmd.Name()
}

func (c *cli) newRoot() *cobra.Command {
	root := &cobra.Command{
		Use:   "matterline",
		Short: "SIP B2BUA that answers a law firm's calls and routes them with Clio",
		Long: `matterline answers calls as a SIP back-to-back user agent, looks the caller up
in Clio, and transfers the call by the firm's rules (attorney, operator, menu,
message). The same binary runs the server, the demo and the admin commands.

Every command accepts -config FILE (or --config). Without it the configuration
is $MATTERLINE_CONFIG, then /etc/matterline/matterline.yaml if it exists, else
the embedded defaults. Flags and arguments may come in any order; "--" ends
the flags.`,
		Example: `  matterline demo
  matterline serve -config /etc/matterline/matterline.yaml
  matterline rules list
  matterline help rules add`,
		Version:       version,
		Args:          c.noSubcommand,
		RunE:          func(cmd *cobra.Command, _ []string) error { return usagef("no command given") },
		SilenceErrors: true,
		SilenceUsage:  true,
	}
	root.SetOut(c.out)
	root.SetErr(c.err)
	root.SetVersionTemplate("matterline {{.Version}}\n")
	root.SetFlagErrorFunc(func(_ *cobra.Command, err error) error { return &usageError{msg: err.Error()} })
	root.CompletionOptions.HiddenDefaultCmd = false
	pf := root.PersistentFlags()
	pf.StringVar(&c.configFlag, "config", "", "configuration file (YAML); default $MATTERLINE_CONFIG, then /etc/matterline/matterline.yaml, else embedded defaults")
	pf.BoolVarP(&c.verbose, "verbose", "v", false, "admin commands: also print INFO log lines")
	root.Flags().Bool("version", false, "print the version")
	root.SetHelpCommand(c.newHelpCmd(root))
	root.AddCommand(
		c.newServeCmd(), c.newDemoCmd(), c.newVersionCmd(), c.newRulesCmd(), c.newClosuresCmd(),
		c.newClioCmd(), c.newCallsCmd(), c.newMessagesCmd(), c.newConfigCmd(), c.newHealthCmd(),
		c.newManCmd(root),
	)
	root.InitDefaultCompletionCmd()
	if comp := subcommandNamed(root, "completion"); comp != nil {
		comp.Args = c.noSubcommand
		comp.RunE = func(*cobra.Command, []string) error { return usagef("missing shell") }
		comp.Example = "  source <(matterline completion bash)\n  matterline completion zsh > \"${fpath[1]}/_matterline\""
	}
	return root
}

// noSubcommand is the Args of a command that only groups others: any word
// that reached it is not one of its subcommands.
func (c *cli) noSubcommand(cmd *cobra.Command, args []string) error {
	if len(args) == 0 {
		return nil
	}
	kind := "subcommand"
	if !cmd.HasParent() {
		kind = "command"
	}
	msg := fmt.Sprintf("unknown %s %q", kind, args[0])
	cmd.SuggestionsMinimumDistance = 2
	if s := cmd.SuggestionsFor(args[0]); len(s) > 0 {
		msg += fmt.Sprintf(" (did you mean %q?)", s[0])
	}
	return &usageError{msg: msg}
}

// group returns a command that only holds subcommands.
func (c *cli) group(use, short, long, example string, subs ...*cobra.Command) *cobra.Command {
	g := &cobra.Command{Use: use, Short: short, Long: long, Example: example, Args: c.noSubcommand,
		RunE: func(cmd *cobra.Command, _ []string) error { return usagef("missing subcommand") }}
	g.AddCommand(subs...)
	return g
}

// wantArgs accepts exactly the positional arguments named.
func wantArgs(names ...string) cobra.PositionalArgs {
	return func(cmd *cobra.Command, args []string) error {
		if len(args) == len(names) {
			return nil
		}
		if len(names) == 0 {
			return usagef("takes no arguments, got %q", args)
		}
		return usagef("wants %s, got %d argument(s)", strings.Join(names, " "), len(args))
	}
}

func (c *cli) newVersionCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "version",
		Short:   "Print the version",
		Long:    "Print the version of this binary (set at build time; \"dev\" otherwise). Same as matterline --version.",
		Example: "  matterline version",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			_, err := fmt.Fprintf(c.out, "matterline %s\n", version)
			return err
		},
	}
}

// newHelpCmd replaces cobra's help command so that an unknown topic is a usage
// error (exit 2) like an unknown command.
func (c *cli) newHelpCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:     "help [command]",
		Short:   "Help about any command",
		Long:    "Help prints the description, flags and examples of any command, e.g. matterline help rules add.",
		Example: "  matterline help\n  matterline help rules add",
		RunE: func(cmd *cobra.Command, args []string) error {
			target, rest, err := root.Find(args)
			if err != nil || len(rest) > 0 || target == nil {
				return usagef("unknown help topic %q", strings.Join(args, " "))
			}
			target.InitDefaultHelpFlag()
			return target.Help()
		},
	}
}

func (c *cli) newManCmd(root *cobra.Command) *cobra.Command {
	return &cobra.Command{
		Use:   "man DIR",
		Short: "Write man pages for every command into DIR",
		Long: `Write a man page (section 1) for matterline and each of its commands into DIR,
for packaging: matterline.1, matterline-rules-add.1 and so on.`,
		Example: "  matterline man /usr/local/share/man/man1",
		Args:    wantArgs("DIR"),
		RunE: func(cmd *cobra.Command, args []string) error {
			root.DisableAutoGenTag = true
			hdr := &doc.GenManHeader{Title: "MATTERLINE", Section: "1", Source: "matterline " + version, Manual: "matterline manual"}
			if err := doc.GenManTree(root, hdr, args[0]); err != nil {
				return err
			}
			fmt.Fprintf(c.out, "man pages written to %s\n", args[0])
			return nil
		},
	}
}

// normaliseArgs rewrites a command line for cobra without changing its meaning:
//   - a single-dash long flag that names a known flag ("-config F", "-json",
//     "-to=X") becomes the double-dash form pflag understands;
//   - the words naming the command and its subcommands move to the front, so
//     flags may come before them ("rules -config F list");
//   - a bare "help" that is not a flag's value becomes --help: it is never data
//     ("clio lookup help" shows help, it does not look up "help").
//
// Everything after "--" is left alone.
func normaliseArgs(root *cobra.Command, args []string) []string {
	if len(args) > 0 && strings.HasPrefix(args[0], "__complete") {
		return args
	}
	root.InitDefaultHelpCmd()
	cmd := root
	var path, rest []string
	positional := false // a positional argument of cmd was seen: no more subcommand words
	for i := 0; i < len(args); i++ {
		a := args[i]
		switch {
		case a == "--":
			rest = append(rest, args[i:]...)
			i = len(args)
		case strings.HasPrefix(a, "--"):
			rest = append(rest, a)
			if name := a[2:]; !strings.Contains(name, "=") && takesValue(cmd, name) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
		case strings.HasPrefix(a, "-") && len(a) > 1:
			name, _, _ := strings.Cut(a[1:], "=")
			if len(name) > 1 && (name == "help" || name == "version" || lookupFlag(cmd, name) != nil) {
				a = "-" + a
				rest = append(rest, a)
				if !strings.Contains(a, "=") && takesValue(cmd, name) && i+1 < len(args) {
					i++
					rest = append(rest, args[i])
				}
				continue
			}
			rest = append(rest, a)
			if len(name) == 1 && !strings.Contains(a, "=") && takesValue(cmd, name) && i+1 < len(args) {
				i++
				rest = append(rest, args[i])
			}
		default:
			if !positional {
				if sub := subcommandNamed(cmd, a); sub != nil {
					cmd = sub
					path = append(path, a)
					continue
				}
			}
			if a == "help" && cmd != root {
				rest = append(rest, "--help")
				continue
			}
			positional = true
			rest = append(rest, a)
		}
	}
	return append(path, rest...)
}

func subcommandNamed(cmd *cobra.Command, name string) *cobra.Command {
	for _, sub := range cmd.Commands() {
		if sub.Name() == name || sub.HasAlias(name) {
			return sub
		}
	}
	return nil
}

// lookupFlag finds a flag by long name or shorthand among cmd's own flags, the
// persistent flags of cmd and its parents, and (for flags given before the
// subcommand word) those of cmd's subcommands.
func lookupFlag(cmd *cobra.Command, name string) *pflag.Flag {
	find := func(fs *pflag.FlagSet) *pflag.Flag {
		if len(name) == 1 {
			return fs.ShorthandLookup(name)
		}
		return fs.Lookup(name)
	}
	for p := cmd; p != nil; p = p.Parent() {
		if f := find(p.PersistentFlags()); f != nil {
			return f
		}
		if p == cmd {
			if f := find(p.LocalNonPersistentFlags()); f != nil {
				return f
			}
		}
	}
	for _, sub := range cmd.Commands() {
		if f := lookupFlag(sub, name); f != nil {
			return f
		}
	}
	return nil
}

// takesValue reports whether the flag needs the next argument as its value
// (not a bool flag; not --help).
func takesValue(cmd *cobra.Command, name string) bool {
	if name == "help" || name == "h" || name == "version" {
		return false
	}
	f := lookupFlag(cmd, name)
	return f != nil && f.NoOptDefVal == ""
}

// logger is the logger of the admin commands: WARN and above, and INFO too with
// -v (whatever log.level says, DEBUG only when it says debug and -v is given).
func (c *cli) logger(cfg *config.Config) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(cfg.Log.Level)))
	if c.verbose {
		lvl = min(lvl, slog.LevelInfo)
	} else {
		lvl = max(lvl, slog.LevelWarn)
	}
	return newLogger(config.Log{Level: lvl.String(), Format: cfg.Log.Format}, c.err)
}

// Command matterline is the one binary: serve, demo, rules, closures, clio, version.
// This package only wires the packages together; behaviour lives in sip, media,
// clio and routing.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"sort"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

// stdio is where a command writes; tests pass buffers.
type stdio struct {
	out, err io.Writer
}

type command struct {
	summary string
	run     func(ctx context.Context, s stdio, args []string) error
}

func commands() map[string]command {
	return map[string]command{
		"serve":    {"run the SIP server (-config FILE)", cmdServe},
		"demo":     {"run the server on loopback with the sandbox Clio and sample rules (--call: place a scripted call)", cmdDemo},
		"version":  {"print the version", cmdVersion},
		"rules":    {"manage transfer rules: add|set|rm|list|show|test|export|import", cmdRules},
		"closures": {"manage firm closures: add|list|rm", cmdClosures},
		"clio":     {"Clio connection: connect|status|disconnect|lookup|staff", cmdClio},
		"calls":    {"list call records [--since D] [--json]", cmdCalls},
		"messages": {"recorded messages: list|show|rm [--json]", cmdMessages},
	}
}

// errUsage marks errors whose message is the usage text (exit status 2).
var errUsage = errors.New("usage")

// signalCause is the cancel cause of the command context when a signal arrived, so
// serve can tell SIGTERM (drain) from SIGINT (hang up now).
type signalCause struct{ sig os.Signal }

func (c signalCause) Error() string { return "received " + c.sig.String() }

func main() {
	ctx, cancel := context.WithCancelCause(context.Background())
	sigs := make(chan os.Signal, 1)
	signal.Notify(sigs, os.Interrupt, syscall.SIGTERM)
	go func() {
		sig := <-sigs
		cancel(signalCause{sig})
		// A second signal while shutting down ends the process at once.
		<-sigs
		os.Exit(130)
	}()
	os.Exit(run(ctx, os.Args[1:], stdio{os.Stdout, os.Stderr}))
}

// run executes one command line and returns the exit status.
func run(ctx context.Context, args []string, s stdio) int {
	cmds := commands()
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(s.err, cmds)
		if len(args) == 0 {
			return 2
		}
		return 0
	}
	c, ok := cmds[args[0]]
	if !ok {
		fmt.Fprintf(s.err, "matterline: unknown command %q\n\n", args[0])
		usage(s.err, cmds)
		return 2
	}
	if err := c.run(ctx, s, args[1:]); err != nil {
		if errors.Is(err, errUsage) {
			fmt.Fprintln(s.err, err)
			return 2
		}
		fmt.Fprintf(s.err, "matterline %s: %v\n", args[0], err)
		return 1
	}
	return 0
}

func usage(w io.Writer, cmds map[string]command) {
	fmt.Fprintln(w, "usage: matterline COMMAND [flags] [args]")
	fmt.Fprintln(w)
	names := make([]string, 0, len(cmds))
	for n := range cmds {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		fmt.Fprintf(w, "  %-9s %s\n", n, cmds[n].summary)
	}
	fmt.Fprintln(w, "\nEvery command accepts -config FILE; flags and arguments may come in any order.")
}

func cmdVersion(_ context.Context, s stdio, args []string) error {
	fmt.Fprintf(s.out, "matterline %s\n", version)
	return nil
}

// Command matterline is the one binary: serve, demo, rules, closures, clio,
// calls, messages, config, health, version. This package only wires the
// packages together; behaviour lives in sip, media, clio and routing. The
// command line is built with spf13/cobra in cli.go.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

// version is set at build time with -ldflags "-X main.version=...".
var version = "dev"

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

// run executes one command line with the process's configuration discovery
// and returns the exit status: 0, 1 when the command failed, 2 for a command
// line that cannot be run as written.
func run(ctx context.Context, args []string, s stdio) int {
	return runWith(ctx, args, s, defaultDiscovery(os.Getenv))
}

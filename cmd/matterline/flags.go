package main

import (
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/matterline/matterline/config"
)

// newFlags returns a FlagSet that reports errors instead of exiting and always
// carries -config.
func newFlags(name string) (*flag.FlagSet, *string) {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	cfg := fs.String("config", "", "configuration file (YAML); empty = embedded defaults")
	return fs, cfg
}

// parseArgs parses flags and positional arguments in any order ("rules add NAME
// --to X -config F" and "rules add -config F --to X NAME" are the same); "--" ends
// flags. -flag and --flag are the same (the flag package accepts both).
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, fmt.Errorf("%w: %s", errUsage, flagUsage(fs))
			}
			return nil, fmt.Errorf("%w: %v\n%s", errUsage, err, flagUsage(fs))
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		// fs.Parse stops at the first non-flag; "--" is consumed by Parse itself, in
		// which case everything after it is positional.
		if consumedDoubleDash(args, rest) {
			return append(pos, rest...), nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func consumedDoubleDash(args, rest []string) bool {
	i := len(args) - len(rest) - 1
	return i >= 0 && args[i] == "--"
}

func flagUsage(fs *flag.FlagSet) string {
	var b strings.Builder
	fmt.Fprintf(&b, "usage of %s:\n", fs.Name())
	fs.SetOutput(&b)
	fs.PrintDefaults()
	fs.SetOutput(io.Discard)
	return b.String()
}

// loadConfig loads the file named by -config (or the defaults).
func loadConfig(path string) (*config.Config, error) {
	return config.Load(path)
}

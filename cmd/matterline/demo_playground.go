package main

// The demo as a playground: `matterline demo` writes a configuration file that
// points at exactly what it runs (its database, its SIP and HTTP addresses, the
// sandbox Clio and the API tokens, the firm's zone) and prints commands that work
// against it verbatim from another terminal while it runs. The file lives in the
// demo's throw-away directory and goes with it.

import (
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"

	"go.yaml.in/yaml/v3"

	"github.com/matterline/matterline/config"
)

// demoConfigName is the file name of the demo's configuration in its directory.
const demoConfigName = "matterline.yaml"

// playground is what the demo prints for someone to try against it.
type playground struct {
	configPath string
	// exe is the binary running the demo, shell-quoted when needed.
	exe string
	// commands are matterline command lines (without the binary) that work
	// with configPath as the configuration.
	commands []string
	// curl is a ready-to-run request to the control API.
	curl string
}

// newPlayground writes the configuration of the running demo to
// dir/matterline.yaml (mode 0600) and returns what to print about it. cfg is the
// demo's configuration; sipListen and httpAddr are the addresses actually bound
// (a port 0 in cfg becomes the port the kernel picked).
func newPlayground(cfg *config.Config, dir string, sipListen []string, httpAddr string) (*playground, error) {
	eff := *cfg // shallow copy: only whole fields are replaced below
	eff.SIP.Listen = sipListen
	eff.HTTP.Listen = httpAddr
	data, err := yaml.Marshal(eff)
	if err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	header := "# Written by `matterline demo` for this run only: its database, addresses, sandbox\n" +
		"# Clio and API tokens. Removed with the database when the demo stops.\n"
	path := filepath.Join(dir, demoConfigName)
	if err := os.WriteFile(path, append([]byte(header), data...), 0o600); err != nil {
		return nil, fmt.Errorf("demo config: %w", err)
	}
	exe, err := os.Executable()
	if err != nil || !filepath.IsAbs(exe) {
		exe = "matterline"
	}
	return &playground{
		configPath: path,
		exe:        shellQuote(exe),
		commands:   []string{"rules list", "rules test --from " + demoCaller, "clio staff", "calls", "health"},
		// demoTokens has made sure the admin token is set.
		curl: fmt.Sprintf(`curl -s -H "Authorization: Bearer %s" http://%s/v1/calls`, cfg.HTTP.Token, httpAddr),
	}, nil
}

// print writes the playground block: the export line, one command per line,
// the curl request, and the same commands with -config instead of the export.
func (p *playground) print(w io.Writer) {
	cfg := shellQuote(p.configPath)
	fmt.Fprintf(w, "Try it from another terminal while the demo runs. This configuration points at the\n")
	fmt.Fprintf(w, "run's database, addresses, sandbox Clio and tokens (0600, removed when the demo stops):\n")
	fmt.Fprintf(w, "  export %s=%s\n", EnvConfig, cfg)
	for _, c := range p.commands {
		fmt.Fprintf(w, "  %s %s\n", p.exe, c)
	}
	fmt.Fprintf(w, "  %s\n", p.curl)
	fmt.Fprintf(w, "Without the export line, add -config to each matterline command:\n")
	fmt.Fprintf(w, "  %s %s -config %s\n", p.exe, p.commands[0], cfg)
}

// shellQuote quotes s for a POSIX shell when it holds anything but plain path
// characters.
func shellQuote(s string) string {
	if s != "" && strings.Trim(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789/._-+=:,@") == "" {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

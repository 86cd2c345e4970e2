package main

// Where a command's configuration and database come from, and the config
// check|show commands.

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/spf13/cobra"
	"go.yaml.in/yaml/v3"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/store"
)

// EnvConfig names the configuration file when -config is not given.
const EnvConfig = "MATTERLINE_CONFIG"

// configSource says which configuration a command used, for messages.
type configSource struct {
	path string // "" = embedded defaults
	from string // "-config", EnvConfig or "system"
}

func (s configSource) String() string {
	switch {
	case s.path == "":
		return "embedded defaults"
	case s.from == EnvConfig:
		return s.path + " from " + EnvConfig
	}
	return s.path
}

// findConfig applies the discovery order: -config, then $MATTERLINE_CONFIG,
// then the system file if it exists, else the embedded defaults.
func (c *cli) findConfig() configSource {
	if c.configFlag != "" {
		return configSource{path: c.configFlag, from: "-config"}
	}
	if c.disc.getenv != nil {
		if p := c.disc.getenv(EnvConfig); p != "" {
			return configSource{path: p, from: EnvConfig}
		}
	}
	if p := c.disc.systemConfig; p != "" {
		if _, err := os.Stat(p); err == nil {
			return configSource{path: p, from: "system"}
		}
	}
	return configSource{}
}

// loadExplicit loads only a configuration named by -config, else the embedded
// defaults: the demo is a sandbox and never picks up $MATTERLINE_CONFIG or the
// system file (a production configuration with real Clio credentials).
func (c *cli) loadExplicit() (*config.Config, error) {
	c.src = configSource{}
	if c.configFlag != "" {
		c.src = configSource{path: c.configFlag, from: "-config"}
	}
	return config.Load(c.src.path)
}

// load finds and loads the configuration, remembering where it came from.
func (c *cli) load() (*config.Config, error) {
	c.src = c.findConfig()
	cfg, err := config.Load(c.src.path)
	if err != nil && c.src.path != "" && !strings.Contains(err.Error(), c.src.path) {
		return nil, fmt.Errorf("%s: %w", c.src, err)
	}
	return cfg, err
}

// dbAccess says whether a command may create the database.
type dbAccess int

const (
	dbUnknown dbAccess = iota
	// dbExisting: the command reads (or removes from) a database; a missing
	// one is an error, never created.
	dbExisting
	// dbCreate: the command writes and creates a missing database, saying so.
	dbCreate
	// dbScratch: the command only tries what a write would do (a dry run);
	// a missing database is stood in for by an empty one in a temporary
	// directory, removed afterwards.
	dbScratch
)

// openDB opens the configured database (created 0600 only with dbCreate).
func (c *cli) openDB(cfg *config.Config, access dbAccess) (*sql.DB, error) {
	path := cfg.Store.Path
	abs, err := filepath.Abs(path)
	if err != nil {
		abs = path
	}
	_, statErr := os.Stat(path)
	missing := errors.Is(statErr, os.ErrNotExist)
	if missing && access != dbCreate {
		return nil, fmt.Errorf("no database at %s (config: %s) — run with -config FILE or set %s", abs, c.src, EnvConfig)
	}
	db, err := store.Open(path)
	if err != nil {
		return nil, err
	}
	if missing {
		fmt.Fprintf(c.err, "created database %s\n", abs)
	}
	return db, nil
}

func (c *cli) newConfigCmd() *cobra.Command {
	check := &cobra.Command{
		Use:   "check",
		Short: "Validate the configuration as serve would",
		Long: `Load and validate the configuration exactly as serve does at start: every key,
the HTTP listen address and its tokens, the RTP port range, prompts, the SIP
settings, the secret key, and the file's permissions. Rules stored in the
database (when it exists) are checked too; an invalid rule is a warning, as
serve skips it. Prints "config OK: PATH" or the errors (exit status 1).`,
		Example: "  matterline config check -config /etc/matterline/matterline.yaml\n  MATTERLINE_CONFIG=./m.yaml matterline config check",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.configCheck(cmd.Context())
		},
	}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print the effective configuration as YAML, secrets masked",
		Long: `Print the configuration a command would use (file, environment overrides and
defaults) as YAML. Tokens, the client secret and passwords are shown as "***"
when set.`,
		Example: "  matterline config show\n  matterline config show -config ./matterline.yaml",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			fmt.Fprintf(c.out, "# config: %s\n", c.src)
			return yaml.NewEncoder(c.out).Encode(maskSecrets(*cfg))
		},
	}
	return c.group("config", "Check or show the configuration",
		"Check the configuration as serve would (config check) or print it with secrets masked (config show).",
		"  matterline config check\n  matterline config show", check, show)
}

// maskSecrets returns cfg with every secret that is set replaced by "***".
func maskSecrets(cfg config.Config) config.Config {
	for _, p := range []*string{&cfg.Clio.AccessToken, &cfg.Clio.ClientSecret, &cfg.HTTP.Token,
		&cfg.HTTP.AgentToken, &cfg.HEP.Password, &cfg.SIP.OutboundAuth.Password} {
		if *p != "" {
			*p = "***"
		}
	}
	return cfg
}

func (c *cli) configCheck(ctx context.Context) error {
	cfg, err := c.load()
	if err != nil {
		return err
	}
	log := c.logger(cfg)
	if _, err := checkServe(cfg, c.src.path, log); err != nil {
		return err
	}
	// Rules live in the database; serve skips invalid ones with a warning.
	if _, err := os.Stat(cfg.Store.Path); err == nil {
		db, err := c.openDB(cfg, dbExisting)
		if err != nil {
			return err
		}
		defer db.Close()
		st, err := routing.NewStore(ctx, db, firmOf(cfg))
		if err != nil {
			return err
		}
		defer st.Close()
		set := st.Rules()
		for _, inv := range set.Invalid() {
			fmt.Fprintf(c.err, "warning: %v (serve skips this rule)\n", inv.Err)
		}
		for _, inv := range set.InvalidClosures() {
			fmt.Fprintf(c.err, "warning: closure %s: %v (serve skips it)\n", inv.Closure.Date, inv.Err)
		}
	}
	if line := describeTLS(cfg); line != "" {
		fmt.Fprintln(c.out, line)
	}
	fmt.Fprintf(c.out, "config OK: %s\n", c.src)
	return nil
}

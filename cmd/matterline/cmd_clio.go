package main

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/lookup"
)

func (c *cli) newClioCmd() *cobra.Command {
	var region string
	var timeout time.Duration
	connect := &cobra.Command{
		Use:   "connect [--region us|ca|eu|au] [--timeout 5m]",
		Short: "Connect Clio with OAuth",
		Long: `Connect matterline to the firm's Clio account with OAuth: prints the URL to open
in a browser, listens on http.listen for Clio's redirect, and stores the tokens
(sealed with MATTERLINE_SECRET_KEY when set). Needs clio.client_id and
clio.client_secret.`,
		Example: "  matterline clio connect --region eu",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.clioConnect(cmd.Context(), region, timeout)
		},
	}
	connect.Flags().StringVar(&region, "region", "", "Clio region: us, ca, eu or au (default: clio.region)")
	connect.Flags().DurationVar(&timeout, "timeout", 5*time.Minute, "how long to wait for the browser to come back")
	var statusJSON bool
	status := &cobra.Command{
		Use:   "status [--json]",
		Short: "Show the Clio connection",
		Long: `Ask Clio, with one request (users/who_am_i), whether it accepts the token:
prints the Clio user, the region, where the token comes from (config, environment
or OAuth) and its expiry, the rate-limit headroom, the last error and the cached
lookups. Exits 1 when the token is rejected, missing, or Clio cannot be reached.
Never prints a token.`,
		Example: "  matterline clio status\n  matterline clio status --json",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.clioStatus(cmd.Context(), statusJSON)
		},
	}
	status.Flags().BoolVar(&statusJSON, "json", false, "print JSON")
	disconnect := &cobra.Command{
		Use:     "disconnect",
		Short:   "Revoke the Clio token and delete it here",
		Long:    "Revoke the OAuth token at Clio, then delete the stored tokens and the cached lookups.",
		Example: "  matterline clio disconnect",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.clioDisconnect(cmd.Context())
		},
	}
	var lookupJSON, noCache bool
	lookup := &cobra.Command{
		Use:   "lookup NUMBER [--json] [--no-cache]",
		Short: "Look a caller up as a call would",
		Long: `Look NUMBER up in Clio exactly as an incoming call would (same matching, cache
and policies) and print the contact, matter and responsible staff.`,
		Example: "  matterline clio lookup +12175552171\n  matterline clio lookup \"(217) 555-2171\" --json --no-cache",
		Args:    wantArgs("NUMBER"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.clioLookup(cmd.Context(), args[0], lookupJSON, noCache)
		},
	}
	lookup.Flags().BoolVar(&lookupJSON, "json", false, "print the lookup object of `rules test --json`")
	lookup.Flags().BoolVar(&noCache, "no-cache", false, "ask Clio even when a cached result is fresh")
	var staffJSON bool
	staff := &cobra.Command{
		Use:     "staff [--json]",
		Short:   "List Clio users and the rule serving each",
		Long:    "List the firm's Clio users with their phone numbers and the transfer rule that serves each (by staff id or name).",
		Example: "  matterline clio staff",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.clioStaff(cmd.Context(), staffJSON)
		},
	}
	staff.Flags().BoolVar(&staffJSON, "json", false, "print JSON")
	reseal := &cobra.Command{
		Use:   "reseal",
		Short: "Re-seal the stored tokens with the current secret key",
		Long: `Rewrite the stored Clio tokens sealed with MATTERLINE_SECRET_KEY: after a key
rotation (old key in MATTERLINE_SECRET_KEY_OLD), or to seal tokens stored in
plain text before a key was set.`,
		Example: "  MATTERLINE_SECRET_KEY=... MATTERLINE_SECRET_KEY_OLD=... matterline clio reseal",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.clioReseal(cmd.Context())
		},
	}
	return c.group("clio", "Clio connection: connect, status, lookup, staff, outbox",
		"Connect to Clio, see the connection's state, look callers up, list staff and the write-back outbox.",
		"  matterline clio connect\n  matterline clio status\n  matterline clio lookup +12175552171",
		connect, status, disconnect, lookup, staff, reseal,
		c.newClioOutboxCmd(),
		c.newClioSyncCmd())
}

// clioEnv is what every clio subcommand opens.
type clioEnv struct {
	cfg  *config.Config
	log  *slog.Logger
	db   *sql.DB
	deps *clioDeps
	done func()
}

func (c *cli) openClioEnv(ctx context.Context, access dbAccess) (*clioEnv, error) {
	cfg, err := c.load()
	if err != nil {
		return nil, err
	}
	return c.openClioEnvCfg(ctx, cfg, access)
}

func (c *cli) openClioEnvCfg(ctx context.Context, cfg *config.Config, access dbAccess) (*clioEnv, error) {
	db, err := c.openDB(cfg, access)
	if err != nil {
		return nil, err
	}
	log := c.logger(cfg)
	d, err := newClio(ctx, cfg, db, log, nil, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &clioEnv{cfg: cfg, log: log, db: db, deps: d, done: func() { db.Close() }}, nil
}

func (c *cli) clioConnect(ctx context.Context, regionFlag string, timeout time.Duration) error {
	s := c.stdio
	cfg, err := c.load()
	if err != nil {
		return err
	}
	if regionFlag != "" {
		if _, err := clio.ParseRegion(regionFlag); err != nil {
			return &usageError{msg: err.Error()}
		}
		cfg.Clio.Region = strings.ToLower(regionFlag)
	}
	if cfg.Clio.ClientID == "" || cfg.Clio.ClientSecret == "" {
		return errors.New("clio.client_id and clio.client_secret are needed to connect " +
			"(or MATTERLINE_CLIO_CLIENT_ID and MATTERLINE_CLIO_CLIENT_SECRET); register an app in Clio under Settings > Developer Applications")
	}
	region, _ := clio.ParseRegion(cfg.Clio.Region)
	env, err := c.openClioEnvCfg(ctx, cfg, dbCreate)
	if err != nil {
		return err
	}
	defer env.done()

	ln, err := net.Listen("tcp", cfg.HTTP.Listen)
	if err != nil {
		return fmt.Errorf("listen for the oauth callback on %s: %w", cfg.HTTP.Listen, err)
	}
	defer ln.Close()
	redirect := cfg.Clio.RedirectURL
	if redirect == "" {
		redirect = "http://" + ln.Addr().String() + clio.CallbackPath
	}
	hc := &http.Client{}
	conn, err := clio.NewConnection(clio.ConnectionOptions{
		Region: region, BaseURL: cfg.Clio.BaseURL, ClientID: cfg.Clio.ClientID, ClientSecret: cfg.Clio.ClientSecret,
		RedirectURL: redirect, Storage: env.deps.storage, HTTPClient: hc, Logger: env.log,
	})
	if err != nil {
		return err
	}
	client, err := clio.NewClient(clio.ClientOptions{Region: region, BaseURL: cfg.Clio.BaseURL, Auth: conn,
		HTTPClient: hc, RequestTimeout: cfg.Clio.RequestTimeout.D()})
	if err != nil {
		return err
	}
	type outcome struct {
		u   *clio.User
		err error
	}
	done := make(chan outcome, 1)
	h := &clio.OAuthHandler{Conn: conn, Client: client, Logger: env.log, OnDone: func(u *clio.User, err error) {
		select {
		case done <- outcome{u, err}:
		default:
		}
	}}
	authURL, err := h.Begin()
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.Handle(clio.CallbackPath, h)
	mux.Handle(clio.StartPath, h)
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	defer func() {
		sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = srv.Shutdown(sctx)
	}()

	fmt.Fprintf(s.out, "Open this URL in a browser and approve matterline (Clio region %s):\n\n  %s\n\n", region, authURL)
	fmt.Fprintf(s.out, "Waiting up to %s for Clio to redirect to %s ...\n", timeout, redirect)
	timer := time.NewTimer(timeout)
	defer timer.Stop()
	for {
		select {
		case o := <-done:
			if errors.Is(o.err, clio.ErrBadState) {
				fmt.Fprintln(s.err, "ignored a callback with an unknown state; still waiting")
				continue
			}
			if o.err != nil {
				return o.err
			}
			fmt.Fprintf(s.out, "Connected to Clio as %s (user %d), region %s.\n", o.u.Name, o.u.ID, region)
			if env.cfg.Clio.AccessToken != "" {
				fmt.Fprintln(s.out, "Note: clio.access_token is set and takes precedence over the OAuth connection.")
			}
			return nil
		case <-timer.C:
			return fmt.Errorf("no callback from Clio within %s", timeout)
		case <-ctx.Done():
			return errors.New("connect canceled")
		}
	}
}

func (c *cli) clioStatus(ctx context.Context, asJSON bool) error {
	return c.printClioStatus(ctx, asJSON)
}

func (c *cli) clioDisconnect(ctx context.Context) error {
	s := c.stdio
	env, err := c.openClioEnv(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.done()
	if _, err := env.deps.storage.LoadToken(ctx); err != nil {
		if errors.Is(err, clio.ErrTokensSealed) {
			// Unreadable tokens cannot be revoked, but they can be forgotten.
			if err := env.deps.storage.DeleteToken(ctx); err != nil {
				return err
			}
			if err := env.deps.storage.ClearCache(ctx); err != nil {
				return err
			}
			fmt.Fprintln(s.err, "warning: the stored tokens are sealed with another key and were not revoked at Clio (revoke the app in Clio's settings)")
			fmt.Fprintln(s.out, "Clio disconnected: stored tokens and cached lookups deleted.")
			return nil
		}
		if !errors.Is(err, clio.ErrNotConnected) {
			return err
		}
		if env.deps.mode == clioStatic {
			return errors.New("a static token is configured (clio.access_token or MATTERLINE_CLIO_ACCESS_TOKEN): remove it to disconnect")
		}
		return errors.New("clio is not connected")
	}
	rctx, cancel := context.WithTimeout(ctx, 15*time.Second)
	defer cancel()
	revokeErr := env.deps.conn.Disconnect(rctx)
	if err := env.deps.storage.ClearCache(ctx); err != nil {
		return err
	}
	if revokeErr != nil {
		fmt.Fprintf(s.err, "warning: %v (the token was deleted here anyway)\n", revokeErr)
	}
	fmt.Fprintln(s.out, "Clio disconnected: stored tokens and cached lookups deleted.")
	return nil
}

// clioReseal rewrites the stored tokens sealed with the current secret key: after
// a rotation (old key in MATTERLINE_SECRET_KEY_OLD), or to seal tokens stored in
// plain text before a key was set.
func (c *cli) clioReseal(ctx context.Context) error {
	s := c.stdio
	env, err := c.openClioEnv(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.done()
	st := env.deps.storage
	if !st.Sealed() {
		return errors.New("no secret key: set " + clio.EnvSecretKey + " or the systemd credential " + clio.CredentialSecretKey)
	}
	if env.deps.tokenErr != nil {
		return env.deps.tokenErr
	}
	if _, err := st.LoadToken(ctx); errors.Is(err, clio.ErrNotConnected) {
		fmt.Fprintln(s.out, "No stored Clio tokens: nothing to seal.")
		return nil
	} else if err != nil {
		return err
	}
	// openClioEnv already re-sealed a stale row; Reseal makes sure.
	if _, err := st.Reseal(ctx); err != nil {
		return err
	}
	fmt.Fprintln(s.out, "Clio tokens sealed with the current key; "+clio.EnvSecretKeyOld+" may now be removed.")
	return nil
}

func (c *cli) clioLookup(ctx context.Context, number string, asJSON, noCache bool) error {
	s := c.stdio
	env, err := c.openClioEnv(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.done()
	svc, err := newClioService(env.cfg, env.deps, env.log)
	if err != nil {
		return err
	}
	r := svc.LookupWith(ctx, number, clio.LookupOptions{NoCache: noCache})
	if asJSON {
		// The contract object plus where the answer came from (index, cache, clio).
		v := struct {
			lookup.Contract
			Source string `json:"source,omitempty"`
		}{Contract: r.Contract()}
		if r.Source != lookup.SourceUnknown {
			v.Source = r.Source.String()
		}
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		fmt.Fprintf(s.out, "%s\n", b)
	} else {
		printResult(s.out, r)
	}
	if r.Status == lookup.StatusError {
		return fmt.Errorf("lookup failed: %s", r.Reason)
	}
	return nil
}

func printResult(out io.Writer, r lookup.Result) {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	status := r.Status.String()
	if r.Reason != "" {
		status += " (" + r.Reason + ")"
	}
	fmt.Fprintf(w, "status:\t%s\n", status)
	if r.Number != "" {
		fmt.Fprintf(w, "number:\t%s\n", r.Number)
	}
	if r.Contact != nil {
		fmt.Fprintf(w, "contact:\t%s (id %d)\n", r.Contact.Name, r.Contact.ID)
	}
	if r.Matter != nil {
		fmt.Fprintf(w, "matter:\t%s (id %d)\n", r.Matter.DisplayNumber, r.Matter.ID)
	}
	if r.Staff != nil {
		fmt.Fprintf(w, "responsible staff:\t%s (id %d)\n", r.Staff.Name, r.Staff.ID)
	}
	if r.Cached {
		fmt.Fprintf(w, "cached:\tyes\n")
	}
	if r.Source != lookup.SourceUnknown {
		fmt.Fprintf(w, "source:\t%s\n", r.Source)
	}
	_ = w.Flush()
}

type staffJSON struct {
	ID               int64  `json:"id"`
	Name             string `json:"name"`
	Email            string `json:"email,omitempty"`
	Phone            string `json:"phone"`
	Enabled          bool   `json:"enabled"`
	SubscriptionType string `json:"subscription_type,omitempty"`
	Rule             string `json:"rule"`
}

func (cl *cli) clioStaff(ctx context.Context, asJSON bool) error {
	s := cl.stdio
	env, err := cl.openClioEnv(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.done()
	if env.deps.mode == clioNone {
		return errors.New("clio is not connected: run `matterline clio connect` or set clio.access_token")
	}
	c := env.deps.client
	users, resp, err := c.Users.List(ctx, clio.ListOptions{})
	for page := 1; err == nil && resp.NextPage != "" && page < 50; page++ {
		var more []clio.User
		if more, resp, err = c.Users.ListNext(ctx, resp.NextPage); err == nil {
			users = append(users, more...)
		}
	}
	if err != nil {
		return fmt.Errorf("list clio users: %w", err)
	}
	ruleFor, err := ruleForFunc(ctx, env)
	if err != nil {
		return err
	}
	out := make([]staffJSON, 0, len(users))
	for _, u := range users {
		rule, err := ruleFor(ctx, u.ID, u.Name)
		if err != nil {
			return fmt.Errorf("rule for clio user %d: %w", u.ID, err)
		}
		out = append(out, staffJSON{ID: u.ID, Name: u.Name, Email: u.Email, Phone: u.PhoneNumber,
			Enabled: u.Enabled == nil || *u.Enabled, SubscriptionType: u.SubscriptionType, Rule: rule})
	}
	if asJSON {
		return writeJSONOut(s.out, out)
	}
	w := tabwriter.NewWriter(s.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tNAME\tPHONE\tENABLED\tRULE")
	for _, u := range out {
		rule := u.Rule
		if rule == "" {
			rule = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%v\t%s\n", u.ID, u.Name, u.Phone, map[bool]string{true: "yes", false: "no"}[u.Enabled], rule)
	}
	return w.Flush()
}

func writeJSONOut(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

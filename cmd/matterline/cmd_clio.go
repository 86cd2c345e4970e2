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

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/lookup"
)

const clioUsage = `usage: matterline clio SUBCOMMAND [flags]
  connect [--region us|ca|eu|au] [--timeout 5m]   connect Clio with OAuth (prints the URL to open)
  status [--json]                                  ask Clio: user, region, token source and expiry, rate limit
  disconnect                                       revoke the token at Clio and delete it here
  lookup NUMBER [--json] [--no-cache]              look a caller up as a call would
  staff [--json]                                   list Clio users and the rule serving each
  reseal                                           re-seal the stored tokens with the current secret key`

func cmdClio(ctx context.Context, s stdio, args []string) error {
	if len(args) == 0 {
		return fmt.Errorf("%w: %s", errUsage, clioUsage)
	}
	sub := map[string]func(context.Context, stdio, []string) error{
		"connect": clioConnect, "status": clioStatus, "disconnect": clioDisconnect,
		"lookup": clioLookup, "staff": clioStaff, "reseal": clioReseal,
	}[args[0]]
	if sub == nil {
		return fmt.Errorf("%w: unknown subcommand %q\n%s", errUsage, args[0], clioUsage)
	}
	return sub(ctx, s, args[1:])
}

// clioEnv is what every clio subcommand opens.
type clioEnv struct {
	cfg  *config.Config
	log  *slog.Logger
	db   *sql.DB
	deps *clioDeps
	done func()
}

func openClioEnv(ctx context.Context, s stdio, cfgPath string) (*clioEnv, error) {
	cfg, err := loadConfig(cfgPath)
	if err != nil {
		return nil, err
	}
	return openClioEnvCfg(ctx, s, cfg)
}

func openClioEnvCfg(ctx context.Context, s stdio, cfg *config.Config) (*clioEnv, error) {
	db, err := openDB(cfg)
	if err != nil {
		return nil, err
	}
	log := newLogger(config.Log{Level: "warn", Format: cfg.Log.Format}, s.err)
	d, err := newClio(ctx, cfg, db, log, nil)
	if err != nil {
		db.Close()
		return nil, err
	}
	return &clioEnv{cfg: cfg, log: log, db: db, deps: d, done: func() { db.Close() }}, nil
}

func clioConnect(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("clio connect")
	regionFlag := fs.String("region", "", "Clio region: us, ca, eu or au (default: clio.region)")
	timeout := fs.Duration("timeout", 5*time.Minute, "how long to wait for the browser to come back")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return fmt.Errorf("%w: clio connect takes no arguments\n%s", errUsage, clioUsage)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	if *regionFlag != "" {
		if _, err := clio.ParseRegion(*regionFlag); err != nil {
			return fmt.Errorf("%w: %v", errUsage, err)
		}
		cfg.Clio.Region = strings.ToLower(*regionFlag)
	}
	if cfg.Clio.ClientID == "" || cfg.Clio.ClientSecret == "" {
		return errors.New("clio.client_id and clio.client_secret are needed to connect " +
			"(or MATTERLINE_CLIO_CLIENT_ID and MATTERLINE_CLIO_CLIENT_SECRET); register an app in Clio under Settings > Developer Applications")
	}
	region, _ := clio.ParseRegion(cfg.Clio.Region)
	env, err := openClioEnvCfg(ctx, s, cfg)
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
	fmt.Fprintf(s.out, "Waiting up to %s for Clio to redirect to %s ...\n", *timeout, redirect)
	timer := time.NewTimer(*timeout)
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
			return fmt.Errorf("no callback from Clio within %s", *timeout)
		case <-ctx.Done():
			return errors.New("connect canceled")
		}
	}
}

func clioStatus(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("clio status")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	return printClioStatus(ctx, s, cfg, *asJSON)
}

func clioDisconnect(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("clio disconnect")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	env, err := openClioEnv(ctx, s, *cfgPath)
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
func clioReseal(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("clio reseal")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	env, err := openClioEnv(ctx, s, *cfgPath)
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

func clioLookup(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("clio lookup")
	asJSON := fs.Bool("json", false, "print the lookup object of `rules test --json`")
	noCache := fs.Bool("no-cache", false, "ask Clio even when a cached result is fresh")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return fmt.Errorf("%w: clio lookup takes one NUMBER\n%s", errUsage, clioUsage)
	}
	env, err := openClioEnv(ctx, s, *cfgPath)
	if err != nil {
		return err
	}
	defer env.done()
	svc, err := newClioService(env.cfg, env.deps, env.log)
	if err != nil {
		return err
	}
	r := svc.LookupWith(ctx, pos[0], clio.LookupOptions{NoCache: *noCache})
	if *asJSON {
		b, err := r.MarshalContract()
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

func clioStaff(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("clio staff")
	asJSON := fs.Bool("json", false, "print JSON")
	if _, err := parseArgs(fs, args); err != nil {
		return err
	}
	env, err := openClioEnv(ctx, s, *cfgPath)
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
	if *asJSON {
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

package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"os"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/clio/cliotest"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/routing"
)

// ruleForFunc returns, for `clio staff`, a func saying which transfer rule serves a
// Clio user ("" = none), read from the routing store of env's database. Tests
// replace it.
var ruleForFunc = func(ctx context.Context, env *clioEnv) (func(ctx context.Context, userID int64, name string) (string, error), error) {
	st, err := routing.NewStore(ctx, env.db, firmOf(env.cfg), routing.WithLogger(env.log))
	if err != nil {
		return nil, err
	}
	set := st.Rules()
	st.Close()
	return func(_ context.Context, id int64, name string) (string, error) {
		rule, _ := set.ServedBy(id, name)
		return rule, nil
	}, nil
}

// clioMode is how matterline is connected to Clio.
type clioMode uint8

const (
	clioNone   clioMode = iota // neither a static token nor stored OAuth tokens
	clioStatic                 // clio.access_token / MATTERLINE_CLIO_ACCESS_TOKEN
	clioOAuth                  // tokens from `clio connect`, stored in SQLite
)

func (m clioMode) String() string {
	switch m {
	case clioStatic:
		return "static_token"
	case clioOAuth:
		return "oauth"
	}
	return "none"
}

// clioDeps is the Clio side of the configuration, built by newClio.
type clioDeps struct {
	mode    clioMode
	region  clio.Region
	storage *clio.Storage
	conn    *clio.Connection // set when client credentials or stored tokens exist
	client  *clio.Client     // nil without a token and without app credentials
	// index is the local phone index (clio.index), nil when off.
	index *clio.Index
	// budget is the process's one Clio rate budget (serve's; nil elsewhere):
	// the index's syncs and polls ask it, as write-back does.
	budget *clio.Budget
	// tokenErr is why stored tokens could not be read (sealed with a key this
	// process does not hold); Clio then stays unconnected instead of failing.
	tokenErr error
}

// openClioStorage opens the clio tables with the token sealing key of the
// environment (MATTERLINE_SECRET_KEY or the systemd credential); without a key
// the tokens are written in plain text.
func openClioStorage(ctx context.Context, db *sql.DB) (*clio.Storage, error) {
	sealer, err := clio.SealerFromEnv(os.Getenv)
	if err != nil {
		return nil, err
	}
	return clio.OpenStorage(ctx, db, clio.WithSealer(sealer))
}

// newClio builds the Clio client of cfg: the static token wins; else stored OAuth
// tokens (in their own region); else no client.
func newClio(ctx context.Context, cfg *config.Config, db *sql.DB, log *slog.Logger, hc *http.Client, budget *clio.Budget) (*clioDeps, error) {
	st, err := openClioStorage(ctx, db)
	if err != nil {
		return nil, err
	}
	region, err := clio.ParseRegion(cfg.Clio.Region)
	if err != nil {
		return nil, err
	}
	if hc == nil {
		hc = &http.Client{} // per-request timeouts come from clio.request_timeout
	}
	d := &clioDeps{region: region, storage: st, budget: budget}
	tok, err := st.LoadToken(ctx)
	switch {
	case err == nil:
		d.region = tok.Region
		// Seal a row written in plain text, or re-seal one sealed with the old key.
		if done, rerr := st.Reseal(ctx); rerr != nil {
			log.Warn("clio tokens not resealed", "err", rerr)
		} else if done {
			log.Info("clio tokens resealed with the current secret key")
		}
	case errors.Is(err, clio.ErrTokensSealed):
		// Calls must still be answered: run without Clio, loudly.
		d.tokenErr = err
		log.Error("clio tokens cannot be read: caller lookups do not reach Clio", "err", err)
	case !errors.Is(err, clio.ErrNotConnected):
		return nil, err
	}
	stored := err == nil
	if stored || cfg.Clio.ClientID != "" {
		d.conn, err = clio.NewConnection(clio.ConnectionOptions{
			Region: d.region, BaseURL: cfg.Clio.BaseURL, ClientID: cfg.Clio.ClientID,
			ClientSecret: cfg.Clio.ClientSecret, RedirectURL: cfg.Clio.RedirectURL,
			Storage: st, HTTPClient: hc, Logger: log,
		})
		if err != nil {
			return nil, err
		}
	}
	var auth clio.Authorizer
	switch {
	case cfg.Clio.AccessToken != "":
		d.mode, d.region, auth = clioStatic, region, clio.StaticToken(cfg.Clio.AccessToken)
	case stored:
		d.mode, auth = clioOAuth, d.conn
	case d.conn != nil:
		// App credentials but no tokens yet: lookups answer unconfigured until an
		// admin connects (from the CLI or /oauth/clio/start); the Connection then
		// reads the new tokens from the database without a restart.
		auth = d.conn
	default:
		return d, nil
	}
	d.client, err = clio.NewClient(clio.ClientOptions{
		Region: d.region, BaseURL: cfg.Clio.BaseURL, Auth: auth, HTTPClient: hc,
		RequestTimeout: cfg.Clio.RequestTimeout.D(),
	})
	if err != nil {
		return nil, err
	}
	if cfg.Clio.Index {
		if _, err := openClioIndex(ctx, cfg, d, log); err != nil {
			return nil, err
		}
	}
	return d, nil
}

// newClioService builds the caller lookup over d (unconfigured when d has no client).
func newClioService(cfg *config.Config, d *clioDeps, log *slog.Logger) (*clio.Service, error) {
	c := cfg.Clio
	o := clio.ServiceOptions{
		Client: d.client, Storage: d.storage, DefaultCountry: c.DefaultCountry,
		CacheTTL: c.CacheTTL.D(), NegativeTTL: c.NegativeTTL.D(), LookupTimeout: c.LookupTimeout.D(),
		MaxPages: c.MaxPages, BreakerFailures: c.BreakerFailures, BreakerCooldown: c.BreakerCooldown.D(),
		RateLimitReserve: c.RateLimitReserve, Logger: log, Index: d.index,
	}
	var err error
	if o.Match, err = clio.ParseMatchMode(c.Match); err != nil {
		return nil, err
	}
	if o.MatterPolicy, o.MatterStatus, o.StaffPreference, err = matterPolicy(c); err != nil {
		return nil, err
	}
	return clio.NewService(o), nil
}

// matterPolicy reads how a contact's matter and staff member are picked: the
// lookup and the phone index must pick alike.
func matterPolicy(c config.Clio) (p clio.MatterPolicy, status []clio.MatterStatus, staff []clio.StaffField, err error) {
	if p, err = clio.ParseMatterPolicy(c.MatterPolicy); err != nil {
		return p, nil, nil, err
	}
	for _, s := range c.MatterStatus {
		ms, err := clio.ParseMatterStatus(s)
		if err != nil {
			return p, nil, nil, err
		}
		status = append(status, ms)
	}
	for _, s := range c.StaffPreference {
		f, err := clio.ParseStaffField(s)
		if err != nil {
			return p, nil, nil, err
		}
		staff = append(staff, f)
	}
	return p, status, staff, nil
}

// openLookup builds the caller lookup of the configuration: Clio with its SQLite
// cache when a connection is configured (static token or stored OAuth tokens),
// else a lookup that answers unconfigured. The returned close func releases it.
func openLookup(ctx context.Context, cfg *config.Config, db *sql.DB, log *slog.Logger) (lookuper, func(), error) {
	lk, _, done, err := openLookupWith(ctx, cfg, db, log, nil, nil)
	return lk, done, err
}

// openLookupWith is openLookup with the HTTP client of the Clio requests (nil: a
// plain one) and the rate budget (nil: none); serve passes a client that
// counts them in the metrics and feeds its budget. It also returns the Clio
// connection, which serve shares with write-back (one client, one token, one
// rate budget, which the index's syncs ask too).
func openLookupWith(ctx context.Context, cfg *config.Config, db *sql.DB, log *slog.Logger, hc *http.Client, budget *clio.Budget) (lookuper, *clioDeps, func(), error) {
	d, err := newClio(ctx, cfg, db, log, hc, budget)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("clio: %w", err)
	}
	svc, err := newClioService(cfg, d, log)
	if err != nil {
		return nil, nil, nil, fmt.Errorf("clio: %w", err)
	}
	if d.mode == clioNone {
		log.Info("clio not configured: caller lookups answer unconfigured")
	} else {
		log.Info("clio lookup ready", "mode", d.mode.String(), "region", d.region)
	}
	return svc, d, func() {}, nil
}

// clioUserFromConfig returns a Clio user's name and phone number from the
// configured connection. It has the shape of cmd_rules.go's clioUserByID hook
// (`rules add --from-clio-user ID`), for the lead to wire.
func clioUserFromConfig(ctx context.Context, cfg *config.Config, id int64) (name, phone string, err error) {
	db, err := openDB(cfg)
	if err != nil {
		return "", "", err
	}
	defer db.Close()
	d, err := newClio(ctx, cfg, db, slog.New(slog.DiscardHandler), nil, nil)
	if err != nil {
		return "", "", err
	}
	if d.mode == clioNone {
		return "", "", errors.New("clio is not connected: run `matterline clio connect` or set clio.access_token")
	}
	users, resp, err := d.client.Users.List(ctx, clio.ListOptions{})
	for page := 1; err == nil; page++ {
		for _, u := range users {
			if u.ID == id {
				return u.Name, u.PhoneNumber, nil
			}
		}
		if resp.NextPage == "" || page >= 50 {
			break
		}
		users, resp, err = d.client.Users.ListNext(ctx, resp.NextPage)
	}
	if err != nil {
		return "", "", fmt.Errorf("list clio users: %w", err)
	}
	return "", "", fmt.Errorf("no clio user with id %d", id)
}

// clioOAuthHandler is the browser side of connecting Clio for the running server:
// mount it on the HTTP mux at clio.StartPath and clio.CallbackPath. The redirect
// URI is clio.redirect_url or http://<http.listen>/oauth/clio/callback. Without app
// credentials it answers 503 with what to configure.
func clioOAuthHandler(ctx context.Context, cfg *config.Config, db *sql.DB, log *slog.Logger) (http.Handler, error) {
	if cfg.Clio.ClientID == "" || cfg.Clio.ClientSecret == "" {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			http.Error(w, "clio.client_id and clio.client_secret are not configured", http.StatusServiceUnavailable)
		}), nil
	}
	st, err := openClioStorage(ctx, db)
	if err != nil {
		return nil, err
	}
	region, err := clio.ParseRegion(cfg.Clio.Region)
	if err != nil {
		return nil, err
	}
	redirect := cfg.Clio.RedirectURL
	if redirect == "" {
		redirect = "http://" + cfg.HTTP.Listen + clio.CallbackPath
	}
	hc := &http.Client{}
	conn, err := clio.NewConnection(clio.ConnectionOptions{Region: region, BaseURL: cfg.Clio.BaseURL,
		ClientID: cfg.Clio.ClientID, ClientSecret: cfg.Clio.ClientSecret, RedirectURL: redirect,
		Storage: st, HTTPClient: hc, Logger: log})
	if err != nil {
		return nil, err
	}
	client, err := clio.NewClient(clio.ClientOptions{Region: region, BaseURL: cfg.Clio.BaseURL, Auth: conn,
		HTTPClient: hc, RequestTimeout: cfg.Clio.RequestTimeout.D()})
	if err != nil {
		return nil, err
	}
	return &clio.OAuthHandler{Conn: conn, Client: client, Logger: log}, nil
}

// startDemoClio starts the sandbox Clio of `matterline demo`: the fake
// (clio/cliotest) seeded with configs/demo/clio.json on a loopback port, and
// points cfg's Clio connection at it with the fixture's static token. It is not
// a real Clio and says so in the log. stop shuts it down.
func startDemoClio(cfg *config.Config, log *slog.Logger) (stop func(), err error) {
	srv, err := startDemoClioServer(cfg, log)
	if err != nil {
		return nil, err
	}
	return srv.Close, nil
}

// startDemoClioServer is startDemoClio returning the fake itself (tests read
// what was written to it).
func startDemoClioServer(cfg *config.Config, log *slog.Logger) (*cliotest.Server, error) {
	fx, err := cliotest.DemoFixture()
	if err != nil {
		return nil, err
	}
	if len(fx.Tokens) == 0 {
		return nil, errors.New("demo clio fixture has no token")
	}
	srv := cliotest.Start(fx, cliotest.Options{})
	cfg.Clio.BaseURL, cfg.Clio.AccessToken = srv.URL, fx.Tokens[0]
	log.Warn("SANDBOX: using the built-in fake Clio with demo data, not a real Clio account",
		"url", srv.URL, "contacts", len(fx.Contacts), "matters", len(fx.Matters), "demo_caller", "+12175552171")
	return srv, nil
}

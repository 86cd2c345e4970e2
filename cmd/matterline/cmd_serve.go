package main

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"runtime/debug"
	"strconv"
	"syscall"
	"time"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/events"
	"github.com/matterline/matterline/hep"
	"github.com/matterline/matterline/httpapi"
	"github.com/matterline/matterline/media"
	"github.com/matterline/matterline/metrics"
	"github.com/matterline/matterline/records"
	"github.com/matterline/matterline/routing"
	"github.com/matterline/matterline/sdnotify"
	"github.com/matterline/matterline/sip"
	"github.com/matterline/matterline/store"
)

func (c *cli) newServeCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "serve",
		Short: "Run the SIP server",
		Long: `Run matterline: SIP on sip.listen, the control API, metrics and health on
http.listen, the rules and records in store.path. SIGTERM drains (new calls
refused, calls in progress may finish up to drain_timeout); SIGINT hangs up at
once; SIGHUP re-reads sip.tls.cert_file and key_file. Logging follows log.level
and log.format.`,
		Example: "  matterline serve -config /etc/matterline/matterline.yaml\n  MATTERLINE_CONFIG=./matterline.yaml matterline serve",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := c.load()
			if err != nil {
				return err
			}
			serveGC()
			return serve(cmd.Context(), c.stdio, cfg, c.src.path, nil)
		},
	}
}

// serveGCPercent is serve's garbage-collection target when GOGC is not set:
// at 2,000 calls/s on 2 cores Go's default (100) put a collection cycle in the
// path of about one INVITE in twenty (bench/callrate.sh, two runs each, with
// the shared pacer: INVITE->200 p95 40-44 ms and p99 72-88 ms; with 400: 4 ms
// and 24 ms, for a peak RSS of 630 MB instead of 490 MB). GOGC in the
// environment (the standard Go setting) wins.
const serveGCPercent = 400

// serveGC sets serve's garbage-collection target (serveGCPercent).
func serveGC() {
	if _, set := os.LookupEnv("GOGC"); !set {
		debug.SetGCPercent(serveGCPercent)
	}
}

// servePlan is what the start-up checks of serve produce for it to use.
type servePlan struct {
	prompts *media.Prompts
	ports   *media.PortAllocator
	sip     sip.Config
}

// checkServe makes every check serve makes before it opens anything, for serve
// and for config check alike: errors (all of them, joined) stop the start;
// warnings go to log. path is the configuration file ("" = embedded defaults).
func checkServe(cfg *config.Config, path string, log *slog.Logger) (servePlan, error) {
	var plan servePlan
	var errs []error
	fail := func(key string, err error) {
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", key, err))
		}
	}
	fail("http.listen", httpapi.CheckListen(cfg.HTTP.Listen, cfg.HTTP.Token))
	if cfg.HTTP.AgentToken != "" {
		fail("http.agent_token", httpapi.CheckListen(cfg.HTTP.Listen, cfg.HTTP.AgentToken))
	}
	if cfg.HTTP.LoopbackOpen {
		log.Warn("http.loopback_open is on: any process on this machine may change rules, transfer and end calls and reconnect Clio without a token")
	}
	var err error
	plan.prompts, err = media.LoadPrompts(cfg.Media.PromptsDir)
	fail("media.prompts_dir", err)
	if lo, hi, err := config.PortRange(cfg.Media.RTPPorts); err != nil {
		fail("media.rtp_ports", err)
	} else {
		plan.ports, err = media.NewPortAllocator(lo, hi, 2*time.Second)
		fail("media.rtp_ports", err)
	}
	if len(cfg.Routing.AllowedDestinations) == 0 {
		log.Warn("routing.allowed_destinations is empty: rules may send calls to any number or SIP URI, including premium-rate and international ones; list the firm's own numbers and extensions to refuse the rest")
	} else {
		log.Info("routing: destinations limited", "allowed_destinations", cfg.Routing.AllowedDestinations)
	}
	if cfg.Clio.AccessToken == "" || cfg.Clio.ClientID != "" {
		if sealer, err := clio.SealerFromEnv(os.Getenv); err != nil {
			errs = append(errs, err)
		} else if sealer == nil {
			log.Warn("no secret key: Clio access and refresh tokens are stored unsealed in the database; set " +
				clio.EnvSecretKey + " or the systemd credential " + clio.CredentialSecretKey + " (docs/clio.md)")
		}
	}
	plan.sip, err = sipConfig(cfg)
	if err != nil {
		errs = append(errs, err)
	}
	errs = append(errs, checkTLS(cfg, log)...)
	warnExposedSecrets(log, path)
	return plan, errors.Join(errs...)
}

// app is a running matterline: what serve started, stopped in reverse order.
type app struct {
	cfg     *config.Config
	log     *slog.Logger
	sip     *sip.Server
	rules   *routing.Store
	calls   *records.CallStore
	msgs    *records.MessageStore
	bus     *events.Bus
	metrics *metrics.Metrics
	trace   *tracer
	httpLn  net.Listener
	notify  *sdnotify.Notifier
	// clioHook receives Clio's webhook deliveries (clio.index with clio.webhook_url).
	clioHook http.Handler
}

// HTTPAddr is the bound HTTP address.
func (a *app) HTTPAddr() string { return a.httpLn.Addr().String() }

// serve runs the server until ctx ends. ready, when set, is called once every
// listener is up (demo prints how to call it).
func serve(ctx context.Context, s stdio, cfg *config.Config, cfgPath string, ready func(*app)) error {
	log := newLogger(cfg.Log, s.err)
	plan, err := checkServe(cfg, cfgPath, log)
	if err != nil {
		return err
	}
	db, err := store.Open(cfg.Store.Path)
	if err != nil {
		return err
	}
	defer db.Close()
	// The rules store keeps one connection for PRAGMA data_version polling.
	db.SetMaxOpenConns(8)

	a := &app{cfg: cfg, log: log, bus: events.NewBus(), metrics: newMetrics(),
		notify: sdnotify.FromEnv()}
	runCtx, stopRun := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRun()

	if a.rules, err = routing.NewStore(runCtx, db, firmOf(cfg), routing.WithLogger(log)); err != nil {
		return err
	}
	defer a.rules.Close()
	go a.rules.Run(runCtx)
	if a.calls, err = records.NewCallStore(runCtx, db); err != nil {
		return err
	}
	// Before any call: a row still in progress was left by a run that stopped
	// without ending its calls (crash, kill -9, power loss).
	if n, err := a.calls.MarkInterrupted(runCtx); err != nil {
		return err
	} else if n > 0 {
		log.Warn("calls cut off by the previous run marked interrupted", "calls", n)
	}
	if a.msgs, err = records.NewMessageStore(runCtx, db, cfg.Transfer.MessagesDir); err != nil {
		return fmt.Errorf("transfer.messages_dir: %w", err)
	}
	// One rate budget per token: it sees every Clio response, and write-back
	// sends only what the lookups leave (clio.Budget).
	budget := clio.NewBudget(clio.BudgetOptions{Reserve: cfg.Clio.Writeback.Reserve})
	clioHTTP := &http.Client{Transport: budget.Transport(clioMetrics{next: http.DefaultTransport, m: a.metrics})}
	lk, clioConn, closeLookup, err := openLookupWith(runCtx, cfg, db, log, clioHTTP, budget)
	if err != nil {
		return err
	}
	defer closeLookup()
	// Started before the SIP server, so stopped after it: the last calls'
	// items are enqueued, and sent on the next start if not now.
	wb, err := startWriteback(runCtx, writebackDeps{cfg: cfg, db: db, clio: clioConn, budget: budget,
		rules: a.rules, metrics: a.metrics, log: log})
	if err != nil {
		return err
	}
	defer wb.Close()
	hook, stopIndexer, err := startIndexer(runCtx, cfg, lk, log)
	if err != nil {
		return err
	}
	defer stopIndexer()
	a.clioHook = hook

	// The trace is switched on to be read: it logs whatever log.level says.
	traceLog := newLogger(config.Log{Level: "debug", Format: cfg.Log.Format}, s.err)
	a.trace = &tracer{log: traceLog}
	if cfg.HEP.Address != "" {
		if a.trace.hep, err = hep.NewExporter(cfg.HEP.Address, cfg.HEP.AgentID,
			hep.ExporterOptions{AuthKey: cfg.HEP.Password, Logger: log}); err != nil {
			return fmt.Errorf("hep.address: %w", err)
		}
		defer a.trace.hep.Close()
		a.metrics.CounterFunc("matterline_hep_dropped_total", "HEP packets dropped (queue full or send error).",
			func() float64 { st := a.trace.hep.Stats(); return float64(st.Dropped + st.Errors) })
	}
	tts, err := media.NewTTS(media.TTSConfig{CacheDir: filepath.Join(filepath.Dir(cfg.Store.Path), "tts-cache")})
	if err != nil {
		return err
	}
	agentOpt, err := agentStreamOption(cfg, log)
	if err != nil {
		return fmt.Errorf("agent.stream_url: %w", err)
	}
	a.sip, err = sip.NewServer(plan.sip, sip.WithLogger(log), sip.WithLookup(lk), sip.WithPorts(plan.ports),
		sip.WithPrompts(plan.prompts), sip.WithRouter(router{store: a.rules, now: time.Now}),
		sip.WithCallRecords(wb.recorder(a.calls)), sip.WithMessages(wb.messages(a.msgs)), sip.WithTTS(tts),
		sip.WithObserver(wb.observer(observer{bus: a.bus, m: a.metrics})), sip.WithTracer(a.trace), agentOpt)
	if err != nil {
		return err
	}
	a.trace.srv = a.sip
	a.trace.Set(cfg.Log.SIPTrace)
	if err := a.sip.Start(runCtx); err != nil {
		return err
	}
	defer a.sip.Close()
	defer reloadOnHangup(a.sip, cfg.SIP.TLS, log)()

	stopHTTP, err := a.startHTTP(runCtx, db)
	if err != nil {
		return err
	}
	defer stopHTTP()

	log.Info("matterline started", "version", version, "sip", a.sip.Addrs(), "http", a.HTTPAddr(),
		"rtp_ports", cfg.Media.RTPPorts, "database", cfg.Store.Path)
	_ = a.notify.Ready("serving")
	if ready != nil {
		ready(a)
	}
	<-ctx.Done()
	a.shutdown(context.Cause(ctx))
	return nil
}

// sipConfig maps the configuration file onto sip.Config.
func sipConfig(cfg *config.Config) (sip.Config, error) {
	trusted, err := config.Prefixes(cfg.SIP.TrustedSources)
	if err != nil {
		return sip.Config{}, fmt.Errorf("sip.trusted_sources: %w", err)
	}
	var ext netip.Addr
	if cfg.SIP.ExternalIP != "" {
		if ext, err = netip.ParseAddr(cfg.SIP.ExternalIP); err != nil {
			return sip.Config{}, fmt.Errorf("sip.external_ip: %w", err)
		}
	}
	referURI, err := sip.ParseReferURIScheme(cfg.SIP.ReferURI)
	if err != nil {
		return sip.Config{}, fmt.Errorf("sip.refer_uri: %w", err)
	}
	mode, err := sip.ParseServerMode(cfg.SIP.Mode)
	if err != nil {
		return sip.Config{}, fmt.Errorf("sip.mode: %w", err)
	}
	fallback, err := sip.ParseTransferFallback(cfg.Transfer.Fallback)
	if err != nil {
		return sip.Config{}, fmt.Errorf("transfer.fallback: %w", err)
	}
	agentMode, err := sip.ParseAgentMode(cfg.Agent.Mode)
	if err != nil {
		return sip.Config{}, fmt.Errorf("agent.mode: %w", err)
	}
	srtpPolicy, err := media.ParseSRTPPolicy(cfg.Media.SRTP)
	if err != nil {
		return sip.Config{}, fmt.Errorf("media.srtp: %w", err)
	}
	return sip.Config{
		OutboundProxy: cfg.SIP.OutboundProxy,
		OutboundAuth: sip.DigestCredentials{Username: cfg.SIP.OutboundAuth.Username,
			Password: cfg.SIP.OutboundAuth.Password, Realm: cfg.SIP.OutboundAuth.Realm},
		TLS: sip.TLSFiles{CertFile: cfg.SIP.TLS.CertFile, KeyFile: cfg.SIP.TLS.KeyFile,
			CAFile: cfg.SIP.TLS.CAFile},
		ServiceNumber:            cfg.SIP.ServiceNumber,
		ReferURI:                 referURI,
		Mode:                     mode,
		TransferFallback:         fallback,
		ReferTimeout:             cfg.Transfer.ReferTimeout.D(),
		MessageMax:               cfg.Transfer.MessageMax.D(),
		MessageSilence:           cfg.Transfer.MessageSilence.D(),
		Listen:                   cfg.SIP.Listen,
		ExternalIP:               ext,
		TrustedSources:           trusted,
		MaxCalls:                 cfg.SIP.MaxCalls,
		InviteRate:               float64(cfg.SIP.InviteRate),
		InviteBurst:              cfg.SIP.InviteBurst,
		TCPMaxConns:              cfg.SIP.TCPMaxConnections,
		TCPMaxPerSource:          cfg.SIP.TCPMaxPerSource,
		TCPMaxPerUntrustedSource: cfg.SIP.TCPMaxPerUntrustedSource,
		TCPIdleTimeout:           cfg.SIP.TCPIdleTimeout.D(),
		TCPUntrustedIdleTimeout:  cfg.SIP.TCPUntrustedIdleTimeout.D(),
		TCPFirstMessageTimeout:   cfg.SIP.TCPFirstMessageTimeout.D(),
		RTPInactivity:            cfg.Media.RTPTimeout.D(),
		SRTP:                     srtpPolicy,
		AnswerWait:               cfg.Clio.AnswerWait.D(),
		LookupTimeout:            cfg.Clio.LookupTimeout.D(),
		Menu:                     cfg.IVR.Menu,
		MenuTimeout:              cfg.IVR.Timeout.D(),
		MenuAttempts:             cfg.IVR.Attempts,
		SessionExpires:           cfg.SIP.SessionExpires.D(),
		UserAgent:                "matterline/" + version,
		AgentURI:                 cfg.Agent.URI,
		AgentMode:                agentMode,
	}, nil
}

// startHTTP serves the control API, metrics, health and the Clio OAuth pages on
// http.listen.
func (a *app) startHTTP(ctx context.Context, db *sql.DB) (stop func(), err error) {
	ln, err := net.Listen("tcp", a.cfg.HTTP.Listen)
	if err != nil {
		return nil, fmt.Errorf("http.listen: %w", err)
	}
	// The default OAuth redirect URI names the port actually bound (http.listen
	// may say port 0, as the demo does when 8080 is taken).
	ocfg := *a.cfg
	ocfg.HTTP.Listen = boundListen(a.cfg.HTTP.Listen, ln.Addr())
	oauth, err := clioOAuthHandler(ctx, &ocfg, db, a.log)
	if err != nil {
		_ = ln.Close()
		return nil, err
	}
	a.httpLn = ln
	api := httpapi.New(httpapi.Options{
		Token:        a.cfg.HTTP.Token,
		AgentToken:   a.cfg.HTTP.AgentToken,
		AllowedHosts: allowedHosts(a.cfg),
		Listen:       ocfg.HTTP.Listen,
		LoopbackOpen: a.cfg.HTTP.LoopbackOpen,
		Calls:        callsAPI{srv: a.sip},
		Rules:        httpapi.RuleStore{Store: a.rules},
		CDR:          cdrAPI{store: a.calls},
		Messages:     messagesAPI{store: a.msgs},
		Events:       a.bus,
		Health:       a.sip,
		SIPTrace:     a.trace,
		Metrics:      a.metrics.Handler(),
		ClioConnect:  oauth,
		ClioWebhook:  a.clioHook,
		Logger:       a.log,
		Zone:         a.rules.Rules().Zone(),
	})
	hs := &http.Server{Handler: api, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	hs.RegisterOnShutdown(api.Close)
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := hs.Serve(a.httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.log.Error("http server stopped", "err", err)
		}
	}()
	return func() {
		sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		_ = hs.Shutdown(sctx)
		<-done
	}, nil
}

// allowedHosts is http.allowed_hosts plus the host of clio.redirect_url: Clio
// sends the browser back to that name, so it must pass the Host check.
func allowedHosts(cfg *config.Config) []string {
	hosts := append([]string(nil), cfg.HTTP.AllowedHosts...)
	if u, err := url.Parse(cfg.Clio.RedirectURL); err == nil && u.Host != "" {
		hosts = append(hosts, u.Host)
	}
	// Clio's webhook deliveries name the public host of clio.webhook_url.
	if u, err := url.Parse(cfg.Clio.WebhookURL); err == nil && u.Host != "" && cfg.Clio.Index {
		hosts = append(hosts, u.Host)
	}
	return hosts
}

// boundListen is the configured listen address with the port the listener
// actually got.
func boundListen(configured string, bound net.Addr) string {
	host, _, err := net.SplitHostPort(configured)
	tcp, ok := bound.(*net.TCPAddr)
	if err != nil || !ok {
		return configured
	}
	return net.JoinHostPort(host, strconv.Itoa(tcp.Port))
}

// shutdown drains on SIGTERM (INVITE and OPTIONS get 503, /healthz says draining,
// calls may finish up to drain_timeout, then BYE) and hangs up at once on SIGINT
// or any other cause.
func (a *app) shutdown(cause error) {
	var sc signalCause
	bg := context.Background()
	_ = a.notify.Stopping("stopping")
	if errors.As(cause, &sc) && sc.sig == syscall.SIGTERM {
		a.log.Info("draining", "calls", a.sip.Registry().Count(), "timeout", a.cfg.DrainTimeout.D())
		a.sip.Drain(bg, a.cfg.DrainTimeout.D())
	} else {
		a.log.Info("hanging up all calls", "calls", a.sip.Registry().Count(), "cause", cause)
		a.sip.HangupAll(bg)
	}
	a.log.Info("stopped")
}

// warnExposedSecrets warns when the configuration file holds a secret and can be
// read by its group or by others (path "" = embedded defaults: nothing to check).
func warnExposedSecrets(log *slog.Logger, path string) {
	if path == "" {
		return
	}
	keys, perm, err := config.ExposedSecrets(path)
	if err != nil {
		log.Warn("config file permissions not checked", "err", err)
		return
	}
	if len(keys) > 0 {
		log.Warn("config file holding secrets is readable by other users: chmod 600 it, or move the secrets to the environment or systemd credentials",
			"file", path, "mode", fmt.Sprintf("%04o", perm), "keys", keys)
	}
}

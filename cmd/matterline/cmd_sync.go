package main

// The local phone index (clio.index): `matterline clio sync`, opening the
// index for lookups, and the server's background indexer (full pass, poll,
// webhooks).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/clio"
	"github.com/matterline/matterline/config"
)

func (c *cli) newClioSyncCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "sync [--json]",
		Short: "Build the local phone index from Clio",
		Long: `Read every Clio contact's phone numbers and every open matter into the local
phone index (clio.index), 200 records a request, one request at a time. Each
page is stored with its cursor: a sync cut off (Ctrl-C, an error) resumes where
it stopped. Contacts deleted in Clio leave the index at the end of the pass.
Progress goes to stderr when it is a terminal; --json prints a summary object.`,
		Example: "  matterline clio sync\n  matterline clio sync --json",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.clioSync(cmd.Context(), asJSON)
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "print a JSON summary")
	return cmd
}

// syncSummary is `clio sync --json`.
type syncSummary struct {
	clio.SyncResult
	TookMS int64 `json:"took_ms"`
	Ready  bool  `json:"ready"`
	// IndexOn is clio.index: lookups use the index only when it is true.
	IndexOn bool `json:"index_enabled"`
}

func (c *cli) clioSync(ctx context.Context, asJSON bool) error {
	s := c.stdio
	env, err := c.openClioEnv(ctx, dbCreate)
	if err != nil {
		return err
	}
	defer env.done()
	if env.deps.client == nil {
		return errors.New("clio is not connected: run `matterline clio connect` or set clio.access_token")
	}
	ix := env.deps.index
	if ix == nil {
		if ix, err = openClioIndex(ctx, env.cfg, env.deps, env.log); err != nil {
			return err
		}
	}
	var progress func(clio.SyncProgress)
	if isTerminal(s.err) {
		progress = func(p clio.SyncProgress) {
			total := ""
			if p.Total > 0 {
				total = fmt.Sprintf(" of %d", p.Total)
			}
			n := p.Contacts
			if p.Phase == clio.PhaseMatters {
				n = p.Matters
			}
			fmt.Fprintf(s.err, "\r\033[Ksyncing %s: %d%s", p.Phase, n, total)
		}
	}
	res, err := ix.Sync(ctx, clio.SyncOptions{Progress: progress})
	if progress != nil {
		fmt.Fprint(s.err, "\r\033[K")
	}
	if err != nil {
		return fmt.Errorf("%w (run `matterline clio sync` again to resume)", err)
	}
	sum := syncSummary{SyncResult: res, TookMS: res.Took.Milliseconds(), Ready: ix.Ready(), IndexOn: env.cfg.Clio.Index}
	if asJSON {
		return writeJSONOut(s.out, sum)
	}
	resumed := ""
	if res.Resumed {
		resumed = " (resumed)"
	}
	fmt.Fprintf(s.out, "Synced%s: %d contacts, %d matters, %d numbers, %d removed, %d requests in %s.\n",
		resumed, res.Contacts, res.Matters, res.Numbers, res.Removed, res.Requests, res.Took.Round(time.Millisecond))
	if !env.cfg.Clio.Index {
		fmt.Fprintln(s.out, "Note: clio.index is off: lookups do not use the index until it is set to true.")
	}
	return nil
}

// isTerminal reports whether w is a character device (a terminal).
func isTerminal(w io.Writer) bool {
	f, ok := w.(*os.File)
	if !ok {
		return false
	}
	st, err := f.Stat()
	return err == nil && st.Mode()&os.ModeCharDevice != 0
}

// openClioIndex opens the phone index over d with the lookup policy of cfg.
func openClioIndex(ctx context.Context, cfg *config.Config, d *clioDeps, log *slog.Logger) (*clio.Index, error) {
	c := cfg.Clio
	o := clio.IndexOptions{Storage: d.storage, Client: d.client, DefaultCountry: c.DefaultCountry,
		RateLimitReserve: c.RateLimitReserve, Budget: d.budget, Logger: log}
	var err error
	if o.MatterPolicy, o.MatterStatus, o.StaffPreference, err = matterPolicy(c); err != nil {
		return nil, err
	}
	d.index, err = clio.OpenIndex(ctx, o)
	return d.index, err
}

// indexer keeps the server's phone index fresh: it finishes (or resumes) a full
// pass at start, registers and renews the webhooks, polls updated_since every
// clio.index_poll and runs a full pass every clio.index_resync. serve owns it.
type indexer struct {
	cfg  *config.Config
	ix   *clio.Index
	recv *clio.WebhookReceiver // nil without clio.webhook_url
	log  *slog.Logger
}

// startIndexer starts the indexer of lk's index (none when lk has no index).
// hook is the webhook receiver for the HTTP API (nil without webhooks); stop
// ends the goroutines and waits for them.
func startIndexer(ctx context.Context, cfg *config.Config, lk lookuper, log *slog.Logger) (hook http.Handler, stop func(), err error) {
	svc, ok := lk.(*clio.Service)
	if !ok || svc.Index() == nil {
		return nil, func() {}, nil
	}
	in := &indexer{cfg: cfg, ix: svc.Index(), log: log}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{}, 2)
	n := 1
	if cfg.Clio.WebhookURL != "" {
		if in.recv, err = clio.NewWebhookReceiver(ctx, in.ix, clio.WebhookOptions{Logger: log}); err != nil {
			cancel()
			return nil, nil, err
		}
		hook = in.recv
		n++
		go func() { defer func() { done <- struct{}{} }(); in.recv.Run(ctx) }()
	}
	go func() { defer func() { done <- struct{}{} }(); in.run(ctx) }()
	return hook, func() {
		cancel()
		for range n {
			<-done
		}
	}, nil
}

func (in *indexer) run(ctx context.Context) {
	// The first pass (or the rest of an interrupted one), retried until it ends.
	for {
		st, err := in.ix.SyncState(ctx)
		if err == nil && st.CompleteGen > 0 && st.Phase == clio.PhaseIdle {
			break
		}
		if _, err = in.ix.Sync(ctx, clio.SyncOptions{}); err == nil {
			break
		}
		in.log.Warn("clio index sync failed; retrying in 1m", "err", err)
		if !sleep(ctx, time.Minute) {
			return
		}
	}
	in.ensureWebhooks(ctx)
	poll := time.NewTicker(in.cfg.Clio.IndexPoll.D())
	defer poll.Stop()
	full := time.NewTicker(in.cfg.Clio.IndexResync.D())
	defer full.Stop()
	hooks := time.NewTicker(time.Hour)
	defer hooks.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-poll.C:
			if _, err := in.ix.Poll(ctx); err != nil && ctx.Err() == nil {
				in.log.Warn("clio index poll failed", "err", err)
			}
		case <-full.C:
			if _, err := in.ix.Sync(ctx, clio.SyncOptions{}); err != nil && ctx.Err() == nil {
				in.log.Warn("clio index full pass failed (the next one resumes it)", "err", err)
			}
		case <-hooks.C:
			in.ensureWebhooks(ctx)
		}
	}
}

func (in *indexer) ensureWebhooks(ctx context.Context) {
	if in.recv == nil {
		return
	}
	if err := in.ix.EnsureWebhooks(ctx, in.recv, in.cfg.Clio.WebhookURL); err != nil && ctx.Err() == nil {
		in.log.Warn("clio webhooks not registered; the poll keeps the index fresh", "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

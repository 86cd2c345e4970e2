package main

import (
	"context"
	"database/sql"
	"io"
	"log/slog"
	"strings"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/lookup"
	"github.com/matterline/matterline/store"
)

// lookuper is the caller lookup as the commands use it (sip.Lookup has the same shape).
type lookuper interface {
	Lookup(ctx context.Context, callerID string) lookup.Result
}

// openDB opens the configured SQLite database (created 0600).
func openDB(cfg *config.Config) (*sql.DB, error) {
	return store.Open(cfg.Store.Path)
}

// newLogger builds the process logger from the log section.
func newLogger(c config.Log, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(strings.ToUpper(c.Level)))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

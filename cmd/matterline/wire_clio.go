package main

import (
	"context"
	"database/sql"
	"log/slog"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/lookup"
)

// openLookup builds the caller lookup of the configuration: Clio with its SQLite
// cache when a connection is configured, else a lookup that answers unconfigured.
// The returned close func releases it. (Placeholder until the clio package lands.)
func openLookup(ctx context.Context, cfg *config.Config, db *sql.DB, log *slog.Logger) (lookuper, func(), error) {
	return unconfiguredLookup{}, func() {}, nil
}

type unconfiguredLookup struct{}

func (unconfiguredLookup) Lookup(context.Context, string) lookup.Result {
	return lookup.Result{Status: lookup.StatusUnconfigured, Reason: "clio_not_configured"}
}

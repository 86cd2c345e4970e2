package main

// `matterline clio outbox [--json]` and `matterline clio outbox retry ID`: the
// Clio write-back outbox (package writeback).

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/writeback"
)

func (c *cli) newClioOutboxCmd() *cobra.Command {
	var asJSON bool
	var limit int
	outbox := &cobra.Command{
		Use:   "outbox [--json] | outbox retry ID",
		Short: "List the Clio write-back outbox",
		Long: `List what matterline writes back to Clio after calls (clio.writeback.*): one item
per call and kind (communication, time_entry, task, document), newest first, with
its state (pending, done, failed), attempts, the id of the record written in Clio,
and why it failed. A running server sends pending items in the background.`,
		Example: "  matterline clio outbox\n  matterline clio outbox --json\n  matterline clio outbox retry 42",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.clioOutbox(cmd.Context(), asJSON, limit)
		},
	}
	outbox.Flags().BoolVar(&asJSON, "json", false, `print JSON: [{"id","call_id","kind","state","attempts","clio_id","error"}]`)
	outbox.Flags().IntVar(&limit, "limit", 0, "at most this many items (0 = all)")
	retry := &cobra.Command{
		Use:   "retry ID",
		Short: "Put a failed write-back item back to pending",
		Long: `Put the failed outbox item ID back to pending (after granting the missing Clio
permission, for example); a running server sends it within 30 seconds.`,
		Example: "  matterline clio outbox retry 42",
		Args:    wantArgs("ID"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.clioOutboxRetry(cmd.Context(), args[0])
		},
	}
	outbox.AddCommand(retry)
	return outbox
}

func (c *cli) openOutbox(ctx context.Context) (*writeback.Outbox, func(), error) {
	cfg, err := c.load()
	if err != nil {
		return nil, nil, err
	}
	db, err := c.openDB(cfg, dbExisting)
	if err != nil {
		return nil, nil, err
	}
	ob, err := writeback.Open(ctx, db, nil)
	if err != nil {
		db.Close()
		return nil, nil, err
	}
	return ob, func() { db.Close() }, nil
}

func (c *cli) clioOutbox(ctx context.Context, asJSON bool, limit int) error {
	ob, done, err := c.openOutbox(ctx)
	if err != nil {
		return err
	}
	defer done()
	items, err := ob.List(ctx, limit)
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSONOut(c.stdio.out, items)
	}
	if len(items) == 0 {
		fmt.Fprintln(c.stdio.out, "The outbox is empty.")
		return nil
	}
	w := tabwriter.NewWriter(c.stdio.out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, "ID\tCALL\tKIND\tSTATE\tATTEMPTS\tCLIO ID\tERROR")
	for _, it := range items {
		id := "-"
		if it.ClioID != 0 {
			id = strconv.FormatInt(it.ClioID, 10)
		}
		msg := it.Error
		if msg == "" {
			msg = "-"
		}
		fmt.Fprintf(w, "%d\t%s\t%s\t%s\t%d\t%s\t%s\n", it.ID, it.CallID, it.Kind, it.State, it.Attempts, id, msg)
	}
	return w.Flush()
}

func (c *cli) clioOutboxRetry(ctx context.Context, arg string) error {
	id, err := strconv.ParseInt(arg, 10, 64)
	if err != nil || id <= 0 {
		return usagef("ID must be an outbox item id (a positive number), got %q", arg)
	}
	ob, done, err := c.openOutbox(ctx)
	if err != nil {
		return err
	}
	defer done()
	it, err := ob.Retry(ctx, id)
	if errors.Is(err, writeback.ErrNotFailed) {
		return fmt.Errorf("item %d is %s: only failed items can be retried", id, it.State)
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(c.stdio.out, "Item %d (%s of call %s) is pending again.\n", it.ID, it.Kind, it.CallID)
	return nil
}

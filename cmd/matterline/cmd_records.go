package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/config"
	"github.com/matterline/matterline/internal/timeflag"
	"github.com/matterline/matterline/records"
)

func (c *cli) newCallsCmd() *cobra.Command {
	var o callsOptions
	cmd := &cobra.Command{
		Use:   "calls [--since D] [--until T] [--outcome O] [--limit N] [--json]",
		Short: "List call records",
		Long: `List the call records, newest first: time, caller, lookup, rule, outcome, end
reason, ring and talk time. Times are shown in firm.time_zone; --since and
--until take a duration back from now (90m, 24h, 7d, 2w), an RFC 3339 time or
a date (2026-11-24).`,
		Example: "  matterline calls --since 24h\n  matterline calls --outcome message --json --limit 0",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.calls(cmd.Context(), o)
		},
	}
	fs := cmd.Flags()
	fs.StringVar(&o.since, "since", "", "only calls that started within the last `D` (24h, 7d) or since a time (RFC 3339 or a date: 2026-11-24)")
	fs.StringVar(&o.until, "until", "", "only calls that started before `T` (same forms as --since)")
	fs.StringVar(&o.outcome, "outcome", "", "only calls with this `outcome`: "+outcomeList())
	fs.IntVar(&o.limit, "limit", 50, "show at most `N` calls, newest first (0 = all)")
	fs.BoolVar(&o.json, "json", false, "print a JSON array")
	return cmd
}

type callsOptions struct {
	since, until, outcome string
	limit                 int
	json                  bool
}

// calls lists call records.
func (c *cli) calls(ctx context.Context, o callsOptions) error {
	s := c.stdio
	cfg, err := c.load()
	if err != nil {
		return err
	}
	loc := recordsLocation(cfg)
	now := time.Now()
	var f records.Filter
	if f.Since, err = parseRecordsTime(o.since, now, loc); err != nil {
		return usagef("--since: %v", err)
	}
	if f.Until, err = parseRecordsTime(o.until, now, loc); err != nil {
		return usagef("--until: %v", err)
	}
	if f.Outcome, err = records.ParseOutcome(o.outcome); err != nil {
		return usagef("--outcome: %v", err)
	}
	if o.limit < 0 {
		return usagef("--limit must not be negative")
	}
	f.Limit = o.limit

	db, err := c.openDB(cfg, dbExisting)
	if err != nil {
		return err
	}
	defer db.Close()
	calls, err := records.NewCallStore(ctx, db)
	if err != nil {
		return err
	}
	recs, err := calls.List(ctx, f)
	if err != nil {
		return err
	}
	if o.json {
		return recordsWriteJSON(s.out, recs)
	}
	if len(recs) == 0 {
		fmt.Fprintln(s.out, "no call records")
		return nil
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tCALL\tCALLER\tCALLED\tLOOKUP\tRULE\tMODE\tOUTCOME\tEND\tRING\tTALK")
	for _, r := range recs {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n",
			r.Start.In(loc).Format(recordsTimeLayout), shortCallID(r.ID), orDash(r.Caller), orDash(r.Called),
			r.Lookup, orDash(r.Rule), orDash(r.Mode.String()), r.Outcome, callEndText(r),
			callRingText(r), callTalkText(r))
	}
	return tw.Flush()
}

// callEndText is the END column: the end reason, "-" while the call is in progress.
func callEndText(r records.CallRecord) string {
	if r.Outcome == records.OutcomeInProgress && r.EndReason == records.EndUnknown {
		return "-"
	}
	return r.EndReason.String()
}

// callRingText and callTalkText are the RING and TALK columns; "-" when the end
// they need is unknown (a call in progress or interrupted).
func callRingText(r records.CallRecord) string {
	if r.Answer.IsZero() && r.End.IsZero() {
		return "-"
	}
	return recordsDuration(r.RingDuration())
}

func callTalkText(r records.CallRecord) string {
	if r.End.IsZero() {
		return "-"
	}
	return recordsDuration(r.TalkDuration())
}

func (c *cli) newMessagesCmd() *cobra.Command {
	var o messagesOptions
	list := &cobra.Command{
		Use:     "list [--since D] [--limit N] [--json]",
		Short:   "List recorded messages",
		Long:    "List the messages callers left, newest first, with caller, Clio contact and matter, rule, duration and file.",
		Example: "  matterline messages list --since 7d\n  matterline messages list --json",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.messages(cmd.Context(), "list", 0, o)
		},
	}
	list.Flags().StringVar(&o.since, "since", "", "only messages recorded within the last `D` (24h, 7d) or since a time")
	list.Flags().IntVar(&o.limit, "limit", 50, "show at most `N` messages, newest first (0 = all)")
	list.Flags().BoolVar(&o.json, "json", false, "print JSON")
	show := &cobra.Command{
		Use:     "show ID [--json]",
		Short:   "Show one message and where its recording is",
		Long:    "Show one message (ID from messages list) and the absolute path of its WAV file, or that the file is missing.",
		Example: "  matterline messages show 12",
		Args:    messageIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.messages(cmd.Context(), "show", messageID(args), o)
		},
	}
	show.Flags().BoolVar(&o.json, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:     "rm ID",
		Short:   "Delete a message and its recording",
		Long:    "Delete one message (ID from messages list) and its WAV file.",
		Example: "  matterline messages rm 12",
		Args:    messageIDArg,
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.messages(cmd.Context(), "rm", messageID(args), o)
		},
	}
	return c.group("messages", "Recorded messages: list, show, rm",
		"List, show and delete the messages callers left when nobody answered.",
		"  matterline messages list\n  matterline messages show 12\n  matterline messages rm 12", list, show, rm)
}

type messagesOptions struct {
	since string
	limit int
	json  bool
}

// messageIDArg accepts one message ID, a positive number.
func messageIDArg(cmd *cobra.Command, args []string) error {
	if err := wantArgs("ID")(cmd, args); err != nil {
		return err
	}
	if messageID(args) <= 0 {
		return usagef("bad message ID %q (want a number from messages list)", args[0])
	}
	return nil
}

func messageID(args []string) int64 {
	id, err := strconv.ParseInt(args[0], 10, 64)
	if err != nil {
		return 0
	}
	return id
}

// messages runs messages list, show ID or rm ID.
func (c *cli) messages(ctx context.Context, sub string, id int64, o messagesOptions) error {
	s := c.stdio
	cfg, err := c.load()
	if err != nil {
		return err
	}
	loc := recordsLocation(cfg)
	var f records.MessageFilter
	if f.Since, err = parseRecordsTime(o.since, time.Now(), loc); err != nil {
		return usagef("--since: %v", err)
	}
	if o.limit < 0 {
		return usagef("--limit must not be negative")
	}
	f.Limit = o.limit

	db, err := c.openDB(cfg, dbExisting)
	if err != nil {
		return err
	}
	defer db.Close()
	msgs, err := records.NewMessageStore(ctx, db, cfg.Transfer.MessagesDir)
	if err != nil {
		return err
	}
	switch sub {
	case "list":
		return messagesList(ctx, s, msgs, f, loc, o.json)
	case "show":
		return messagesShow(ctx, s, msgs, id, loc, o.json)
	default:
		return messagesRm(ctx, s, msgs, id)
	}
}

func messagesList(ctx context.Context, s stdio, msgs *records.MessageStore, f records.MessageFilter, loc *time.Location, asJSON bool) error {
	list, err := msgs.List(ctx, f)
	if err != nil {
		return err
	}
	if asJSON {
		return recordsWriteJSON(s.out, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(s.out, "no messages")
		return nil
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tTIME\tCALLER\tCONTACT\tMATTER\tRULE\tDURATION\tFILE")
	for _, m := range list {
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", m.ID, m.Time.In(loc).Format(recordsTimeLayout),
			orDash(m.Caller), clioIDText(m.ContactID), clioIDText(m.MatterID), orDash(m.Rule), recordsDuration(m.Duration), m.File)
	}
	return tw.Flush()
}

// messageDetail is `messages show --json`: the message and where its audio is.
type messageDetail struct {
	records.Message
	// Path is the absolute path of the WAV file, for a player.
	Path string `json:"path"`
	// Exists is false when the file is gone from the messages folder.
	Exists bool `json:"exists"`
}

// MarshalJSON keeps Message's own JSON (duration_seconds) and adds path and exists.
func (d messageDetail) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(d.Message)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return nil, err
	}
	m["path"], m["exists"] = d.Path, d.Exists
	return json.Marshal(m)
}

func messagesShow(ctx context.Context, s stdio, msgs *records.MessageStore, id int64, loc *time.Location, asJSON bool) error {
	m, err := msgs.Get(ctx, id)
	if err != nil {
		return err
	}
	path, err := msgs.Path(m)
	if err != nil {
		return err
	}
	_, statErr := os.Stat(path)
	d := messageDetail{Message: m, Path: path, Exists: statErr == nil}
	if asJSON {
		return recordsWriteJSON(s.out, d)
	}
	tw := tabwriter.NewWriter(s.out, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "id:\t%d\n", m.ID)
	fmt.Fprintf(tw, "time:\t%s\n", m.Time.In(loc).Format(time.RFC3339))
	fmt.Fprintf(tw, "call:\t%s\n", orDash(m.CallID))
	fmt.Fprintf(tw, "caller:\t%s\n", orDash(m.Caller))
	fmt.Fprintf(tw, "clio contact:\t%s\n", clioIDText(m.ContactID))
	fmt.Fprintf(tw, "clio matter:\t%s\n", clioIDText(m.MatterID))
	fmt.Fprintf(tw, "rule:\t%s\n", orDash(m.Rule))
	fmt.Fprintf(tw, "duration:\t%s\n", recordsDuration(m.Duration))
	fmt.Fprintf(tw, "size:\t%d bytes\n", m.Size)
	if d.Exists {
		fmt.Fprintf(tw, "file:\t%s\n", path)
	} else {
		fmt.Fprintf(tw, "file:\t%s (missing)\n", path)
	}
	return tw.Flush()
}

func messagesRm(ctx context.Context, s stdio, msgs *records.MessageStore, id int64) error {
	m, err := msgs.Get(ctx, id)
	if err != nil {
		return err
	}
	if err := msgs.Delete(ctx, id); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "removed message %d and its recording %s\n", id, m.File)
	return nil
}

// parseRecordsTime reads --since/--until: empty (no bound), otherwise any of
// timeflag's forms (the API's ?since= reads the same), local ones in loc.
func parseRecordsTime(s string, now time.Time, loc *time.Location) (time.Time, error) {
	if strings.TrimSpace(s) == "" {
		return time.Time{}, nil
	}
	return timeflag.Parse(s, now, loc)
}

// recordsLocation is the firm's time zone for showing times and reading dates.
func recordsLocation(cfg *config.Config) *time.Location {
	if loc, err := time.LoadLocation(cfg.Firm.TimeZone); err == nil && cfg.Firm.TimeZone != "" {
		return loc
	}
	return time.Local
}

const recordsTimeLayout = "2006-01-02 15:04:05 MST"

func recordsWriteJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("write json: %w", err)
	}
	return nil
}

func outcomeList() string {
	var names []string
	for _, o := range records.Outcomes() {
		names = append(names, o.String())
	}
	return strings.Join(names, ", ")
}

// shortCallID is the first 8 characters of a call id, enough to tell calls apart in a
// table (--json has the whole id).
func shortCallID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return orDash(id)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func clioIDText(id int64) string {
	if id == 0 {
		return "-"
	}
	return strconv.FormatInt(id, 10)
}

// recordsDuration is 0.4s under a minute, 1m35s above.
func recordsDuration(d time.Duration) string {
	if d < time.Minute {
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	return d.Round(time.Second).String()
}

package main

import (
	"context"
	"fmt"
	"os"

	"github.com/spf13/cobra"

	"github.com/matterline/matterline/routing"
)

func (c *cli) newRulesExportCmd() *cobra.Command {
	return &cobra.Command{
		Use:     "export",
		Short:   "Print all rules and closures as YAML",
		Long:    "Print all rules and closures as YAML, in the format rules import reads.",
		Example: "  matterline rules export > rules.yaml",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.rulesExport(cmd.Context())
		},
	}
}

// rulesExport prints all rules and closures as YAML (the import format).
func (c *cli) rulesExport(ctx context.Context) error {
	env, err := c.openRules(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.close()
	b, err := env.store.Export(ctx)
	if err != nil {
		return err
	}
	_, err = c.out.Write(b)
	return err
}

func (c *cli) newRulesImportCmd() *cobra.Command {
	var dry bool
	cmd := &cobra.Command{
		Use:   "import FILE",
		Short: "Replace all rules (and closures) with a YAML file's",
		Long: `Replace all rules with the file's, validated as a whole and written in one
transaction: a file with any error writes nothing and names each bad rule and
field. Closures are replaced too when the file has a closures key, else kept.`,
		Example: "  matterline rules import rules.yaml --dry-run\n  matterline rules import rules.yaml",
		Args:    wantArgs("FILE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.rulesImport(cmd.Context(), args[0], dry)
		},
	}
	cmd.Flags().BoolVar(&dry, "dry-run", false, "validate and show what would change, write nothing")
	return cmd
}

// rulesImport replaces all rules (and closures when the file has the key) with
// the file's, validated as a whole and written in one transaction.
func (c *cli) rulesImport(ctx context.Context, file string, dry bool) error {
	data, err := os.ReadFile(file)
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	access := dbCreate
	if dry {
		access = dbScratch
	}
	env, err := c.openRules(ctx, access)
	if err != nil {
		return err
	}
	defer env.close()
	rules, closures, err := routing.ParseDoc(data, firmOf(env.cfg))
	if err != nil {
		return fmt.Errorf("import %s: nothing written:\n%w", file, err)
	}
	res, err := env.store.Import(ctx, rules, closures, dry)
	if err != nil {
		return fmt.Errorf("import %s: nothing written: %w", file, err)
	}
	verb := "imported"
	if dry {
		verb = "dry run, nothing written: would import"
	}
	cl := "closures kept"
	if res.Closures >= 0 {
		cl = fmt.Sprintf("%d closures", res.Closures)
	}
	fmt.Fprintf(c.out, "%s %d rules (%d added, %d changed, %d removed, %d unchanged), %s\n",
		verb, len(rules), res.Added, res.Changed, res.Removed, res.Unchanged, cl)
	return nil
}

func (c *cli) newClosuresCmd() *cobra.Command {
	var note string
	add := &cobra.Command{
		Use:   "add DATE [--note TEXT]",
		Short: "Close the firm on a date",
		Long: `Close the firm on DATE (YYYY-MM-DD, in each rule's time zone): rules with hours
are unavailable all day. Adding a date that is already closed keeps its note
unless --note is given.`,
		Example: "  matterline closures add 2026-12-25 --note \"Christmas Day\"",
		Args:    wantArgs("DATE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			var notePtr *string
			if cmd.Flags().Changed("note") {
				notePtr = &note
			}
			return c.closuresAdd(cmd.Context(), args[0], notePtr)
		},
	}
	add.Flags().StringVar(&note, "note", "", "what the closure is, e.g. Christmas Day")
	var asJSON bool
	list := &cobra.Command{
		Use:     "list",
		Short:   "List the closures",
		Long:    "List the closed dates with their notes; a stored date that is not valid is shown INVALID.",
		Example: "  matterline closures list\n  matterline closures list --json",
		Args:    wantArgs(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return c.closuresList(cmd.Context(), asJSON)
		},
	}
	list.Flags().BoolVar(&asJSON, "json", false, "print JSON")
	rm := &cobra.Command{
		Use:     "rm DATE",
		Short:   "Remove a closure",
		Long:    "Remove the closure of DATE (YYYY-MM-DD).",
		Example: "  matterline closures rm 2026-12-25",
		Args:    wantArgs("DATE"),
		RunE: func(cmd *cobra.Command, args []string) error {
			return c.closuresRm(cmd.Context(), args[0])
		},
	}
	return c.group("closures", "Manage firm closures (holidays)",
		"Manage the dates the firm is closed: rules with hours are unavailable on them.",
		"  matterline closures add 2026-12-25 --note Christmas\n  matterline closures list", add, list, rm)
}

// closuresAdd adds or updates the closure of date; note nil keeps an existing
// closure's note.
func (c *cli) closuresAdd(ctx context.Context, date string, note *string) error {
	env, err := c.openRules(ctx, dbCreate)
	if err != nil {
		return err
	}
	defer env.close()
	cl := routing.Closure{Date: date}
	if note != nil {
		cl.Note = *note
	} else if d, err := routing.ParseDate(date); err == nil {
		for _, old := range env.store.Rules().Closures() {
			if old.Date == d {
				cl.Note = old.Note
			}
		}
	}
	added, err := env.store.AddClosure(ctx, cl)
	if err != nil {
		return err
	}
	d, _ := routing.ParseDate(date)
	if added {
		fmt.Fprintf(c.out, "added closure %s\n", d)
	} else {
		fmt.Fprintf(c.out, "updated closure %s\n", d)
	}
	return nil
}

func (c *cli) closuresList(ctx context.Context, asJSON bool) error {
	env, err := c.openRules(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.close()
	set := env.store.Rules()
	type closureJSON struct {
		Date  string `json:"date"`
		Note  string `json:"note"`
		Valid bool   `json:"valid"`
		Error string `json:"error,omitempty"`
	}
	out := []closureJSON{}
	for _, c := range set.Closures() {
		out = append(out, closureJSON{Date: c.Date, Note: c.Note, Valid: true})
	}
	for _, st := range set.InvalidClosures() {
		out = append(out, closureJSON{Date: st.Closure.Date, Note: st.Closure.Note, Valid: false, Error: st.Err.Error()})
	}
	if asJSON {
		return writeJSON(c.out, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(c.out, "no closures")
		return nil
	}
	for _, cl := range out {
		if !cl.Valid {
			fmt.Fprintf(c.out, "%s  INVALID: %s\n", cl.Date, cl.Error)
			continue
		}
		fmt.Fprintf(c.out, "%s  %s\n", cl.Date, cl.Note)
	}
	return nil
}

func (c *cli) closuresRm(ctx context.Context, date string) error {
	env, err := c.openRules(ctx, dbExisting)
	if err != nil {
		return err
	}
	defer env.close()
	if err := env.store.DeleteClosure(ctx, date); err != nil {
		return err
	}
	fmt.Fprintf(c.out, "removed closure %s\n", date)
	return nil
}

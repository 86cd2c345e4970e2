package main

import (
	"context"
	"fmt"
	"os"

	"github.com/matterline/matterline/routing"
)

// rulesExport prints all rules and closures as YAML (the import format).
func rulesExport(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules export")
	_, env, err := startRulesCmd(ctx, fs, cfgPath, args)
	if err != nil {
		return err
	}
	defer env.close()
	b, err := env.store.Export(ctx)
	if err != nil {
		return err
	}
	_, err = s.out.Write(b)
	return err
}

// rulesImport replaces all rules (and closures when the file has the key) with
// the file's, validated as a whole and written in one transaction.
func rulesImport(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("rules import")
	dry := fs.Bool("dry-run", false, "validate and show what would change, write nothing")
	pos, err := parseArgs(fs, args)
	if err != nil {
		return err
	}
	if err := positionals(fs, pos, "FILE"); err != nil {
		return err
	}
	data, err := os.ReadFile(pos[0])
	if err != nil {
		return fmt.Errorf("import: %w", err)
	}
	env, err := openRules(ctx, *cfgPath)
	if err != nil {
		return err
	}
	defer env.close()
	rules, closures, err := routing.ParseDoc(data, firmOf(env.cfg))
	if err != nil {
		return fmt.Errorf("import %s: nothing written:\n%w", pos[0], err)
	}
	res, err := env.store.Import(ctx, rules, closures, *dry)
	if err != nil {
		return fmt.Errorf("import %s: nothing written: %w", pos[0], err)
	}
	verb := "imported"
	if *dry {
		verb = "dry run, nothing written: would import"
	}
	cl := "closures kept"
	if res.Closures >= 0 {
		cl = fmt.Sprintf("%d closures", res.Closures)
	}
	fmt.Fprintf(s.out, "%s %d rules (%d added, %d changed, %d removed, %d unchanged), %s\n",
		verb, len(rules), res.Added, res.Changed, res.Removed, res.Unchanged, cl)
	return nil
}

func closuresAdd(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("closures add")
	note := fs.String("note", "", "what the closure is, e.g. Christmas Day")
	pos, env, err := startRulesCmd(ctx, fs, cfgPath, args, "DATE")
	if err != nil {
		return err
	}
	defer env.close()
	added, err := env.store.AddClosure(ctx, routing.Closure{Date: pos[0], Note: *note})
	if err != nil {
		return err
	}
	d, _ := routing.ParseDate(pos[0])
	if added {
		fmt.Fprintf(s.out, "added closure %s\n", d)
	} else {
		fmt.Fprintf(s.out, "updated closure %s\n", d)
	}
	return nil
}

func closuresList(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("closures list")
	asJSON := fs.Bool("json", false, "print JSON")
	_, env, err := startRulesCmd(ctx, fs, cfgPath, args)
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
	if *asJSON {
		return writeJSON(s.out, out)
	}
	if len(out) == 0 {
		fmt.Fprintln(s.out, "no closures")
		return nil
	}
	for _, c := range out {
		if !c.Valid {
			fmt.Fprintf(s.out, "%s  INVALID: %s\n", c.Date, c.Error)
			continue
		}
		fmt.Fprintf(s.out, "%s  %s\n", c.Date, c.Note)
	}
	return nil
}

func closuresRm(ctx context.Context, s stdio, args []string) error {
	fs, cfgPath := newFlags("closures rm")
	pos, env, err := startRulesCmd(ctx, fs, cfgPath, args, "DATE")
	if err != nil {
		return err
	}
	defer env.close()
	if err := env.store.DeleteClosure(ctx, pos[0]); err != nil {
		return err
	}
	fmt.Fprintf(s.out, "removed closure %s\n", pos[0])
	return nil
}

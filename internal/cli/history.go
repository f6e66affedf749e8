package cli

import (
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/client"
	"github.com/spf13/cobra"
)

// historyCmd is `alphaswarm history SERVICE`: the service's spec
// revisions, newest first (GET .../history).
func historyCmd(g *globals) *cobra.Command {
	return &cobra.Command{
		Use:   "history SERVICE",
		Short: "List a service's spec revisions (revision, time, user, run, action, what changed)",
		Long: "List the spec revisions of a service, newest first: every successful deploy, scale, config change\n" +
			"and rollback records one, linked to its ledger run. Env and config values are never shown.\n" +
			"Restore one with `alphaswarm rollback SERVICE --to REVISION`.",
		Args: cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			revs, err := c.History(cmd.Context(), g.target, args[0])
			if err != nil {
				return err
			}
			return p.print(api.HistoryResponse{Revisions: revs}, func(tw *tabwriter.Writer) { historyTable(tw, revs) })
		}),
	}
}

func historyTable(tw *tabwriter.Writer, revs []api.Revision) {
	fmt.Fprintln(tw, "REVISION\tCURRENT\tTIME\tUSER\tRUN\tACTION\tSUMMARY")
	for _, r := range revs {
		cur := ""
		if r.Current {
			cur = "*"
		}
		summary := r.Summary
		if r.Problem != "" && r.Problem != summary && !r.Partial {
			summary += " (cannot be restored: " + r.Problem + ")"
		}
		fmt.Fprintf(tw, "%d\t%s\t%s\t%s\t%s\t%s\t%s\n", r.Revision, dash(cur), r.Time.UTC().Format(time.RFC3339),
			dash(r.User), r.RunID, r.Action, oneLine(summary))
	}
}

// rollbackCmd is `alphaswarm rollback SERVICE [--to REV]` (POST
// .../rollback): an audited operation like deploy, recording a new
// revision with the restored spec.
func rollbackCmd(g *globals) *cobra.Command {
	var wf waitFlags
	var to int
	cmd := &cobra.Command{
		Use:   "rollback SERVICE [--to REVISION]",
		Short: "Restore a recorded spec revision (default: the one before the current)",
		Long: "Restore a spec revision of a service through the audited path (the ledger's intent names both\n" +
			"revisions). The controller first checks that the revision's image and secret references still\n" +
			"resolve on the backend and refuses if not. See the revisions with `alphaswarm history SERVICE`.",
		Args: cobra.ExactArgs(1),
		RunE: g.run(func(cmd *cobra.Command, args []string, c *client.Client, p printer) error {
			res, err := withProgress(cmd, c, g.target, args[0], wf.waits(), func() (api.Result, error) {
				return c.Rollback(wf.ctx(g.ctx(cmd)), g.target, args[0], to)
			})
			if err != nil {
				return err
			}
			if err := printResult(p, res); err != nil {
				return err
			}
			if p.format == "table" && res.Revision > 0 {
				fmt.Fprintf(p.w, "revision %d recorded\n", res.Revision)
			}
			return nil
		}),
	}
	cmd.Flags().IntVar(&to, "to", 0, "the revision to restore (default: the one before the current)")
	wf.register(cmd)
	return cmd
}

package cli

import (
	"encoding/json"
	"fmt"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
	"github.com/spf13/cobra"
)

func newLedgerCmd() *cobra.Command {
	cmd := &cobra.Command{Use: "ledger", Short: "Inspect the workload_runs audit ledger"}
	var url string
	verify := &cobra.Command{
		Use:   "verify",
		Short: "Check the ledger's hash chain; exits non-zero at the first broken row",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			l, err := ledger.Open(cmd.Context(), url)
			if err != nil {
				return err
			}
			defer l.Close()
			res, err := l.Verify(cmd.Context())
			if err != nil {
				return err
			}
			b, _ := json.MarshalIndent(res, "", "  ")
			fmt.Fprintln(cmd.OutOrStdout(), string(b))
			if !res.OK {
				return workload.Errorf(workload.Internal, "ledger chain broken at row %d: %s", res.FirstBroken, res.Reason)
			}
			return nil
		},
	}
	verify.Flags().StringVar(&url, "ledger", envOr("ALPHASWARM_LEDGER", defaultLedgerURL()), "ledger URL (sqlite:PATH or postgres://...)")
	cmd.AddCommand(verify)
	return cmd
}

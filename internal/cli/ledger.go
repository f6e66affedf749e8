package cli

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/workload"
)

func newLedgerCmd(g *globals) *cobra.Command {
	c := &cobra.Command{Use: "ledger", Short: "Inspect the workload_runs audit ledger"}
	c.AddCommand(ledgerVerifyCmd(g), ledgerMigrateCmd())
	return c
}

func ledgerVerifyCmd(g *globals) *cobra.Command {
	var url, cpFile, pubKey string
	cmd := &cobra.Command{
		Use:   "verify",
		Short: "Check the ledger's hash chain (through the server, or directly with --ledger), and its signed checkpoints",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p, err := g.printer(cmd)
			if err != nil {
				return err
			}
			if cpFile != "" || pubKey != "" {
				return verifyCheckpoints(cmd.Context(), p, url, cpFile, pubKey)
			}
			var res api.VerifyResult
			if url != "" {
				l, err := openExistingLedger(cmd.Context(), url)
				if err != nil {
					return err
				}
				defer l.Close()
				lres, err := l.Verify(cmd.Context())
				if err != nil {
					return err
				}
				res = api.VerifyResult(lres)
			} else {
				c, err := g.client()
				if err != nil {
					return err
				}
				if res, err = c.Verify(cmd.Context()); err != nil {
					return err
				}
			}
			if err := p.print(res, func(tw *tabwriter.Writer) {
				if res.OK {
					fmt.Fprintf(tw, "chain OK: %d records, head %s\n", res.Count, res.Head)
				} else {
					fmt.Fprintf(tw, "CHAIN BROKEN at row %d: %s\n", res.FirstBroken, res.Reason)
				}
			}); err != nil {
				return err
			}
			if !res.OK {
				return workload.Errorf(workload.Internal, "ledger chain broken at row %d", res.FirstBroken)
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "ledger", "", "verify this ledger URL directly (sqlite:PATH or postgres://...) instead of asking the server")
	cmd.Flags().StringVar(&cpFile, "checkpoints", "", "also check every checkpoint in this file (checkpoints.jsonl or a JSON-lines export); needs --ledger")
	cmd.Flags().StringVar(&pubKey, "public-key", "", "the checkpoints' public key: ed25519:BASE64, a PEM, or a file holding either (printed by serve at start)")
	return cmd
}

// verifyCheckpoints is `ledger verify --ledger URL --checkpoints F
// --public-key K`: the chain, and every checkpoint in F present in the
// ledger with the same head and halt state. It fails naming the first
// checkpoint that is missing or different.
func verifyCheckpoints(ctx context.Context, p printer, url, file, pubKey string) error {
	switch {
	case url == "":
		return workload.Errorf(workload.InvalidArgument, "--checkpoints needs --ledger: checkpoints are checked against the ledger's own rows")
	case file == "":
		return workload.Errorf(workload.InvalidArgument, "--public-key needs --checkpoints")
	case pubKey == "":
		return workload.Errorf(workload.InvalidArgument, "--checkpoints needs --public-key (serve prints it at start; GET /v1/ledger/checkpoint-key)")
	}
	pub, err := checkpoint.ParsePublicKey(pubKey)
	if err != nil {
		return workload.Errorf(workload.InvalidArgument, "--public-key: %v", err)
	}
	cps, err := checkpoint.ReadFile(file)
	if err != nil {
		return workload.Errorf(workload.InvalidArgument, "--checkpoints %s: %v", file, err)
	}
	l, err := openExistingLedger(ctx, url)
	if err != nil {
		return err
	}
	defer l.Close()
	rep, err := checkpoint.VerifyLedger(ctx, l, cps, pub)
	if err != nil {
		return err
	}
	if err := p.print(rep, func(tw *tabwriter.Writer) {
		fmt.Fprintln(tw, rep.Summary())
		if rep.FirstBad != nil {
			fmt.Fprintf(tw, "first bad checkpoint:\t#%d (row %d, signed %s)\n", rep.FirstBad.Index, rep.FirstBad.Seq, rep.FirstBad.Time.Format("2006-01-02T15:04:05Z07:00"))
			fmt.Fprintf(tw, "problem:\t%s\n", rep.FirstBad.Reason)
		}
		if !rep.Chain.OK {
			fmt.Fprintf(tw, "chain broken at row %d:\t%s\n", rep.Chain.FirstBroken, rep.Chain.Reason)
		}
	}); err != nil {
		return err
	}
	if !rep.OK {
		return workload.Errorf(workload.Internal, "ledger does not verify: %s", rep.Reason)
	}
	return nil
}

// privileged is implemented by ledgers whose connection may hold more than
// the SELECT and INSERT a controller needs (ledger/postgres).
type privileged interface {
	ExcessPrivileges(ctx context.Context) ([]string, error)
}

// granter is implemented by ledgers that can grant a runtime role SELECT
// and INSERT only (ledger/postgres).
type granter interface {
	GrantRuntime(ctx context.Context, role string) error
}

func ledgerMigrateCmd() *cobra.Command {
	var url, grant string
	cmd := &cobra.Command{
		Use:   "migrate",
		Short: "Apply the ledger schema as the owner role, and grant the controller's runtime role INSERT and SELECT only",
		Long: `Apply the ledger's schema migrations with the credentials of --ledger, the role
that will own workload_runs. With --grant-runtime ROLE (PostgreSQL), give ROLE
SELECT and INSERT on workload_runs and SELECT on schema_migrations, and nothing
else: a controller that runs as ROLE cannot UPDATE, DELETE or TRUNCATE rows,
nor ALTER the table to disable its triggers. Run serve with a ledger URL
naming ROLE.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if url == "" {
				return workload.Errorf(workload.InvalidArgument, "--ledger is required (the owner role's URL)")
			}
			l, err := ledger.Open(cmd.Context(), url) // applies the migrations
			if err != nil {
				return err
			}
			defer l.Close()
			fmt.Fprintf(cmd.OutOrStdout(), "ledger %s: schema up to date\n", RedactURL(url))
			if grant == "" {
				return nil
			}
			g, ok := l.(granter)
			if !ok {
				return workload.Errorf(workload.Unsupported, "--grant-runtime: this ledger has no roles (PostgreSQL only)")
			}
			if err := g.GrantRuntime(cmd.Context(), grant); err != nil {
				return err
			}
			fmt.Fprintf(cmd.OutOrStdout(), "role %s: SELECT and INSERT on workload_runs, SELECT on schema_migrations, nothing else\n", grant)
			return nil
		},
	}
	cmd.Flags().StringVar(&url, "ledger", os.Getenv("ALPHASWARM_LEDGER_OWNER"), "ledger URL with the owner role's credentials ($ALPHASWARM_LEDGER_OWNER)")
	cmd.Flags().StringVar(&grant, "grant-runtime", "", "PostgreSQL role the controller runs as: gets INSERT and SELECT only")
	return cmd
}

// warnPrivileges says, at start, when the ledger connection can rewrite
// the ledger (PostgreSQL table owner, superuser, UPDATE/DELETE/TRUNCATE).
func warnPrivileges(ctx context.Context, out io.Writer, log *slog.Logger, l ledger.Ledger) {
	if in, ok := l.(interface{ Inner() ledger.Ledger }); ok {
		l = in.Inner()
	}
	p, ok := l.(privileged)
	if !ok {
		return
	}
	ex, err := p.ExcessPrivileges(ctx)
	if err != nil {
		log.Warn("ledger: could not read the connection's privileges", "err", err)
		return
	}
	if len(ex) > 0 {
		fmt.Fprintf(out, "WARNING: the ledger role can alter the audit table (%s); run `alphaswarm ledger migrate --grant-runtime ROLE` as the owner and serve as ROLE (see README)\n", strings.Join(ex, "; "))
		log.Warn("ledger role can alter the audit table", "privileges", strings.Join(ex, "; "))
	}
}

// Package server is the control plane process, the alphaswarmd binary:
// the serve command, which opens the ledger (with its checkpoints), the
// targets through the registered providers, the token store and the OIDC
// issuers, and serves the HTTP API and the dashboard until a signal.
//
// It is kept apart from internal/cli so that the command-line client links
// none of it: the providers' SDKs, the API server and the dashboard cost
// tens of milliseconds of package initialisation that a client command
// must not pay. `alphaswarm serve` executes this binary (see
// cli.ServerBinary).
package server

import (
	"context"
	"io"
	"os"
	"os/signal"
	"syscall"

	"github.com/spf13/cobra"

	"github.com/alphaswarm/controller/internal/cli"
)

// Main runs the server with the command-line arguments (after the program
// name) and returns the exit code. A first argument "serve" is accepted
// and ignored, so that `alphaswarmd serve --config F` and `alphaswarm
// serve --config F` take the same arguments.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	if len(args) > 0 && args[0] == "serve" {
		args = args[1:]
	}
	cmd := newServeCmd()
	if len(args) > 0 && args[0] == "policy" { // `alphaswarm policy` runs it here (policy.go)
		cmd, args = newPolicyCmd(), args[1:]
	}
	cmd.SetArgs(args)
	cmd.SetOut(stdout)
	cmd.SetErr(stderr)
	if err := cmd.ExecuteContext(ctx); err != nil {
		cli.PrintError(stderr, err)
		return 1
	}
	return 0
}

func newServeCmd() *cobra.Command {
	var f serveFlags
	cmd := &cobra.Command{
		Use:   cli.ServerBinary + " [serve] [flags]",
		Short: "Run the alphaswarm control plane (embedded SQLite ledger and a local docker target by default)",
		Long: `Run the control plane (also run by ` + "`alphaswarm serve`" + `).

With no configuration it keeps an SQLite ledger and a hashed token store in the
data directory ($ALPHASWARM_DATA_DIR, else ~/.local/share/alphaswarm), offers a
"local" docker target when a Docker Engine answers, listens on 127.0.0.1:7070,
and on first start writes an admin token to <data dir>/admin.token (mode 0600).`,
		Args:          cobra.NoArgs,
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       cli.BuildVersion(),
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), cmd.OutOrStdout(), cmd.ErrOrStderr(), f)
		},
	}
	fl := cmd.Flags()
	fl.StringVar(&f.config, "config", os.Getenv("ALPHASWARM_CONFIG"), "YAML config file ($ALPHASWARM_CONFIG)")
	fl.StringVar(&f.ledger, "ledger", os.Getenv("ALPHASWARM_LEDGER"), "ledger URL, overriding the config (sqlite:PATH or postgres://...)")
	fl.StringVar(&f.listen, "listen", os.Getenv("ALPHASWARM_LISTEN"), "listen address, overriding the config (default 127.0.0.1:7070)")
	fl.StringVar(&f.logFormat, "log-format", "text", "log format: text or json")
	fl.BoolVar(&f.acceptBroken, "ledger-accept-broken", false,
		"start read-write on a ledger that does not verify (chain or checkpoints); the decision is recorded in the ledger")
	return cmd
}

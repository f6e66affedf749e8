package cli

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/spf13/cobra"
)

func envOr(name, def string) string {
	if v := os.Getenv(name); v != "" {
		return v
	}
	return def
}

func newServeCmd() *cobra.Command {
	var ledgerURL, listen string
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Run the control plane (embedded SQLite ledger and a local docker target by default)",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return serve(cmd.Context(), cmd, ledgerURL, listen)
		},
	}
	cmd.Flags().StringVar(&ledgerURL, "ledger", envOr("ALPHASWARM_LEDGER", defaultLedgerURL()), "ledger URL (sqlite:PATH or postgres://...)")
	cmd.Flags().StringVar(&listen, "listen", envOr("ALPHASWARM_LISTEN", "127.0.0.1:7070"), "address to listen on")
	return cmd
}

func serve(ctx context.Context, cmd *cobra.Command, ledgerURL, listen string) error {
	creds := credentials.FromEnv()
	log := slog.New(credentials.NewHandler(slog.NewTextHandler(cmd.ErrOrStderr(), nil), creds))
	out := cmd.OutOrStdout()

	led, err := ledger.Open(ctx, ledgerURL)
	if err != nil {
		return fmt.Errorf("opening ledger %s: %w", ledgerURL, err)
	}
	defer led.Close()
	res, err := led.Verify(ctx)
	if err != nil {
		return fmt.Errorf("verifying ledger: %w", err)
	}
	chain := "chain OK"
	if !res.OK {
		chain = fmt.Sprintf("CHAIN BROKEN at row %d: %s", res.FirstBroken, res.Reason)
	}
	fmt.Fprintf(out, "ledger: %s (%d records, %s)\n", ledgerURL, res.Count, chain)
	fmt.Fprintf(out, "providers registered: %s\n", strings.Join(provider.Providers(), ", "))

	var targets []control.Target
	rt, err := control.New(ctx, control.Options{Ledger: led, Targets: targets, Credentials: creds, Logger: log})
	if err != nil {
		return err
	}
	defer rt.Close()
	fmt.Fprintf(out, "targets: %d\n", len(targets))

	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, _ *http.Request) { fmt.Fprintln(w, "ok") })
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Fprintf(out, "listening on http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

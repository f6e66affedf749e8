// Package cli implements the alphaswarm command: `serve` runs the control
// plane; the other commands are clients of its API or, for `ledger verify
// --ledger`, read a ledger directly. It owns flags, output formats and exit
// codes, and never calls a provider except through control.Runtime.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/signal"
	"strings"
	"syscall"

	"github.com/alphaswarm/controller/workload"
	"github.com/spf13/cobra"
)

// Version, when set at build time with -ldflags "-X .../internal/cli.Version=v1.2.3",
// overrides the module version read from the build info (see version.go).
var Version = "dev"

// Main runs the command line and returns the process exit code.
func Main(args []string) int {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	return run(ctx, args, os.Stdout, os.Stderr)
}

// run runs the command line with ctx, which a signal cancels.
func run(ctx context.Context, args []string, stdout, stderr io.Writer) int {
	root := newRoot(stdout, stderr)
	root.SetArgs(args)
	if err := root.ExecuteContext(ctx); err != nil {
		var ec exitCodeError
		if errors.As(err, &ec) {
			return ec.code
		}
		if interrupted(ctx, stderr, err) {
			return 130 // 128 + SIGINT, as shells report an interrupted command
		}
		printError(stderr, err)
		return 1
	}
	return 0
}

// printError writes an error as "code: message" on stderr.
func printError(w io.Writer, err error) {
	var e *workload.Error
	if errors.As(err, &e) {
		fmt.Fprintf(w, "error: %s: %s\n", e.Code, e.Message)
		for _, f := range e.Fields {
			if !strings.Contains(e.Message, f.String()) {
				fmt.Fprintf(w, "  %s: %s\n", f.Path, f.Message)
			}
		}
		printStatusOf(w, e)
		return
	}
	fmt.Fprintf(w, "error: %v\n", err)
}

func newRoot(stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "alphaswarm",
		Short:         "Live workload operations over Docker, Kubernetes, AWS, Azure and GCP, audited in a hash-chained ledger",
		SilenceUsage:  true,
		SilenceErrors: true,
		Version:       readBuildInfo().String(),
	}
	root.SetOut(stdout)
	root.SetErr(stderr)
	g := addClientCommands(root)
	root.AddCommand(newServeCmd(), newLedgerCmd(g), newVersionCmd(), newPolicyCmd())
	return root
}

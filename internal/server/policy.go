package server

import (
	"context"
	"fmt"
	"log/slog"
	"os"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/cli"
	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/policy/opa"
	"github.com/prometheus/client_golang/prometheus"
	"github.com/spf13/cobra"
)

// openPolicy opens the configured policy bundle and keeps it reloaded
// until ctx ends; nil, nil when none is configured.
func openPolicy(ctx context.Context, c *config.Policy, log *slog.Logger, reg prometheus.Registerer) (policy.Evaluator, error) {
	if c == nil {
		return nil, nil
	}
	e, err := opa.Open(ctx, opa.Options{Paths: c.Paths, ReloadInterval: c.ReloadInterval.D(), Logger: log})
	if err != nil {
		return nil, err
	}
	reg.MustRegister(e.Collector())
	go e.Run(ctx)
	log.Info("policy: bundle loaded", "digest", e.Digest(), "files", len(e.Files()))
	return e, nil
}

// roleOn is the principal's role on a target as policies see it.
func roleOn(p control.Principal, target string) string { return string(auth.RoleOn(p, target)) }

func newPolicyCmd() *cobra.Command {
	cmd := &cobra.Command{Use: cli.ServerBinary + " policy", Short: "Work with the admin's Rego policies (policy as code)", SilenceUsage: true, SilenceErrors: true}
	var cfgPath, examples string
	var paths []string
	test := &cobra.Command{
		Use:   "test -f EXAMPLES",
		Short: "Evaluate the policies against example inputs and their expected decisions",
		Long: `Evaluate the policies (--policy, else the config file's policy.paths) against
the examples in a YAML file, each an input and the expected decision:

  examples:
    - name: scaling prod past 20 is denied
      allow: false
      reasons: ["at most 20 replicas"]   # each must be part of some reason
      input: {principal: {user: alice, role: operator}, action: scale,
              target: prod, service: web, request: {replicas: 21},
              time: "2026-12-05T10:00:00Z"}

Exits 0 when every example gets its decision, 1 otherwise. Runs locally (no
server is contacted); deploy/policies has policies and examples to start from.
` + "`alphaswarm policy`" + ` runs this command of ` + cli.ServerBinary + `, which links the policy engine.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if examples == "" {
				return fmt.Errorf("-f EXAMPLES is required")
			}
			if len(paths) == 0 {
				if cfgPath == "" {
					return fmt.Errorf("no policies: give --policy PATH or --config with policy.paths")
				}
				cfg, err := config.Load(cfgPath, cli.DataDir())
				if err != nil {
					return err
				}
				if cfg.Policy == nil {
					return fmt.Errorf("%s has no policy.paths", cfgPath)
				}
				paths = cfg.Policy.Paths
			}
			b, err := os.ReadFile(examples)
			if err != nil {
				return err
			}
			ex, err := policy.DecodeExamples(b)
			if err != nil {
				return err
			}
			e, err := opa.Open(cmd.Context(), opa.Options{Paths: paths, Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				return err
			}
			res, err := policy.Test(cmd.Context(), e, ex)
			if err != nil {
				return err
			}
			out := cmd.OutOrStdout()
			failed := 0
			for _, r := range res {
				if r.Mismatch != "" {
					failed++
					fmt.Fprintf(out, "FAIL  %s: %s\n", r.Name, r.Mismatch)
					continue
				}
				fmt.Fprintf(out, "ok    %s\n", r.Name)
			}
			fmt.Fprintf(out, "%d examples, %d failed; policy %s\n", len(res), failed, e.Digest())
			if failed > 0 {
				return fmt.Errorf("%d of %d examples did not get their expected decision", failed, len(res))
			}
			return nil
		},
	}
	fl := test.Flags()
	fl.StringVarP(&examples, "file", "f", "", "the examples file (YAML)")
	fl.StringSliceVar(&paths, "policy", nil, "policy files or directories (repeatable); default: the config's policy.paths")
	fl.StringVar(&cfgPath, "config", os.Getenv("ALPHASWARM_CONFIG"), "YAML config file ($ALPHASWARM_CONFIG)")
	cmd.AddCommand(test)
	return cmd
}

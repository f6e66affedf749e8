package cli

import (
	"context"
	"fmt"
	"text/tabwriter"
	"time"

	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/workload"
	"github.com/spf13/cobra"
)

// waitFlags are the wait options of the mutating commands that wait for
// the service (deploy, stop, scale, restart, config).
type waitFlags struct {
	wait, noWait bool
	timeout      time.Duration
}

func (w *waitFlags) register(cmd *cobra.Command) {
	f := cmd.Flags()
	f.BoolVar(&w.wait, "wait", true, "wait until the service is ready (or stopped); a rollout that ends Failed exits non-zero")
	f.BoolVar(&w.noWait, "no-wait", false, "return as soon as the backend accepted the change (follow it with status SERVICE --watch)")
	f.DurationVar(&w.timeout, "timeout", 0, "how long to wait, 1s to 1h (default: the server's deadline for the action)")
	cmd.MarkFlagsMutuallyExclusive("wait", "no-wait")
}

// waits reports whether the command waits for the service.
func (w *waitFlags) waits() bool { return w.wait && !w.noWait }

// ctx adds the wait options to ctx when the user set any.
func (w *waitFlags) ctx(ctx context.Context) context.Context {
	if w.waits() && w.timeout == 0 {
		return ctx
	}
	return client.WithWait(ctx, w.waits(), w.timeout)
}

// watchStatus prints every change of the services of target (of one
// service when service is set) as the server reports them. Following one
// service it ends, as `kubectl rollout status` does, when the service is
// Running or Stopped (nil) or Failed (a RolloutFailed error, so the exit
// code says so); otherwise it streams until interrupted.
func watchStatus(cmd *cobra.Command, c *client.Client, p printer, target, service string) error {
	ctx, cancel := context.WithCancel(cmd.Context())
	defer cancel()
	header := false
	for st, err := range c.ServiceEvents(client.WithReconnect(ctx, followReconnect, reconnecting(cmd))) {
		if err != nil {
			if cmd.Context().Err() != nil {
				return nil
			}
			return err
		}
		if (target != "" && st.Target != target) || (service != "" && st.Name != service) {
			continue
		}
		if err := p.record(st, func(tw *tabwriter.Writer) {
			if !header {
				fmt.Fprintln(tw, "TIME\tSERVICE\tPHASE\tREADY\tUPDATED\tREVISION\tMESSAGE")
				header = true
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%d/%d\t%d\t%s\t%s\n", st.ObservedAt.Local().Format("15:04:05"), st.ID, st.Phase,
				st.Replicas.Ready, st.Replicas.Desired, st.Replicas.Updated, dash(st.Revision), oneLine(st.Message))
		}); err != nil {
			return err
		}
		if service == "" {
			continue
		}
		switch st.Phase {
		case workload.Running, workload.Stopped:
			return nil
		case workload.Failed:
			e := workload.Errorf(workload.RolloutFailed, "%s is Failed: %s", st.ID, st.Message)
			e.Status = &st
			return e
		}
	}
	return nil
}

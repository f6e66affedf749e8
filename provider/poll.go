package provider

import (
	"context"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// WaitSettled is the readiness wait of a provider whose backend offers no
// watch: it calls status every interval until the service settles
// (Running, Stopped or Failed) and returns that status. When ctx ends
// first it returns the last status read and no error: the caller (the
// runtime's verdict) judges an unsettled status, not the provider. An
// error from status ends the wait with that error. Under WithoutWait it
// returns the first status without polling.
func WaitSettled(ctx context.Context, interval time.Duration, status func(context.Context) (workload.DeploymentStatus, error)) (workload.DeploymentStatus, error) {
	if !Waits(ctx) {
		return status(ctx)
	}
	t := time.NewTimer(interval)
	defer t.Stop()
	for {
		st, err := status(ctx)
		if err != nil {
			return st, err
		}
		switch st.Phase {
		case workload.Running, workload.Stopped, workload.Failed:
			return st, nil
		}
		t.Reset(interval)
		select {
		case <-ctx.Done():
			return st, nil
		case <-t.C:
		}
	}
}

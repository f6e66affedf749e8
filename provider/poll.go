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

// Recheck runs check at once and then every interval until ctx ends: the
// permission checks a provider repeats because grants change while the
// controller runs. It closes first (when not nil) once the first check has
// returned, and done (when not nil) when it returns itself.
func Recheck(ctx context.Context, interval time.Duration, check func(context.Context), first, done chan struct{}) {
	if done != nil {
		defer close(done)
	}
	t := time.NewTimer(0)
	defer t.Stop()
	for n := 0; ; n++ {
		check(ctx)
		if n == 0 && first != nil {
			close(first)
		}
		t.Reset(interval)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

package provider_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func TestWaitSettled(t *testing.T) {
	boom := errors.New("boom")
	// phases is what successive status calls report; a nil entry past the
	// end repeats the last one.
	tests := []struct {
		name      string
		phases    []workload.Phase
		failAt    int // status call (1-based) that returns boom; 0: none
		noWait    bool
		ctxEnds   bool
		wantPhase workload.Phase
		wantCalls int
		wantErr   error
	}{
		{name: "settles running", phases: []workload.Phase{workload.Progressing, workload.Progressing, workload.Running}, wantPhase: workload.Running, wantCalls: 3},
		{name: "settles stopped", phases: []workload.Phase{workload.Progressing, workload.Stopped}, wantPhase: workload.Stopped, wantCalls: 2},
		{name: "failed settles", phases: []workload.Phase{workload.Pending, workload.Failed}, wantPhase: workload.Failed, wantCalls: 2},
		{name: "degraded keeps polling", phases: []workload.Phase{workload.Degraded, workload.Unknown, workload.Running}, wantPhase: workload.Running, wantCalls: 3},
		{name: "status error ends the wait", phases: []workload.Phase{workload.Progressing, workload.Progressing}, failAt: 2, wantCalls: 2, wantErr: boom},
		{name: "without wait reads once", phases: []workload.Phase{workload.Progressing, workload.Running}, noWait: true, wantPhase: workload.Progressing, wantCalls: 1},
		{name: "deadline returns the last status", phases: []workload.Phase{workload.Progressing}, ctxEnds: true, wantPhase: workload.Progressing},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			if tc.noWait {
				ctx = provider.WithoutWait(ctx)
			}
			if tc.ctxEnds {
				var c2 context.CancelFunc
				ctx, c2 = context.WithTimeout(ctx, 50*time.Millisecond)
				defer c2()
			}
			calls := 0
			st, err := provider.WaitSettled(ctx, time.Millisecond, func(context.Context) (workload.DeploymentStatus, error) {
				calls++
				if calls == tc.failAt {
					return workload.DeploymentStatus{}, boom
				}
				return workload.DeploymentStatus{Phase: tc.phases[min(calls, len(tc.phases))-1]}, nil
			})
			if !errors.Is(err, tc.wantErr) {
				t.Fatalf("err = %v, want %v", err, tc.wantErr)
			}
			if tc.wantErr == nil && st.Phase != tc.wantPhase {
				t.Errorf("phase = %s, want %s", st.Phase, tc.wantPhase)
			}
			if tc.ctxEnds {
				if calls < 2 {
					t.Errorf("status called %d times before the deadline, want it polled", calls)
				}
			} else if calls != tc.wantCalls {
				t.Errorf("status called %d times, want %d", calls, tc.wantCalls)
			}
		})
	}
}

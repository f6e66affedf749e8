package control_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestExecClientGoneIsRecorded: an exec whose client went away (the caller
// cancels with control.ErrClientGone as the cause) is recorded as ended by
// the client: outcome interrupted, no error code, the cause as message —
// not error/unavailable. A cancellation without that cause stays an error.
func TestExecClientGoneIsRecorded(t *testing.T) {
	for _, tc := range []struct {
		name        string
		cause       error
		wantOutcome ledger.Outcome
		wantCode    string
		wantMessage string
	}{
		{"client closed", fmt.Errorf("%w: the client closed the WebSocket (status 1000)", control.ErrClientGone),
			ledger.OutcomeInterrupted, "", "the client ended the session: the client closed the WebSocket (status 1000)"},
		{"other cancellation", nil, ledger.OutcomeError, "*", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mem := providertest.NewMemory("local")
			e := newEnv(t, mem, nil)
			e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
			entered := make(chan struct{})
			mem.Enter = func(ctx context.Context, op provider.Operation, _ string) error {
				if op != provider.OpExec {
					return nil
				}
				close(entered)
				<-ctx.Done()
				return ctx.Err()
			}
			ctx, cancel := context.WithCancelCause(context.Background())
			done := make(chan error, 1)
			go func() {
				_, err := e.rt.Do(ctx, control.Request{Principal: alice, Target: "local", Action: workload.ActionExec, Service: "web",
					Exec: &provider.ExecRequest{Command: []string{"sh"}}})
				done <- err
			}()
			<-entered
			cancel(tc.cause)
			if err := <-done; err == nil {
				t.Fatal("an exec whose session ended before the command reported success")
			}
			recs := e.records(t, ledger.Filter{Service: "web", Action: string(workload.ActionExec), Kind: ledger.KindResult})
			if len(recs) != 1 {
				t.Fatalf("want 1 result row, got %+v", recs)
			}
			r := recs[0]
			if r.Outcome != tc.wantOutcome {
				t.Errorf("outcome %q, want %q (row %+v)", r.Outcome, tc.wantOutcome, r)
			}
			if tc.wantCode == "*" {
				if r.ErrorCode == "" {
					t.Errorf("a failed exec has no error code: %+v", r)
				}
			} else if r.ErrorCode != tc.wantCode {
				t.Errorf("error code %q, want %q", r.ErrorCode, tc.wantCode)
			}
			if tc.wantMessage != "" && r.Message != tc.wantMessage {
				t.Errorf("message %q, want %q", r.Message, tc.wantMessage)
			}
		})
	}
}

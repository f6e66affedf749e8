package control_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestExecDoesNotHoldTheServiceLock: while an exec runs (a forgotten
// shell), a scale and a stop of the same service proceed; the exec is
// still audited with an intent before and a result after, and an
// idempotent retry of the exec with the same key still waits for it and
// replays its answer.
func TestExecDoesNotHoldTheServiceLock(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 2)})

	inExec, release := make(chan struct{}), make(chan struct{})
	mem.Enter = func(ctx context.Context, op provider.Operation, _ string) error {
		if op != provider.OpExec {
			return nil
		}
		select {
		case inExec <- struct{}{}:
		default:
			return nil // a replay must not reach the provider; see below
		}
		select {
		case <-release:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	}
	execReq := control.Request{Action: workload.ActionExec, Service: "web", IdempotencyKey: "exec-1",
		Exec: &provider.ExecRequest{Command: []string{"echo", "hi"}}}
	type answer struct {
		res control.Result
		err error
	}
	done := make(chan answer, 1)
	go func() { r, err := e.do(t, execReq); done <- answer{r, err} }()
	select {
	case <-inExec:
	case <-time.After(10 * time.Second):
		t.Fatal("exec never reached the provider")
	}

	// The exec is inside the provider. Scale and stop must not wait for it.
	for _, r := range []control.Request{
		{Action: workload.ActionScale, Service: "web", Replicas: 3},
		{Action: workload.ActionStop, Service: "web"},
	} {
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
		r.Principal, r.Target = alice, "local"
		_, err := e.rt.Do(ctx, r)
		cancel()
		if err != nil {
			close(release)
			t.Fatalf("%s while an exec runs: %v (it waited for the exec's service lock)", r.Action, err)
		}
	}

	// Recovery (another controller starting) sees the live session's run
	// held and leaves it open, though the service lock is free.
	if n, err := e.rt.Recover(context.Background()); err != nil || n != 0 {
		close(release)
		t.Fatalf("recovery while an exec runs closed %d runs (err %v); the live exec must be left open", n, err)
	}

	// A retry with the same key waits for the running exec (key lock), then replays.
	retry := make(chan answer, 1)
	go func() { r, err := e.do(t, execReq); retry <- answer{r, err} }()
	select {
	case a := <-retry:
		close(release)
		t.Fatalf("a retry with the same idempotency key did not wait for the running exec: %+v %v", a.res, a.err)
	case <-time.After(300 * time.Millisecond):
	}
	close(release)
	first := <-done
	second := <-retry
	// The service was stopped under the exec, so the memory provider
	// answers not_found; what matters is that both answers agree and
	// come from one run.
	if first.res.RunID == "" || first.res.RunID != second.res.RunID {
		t.Fatalf("retry ran again or did not replay: first %+v %v, retry %+v %v", first.res, first.err, second.res, second.err)
	}
	if workload.CodeOf(first.err) != workload.CodeOf(second.err) {
		t.Fatalf("replayed answer differs: %v vs %v", first.err, second.err)
	}
	recs := e.records(t, ledger.Filter{Service: "web", Action: string(workload.ActionExec)})
	var intents, results int
	for _, r := range recs {
		switch r.Kind {
		case ledger.KindIntent:
			intents++
		case ledger.KindResult:
			results++
		}
	}
	if intents != 1 || results != 1 {
		t.Fatalf("exec audit: %d intents, %d results; want 1 and 1", intents, results)
	}
}

// TestExecOrphanIsRecorded: when the session ends before the command, the
// result row says what became of the process (review F1); a provider that
// cannot tell is recorded as unknown, not as ended.
func TestExecOrphanIsRecorded(t *testing.T) {
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
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := e.rt.Do(ctx, control.Request{Principal: alice, Target: "local", Action: workload.ActionExec, Service: "web",
			Exec: &provider.ExecRequest{Command: []string{"echo", "hi"}}})
		done <- err
	}()
	<-entered
	cancel()
	if err := <-done; err == nil {
		t.Fatal("exec whose client left succeeded")
	}
	recs := e.records(t, ledger.Filter{Service: "web", Action: string(workload.ActionExec), Kind: ledger.KindResult})
	if len(recs) != 1 || !strings.Contains(recs[0].Detail, `"orphan":{"ended":false,"detail":"unknown:`) {
		t.Fatalf("result row does not say what became of the process: %+v", recs)
	}
}

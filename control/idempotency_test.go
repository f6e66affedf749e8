package control_test

import (
	"context"
	"errors"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestIdempotencyKeyAcrossServicesConcurrently is the review's F9(a): one
// key, two services, at the same time. Exactly one runs; the other gets a
// conflict that is not retryable.
func TestIdempotencyKeyAcrossServicesConcurrently(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	for _, s := range []string{"a", "b"} {
		e.mustDo(t, control.Request{Action: workload.ActionStart, Service: s, Spec: spec(s, 1)})
	}
	var calls atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error {
		calls.Add(1)
		time.Sleep(100 * time.Millisecond) // both requests are in flight together
		return nil
	}
	var wg sync.WaitGroup
	errs := make([]error, 2)
	for i, s := range []string{"a", "b"} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = e.do(t, control.Request{Action: workload.ActionScale, Service: s, Replicas: 2, IdempotencyKey: "same-key"})
		}()
	}
	wg.Wait()
	if calls.Load() != 1 {
		t.Fatalf("provider called %d times for one idempotency key on two services (errors %v)", calls.Load(), errs)
	}
	var conflict *workload.Error
	for _, err := range errs {
		if err != nil {
			if !errors.As(err, &conflict) || conflict.Code != workload.Conflict {
				t.Fatalf("errors = %v, want one conflict", errs)
			}
		}
	}
	if conflict == nil {
		t.Fatalf("both requests succeeded: %v", errs)
	}
	if conflict.Retryable {
		t.Fatalf("key conflict %+v is retryable; the same request gets the same answer", conflict)
	}
	if n := len(e.records(t, ledger.Filter{IdempotencyKey: "same-key", Kind: ledger.KindIntent})); n != 1 {
		t.Fatalf("%d intents with the key, want 1", n)
	}
}

// failResults makes the ledger refuse result rows while on, the way a full
// disk refused the review's result row (F9b).
type failResults struct {
	ledger.Ledger
	on atomic.Bool
}

func (f *failResults) Append(ctx context.Context, r ledger.Record) (ledger.Record, error) {
	if f.on.Load() && r.Kind == ledger.KindResult {
		return ledger.Record{}, errors.New("database or disk is full")
	}
	return f.Ledger.Append(ctx, r)
}

// TestIdempotencyRetryOfUnfinishedRun: the result of a run could not be
// written; a retry with the same key reports that run instead of running
// the operation again.
func TestIdempotencyRetryOfUnfinishedRun(t *testing.T) {
	base := newEnv(t, nil, nil)
	led := &failResults{Ledger: base.led}
	mem := providertest.NewMemory("local")
	e := newEnvOn(t, led, mem, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	var calls atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error { calls.Add(1); return nil }
	req := control.Request{Action: workload.ActionRestart, Service: "web", IdempotencyKey: "k-full"}
	led.on.Store(true)
	first, err := e.do(t, req)
	if err != nil {
		t.Fatalf("first attempt: %v", err)
	}
	led.on.Store(false)
	again, err := e.do(t, req)
	var we *workload.Error
	if !errors.As(err, &we) || we.Code != workload.Unavailable || we.Retryable {
		t.Fatalf("retry of an unfinished run: %+v, want unavailable, not retryable", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("the operation ran %d times", calls.Load())
	}
	if again.RunID != first.RunID || !again.Replayed {
		t.Fatalf("retry reported %+v, want run %s", again, first.RunID)
	}
}

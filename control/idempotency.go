package control

import (
	"context"
	"fmt"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// lockIdempotencyKey serialises the requests of one principal that carry
// the same Idempotency-Key, whatever service they name, in this process
// and, when the ledger offers locks, across processes. Without it two
// concurrent requests with one key on two services each found no earlier
// run (they hold different service locks) and both ran; with it the second
// finds the first's intent and gets a conflict. It is taken before the
// service lock, always in that order.
func (rt *Runtime) lockIdempotencyKey(ctx context.Context, r *Request) (func(), error) {
	if r.IdempotencyKey == "" {
		return func() {}, nil
	}
	key := "idempotency\x00" + r.Principal.User + "\x00" + r.IdempotencyKey
	return rt.lockAs(ctx, key, fmt.Sprintf("request with idempotency key %q", r.IdempotencyKey),
		fmt.Sprintf("idempotency key %q", r.IdempotencyKey))
}

// keyConflict is the answer to a key reused for a different request. It
// is not retryable: the same request with the same key gets the same
// answer every time.
func keyConflict(key, runID string) error {
	return &workload.Error{Code: workload.Conflict, Retryable: false,
		Message: fmt.Sprintf("idempotency key %q was used for a different request (run %s); use a new key", key, runID)}
}

// unfinishedRun is the answer to a retry of a run whose intent was written
// but whose result was not (the controller died, or the result could not
// be written, e.g. disk full): the operation may have happened, so it is
// not run again. Recovery closes the run as interrupted at the next start;
// until then the same key keeps getting this answer.
func unfinishedRun(intent *ledger.Record) error {
	return &workload.Error{Code: workload.Unavailable, Retryable: false, Message: fmt.Sprintf(
		"run %s with this idempotency key started at %s but its result was never recorded; it is not run again "+
			"(check the service's status; the run is closed as interrupted when the controller restarts)",
		intent.RunID, intent.Time.UTC().Format(time.RFC3339))}
}

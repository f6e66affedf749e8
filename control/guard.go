package control

import (
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// mayAppend asks the ledger whether it takes appends: a ledger whose head
// guard saw tampering, or that was opened read-only because it did not
// verify, refuses every mutating operation with Unavailable naming the
// problem, before the halt check, the lock or the provider. A ledger whose
// appends merely fail (disk full) is not refused here: the intent append
// is the probe that tells when it works again.
func (rt *Runtime) mayAppend() error {
	g, ok := rt.ledger.(ledger.Guarded)
	if !ok || g.HeadWatch() == nil {
		return nil
	}
	if err := g.HeadWatch().Tampered(); err != nil {
		return workload.Errorf(workload.Unavailable, "the audit ledger refuses appends, so the operation was not attempted: %w", err)
	}
	return nil
}

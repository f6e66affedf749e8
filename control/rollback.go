package control

import (
	"context"
	"fmt"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Rollback (issue 20, point 2) is its own workload action, so that the
// ledger says "rollback from 5 to 3" rather than a start that happens to
// match an old spec. It runs the whole pipeline of Do:
//
//	validate (to ≥ 0) → resolve the revision (history.go: its full spec,
//	values unsealed; a revision that does not exist or cannot be restored
//	is invalid_argument on field "to") → halt → admission and policy, as
//	for a start of that spec (today's rules decide, not those of the day
//	it was recorded) → provider.CheckRefs (an image or secret the spec
//	names that no longer resolves refuses the rollback with the
//	provider's error) → lock → intent naming both revisions
//	({"fromRevision":5,"toRevision":3,…}) → provider Start of the spec →
//	result, which records the new revision (6, with 3's spec).
//
// Every refusal before the intent is one rejected row, as for any request.
// The operator role may roll back (internal/auth); a policy sees action
// "rollback" with the restored spec as its request.

// rollbackPlan is what precheck resolved of a rollback.
type rollbackPlan struct {
	from, to int
}

// resolveRollback finds the revision r asks for and sets r.Spec to it.
func (rt *Runtime) resolveRollback(ctx context.Context, r *Request) error {
	e, latest, err := rt.findRevision(ctx, r.Target, r.Service, r.ToRevision, "to")
	if we := workload.AsError(err); err != nil && we.Code == workload.NotFound && len(we.Fields) > 0 {
		return workload.Invalid(we.Fields...) // a revision that does not exist is a bad "to"
	}
	if err != nil {
		return err
	}
	id := workload.ServiceID(r.Target, r.Service)
	if e.n == latest {
		return workload.Invalid(workload.FieldError{Path: "to", Message: fmt.Sprintf(
			"revision %d is the current revision of %s; `alphaswarm restart` replaces its instances", e.n, id)})
	}
	spec, err := rt.fullSpec(r.Target, r.Service, e)
	if err != nil {
		return workload.Invalid(workload.FieldError{Path: "to", Message: fmt.Sprintf("revision %d of %s cannot be restored: %v", e.n, id, err)})
	}
	spec.Target = r.Target
	r.Spec = &spec
	r.rollback = &rollbackPlan{from: latest, to: e.n}
	return nil
}

// checkRefsTimeout bounds the provider's reference check.
const checkRefsTimeout = 30 * time.Second

// checkRollbackRefs asks the provider whether the references of the spec
// a rollback restores still resolve (provider.CheckRefs; nil when the
// provider cannot tell). Its error refuses the rollback, with the
// revision named and the provider's code and fields kept.
func (rt *Runtime) checkRollbackRefs(ctx context.Context, r *Request) error {
	ctx, cancel := context.WithTimeout(ctx, checkRefsTimeout)
	defer cancel()
	err := provider.CheckRefs(ctx, rt.targets[r.Target].Provider, *r.Spec)
	if err == nil {
		return nil
	}
	e := workload.AsError(err)
	out := &workload.Error{Code: e.Code, Provider: e.Provider, Retryable: e.Retryable, Fields: e.Fields, Err: e.Err,
		Message: fmt.Sprintf("revision %d of %s cannot be restored: %s", r.rollback.to, r.key(), e.Message)}
	if out.Provider == "" {
		out.Provider = rt.providerName(r.Target)
	}
	return out
}

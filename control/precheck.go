package control

import (
	"context"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// precheck runs the steps of Do that come before any lock: the principal
// and validation (the only place either is checked),
// the halt switch (fail closed if it cannot be read), admission (the
// target's static policy, admission.go) and the admin's policies
// (policy.go). A refusal is recorded as a
// rejected request. It returns the request's digest.
func (rt *Runtime) precheck(ctx context.Context, r *Request) (string, error) {
	// An unauthenticated request writes nothing (package doc): there is no
	// user to record.
	if r.Principal.User == "" {
		return "", workload.Errorf(workload.Unauthenticated, "no authenticated user")
	}
	err := r.validate()
	if err == nil && (r.Action != workload.ActionHalt || r.scope() != ledger.GlobalScope) {
		_, err = rt.target(r.Target) // every action but a global halt names a configured target
	}
	if err == nil && r.Action == workload.ActionRollback {
		// The revision's spec is what admission and policy judge (rollback.go).
		if err = rt.resolveRollback(ctx, r); workload.CodeOf(err) == workload.Unavailable {
			return "", err
		}
	}
	if err != nil {
		digest := ""
		if r.Action.Mutating() {
			digest = rt.safeDigest(r)
		}
		rt.reject(ctx, r, digest, err)
		return "", rt.redactErr(err)
	}
	digest := rt.digest(r)
	if err := rt.mayAppend(); err != nil {
		return "", err
	}

	// 2. Halt switch (fail closed if it cannot be read). Do checks it in
	// the intent's append instead when the ledger can (haltAtIntent).
	if r.Action != workload.ActionHalt && !r.haltAtIntent {
		halts, err := rt.haltSw.halts(ctx)
		if err != nil {
			return "", workload.Errorf(workload.Unavailable, "ledger unavailable, refusing to operate: %w", err)
		}
		if halts[ledger.GlobalScope] || halts[r.Target] {
			scope := r.Target
			if halts[ledger.GlobalScope] {
				scope = ledger.GlobalScope
			}
			herr := haltedError(scope, r.Target)
			rt.reject(ctx, r, digest, herr)
			return "", herr
		}
	}

	// 2b. Admission: the target's static policy (admission.go).
	if r.Action != workload.ActionHalt {
		if err := admit(rt.targets[r.Target], r); err != nil {
			rt.reject(ctx, r, digest, err)
			return "", rt.redactErr(err)
		}
	}

	// 2c. Policy as code (policy.go).
	if err := rt.decide(ctx, r); err != nil {
		rt.reject(ctx, r, digest, err)
		return "", rt.redactErr(err)
	}

	// 2d. A rollback's references must still resolve (rollback.go).
	if r.Action == workload.ActionRollback {
		if err := rt.checkRollbackRefs(ctx, r); err != nil {
			rt.reject(ctx, r, digest, err)
			return "", rt.redactErr(err)
		}
	}
	return digest, nil
}

// checkProbeTimeout bounds CheckExec's status probe.
const checkProbeTimeout = 30 * time.Second

// CheckExec answers, without running anything, whether Do would start the
// exec r: the request is validated, the halt switch and the target's
// policy are checked, and the provider is asked whether the service exists.
// A refusal is recorded as Do records it. The API calls it before a
// WebSocket upgrade, so that a bad exec gets a plain HTTP error instead of
// an in-band one; Do checks again when it runs. A status probe that fails
// for any reason but not_found does not refuse: Do reports it.
func (rt *Runtime) CheckExec(ctx context.Context, r Request) error {
	r.Action = workload.ActionExec
	digest, err := rt.precheck(ctx, &r)
	if err != nil {
		return err
	}
	sctx, cancel := context.WithTimeout(ctx, checkProbeTimeout)
	defer cancel()
	if _, err := rt.targets[r.Target].Provider.Status(sctx, r.Service); workload.CodeOf(err) == workload.NotFound {
		rt.reject(ctx, &r, digest, err)
		return rt.redactErr(err)
	}
	return nil
}

// haltedError is the refusal of a request on target while scope (the
// target or ledger.GlobalScope) is halted.
func haltedError(scope, target string) error {
	where := "globally"
	if scope != ledger.GlobalScope {
		where = "for target " + target
	}
	return workload.Errorf(workload.Halted, "workload operations are halted %s; an admin can lift it with `alphaswarm halt off`", where)
}

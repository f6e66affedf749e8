package control

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/workload"
)

// Policy as code is the last step of precheck: after validation, the halt
// switch and admission, before any lock or intent, the admin's policies
// (Options.Policy, package policy) decide the request. A deny is
// PermissionDenied with the policies' reasons and one rejected row; an
// allowed request's intent and result rows carry the bundle's digest, so
// the ledger says which policy let each operation through. Without a
// policy nothing here runs. Rows the runtime writes on its own (recovery,
// ledger administration) were decided by no policy and carry no digest.

// policyStatusTimeout bounds the status probe whose answer the policy sees.
const policyStatusTimeout = 10 * time.Second

// decide asks the policy about r and, when it allows, records the
// bundle's digest on r for the rows Do writes.
func (rt *Runtime) decide(ctx context.Context, r *Request) error {
	if rt.policy == nil {
		return nil
	}
	in := rt.policyInput(ctx, r)
	d, err := rt.policy.Evaluate(ctx, in)
	r.policyDigest = d.Digest
	if err != nil {
		rt.log.Error("policy: evaluation failed; the request is refused", "digest", d.Digest, "err", err)
		return workload.Errorf(workload.PermissionDenied, "policy %s could not decide the request (refused): %v", d.Digest, err)
	}
	if !d.Allow {
		return &workload.Error{Code: workload.PermissionDenied,
			Message: fmt.Sprintf("denied by policy %s: %s", d.Digest, strings.Join(d.Reasons, "; "))}
	}
	return nil
}

func (rt *Runtime) policyInput(ctx context.Context, r *Request) policy.Input {
	role := r.Principal.Role
	if rt.roleOn != nil {
		role = rt.roleOn(r.Principal, r.Target)
	}
	in := policy.Input{
		Principal: policy.Principal{User: r.Principal.User, Name: r.Principal.Name, Auth: r.Principal.Auth, Role: role},
		Action:    string(r.Action), Target: r.scope(), Service: r.Service, Time: time.Now().UTC(),
		Request: policy.Request{NoWait: r.NoWait},
	}
	switch r.Action {
	case workload.ActionStart, workload.ActionRollback:
		in.Request = policy.StartRequest(r.Spec)
		in.Request.NoWait = r.NoWait
	case workload.ActionScale:
		in.Request.Replicas = r.Replicas
	case workload.ActionApplyConfig:
		in.Request.ConfigKeys = slices.Sorted(maps.Keys(r.Config))
	case workload.ActionExec:
		in.Request.Exec = &policy.Exec{Argv0: argv0(r.Exec.Command), Argc: len(r.Exec.Command), TTY: r.Exec.TTY}
	case workload.ActionHalt:
		on := r.HaltOn
		in.Request.HaltOn = &on
		return in
	}
	t := rt.targets[r.Target]
	in.Provider = rt.providerName(r.Target)
	if sr, ok := rt.policy.(policy.StatusReader); ok && !sr.NeedsStatus() {
		return in // no policy reads it: no provider round trip
	}
	sctx, cancel := context.WithTimeout(ctx, policyStatusTimeout)
	defer cancel()
	st, err := t.Provider.Status(sctx, r.Service)
	switch {
	case err == nil:
		in.Status = rt.redactStatus(rt.normalise(r.Target, st))
	case workload.CodeOf(err) != workload.NotFound:
		in.StatusError = rt.creds.Redact(workload.AsError(err).Message)
	}
	return in
}

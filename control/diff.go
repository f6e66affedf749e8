package control

import (
	"context"
	"fmt"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Diff previews what a deploy of spec on target would change on the
// backend, in the backend's own terms, and changes nothing (issue 20.1).
//
// It is a read, like Status: it takes no lock, writes no ledger row, and
// neither the halt switch, admission nor the policy hook apply (a halted
// target can still be previewed). Its callers authorise the principal's
// role (viewer, as for every read; the API's route table); Diff only
// refuses an unauthenticated one. The spec is validated and normalised
// exactly as Do validates and normalises a start's, so a spec Diff accepts
// is one deploy would take to the provider, and a bad one is
// invalid_argument with the same field paths. A provider without
// provider.Differ answers unsupported with its reason.
//
// The answer's Target is the target; the provider fills the rest. Every
// registered secret value is redacted from it as from any answer (the
// providers show references, never values; this is the backstop).
func (rt *Runtime) Diff(ctx context.Context, p Principal, target string, spec workload.DeploymentSpec) (workload.Diff, error) {
	if p.User == "" {
		return workload.Diff{}, workload.Errorf(workload.Unauthenticated, "no authenticated user")
	}
	r := Request{Principal: p, Action: workload.ActionStart, Target: target, Service: spec.Name, Spec: &spec}
	if err := r.validate(); err != nil {
		return workload.Diff{}, rt.redactErr(err)
	}
	t, err := rt.target(target)
	if err != nil {
		return workload.Diff{}, err
	}
	d, err := provider.Diff(ctx, t.Provider, r.startSpec())
	if err != nil {
		e := workload.AsError(err)
		if e.Provider == "" {
			e = e.WithProvider(rt.providerName(target))
		}
		return workload.Diff{}, rt.redactErr(e)
	}
	return rt.redactDiff(target, spec.Name, d), nil
}

// startSpec is the spec a start hands its provider: the request's, with
// the target it runs on.
func (r *Request) startSpec() workload.DeploymentSpec {
	spec := *r.Spec
	spec.Target = r.Target
	return spec
}

// redactDiff fills what the runtime owns in a provider's diff (the target,
// and the service and provider when the provider left them empty) and
// scrubs every registered secret value from its text.
func (rt *Runtime) redactDiff(target, service string, d workload.Diff) workload.Diff {
	d.Target = target
	if d.Service == "" {
		d.Service = service
	}
	if d.Provider == "" {
		d.Provider = rt.providerName(target)
	}
	red := rt.creds.Redact
	d.Reason, d.Native = red(d.Reason), red(d.Native)
	changes := make([]workload.Change, 0, len(d.Changes))
	for _, c := range d.Changes {
		c.Path, c.From, c.To = red(c.Path), red(c.From), red(c.To)
		changes = append(changes, c)
	}
	d.Changes = changes
	return d
}

// DiffRevision previews deploying revision rev of a service (its full spec,
// env and config values restored: what a rollback to it would deploy)
// against the live service: the dashboard's "diff against live". A read,
// like Diff. rev 0 is the revision before the current one, as a
// rollback's "to: 0" is (the same lookup); the answer's Revision is the
// revision it resolved to. No such revision is NotFound; one that cannot
// be restored, a negative rev, or 0 for a service with one revision is
// InvalidArgument on field revision.
func (rt *Runtime) DiffRevision(ctx context.Context, p Principal, target, service string, rev int) (workload.Diff, error) {
	if p.User == "" {
		return workload.Diff{}, workload.Errorf(workload.Unauthenticated, "no authenticated user")
	}
	e, _, err := rt.findRevision(ctx, target, service, rev, "revision")
	if err != nil {
		return workload.Diff{}, rt.redactErr(err)
	}
	spec, err := rt.fullSpec(target, service, e)
	if err != nil {
		return workload.Diff{}, workload.Invalid(workload.FieldError{Path: "revision",
			Message: fmt.Sprintf("revision %d of %s cannot be restored: %v", e.n, workload.ServiceID(target, service), err)})
	}
	d, err := rt.Diff(ctx, p, target, spec)
	if err != nil {
		return workload.Diff{}, err
	}
	d.Revision = e.n
	return d, nil
}

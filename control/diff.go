package control

import (
	"context"
	"fmt"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// DiffOptions says how far a diff may go for its caller.
type DiffOptions struct {
	// Admit runs the previewed operation's admission checks and reports
	// their verdict in the diff's Admission. The runtime does not know
	// which role an operation needs (the API's route table does): a
	// caller sets Admit only for a principal whose role on the target may
	// perform the operation, so that nobody learns of a policy's verdict
	// more than trying the operation would tell them. Without it the
	// verdict is unchecked.
	Admit bool
	// Unchecked is the verdict's message when Admit is false (default: a
	// sentence saying the checks run only for a role that may perform the
	// operation).
	Unchecked string
}

// Diff previews what a deploy of spec on target would change on the
// backend, in the backend's own terms, and changes nothing (issue 20.1).
//
// It is a read, like Status: it takes no lock and writes no ledger row,
// and a halted target can still be previewed. Its callers authorise the
// principal's role (viewer, as for every read; the API's route table);
// Diff only refuses an unauthenticated one. The spec is validated and
// normalised exactly as Do validates and normalises a start's, so a spec
// Diff accepts is one deploy would take to the provider, and a bad one is
// invalid_argument with the same field paths. A provider without
// provider.Differ answers unsupported with its reason.
//
// Whether the deploy would be let through is the answer's Admission: with
// o.Admit, the start is put through precheck, the code path of Do before
// any lock (halt switch, the ledger's guard, the target's static policy,
// the admin's policies), as a dry run (Request.dryRun: no rejected row is
// written); a refusal there is reported with the code, message and fields
// Do would return, not as Diff's error. Without o.Admit it is unchecked.
//
// The answer's Target is the target; the provider fills the rest. Every
// registered secret value is redacted from it as from any answer (the
// providers show references, never values; this is the backstop).
func (rt *Runtime) Diff(ctx context.Context, p Principal, target string, spec workload.DeploymentSpec, o DiffOptions) (workload.Diff, error) {
	d, err := rt.diff(ctx, p, target, spec)
	if err != nil {
		return workload.Diff{}, err
	}
	d.Admission = rt.admission(ctx, Request{Principal: p, Action: workload.ActionStart, Target: target, Service: spec.Name, Spec: &spec}, o)
	return d, nil
}

// diff is Diff without the admission check.
func (rt *Runtime) diff(ctx context.Context, p Principal, target string, spec workload.DeploymentSpec) (workload.Diff, error) {
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

// admission puts r through precheck as a dry run (or not at all, without
// o.Admit) and says what Do would answer.
func (rt *Runtime) admission(ctx context.Context, r Request, o DiffOptions) *workload.Admission {
	a := &workload.Admission{Action: r.Action}
	if !o.Admit {
		a.Verdict, a.Message = workload.AdmissionUnchecked, o.Unchecked
		if a.Message == "" {
			a.Message = fmt.Sprintf("not checked: the admission checks of a %s run only for a role that may perform it", r.Action)
		}
		return a
	}
	r.dryRun = true
	if _, err := rt.precheck(ctx, &r); err != nil {
		e := workload.AsError(rt.redactErr(err))
		a.Verdict, a.Code, a.Message = workload.AdmissionRefused, e.Code, e.Message
		paths := make([]string, 0, len(e.Fields))
		for _, f := range e.Fields {
			a.Fields = append(a.Fields, workload.FieldError{Path: f.Path, Message: rt.creds.Redact(f.Message)})
			paths = append(paths, f.Path)
		}
		rt.diffRefused(r, a.Code, a.Message, paths)
		return a
	}
	a.Verdict = workload.AdmissionAllowed
	return a
}

// DiffObserver is implemented by an Observer (Options.Observer) that
// counts the diffs whose admission verdict is refused: a dry run writes no
// ledger row, so this count and the runtime's log line are where repeated
// probing of the policies by one caller shows. target is a configured
// target (a diff of another is not_found before admission) and code a
// workload code: neither carries a request's values. May be called
// concurrently.
type DiffObserver interface {
	DiffRefused(target string, code workload.Code)
}

// diffRefused logs a diff's refused admission verdict (who, what, why —
// the message redacted, as a rejected row's; the fields by path only) and
// counts it when the Observer is a DiffObserver. No ledger row: the
// operation was only previewed.
func (rt *Runtime) diffRefused(r Request, code workload.Code, message string, fields []string) {
	rt.log.Info("diff: admission would refuse", "action", r.Action, "target", r.Target, "service", r.Service,
		"user", r.Principal.User, "auth", r.Principal.Auth, "code", code, "message", message, "fields", fields)
	if o, ok := rt.obs.(DiffObserver); ok {
		o.DiffRefused(r.Target, code)
	}
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
	d.Admission = nil // the runtime's, never a provider's
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
//
// Its Admission judges the rollback to that revision (with o.Admit):
// precheck of the rollback as a dry run, so also whether the revision's
// image and secret references still resolve (provider.CheckRefs), and a
// refusal of the current revision (a rollback to it is refused: restart
// replaces instances) on the rollback's field "to".
func (rt *Runtime) DiffRevision(ctx context.Context, p Principal, target, service string, rev int, o DiffOptions) (workload.Diff, error) {
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
	d, err := rt.diff(ctx, p, target, spec)
	if err != nil {
		return workload.Diff{}, err
	}
	d.Revision = e.n
	// The rollback names the revision found, not rev: 0 would be looked
	// up again, and a revision recorded since would move it.
	d.Admission = rt.admission(ctx, Request{Principal: p, Action: workload.ActionRollback, Target: target, Service: service, ToRevision: e.n}, o)
	return d, nil
}

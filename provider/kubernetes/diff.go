package kubernetes

import (
	"context"
	"fmt"
	"strings"

	"k8s.io/apimachinery/pkg/runtime"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Diff implements provider.Differ the way `kubectl diff --server-side`
// does: it builds the objects Start would apply (the same builders, the
// same plan), applies them with a server-side dry run as the same field
// manager, and compares what the API server would store with the live
// objects. Nothing is written. The API server's defaulting, admission and
// validation take part, and so does RBAC: a dry run needs the verbs the
// write needs, so Diff needs start's permissions and answers
// permission_denied naming a missing one, as start would.
//
// Before comparing, both sides lose what the server maintains
// (managedFields, resourceVersion, generation, uid, creationTimestamp,
// status, the annotations in serverAnnotations); the ConfigMap's values,
// the data of any Secret and the pod template's config checksum are
// replaced by "(set)"/"(changed)" (see redact). Action: create when the
// Deployment does not exist; replace when anything under the Deployment's
// spec.template changes (a rollout: every pod is replaced); update for
// anything else (replicas, labels, the Service, the ConfigMap alone);
// none when the dry run stores what is live.
func (p *Provider) Diff(ctx context.Context, spec workload.DeploymentSpec) (workload.Diff, error) {
	objs, err := p.prepare(&spec)
	if err != nil {
		return workload.Diff{}, err
	}
	if err := p.permittedAs(provider.OpStart, "diff (a server-side dry run of start needs start's permissions)"); err != nil {
		return workload.Diff{}, err
	}
	pl, err := p.plan(ctx, spec, objs)
	if err != nil {
		return workload.Diff{}, err
	}
	dry, err := p.dryRun(ctx, pl)
	if err != nil {
		return workload.Diff{}, err
	}
	return diffPlan(spec.Name, p.opts.Namespace, pl, dry)
}

// diffPlan compares a plan's live objects with the dry run's, Deployment
// first, then the ConfigMap and the Service.
func diffPlan(name, ns string, pl *plan, dry dryRunResult) (workload.Diff, error) {
	d := workload.Diff{Service: name, Provider: Name, Changes: []workload.Change{}}
	pairs := []objectPair{
		{kind: "Deployment", apiVersion: "apps/v1", name: name, live: nilIfNone(pl.deployment), merged: nilIfNone(dry.deployment)},
		{kind: "ConfigMap", apiVersion: "v1", name: configMapName(name), live: nilIfNone(pl.configMap), merged: nilIfNone(dry.configMap)},
		{kind: "Service", apiVersion: "v1", name: name, live: nilIfNone(pl.service), merged: nilIfNone(dry.service)},
	}
	var native strings.Builder
	replaces := false
	for _, op := range pairs {
		changes, text, err := op.diff(ns)
		if err != nil {
			return workload.Diff{}, provider.Errorf(Name, workload.ProviderError, "diff %s/%s: %v", op.kind, op.name, err)
		}
		for _, c := range changes {
			replaces = replaces || c.Replaces
		}
		d.Changes = append(d.Changes, changes...)
		native.WriteString(text)
	}
	d.Native = native.String()
	switch {
	case pl.deployment == nil:
		d.Action = workload.DiffCreate
		d.Reason = fmt.Sprintf("deployment %s does not exist in namespace %s: deploy creates it (with its ConfigMap, and a Service when the spec has ports)", name, ns)
	case replaces:
		d.Action = workload.DiffReplace
		d.Reason = "the pod template (spec.template) changes: the Deployment rolls out a new ReplicaSet and replaces every pod by its rolling-update strategy"
	case len(d.Changes) > 0:
		d.Action = workload.DiffUpdate
		d.Reason = "changed in place: the pod template is unchanged, so no pod is replaced"
	default:
		d.Action = workload.DiffNone
	}
	return d, nil
}

// nilIfNone turns a nil typed pointer into a nil runtime.Object.
func nilIfNone[T any, P interface {
	*T
	runtime.Object
}](o P) runtime.Object {
	if o == nil {
		return nil
	}
	return o
}

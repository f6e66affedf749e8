package providertest

import (
	"context"
	"strconv"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Differ is a Memory that also previews deploys (provider.Differ) and
// checks a spec's references (provider.RefChecker), for tests of the
// layers above providers that need a diff to come back (the plain Memory
// answers unsupported). Its diff compares the image (a change replaces
// the instances) and the replica count (updated in place) with what the
// service was last started with; a service it does not run is a create.
// It reads only: Enter is not called.
type Differ struct {
	*Memory
	// Refs, when set, answers CheckRefs; nil: every reference resolves.
	Refs func(spec workload.DeploymentSpec) error
}

var (
	_ provider.Differ     = (*Differ)(nil)
	_ provider.RefChecker = (*Differ)(nil)
)

// NewDiffer returns an empty Differ for target.
func NewDiffer(target string) *Differ { return &Differ{Memory: NewMemory(target)} }

// Diff implements provider.Differ.
func (d *Differ) Diff(_ context.Context, spec workload.DeploymentSpec) (workload.Diff, error) {
	if err := spec.Validate(); err != nil {
		return workload.Diff{}, err
	}
	out := workload.Diff{Target: d.Target, Service: spec.Name, Provider: d.Name, Action: workload.DiffNone, Changes: []workload.Change{}}
	d.mu.Lock()
	s, ok := d.services[spec.Name]
	var image string
	var replicas int
	if ok {
		image, replicas = s.spec.Image, s.desired
	}
	d.mu.Unlock()
	if !ok {
		out.Action = workload.DiffCreate
		out.Changes = append(out.Changes, workload.Change{Path: "image", To: spec.Image},
			workload.Change{Path: "replicas", To: strconv.Itoa(spec.Replicas)})
		return out, nil
	}
	if replicas != spec.Replicas {
		out.Action = workload.DiffUpdate
		out.Changes = append(out.Changes, workload.Change{Path: "replicas", From: strconv.Itoa(replicas), To: strconv.Itoa(spec.Replicas)})
	}
	if image != spec.Image {
		out.Action = workload.DiffReplace
		out.Changes = append(out.Changes, workload.Change{Path: "image", From: image, To: spec.Image, Replaces: true})
	}
	return out, nil
}

// CheckRefs implements provider.RefChecker.
func (d *Differ) CheckRefs(_ context.Context, spec workload.DeploymentSpec) error {
	if d.Refs == nil {
		return nil
	}
	return d.Refs(spec)
}

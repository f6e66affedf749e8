package provider

import (
	"context"
	"fmt"

	"github.com/alphaswarm/controller/workload"
)

// Differ previews Start: what deploying spec would change on the backend,
// in the backend's own terms (see workload.Diff), without changing
// anything. A service the backend does not know is a DiffCreate diff, not
// NotFound. It is a read: the runtime does not lock or audit it.
type Differ interface {
	Diff(ctx context.Context, spec workload.DeploymentSpec) (workload.Diff, error)
}

// RefChecker says whether what a spec refers to still resolves on the
// backend: its image (where the backend can tell without pulling) and each
// secret reference. It returns nil, or a *workload.Error with code
// NotFound (or PermissionDenied) whose Fields name the spec path of the first
// reference that does not resolve ("image", "secrets[1].from") and whose
// message names the reference, never a secret value. Rollback calls it
// before restoring an old revision.
type RefChecker interface {
	CheckRefs(ctx context.Context, spec workload.DeploymentSpec) error
}

// Diff previews through p's Differ, or returns Unsupported.
func Diff(ctx context.Context, p Provider, spec workload.DeploymentSpec) (workload.Diff, error) {
	d, ok := p.(Differ)
	if !ok {
		return workload.Diff{}, ErrUnsupported(NameOf(p), "diff", fmt.Sprintf("the %s provider does not implement diff", NameOf(p)))
	}
	return d.Diff(ctx, spec)
}

// CheckRefs checks through p's RefChecker; a provider without one cannot
// tell, and CheckRefs returns nil (rollback then finds out from Start).
func CheckRefs(ctx context.Context, p Provider, spec workload.DeploymentSpec) error {
	if c, ok := p.(RefChecker); ok {
		return c.CheckRefs(ctx, spec)
	}
	return nil
}

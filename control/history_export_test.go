package control

import (
	"context"

	"github.com/alphaswarm/controller/workload"
)

// RevisionSpec exposes revisionSpec to the external tests.
func (rt *Runtime) RevisionSpec(ctx context.Context, target, service string, rev int) (workload.DeploymentSpec, error) {
	return rt.revisionSpec(ctx, target, service, rev)
}

package client

import (
	"context"

	"github.com/alphaswarm/controller/workload"
)

// Diff previews what deploying spec on target would change, changing
// nothing (POST .../services/{spec.Name}/diff; viewer). A provider that
// cannot preview answers an Unsupported *workload.Error.
func (c *Client) Diff(ctx context.Context, target string, spec workload.DeploymentSpec) (workload.Diff, error) {
	var d workload.Diff
	return d, c.do(ctx, "POST", svc(target, spec.Name)+"/diff", nil, spec, &d)
}

package client

import (
	"context"
	"net/url"
	"strconv"

	"github.com/alphaswarm/controller/workload"
)

// Diff previews what deploying spec on target would change, changing
// nothing (POST .../services/{spec.Name}/diff; viewer). A provider that
// cannot preview answers an Unsupported *workload.Error. Whether the
// deploy would be let through is the answer's Admission (d.Refused()):
// a refusal there is not an error of Diff; a caller whose role may not
// deploy gets it unchecked.
func (c *Client) Diff(ctx context.Context, target string, spec workload.DeploymentSpec) (workload.Diff, error) {
	var d workload.Diff
	return d, c.do(ctx, "POST", svc(target, spec.Name)+"/diff", nil, spec, &d)
}

// DiffRevision previews deploying revision rev of a service (what a
// rollback to it would deploy) against the live service (POST
// .../diff?revision=N; viewer). rev 0 is the revision before the current
// one, as Rollback's to 0; the answer's Revision says which it was.
func (c *Client) DiffRevision(ctx context.Context, target, service string, rev int) (workload.Diff, error) {
	var d workload.Diff
	return d, c.do(ctx, "POST", svc(target, service)+"/diff", url.Values{"revision": {strconv.Itoa(rev)}}, nil, &d)
}

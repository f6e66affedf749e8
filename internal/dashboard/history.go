package dashboard

import (
	"net/http"
	"net/url"
	"strconv"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/workload"
)

// A service's history (issue 20.4): its spec revisions from GET
// .../history, a rollback control per revision for the callers whose role
// on the target may roll back (the API refuses everyone else anyway), and
// the diff of a revision against the live service from POST
// .../diff?revision=N. Neither fragment shows a spec: a revision is its
// number, time, user, run, action, image and the API's summary, and a diff
// is what the provider reports (secret references, config values only as
// "(set)"/"(changed)"/"(removed)").

// rollbackRole is the role POST .../rollback needs (the API's route table).
const rollbackRole = auth.RoleOperator

type historyView struct {
	Target, Service string
	Revisions       []api.Revision
	// CanRollback: the caller's role on the target may roll back.
	CanRollback bool
	// Note says why there is no history to show (the ledger keeps none).
	Note string
}

// Restorable reports whether rev is one a rollback can restore: not the
// current one, complete, and without a problem.
func (v historyView) Restorable(rev api.Revision) bool {
	return !rev.Current && !rev.Partial && rev.Problem == ""
}

// principal is the caller as /v1/whoami reports it, target roles included.
func (c *apiClient) principal() (control.Principal, error) {
	var p control.Principal
	return p, c.get("/v1/whoami", nil, &p)
}

func (d *Dashboard) loadHistory(c *apiClient, r *http.Request) (any, error) {
	target, service := r.PathValue("target"), r.PathValue("service")
	p, err := c.principal()
	if err != nil {
		return nil, err
	}
	v := historyView{Target: target, Service: service, CanRollback: auth.RoleOn(p, target).Allows(rollbackRole)}
	var h api.HistoryResponse
	if err := c.get(svcPath(target, service)+"/history", nil, &h); err != nil {
		if workload.CodeOf(err) != workload.Unsupported {
			return nil, err
		}
		v.Note = workload.AsError(err).Message
	}
	v.Revisions = h.Revisions
	return v, nil
}

type diffView struct {
	Revision int
	D        workload.Diff
}

// loadDiff previews deploying revision N (?revision=N; 0: the one before
// the current one) of the service: what rolling back to it would change on
// the backend now, and whether the rollback would be let through (the
// API's admission verdict: checked for the roles that may roll back,
// unchecked for the others).
func (d *Dashboard) loadDiff(c *apiClient, r *http.Request) (any, error) {
	target, service := r.PathValue("target"), r.PathValue("service")
	rev, err := strconv.Atoi(r.URL.Query().Get("revision"))
	if err != nil || rev < 0 {
		return nil, workload.Invalid(workload.FieldError{Path: "revision", Message: "must be a revision number (1 or more), or 0 for the revision before the current one"})
	}
	var diff workload.Diff
	if err := c.call(http.MethodPost, svcPath(target, service)+"/diff", url.Values{"revision": {strconv.Itoa(rev)}}, &diff); err != nil {
		return nil, err
	}
	return diffView{Revision: diff.Revision, D: diff}, nil
}

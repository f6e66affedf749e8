package dashboard

import (
	"bytes"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// fragment serves an HTML fragment rendered from what load fetched from
// the API with the caller's token. Errors are the API's envelopes.
func (d *Dashboard) fragment(name string, load func(c *apiClient, r *http.Request) (any, error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c, err := d.client(r)
		if err != nil {
			writeError(w, err)
			return
		}
		data, err := load(c, r)
		if err != nil {
			writeError(w, err)
			return
		}
		var buf bytes.Buffer
		if err := d.frags.ExecuteTemplate(&buf, name, data); err != nil {
			d.log.Error("dashboard: rendering fragment", "fragment", name, "err", err)
			writeError(w, workload.Errorf(workload.Internal, "rendering %s failed", name))
			return
		}
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		w.Header().Set("Cache-Control", "no-store")
		w.Write(buf.Bytes())
	})
}

func (c *apiClient) targets() ([]control.TargetInfo, error) {
	var ts []control.TargetInfo
	return ts, c.get("/v1/targets", nil, &ts)
}

func svcPath(target, service string) string {
	return "/v1/targets/" + url.PathEscape(target) + "/services/" + url.PathEscape(service)
}

// --- services -------------------------------------------------------------

type servicesView struct {
	Rows []serviceRow
	// Problems are targets whose services could not be listed; Notes are
	// targets whose provider cannot list at all.
	Problems, Notes []string
}

type serviceRow struct {
	S    workload.DeploymentStatus
	Last *ledger.Record
}

// lastChanges maps service ids to their latest result record, from the
// newest n results in the ledger.
func (c *apiClient) lastChanges(n int) (map[string]*ledger.Record, error) {
	var page ledger.Page
	if err := c.get("/v1/runs", url.Values{"kind": {"result"}, "order": {"desc"}, "limit": {fmt.Sprint(n)}}, &page); err != nil {
		return nil, err
	}
	out := map[string]*ledger.Record{}
	for i := range page.Records {
		rec := &page.Records[i]
		id := workload.ServiceID(rec.Target, rec.Service)
		if _, seen := out[id]; !seen && rec.Service != "" {
			out[id] = rec
		}
	}
	return out, nil
}

func (d *Dashboard) loadServices(c *apiClient, _ *http.Request) (any, error) {
	ts, err := c.targets()
	if err != nil {
		return nil, err
	}
	last, err := c.lastChanges(ledger.MaxLimit)
	if err != nil {
		return nil, err
	}
	v := servicesView{}
	for _, t := range ts {
		var sts []workload.DeploymentStatus
		if err := c.get("/v1/targets/"+url.PathEscape(t.Name)+"/services", nil, &sts); err != nil {
			switch workload.CodeOf(err) {
			case workload.Unauthenticated, workload.PermissionDenied:
				return nil, err
			case workload.Unsupported:
				v.Notes = append(v.Notes, fmt.Sprintf("target %s cannot list its services: %s", t.Name, workload.AsError(err).Message))
			default:
				v.Problems = append(v.Problems, fmt.Sprintf("target %s: %s", t.Name, workload.AsError(err).Message))
			}
			continue
		}
		for _, st := range sts {
			v.Rows = append(v.Rows, serviceRow{S: st, Last: last[st.ID]})
		}
	}
	return v, nil
}

// --- targets --------------------------------------------------------------

type targetsView struct {
	Ops     []provider.Operation
	Targets []targetRow
}

type targetRow struct {
	Info      control.TargetInfo
	Reachable bool
	Problem   string
	Latency   time.Duration
	Services  int
	Caps      map[provider.Operation]provider.Capability
}

func (d *Dashboard) loadTargets(c *apiClient, _ *http.Request) (any, error) {
	ts, err := c.targets()
	if err != nil {
		return nil, err
	}
	v := targetsView{Ops: provider.Operations}
	for _, t := range ts {
		row := targetRow{Info: t, Caps: map[provider.Operation]provider.Capability{}}
		for _, cp := range t.Capabilities {
			row.Caps[cp.Op] = cp
		}
		// Reachability is whether the target answers a listing now.
		start := time.Now()
		var sts []workload.DeploymentStatus
		err := c.get("/v1/targets/"+url.PathEscape(t.Name)+"/services", nil, &sts)
		row.Latency = time.Since(start).Round(100 * time.Microsecond)
		switch {
		case err == nil:
			row.Reachable, row.Services = true, len(sts)
		case workload.CodeOf(err) == workload.Unsupported:
			// Cannot list, so cannot tell; the status probe says more.
			row.Reachable, row.Services, row.Problem = true, -1, workload.AsError(err).Message
		default:
			row.Problem = workload.AsError(err).Message
		}
		v.Targets = append(v.Targets, row)
	}
	return v, nil
}

// --- one service ----------------------------------------------------------

type serviceView struct {
	S workload.DeploymentStatus
}

func (d *Dashboard) loadService(c *apiClient, r *http.Request) (any, error) {
	var st workload.DeploymentStatus
	if err := c.get(svcPath(r.PathValue("target"), r.PathValue("service")), nil, &st); err != nil {
		return nil, err
	}
	return serviceView{S: st}, nil
}

type actionsView struct {
	// Role is the caller's role on the target (auth.RoleOn: its role on
	// every target, or a grant on this one, whichever is higher); Operate
	// says it may scale, restart, stop and apply config there.
	Role            auth.Role
	Operate         bool
	Target, Service string
	Replicas        int
	Config          string
	Halted          bool
	Actions         []actionCap
}

type actionCap struct {
	Op        string
	Supported bool
	Reason    string
}

// actionsRole is the role POST .../scale, .../restart, .../stop and PUT
// .../config need (the API's route table).
const actionsRole = auth.RoleOperator

// loadActions renders the controls the caller's role on the service's
// target may use (none for a viewer there) on the operations the target
// supports. The role is the one the API checks, per target (its role on
// every target or a grant on this one): a viewer that an OIDC grant makes
// an operator of this target gets the controls, as the history card's
// rollback does.
func (d *Dashboard) loadActions(c *apiClient, r *http.Request) (any, error) {
	p, err := c.principal()
	if err != nil {
		return nil, err
	}
	target, service := r.PathValue("target"), r.PathValue("service")
	role := auth.RoleOn(p, target)
	if !role.Allows(auth.RoleViewer) { // no role on this target: the API's refusal, not "can watch"
		return nil, auth.Denied(p, auth.RoleViewer, target)
	}
	v := actionsView{Role: role, Operate: role.Allows(actionsRole), Target: target, Service: service}
	if !v.Operate {
		return v, nil
	}
	var st workload.DeploymentStatus
	if err := c.get(svcPath(target, service), nil, &st); err != nil {
		return nil, err
	}
	v.Replicas = st.Replicas.Desired
	ts, err := c.targets()
	if err != nil {
		return nil, err
	}
	for _, t := range ts {
		if t.Name != target {
			continue
		}
		v.Halted = t.Halted
		for _, cp := range t.Capabilities {
			switch cp.Op {
			case provider.OpScale, provider.OpRestart, provider.OpStop, provider.OpApplyConfig:
				v.Actions = append(v.Actions, actionCap{Op: string(cp.Op), Supported: cp.Supported, Reason: cp.Reason})
			}
		}
	}
	return v, nil
}

// Has reports whether op is offered (supported or not).
func (v actionsView) Has(op string) *actionCap {
	for i := range v.Actions {
		if v.Actions[i].Op == op {
			return &v.Actions[i]
		}
	}
	return nil
}

// --- ledger ---------------------------------------------------------------

// run is one run of the ledger: its intent and its result side by side,
// or the single record of a rejected request.
type run struct {
	ID       string
	Intent   *ledger.Record
	Result   *ledger.Record
	Rejected *ledger.Record
}

// Head is the run's first record, for who, what, where and when.
func (r run) Head() *ledger.Record {
	switch {
	case r.Intent != nil:
		return r.Intent
	case r.Rejected != nil:
		return r.Rejected
	}
	return r.Result
}

// Outcome is the run's outcome, "pending" while it has no result.
func (r run) Outcome() string {
	switch {
	case r.Rejected != nil:
		return string(r.Rejected.Outcome)
	case r.Result != nil:
		return string(r.Result.Outcome)
	}
	return "pending"
}

// groupRuns pairs records by run id, keeping the order runs first appear.
func groupRuns(recs []ledger.Record) []*run {
	var out []*run
	byID := map[string]*run{}
	for i := range recs {
		rec := &recs[i]
		r, ok := byID[rec.RunID]
		if !ok {
			r = &run{ID: rec.RunID}
			byID[rec.RunID] = r
			out = append(out, r)
		}
		switch rec.Kind {
		case ledger.KindIntent:
			r.Intent = rec
		case ledger.KindResult:
			r.Result = rec
		case ledger.KindRejected:
			r.Rejected = rec
		}
	}
	return out
}

// maxCompletions bounds the per-run look-ups that fetch the other half of
// runs a page shows only one half of.
const maxCompletions = 100

// complete fills in the halves a filtered or paged query left out.
func (c *apiClient) complete(runs []*run) error {
	n := 0
	for _, r := range runs {
		if r.Rejected != nil || (r.Intent != nil && r.Result != nil) {
			continue
		}
		if n++; n > maxCompletions {
			break
		}
		var page ledger.Page
		if err := c.get("/v1/runs", url.Values{"run": {r.ID}}, &page); err != nil {
			return err
		}
		for _, o := range groupRuns(page.Records) {
			if o.ID == r.ID {
				r.Intent, r.Result = o.Intent, o.Result
			}
		}
	}
	return nil
}

type ledgerView struct {
	Runs     []*run
	Next     string
	NextURL  template.URL // the ledger page with the filter and the next cursor
	Verify   *ledger.VerifyResult
	Problem  string
	Filtered bool
}

// ledgerFilters are the /v1/runs parameters the ledger view passes on.
var ledgerFilters = []string{"service", "target", "user", "action", "outcome", "since", "until", "run", "cursor"}

// ledgerPage is how many records one ledger page asks for.
const ledgerPage = 100

func (c *apiClient) runs(q url.Values, limit int) ([]*run, string, error) {
	q.Set("order", "desc")
	q.Set("limit", fmt.Sprint(limit))
	var page ledger.Page
	if err := c.get("/v1/runs", q, &page); err != nil {
		return nil, "", err
	}
	runs := groupRuns(page.Records)
	if err := c.complete(runs); err != nil {
		return nil, "", err
	}
	return runs, page.Next, nil
}

func (d *Dashboard) loadLedger(c *apiClient, r *http.Request) (any, error) {
	in := r.URL.Query()
	q := url.Values{}
	for _, k := range ledgerFilters {
		if v := strings.TrimSpace(in.Get(k)); v != "" {
			q.Set(k, v)
		}
	}
	v := ledgerView{Filtered: len(q) > 0}
	var err error
	if v.Runs, v.Next, err = c.runs(q, ledgerPage); err != nil {
		return nil, err
	}
	next := url.Values{}
	for _, k := range ledgerFilters {
		if k != "cursor" && q.Get(k) != "" {
			next.Set(k, q.Get(k))
		}
	}
	if v.Next != "" {
		next.Set("cursor", v.Next)
		v.NextURL = template.URL("/ledger?" + next.Encode())
	}
	var res ledger.VerifyResult
	if err := c.get("/v1/ledger/verify", nil, &res); err != nil {
		v.Problem = workload.AsError(err).Message
	} else {
		v.Verify = &res
	}
	return v, nil
}

type runsView struct {
	Target, Service string
	Runs            []*run
}

// loadServiceRuns renders a service's ten latest runs.
func (d *Dashboard) loadServiceRuns(c *apiClient, r *http.Request) (any, error) {
	target, service := r.PathValue("target"), r.PathValue("service")
	runs, _, err := c.runs(url.Values{"target": {target}, "service": {service}}, 20)
	if err != nil {
		return nil, err
	}
	if len(runs) > 10 {
		runs = runs[:10]
	}
	return runsView{Target: target, Service: service, Runs: runs}, nil
}

// --- template helpers -----------------------------------------------------

func formatTime(t time.Time) string {
	if t.IsZero() {
		return "–"
	}
	return t.UTC().Format("2006-01-02 15:04:05Z")
}

func isoTime(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}

func shortRun(id string) string {
	if len(id) > 12 {
		return id[:12] + "…"
	}
	return id
}

func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Millisecond:
		return d.Round(time.Microsecond).String()
	case d < time.Second:
		return d.Round(100 * time.Microsecond).String()
	}
	return d.Round(time.Millisecond).String()
}

func formatBytes(n uint64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := uint64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// prettyJSON indents a record's Detail for reading; other text is returned
// as is.
func prettyJSON(s string) string {
	if s == "" {
		return ""
	}
	var v any
	if json.Unmarshal([]byte(s), &v) != nil {
		return s
	}
	if m, ok := v.(map[string]any); ok {
		// Keys in a stable order, nulls and empty lists left out.
		keys := make([]string, 0, len(m))
		for k, x := range m {
			if x == nil || x == "" {
				continue
			}
			if l, ok := x.([]any); ok && len(l) == 0 {
				continue
			}
			keys = append(keys, k)
		}
		slices.Sort(keys)
		var b strings.Builder
		for _, k := range keys {
			if st, ok := m[k].(map[string]any); ok && k == "status" {
				fmt.Fprintf(&b, "status: %s\n", statusLine(st))
				continue
			}
			x, _ := json.Marshal(m[k])
			if len(x) > 160 {
				x = append(x[:157:157], "…"...)
			}
			fmt.Fprintf(&b, "%s: %s\n", k, x)
		}
		return strings.TrimSuffix(b.String(), "\n")
	}
	b, _ := json.MarshalIndent(v, "", "  ")
	return string(b)
}

// statusLine summarises a DeploymentStatus found in a result's detail.
func statusLine(st map[string]any) string {
	parts := []string{fmt.Sprint(st["phase"])}
	if r, ok := st["replicas"].(map[string]any); ok {
		parts = append(parts, fmt.Sprintf("%v/%v ready", r["ready"], r["desired"]))
	}
	if rev, ok := st["revision"]; ok {
		parts = append(parts, fmt.Sprintf("revision %v", rev))
	}
	return strings.Join(parts, " · ")
}

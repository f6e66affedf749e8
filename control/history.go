package control

// History (issue 20, point 2): every successful start, scale, apply_config
// and rollback records the service's resulting spec revision, linked to
// its ledger run.
//
// Where a revision lives. The hash-chained ledger is the authority: the
// run's result row carries, in its Detail, the revision number and the
// digest of the stored revision ({"revision":3,"revisionDigest":"…"}).
// The spec itself is a row of workload_revisions beside the ledger
// (ledger.RevisionStore, same database, append-only), keyed by run: its
// JSON with every env and config value removed (keys kept), and the whole
// spec sealed (history_seal.go). History is read from the ledger's
// successful result rows and joined with the revision rows by run; a
// revision row whose digest the ledger does not name is not believed (the
// revision is listed with the problem and cannot be restored), and a
// revision row without a successful result row (the controller died
// between the two writes) is ignored. So history cannot say that someone
// deployed what they did not, nor invent a revision, without breaking
// the chain.
//
// Numbering. Revision numbers run 1, 2, 3… per service, taken under the
// service lock from the newest number the ledger names. A rollback is a
// new revision (like `kubectl rollout undo`): rolling back from 5 to 3
// records 6, whose spec is 3's.
//
// Scale and apply_config change one field of the current revision's spec.
// When the service has no recorded revision (deployed before history was
// kept) their revision is partial: it says what they set, and cannot be
// rolled back to.
//
// What is never shown: env and config values (api.Revision.Spec shows
// "(set)"), and any value the credentials resolver knows as a secret
// (the stored public spec is redacted). Summaries name keys, never values.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// recordsRevision reports whether a successful a records a revision
// (start, scale, apply_config, rollback: ledger.RevisionActions, which
// ledger.RevisionHead looks for).
func recordsRevision(a workload.Action) bool {
	return slices.Contains(ledger.RevisionActions, string(a))
}

// storedSpec is the Spec column of a revision row.
type storedSpec struct {
	V int `json:"v"`
	// Partial: only part of the spec is known (see the file comment).
	Partial bool `json:"partial,omitempty"`
	// Sealed: Spec lacks values (env, config, or a secret the resolver
	// knows) that only the sealed blob holds.
	Sealed bool                    `json:"sealed,omitempty"`
	Spec   workload.DeploymentSpec `json:"spec"`
}

// revisionMark is what a result row's Detail says about its revision
// (beside the api.Result it encodes).
type revisionMark struct {
	Revision       int    `json:"revision,omitempty"`
	RevisionDigest string `json:"revisionDigest,omitempty"`
	// RollbackFrom and RollbackTo are set on a rollback's rows.
	RollbackFrom int `json:"rollbackFrom,omitempty"`
	RollbackTo   int `json:"rollbackTo,omitempty"`
}

// revEntry is one revision as the ledger names it, joined with its row.
type revEntry struct {
	n      int
	runID  string
	action string
	user   string
	time   time.Time
	mark   revisionMark
	stored *storedSpec
	sealed []byte
	// problem says why the revision's spec cannot be used.
	problem string
}

// setHistory wires the revision store and key (New).
func (rt *Runtime) setHistory(o Options) error {
	if rs, ok := o.Ledger.(ledger.RevisionStore); ok {
		if k, ok := o.Ledger.(interface{ KeepsRevisions() bool }); !ok || k.KeepsRevisions() {
			rt.revs = rs
		}
	}
	if o.RevisionKey != nil {
		s, err := newSealer(o.RevisionKey)
		if err != nil {
			return err
		}
		rt.sealer = s
	}
	return nil
}

// scanResults calls fn with the service's successful result rows, oldest
// first (newest first when desc), until fn returns false.
func (rt *Runtime) scanResults(ctx context.Context, target, service string, desc bool, pageSize int, fn func(ledger.Record) bool) error {
	f := ledger.Filter{Target: target, Service: service, Kind: ledger.KindResult, Outcome: ledger.OutcomeOK, Limit: pageSize, Descending: desc}
	for {
		page, err := rt.ledger.Query(ctx, f)
		if err != nil {
			return workload.Errorf(workload.Unavailable, "ledger unavailable: %w", err)
		}
		for _, rec := range page.Records {
			if !fn(rec) {
				return nil
			}
		}
		if page.Next == "" {
			return nil
		}
		f.Cursor = page.Next
	}
}

func markOf(rec ledger.Record) revisionMark {
	var m revisionMark
	if recordsRevision(workload.Action(rec.Action)) && rec.Detail != "" {
		_ = json.Unmarshal([]byte(rec.Detail), &m)
	}
	return m
}

// loadHistory returns the service's revisions, oldest first, and whether
// the service was stopped after the newest one.
func (rt *Runtime) loadHistory(ctx context.Context, target, service string) ([]*revEntry, bool, error) {
	var entries []*revEntry
	var lastStop, lastRev int64
	err := rt.scanResults(ctx, target, service, false, ledger.MaxLimit, func(rec ledger.Record) bool {
		if rec.Action == string(workload.ActionStop) {
			lastStop = rec.Seq
		}
		if m := markOf(rec); m.Revision > 0 {
			user := rec.UserName
			if user == "" {
				user = rec.UserID
			}
			entries = append(entries, &revEntry{n: m.Revision, runID: rec.RunID, action: rec.Action, user: user, time: rec.Time, mark: m})
			lastRev = rec.Seq
		}
		return true
	})
	if err != nil {
		return nil, false, err
	}
	if len(entries) == 0 {
		return nil, false, nil
	}
	rows, err := rt.revs.Revisions(ctx, target, service)
	if err != nil {
		return nil, false, workload.Errorf(workload.Unavailable, "ledger unavailable: %w", err)
	}
	byRun := make(map[string]ledger.Revision, len(rows))
	for _, row := range rows {
		byRun[row.RunID] = row
	}
	for _, e := range entries {
		row, ok := byRun[e.runID]
		rt.join(e, row, ok)
	}
	return entries, lastStop > lastRev, nil
}

// join checks a revision row against what the ledger says of it.
func (rt *Runtime) join(e *revEntry, row ledger.Revision, ok bool) {
	switch {
	case !ok:
		e.problem = "its stored spec is missing"
		return
	case row.Revision != e.n || row.Digest != e.mark.RevisionDigest || ledger.RevisionDigest(row.Spec, row.Sealed) != e.mark.RevisionDigest:
		e.problem = "its stored spec does not match the digest the ledger recorded (changed behind the controller's back)"
		return
	}
	var st storedSpec
	if err := json.Unmarshal([]byte(row.Spec), &st); err != nil || st.V != 1 {
		e.problem = "its stored spec does not decode"
		return
	}
	e.stored, e.sealed = &st, row.Sealed
}

// fullSpec is the spec a rollback to e restores, values included.
func (rt *Runtime) fullSpec(target, service string, e *revEntry) (workload.DeploymentSpec, error) {
	switch {
	case e.problem != "":
		return workload.DeploymentSpec{}, errors.New(e.problem)
	case e.stored.Partial:
		return workload.DeploymentSpec{}, fmt.Errorf("it is partial: %s recorded it for a service deployed before history was kept", e.action)
	case !e.stored.Sealed:
		return e.stored.Spec, nil
	case e.sealed == nil:
		return workload.DeploymentSpec{}, errors.New("its env and config values were not kept (no revision key was configured when it was recorded)")
	case rt.sealer == nil:
		return workload.DeploymentSpec{}, errors.New("this controller has no revision key to open its sealed values")
	}
	spec, err := rt.sealer.open(e.sealed, sealAAD(target, service, e.runID))
	if err != nil {
		return workload.DeploymentSpec{}, err
	}
	return spec, nil
}

// publicSpec is spec as it is stored in the clear: env and config values
// removed (keys kept) and known secret values redacted. sealed reports
// whether anything was removed.
func (rt *Runtime) publicSpec(spec workload.DeploymentSpec) (workload.DeploymentSpec, bool) {
	sealed := false
	blank := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		out := make(map[string]string, len(m))
		for k, v := range m {
			out[k] = ""
			sealed = sealed || v != ""
		}
		return out
	}
	spec.Env, spec.Config = blank(spec.Env), blank(spec.Config)
	b, err := json.Marshal(spec)
	if err != nil {
		return workload.DeploymentSpec{Name: spec.Name, Target: spec.Target}, true
	}
	if red := rt.creds.Redact(string(b)); red != string(b) {
		var out workload.DeploymentSpec
		if json.Unmarshal([]byte(red), &out) != nil {
			return workload.DeploymentSpec{Name: spec.Name, Target: spec.Target}, true
		}
		return out, true
	}
	return spec, sealed
}

// History lists the recorded revisions of a service, newest first (GET
// .../history, viewer role). It never shows an env or config value. A
// ledger that keeps no revisions answers Unsupported.
func (rt *Runtime) History(ctx context.Context, target, service string) ([]api.Revision, error) {
	if _, err := rt.service(target, service); err != nil {
		return nil, err
	}
	if rt.revs == nil {
		return nil, workload.Errorf(workload.Unsupported, "this controller's ledger keeps no revision history")
	}
	entries, stopped, err := rt.loadHistory(ctx, target, service)
	if err != nil {
		return nil, err
	}
	out := make([]api.Revision, 0, len(entries))
	var prevSpec *workload.DeploymentSpec
	for i, e := range entries {
		rev := api.Revision{Revision: e.n, Time: e.time, User: e.user, RunID: e.runID, Action: e.action, Problem: e.problem}
		var cur *workload.DeploymentSpec
		if e.problem == "" {
			rev.Partial = e.stored.Partial
			rev.Spec = shownSpec(e.stored.Spec)
			if s, err := rt.fullSpec(target, service, e); err == nil {
				cur = &s
			} else if !e.stored.Partial {
				rev.Problem = err.Error()
			}
		}
		var prev *revEntry
		if i > 0 {
			prev = entries[i-1]
		}
		rev.Summary = summary(prev, e, prevSpec, cur)
		prevSpec = cur
		out = append(out, rev)
	}
	if n := len(out); n > 0 && !stopped {
		out[n-1].Current = true
	}
	slices.Reverse(out)
	return out, nil
}

// shownSpec is a stored spec as the API shows it: "(set)" for each env
// and config value.
func shownSpec(s workload.DeploymentSpec) workload.DeploymentSpec {
	set := func(m map[string]string) map[string]string {
		if m == nil {
			return nil
		}
		out := make(map[string]string, len(m))
		for k := range m {
			out[k] = "(set)"
		}
		return out
	}
	s.Env, s.Config = set(s.Env), set(s.Config)
	return s
}

// revisionSpec is the full spec of revision rev of a service, env and
// config values restored: NotFound when there is no such revision,
// InvalidArgument (field "revision") when it cannot be restored. The
// diff of a revision against the live service (diffapi) and rollback use
// it.
func (rt *Runtime) revisionSpec(ctx context.Context, target, service string, rev int) (workload.DeploymentSpec, error) {
	e, _, err := rt.findRevision(ctx, target, service, rev, "revision")
	if err != nil {
		return workload.DeploymentSpec{}, err
	}
	spec, err := rt.fullSpec(target, service, e)
	if err != nil {
		return workload.DeploymentSpec{}, workload.Invalid(workload.FieldError{Path: "revision",
			Message: fmt.Sprintf("revision %d of %s cannot be restored: %v", rev, workload.ServiceID(target, service), err)})
	}
	return spec, nil
}

// findRevision finds revision rev of a service (rev 0: the one before the
// newest) and returns it with the newest revision's number. field names
// the request field in errors.
func (rt *Runtime) findRevision(ctx context.Context, target, service string, rev int, field string) (*revEntry, int, error) {
	if _, err := rt.service(target, service); err != nil {
		return nil, 0, err
	}
	if rt.revs == nil {
		return nil, 0, workload.Errorf(workload.Unsupported, "this controller's ledger keeps no revision history")
	}
	if rev < 0 {
		return nil, 0, workload.Invalid(workload.FieldError{Path: field, Message: "must be a revision number (1 or more), or 0 for the revision before the current one"})
	}
	entries, _, err := rt.loadHistory(ctx, target, service)
	if err != nil {
		return nil, 0, err
	}
	id := workload.ServiceID(target, service)
	if len(entries) == 0 {
		return nil, 0, workload.Errorf(workload.NotFound, "%s has no recorded revisions", id)
	}
	latest := entries[len(entries)-1].n
	if rev == 0 {
		if len(entries) < 2 {
			return nil, latest, workload.Invalid(workload.FieldError{Path: field,
				Message: fmt.Sprintf("%s has only revision %d: there is no earlier revision to go back to", id, latest)})
		}
		return entries[len(entries)-2], latest, nil
	}
	for _, e := range entries {
		if e.n == rev {
			return e, latest, nil
		}
	}
	return nil, latest, &workload.Error{Code: workload.NotFound, Message: fmt.Sprintf("%s has no revision %d (the newest is %d)", id, rev, latest),
		Fields: []workload.FieldError{{Path: field, Message: fmt.Sprintf("no revision %d (the newest is %d)", rev, latest)}}}
}

// summary says what changed from prev to e; specs are the full specs
// when they could be opened (values are compared, never shown).
func summary(prev, e *revEntry, prevSpec, spec *workload.DeploymentSpec) string {
	var parts []string
	if e.mark.RollbackTo > 0 {
		parts = append(parts, fmt.Sprintf("rollback from %d to %d", e.mark.RollbackFrom, e.mark.RollbackTo))
	}
	switch {
	case e.problem != "":
		parts = append(parts, "spec unavailable: "+e.problem)
	case e.stored.Partial:
		s := e.stored.Spec
		if e.action == string(workload.ActionScale) {
			parts = append(parts, fmt.Sprintf("replicas %d (partial: deployed before history was kept)", s.Replicas))
		} else {
			parts = append(parts, fmt.Sprintf("config keys %s (partial: deployed before history was kept)", keyList(slices.Sorted(maps.Keys(s.Config)))))
		}
	case prev == nil || prev.problem != "" || prev.stored.Partial:
		s := e.stored.Spec
		what := "image " + s.Image
		if s.Compose != nil {
			what = "compose " + s.Compose.File
		}
		parts = append(parts, fmt.Sprintf("%s, replicas %d", what, s.Replicas))
	default:
		parts = append(parts, changes(prev.stored.Spec, e.stored.Spec, prevSpec, spec)...)
	}
	return strings.Join(parts, "; ")
}

// changes lists what differs between two stored specs. a and b are the
// public specs; fa and fb the full ones when known, used only to tell
// whether an env or config value changed.
func changes(a, b workload.DeploymentSpec, fa, fb *workload.DeploymentSpec) []string {
	var out []string
	if a.Image != b.Image {
		out = append(out, fmt.Sprintf("image %s→%s", orNone(a.Image), orNone(b.Image)))
	}
	if a.Replicas != b.Replicas {
		out = append(out, fmt.Sprintf("replicas %d→%d", a.Replicas, b.Replicas))
	}
	same := func(x, y any) bool {
		bx, _ := json.Marshal(x)
		by, _ := json.Marshal(y)
		return string(bx) == string(by)
	}
	for _, f := range []struct {
		name string
		x, y any
	}{
		{"command", a.Command, b.Command}, {"args", a.Args, b.Args}, {"secrets", a.Secrets, b.Secrets},
		{"ports", a.Ports, b.Ports}, {"resources", a.Resources, b.Resources}, {"healthCheck", a.HealthCheck, b.HealthCheck},
		{"labels", a.Labels, b.Labels}, {"compose", a.Compose, b.Compose}, {"extensions", a.Extensions, b.Extensions},
	} {
		if !same(f.x, f.y) {
			out = append(out, f.name+" changed")
		}
	}
	var ea, eb, ca, cb map[string]string
	if fa != nil && fb != nil {
		ea, eb, ca, cb = fa.Env, fb.Env, fa.Config, fb.Config
	}
	if s := keyChanges("env", a.Env, b.Env, ea, eb); s != "" {
		out = append(out, s)
	}
	if s := keyChanges("config", a.Config, b.Config, ca, cb); s != "" {
		out = append(out, s)
	}
	if len(out) == 0 {
		return []string{"no change"}
	}
	return out
}

// keyChanges names the keys added, removed and (when the values are
// known) changed.
func keyChanges(what string, a, b, va, vb map[string]string) string {
	var added, removed, changed []string
	for k := range b {
		if _, ok := a[k]; !ok {
			added = append(added, k)
		} else if va != nil && vb != nil && va[k] != vb[k] {
			changed = append(changed, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			removed = append(removed, k)
		}
	}
	var parts []string
	for _, p := range []struct {
		verb string
		keys []string
	}{{"added", added}, {"removed", removed}, {"changed", changed}} {
		if len(p.keys) > 0 {
			slices.Sort(p.keys)
			parts = append(parts, what+" keys "+p.verb+" "+keyList(p.keys))
		}
	}
	return strings.Join(parts, ", ")
}

func keyList(keys []string) string {
	if len(keys) == 0 {
		return "(none)"
	}
	return strings.Join(keys, ",")
}

func orNone(s string) string {
	if s == "" {
		return "(none)"
	}
	return s
}

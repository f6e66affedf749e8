package control

// The write side of history (history.go): what Do plans under the
// service lock before the intent (planRevision, with the revision cache)
// and writes with the result row (prepareRevision, appendResult).

import (
	"context"
	"encoding/json"
	"errors"
	"maps"
	"sync"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// scanPage is the page size of planRevision's scan of result rows.
const scanPage = 50

// revisionPlan is what Do knows, under the service lock and before the
// intent, about the revision a request will record.
type revisionPlan struct {
	latest int                      // the newest revision the ledger names (0: none)
	base   *workload.DeploymentSpec // the current revision's full spec (nil: unknown)
	// guarded: the plan is the cache's, not checked yet; the result's
	// append checks it (ledger.Guard: the service's revision head must be
	// head) and appendResult plans again from the ledger if it was not.
	guarded bool
	head    int64
}

// The revision cache. Planning a revision needs the newest revision
// number of the service and, for scale and apply_config, the full spec of
// the current revision (their base). Reading both from the ledger on
// every operation (a scan of result rows, a revision row read and an
// unseal) cost more than the rest of the pipeline, so each runtime keeps
// what it last wrote per service (revHead): the number, and the full spec
// it has just recorded, which is in this process's memory anyway (never
// logged, never in an error).
//
// A cache entry is only believed after one indexed read, under the
// service lock: the seq of the service's newest successful result row of
// a revision-recording action (ledger.RevisionHead: a prepared statement
// on SQLite, one round trip on PostgreSQL) must be the seq of the row the
// entry was learnt from. Rows are append-only and chained, and every such row is
// written under the service lock, which crosses processes on PostgreSQL
// (ledger.ServiceLocker); so if no such row was appended since, the
// newest number and the current revision are the ones the entry holds,
// whoever else shares the ledger (another replica, another runtime on the
// same SQLite file, a process that crashed and was recovered). Anything
// else (another writer's revision, a result append that failed or whose
// outcome is unknown, a first operation after start) misses and reads the
// ledger as before. An entry is replaced after each result row of a
// successful revision-recording operation and dropped when a result
// append fails.

// revHead is the cache entry of one service.
type revHead struct {
	seq    int64                    // the result row it was learnt from
	latest int                      // the newest revision number at seq
	base   *workload.DeploymentSpec // revision latest's full spec when the row at seq recorded it and it can be restored; else nil
}

// revisionCache maps serviceKey strings (Request.key) to their revHead.
// It is safe for concurrent use; an entry is used and changed under its
// service's lock.
type revisionCache struct {
	mu sync.Mutex
	m  map[string]revHead
}

func (c *revisionCache) get(key string) (revHead, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[key]
	return h, ok
}

func (c *revisionCache) set(key string, h revHead) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = map[string]revHead{}
	}
	c.m[key] = h
}

func (c *revisionCache) drop(key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, key)
}

// planRevision finds the newest revision of r's service (Do, under the
// lock): from the cache when the ledger's newest revision-recording row
// is the cache entry's, else from the ledger. nil when the ledger keeps
// no revisions.
func (rt *Runtime) planRevision(ctx context.Context, r *Request) (*revisionPlan, error) {
	if rt.revs == nil || !recordsRevision(r.Action) {
		return nil, nil
	}
	plan := &revisionPlan{}
	if cached, ok := rt.revCache.get(r.key()); ok && rt.guarded != nil && r.Action != workload.ActionRollback {
		// Checked by the result's append, in its transaction (appendResult):
		// no read here. A rollback's intent names the revision it replaces
		// (Do), so its plan is checked before the intent, below.
		plan.latest, plan.guarded, plan.head = cached.latest, true, cached.seq
		if r.Action == workload.ActionScale || r.Action == workload.ActionApplyConfig {
			plan.base = cached.base
		}
		return plan, nil
	}
	return rt.planFromLedger(ctx, r, plan)
}

// planFromLedger is planRevision's answer checked against the ledger:
// the cache's entry when the service's revision head is the row it was
// learnt from, else what the ledger's rows say.
func (rt *Runtime) planFromLedger(ctx context.Context, r *Request, plan *revisionPlan) (*revisionPlan, error) {
	if cached, ok := rt.revCache.get(r.key()); ok {
		seq, err := ledger.RevisionHead(ctx, rt.ledger, r.Target, r.Service)
		if err != nil {
			return nil, workload.Errorf(workload.Unavailable, "ledger unavailable: %w", err)
		}
		if seq == cached.seq {
			plan.latest = cached.latest
			if r.Action == workload.ActionScale || r.Action == workload.ActionApplyConfig {
				plan.base = cached.base
			}
			return plan, nil
		}
	}
	var newest *ledger.Record // the newest revision-recording run, numbered or not
	var numbered revisionMark
	var numberedRun string
	err := rt.scanResults(ctx, r.Target, r.Service, true, scanPage, func(rec ledger.Record) bool {
		if !recordsRevision(workload.Action(rec.Action)) {
			return true
		}
		if newest == nil {
			c := rec
			newest = &c
		}
		if m := markOf(rec); m.Revision > 0 {
			numbered, numberedRun = m, rec.RunID
			return false
		}
		return true
	})
	if err != nil {
		return nil, err
	}
	plan.latest = numbered.Revision
	if numbered.Revision == 0 || newest.RunID != numberedRun || (r.Action != workload.ActionScale && r.Action != workload.ActionApplyConfig) {
		return plan, nil // no base needed, or the newest change was not recorded
	}
	row, err := rt.revs.Revision(ctx, numberedRun)
	e := &revEntry{n: numbered.Revision, runID: numberedRun, action: newest.Action, mark: numbered}
	switch {
	case errors.Is(err, ledger.ErrNoRevision):
		rt.join(e, ledger.Revision{}, false)
	case err != nil:
		return nil, workload.Errorf(workload.Unavailable, "ledger unavailable: %w", err)
	default:
		rt.join(e, row, true)
	}
	spec, err := rt.fullSpec(r.Target, r.Service, e)
	if err != nil {
		rt.log.Warn("history: the current revision cannot serve as the base of the next; it will be partial",
			"service", r.key(), "revision", e.n, "why", err.Error())
		return plan, nil
	}
	plan.base = &spec
	return plan, nil
}

// pendingRevision is the revision a successful request records: the row
// its result row's append carries and the mark that row names (row nil:
// none could be built, the log says why), and next, what the cache keeps
// as the next revision's base.
type pendingRevision struct {
	plan *revisionPlan
	row  *ledger.Revision
	mark revisionMark
	next *workload.DeploymentSpec
}

// prepareRevision builds the revision a successful r produced (nil when
// the ledger keeps no revisions). Nothing is written: appendResult
// writes it with the result row.
func (rt *Runtime) prepareRevision(r *Request, runID string, plan *revisionPlan) *pendingRevision {
	if plan == nil {
		return nil
	}
	pr := &pendingRevision{plan: plan}
	var full workload.DeploymentSpec
	partial := false
	switch r.Action {
	case workload.ActionStart, workload.ActionRollback:
		full = *r.Spec
	case workload.ActionScale:
		if plan.base != nil {
			full = *plan.base
		} else {
			full, partial = workload.DeploymentSpec{Name: r.Service}, true
		}
		full.Replicas = r.Replicas
	case workload.ActionApplyConfig:
		if plan.base != nil {
			full = *plan.base
		} else {
			full, partial = workload.DeploymentSpec{Name: r.Service}, true
		}
		full.Config = maps.Clone(r.Config)
	}
	full.Target = r.Target
	public, hidden := rt.publicSpec(full)
	b, err := json.Marshal(storedSpec{V: 1, Partial: partial, Sealed: hidden, Spec: public})
	if err != nil {
		rt.log.Error("history: encoding the revision failed; none recorded", "run", runID, "err", err)
		return pr
	}
	var sealed []byte
	if hidden && rt.sealer != nil {
		if sealed, err = rt.sealer.seal(full, sealAAD(r.Target, r.Service, runID)); err != nil {
			rt.log.Error("history: sealing the revision failed; none recorded", "run", runID, "err", err)
			return pr
		}
	}
	pr.row = &ledger.Revision{RunID: runID, Target: r.Target, Service: r.Service, Revision: plan.latest + 1,
		Spec: string(b), Sealed: sealed, Digest: ledger.RevisionDigest(string(b), sealed)}
	pr.mark = revisionMark{Revision: pr.row.Revision, RevisionDigest: pr.row.Digest}
	if r.rollback != nil {
		pr.mark.RollbackFrom, pr.mark.RollbackTo = plan.latest, r.rollback.to
	}
	// The next base, when the ledger could give it too (fullSpec): a
	// partial revision, or values that were not sealed, cannot be.
	if !partial && (!hidden || sealed != nil) {
		pr.next = &full
		if r.Action == workload.ActionStart || r.Action == workload.ActionRollback {
			// The cache must not share the request's maps and slices (a
			// scale's or apply_config's spec is built on the cached one
			// and shares nothing outside the cache).
			if pr.next, err = copySpec(full); err != nil {
				pr.next = nil
			}
		}
	}
	return pr
}

// copySpec is a deep copy of s: the spec as fullSpec would decode it.
func copySpec(s workload.DeploymentSpec) (*workload.DeploymentSpec, error) {
	b, err := json.Marshal(s)
	if err != nil {
		return nil, err
	}
	var out workload.DeploymentSpec
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// appendResult appends r's result row (Do, under the service lock) and
// returns the revision number it names (0: none). With a revision, the
// row carries it: one write (ledger.AppendWithRevision). A revision the
// ledger refuses without writing anything (ledger.ErrRevisionNotStored)
// is logged and the row is appended without it: the operation stands.
// The revision cache follows what was written.
func (rt *Runtime) appendResult(ctx context.Context, r *Request, result ledger.Record, res Result, rev *pendingRevision) (int, error) {
	n, err := rt.appendResultOnce(ctx, r, result, res, rev)
	if !errors.Is(err, ledger.ErrStaleRevision) {
		return n, err
	}
	// The cache's plan was stale (another writer recorded a revision of the
	// service): nothing was written. Plan again from the ledger, as a
	// request that missed the cache does, and append that.
	rt.revCache.drop(r.key())
	plan, err := rt.planFromLedger(ctx, r, &revisionPlan{})
	if err != nil {
		return 0, err
	}
	return rt.appendResultOnce(ctx, r, result, res, rt.prepareRevision(r, result.RunID, plan))
}

// appendResultOnce is one attempt of appendResult. A guarded plan
// (revisionPlan.guarded) is checked by the append: ErrStaleRevision, and
// nothing written, when it is not the ledger's.
func (rt *Runtime) appendResultOnce(ctx context.Context, r *Request, result ledger.Record, res Result, rev *pendingRevision) (int, error) {
	if rev != nil && rev.plan.guarded {
		g := ledger.Guard{CheckHead: true, Head: rev.plan.head}
		plain := result.Detail
		if rev.row != nil {
			result.Detail = rt.revisionResultDetail(res, rev.mark)
		}
		start := time.Now()
		out, err := rt.guarded.AppendGuarded(ctx, result, rev.row, g)
		if rt.obs != nil && !errors.Is(err, ledger.ErrGuard) {
			rt.obs.LedgerAppend(time.Since(start), err)
		}
		switch {
		case err == nil && rev.row != nil:
			rt.revCache.set(r.key(), revHead{seq: out.Seq, latest: rev.mark.Revision, base: rev.next})
			return rev.mark.Revision, nil
		case err == nil: // a revision-recording success that recorded none
			rt.revCache.set(r.key(), revHead{seq: out.Seq, latest: rev.plan.latest})
			return 0, nil
		case errors.Is(err, ledger.ErrStaleRevision):
			return 0, err
		case rev.row != nil && errors.Is(err, ledger.ErrRevisionNotStored):
			rt.log.Error("history: storing the revision failed; the operation stands, its revision is not recorded",
				"run", result.RunID, "service", r.key(), "err", err)
			result.Detail = plain
			out, err = rt.guarded.AppendGuarded(ctx, result, nil, g)
			if err == nil {
				rt.revCache.set(r.key(), revHead{seq: out.Seq, latest: rev.plan.latest})
				return 0, nil
			}
			if errors.Is(err, ledger.ErrStaleRevision) {
				return 0, err
			}
		}
		rt.revCache.drop(r.key())
		return 0, err
	}
	if rev != nil && rev.row != nil {
		plain := result.Detail
		result.Detail = rt.revisionResultDetail(res, rev.mark)
		start := time.Now()
		out, err := ledger.AppendWithRevision(ctx, rt.ledger, result, *rev.row)
		if rt.obs != nil {
			rt.obs.LedgerAppend(time.Since(start), err)
		}
		if err == nil {
			rt.revCache.set(r.key(), revHead{seq: out.Seq, latest: rev.mark.Revision, base: rev.next})
			return rev.mark.Revision, nil
		}
		if !errors.Is(err, ledger.ErrRevisionNotStored) {
			rt.revCache.drop(r.key())
			return 0, err
		}
		rt.log.Error("history: storing the revision failed; the operation stands, its revision is not recorded",
			"run", result.RunID, "service", r.key(), "err", err)
		result.Detail = plain
	}
	out, err := rt.append(ctx, result)
	switch {
	case err != nil:
		rt.revCache.drop(r.key())
	case rev != nil: // a revision-recording success that recorded none
		rt.revCache.set(r.key(), revHead{seq: out.Seq, latest: rev.plan.latest})
	}
	return 0, err
}

// revisionResultDetail is a result row's Detail with its revision mark:
// the api.Result (whose "revision" is the number) and the digest.
func (rt *Runtime) revisionResultDetail(res Result, m revisionMark) string {
	res.RunID, res.Revision = "", m.Revision
	return rt.encode(struct {
		Result
		RevisionDigest string `json:"revisionDigest"`
		RollbackFrom   int    `json:"rollbackFrom,omitempty"`
		RollbackTo     int    `json:"rollbackTo,omitempty"`
	}{res, m.RevisionDigest, m.RollbackFrom, m.RollbackTo})
}

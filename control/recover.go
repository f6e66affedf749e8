package control

import (
	"cmp"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// DefaultRecoverSettle bounds how long recovery waits, in all, for the
// backends to finish what interrupted runs started (Options.RecoverSettle).
const DefaultRecoverSettle = 30 * time.Second

// settleInterval is the pause between two status probes of recovery.
const settleInterval = 500 * time.Millisecond

// settled reports whether st shows the backend done with what an intent of
// action asked for. A backend keeps working after the controller dies —
// dockerd finishes a stop after its stop timeout, a Deployment keeps
// rolling — so a probe made at once can record a state about to change.
//   - stop: nothing ready and nothing running or starting;
//   - scale: not Pending/Progressing, desired is the replicas asked for, and
//     that many are ready (or the service Failed);
//   - start, restart, apply_config: not Pending/Progressing;
//   - anything else (exec, halt): at once.
func settled(action string, detail string, st workload.DeploymentStatus) bool {
	moving := st.Phase == workload.Pending || st.Phase == workload.Progressing
	switch workload.Action(action) {
	case workload.ActionStop:
		return st.Replicas.Ready == 0 && !moving && st.Phase != workload.Running && st.Phase != workload.Degraded
	case workload.ActionScale:
		var d struct {
			Replicas *int `json:"replicas"`
		}
		if json.Unmarshal([]byte(detail), &d) != nil || d.Replicas == nil {
			return !moving
		}
		n := *d.Replicas
		return !moving && st.Replicas.Desired == n && (st.Replicas.Ready == n || st.Phase == workload.Failed)
	case workload.ActionStart, workload.ActionRestart, workload.ActionApplyConfig, workload.ActionRollback:
		return !moving
	}
	return true
}

// probeSettled probes the service of an interrupted intent until settled
// says the backend is done, or deadline passes. It returns the last status
// (or the probe's error, which ends the wait: a service that is gone has
// settled), whether it settled, and how long it waited.
func (rt *Runtime) probeSettled(ctx context.Context, p provider.Provider, in ledger.Record, deadline time.Time) (workload.DeploymentStatus, bool, time.Duration, error) {
	start := time.Now()
	for {
		pctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		st, err := p.Status(pctx, in.Service)
		cancel()
		if err != nil {
			return st, true, time.Since(start), err
		}
		if settled(in.Action, in.Detail, st) {
			return st, true, time.Since(start), nil
		}
		if time.Now().Add(settleInterval).After(deadline) {
			return st, false, time.Since(start), nil
		}
		select {
		case <-ctx.Done():
			return st, false, time.Since(start), nil
		case <-time.After(settleInterval):
		}
	}
}

// probeMessage describes a recovery probe for the interrupted result.
func probeMessage(st workload.DeploymentStatus, ok bool, waited time.Duration) string {
	msg := fmt.Sprintf("status probe: %s, %d/%d ready", st.Phase, st.Replicas.Ready, st.Replicas.Desired)
	switch {
	case !ok:
		msg += fmt.Sprintf(" (still changing after %s of waiting for the backend to settle)", waited.Round(100*time.Millisecond))
	case waited >= settleInterval:
		msg += fmt.Sprintf(" (after %s waiting for the backend to settle)", waited.Round(100*time.Millisecond))
	}
	return msg
}

// Recover closes every intent that has no result: for each, it takes the
// service lock (an intent whose lock is held, by the live controller
// running it or by another run on the same service, is left alone for a
// later pass; see RecoverEvery), checks on a fencing ledger that the run
// is not possibly live (fence.go: its controller may have lost the lock
// while still running it; such a run is left for a later pass too), asks
// the provider for the service's status, and appends a result with outcome
// interrupted and the probe's answer. It returns how many runs it closed.
func (rt *Runtime) Recover(ctx context.Context) (int, error) {
	return rt.recoverPass(ctx, slog.LevelInfo)
}

// RecoverEvery runs a recovery pass every interval until ctx ends. The
// pass at start is not enough on its own: an intent whose service was busy
// with another replica's run for longer than RecoverLockWait is left open
// by it (the service lock, not the run, was held), and a replica killed
// after every other one started has nobody to close its intents until one
// restarts. A later pass of any live replica closes both. Runs still held
// by a live controller are logged at debug level, not info, by the
// periodic passes (there is one for every operation in flight).
func (rt *Runtime) RecoverEvery(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		if _, err := rt.recoverPass(ctx, slog.LevelDebug); err != nil && ctx.Err() == nil {
			rt.log.Warn("recovery: periodic pass failed; the next one retries", "err", err)
		}
	}
}

// recoverPass is one pass of Recover; held is the level of the "held by a
// live controller" line.
func (rt *Runtime) recoverPass(ctx context.Context, held slog.Level) (int, error) {
	open, err := rt.recovery.unfinished(ctx, rt.ledger)
	if err != nil {
		return 0, err
	}
	closed := 0
	deadline := time.Now().Add(rt.settle)
	for _, in := range open {
		lctx, cancel := context.WithTimeout(ctx, rt.recWait)
		fl, unlock, err := rt.lockForRecovery(lctx, in)
		cancel()
		if err != nil {
			rt.log.Log(ctx, held, "recovery: run is held by a live controller; leaving it", "run", in.RunID, "service", workload.ServiceID(in.Target, in.Service))
			continue
		}
		// Taking the lock does not prove the run over where a lock can be
		// lost while held (fence.go).
		ok, err := rt.recoverable(ctx, fl, in)
		if err != nil {
			unlock()
			return closed, err
		}
		if !ok {
			unlock()
			rt.log.Log(ctx, held, "recovery: run may still be running (its controller lost the service lock but is not proven gone); leaving it",
				"run", in.RunID, "service", workload.ServiceID(in.Target, in.Service), "deadline", rt.deadline(in))
			continue
		}
		err = rt.closeInterrupted(ctx, in, deadline)
		unlock()
		if err != nil {
			return closed, err
		}
		rt.recovery.closed(in.RunID)
		closed++
	}
	return closed, nil
}

func (rt *Runtime) closeInterrupted(ctx context.Context, in ledger.Record, deadline time.Time) error {
	// Another recovery (another process) may have closed it meanwhile.
	page, err := rt.ledger.Query(ctx, ledger.Filter{RunID: in.RunID, Kind: ledger.KindResult})
	if err != nil {
		return err
	}
	if len(page.Records) > 0 {
		return nil
	}
	msg := "the controller stopped before the result was recorded"
	var detail string
	if t, ok := rt.targets[in.Target]; ok && in.Service != "" {
		later, err := rt.laterRun(ctx, in)
		if err != nil {
			return err
		}
		if later != "" {
			// What this run asked for was replaced by a later run on
			// the service (another replica's): waiting for its state
			// would hold the service lock for nothing. Probe once.
			deadline = time.Now()
		}
		st, ok, waited, err := rt.probeSettled(ctx, t.Provider, in, deadline)
		if err != nil {
			msg += "; status probe failed: " + workload.AsError(err).Message
		} else if later != "" {
			msg += fmt.Sprintf("; status probe: %s, %d/%d ready (run %s on this service came later, so recovery did not wait for this run's state)",
				st.Phase, st.Replicas.Ready, st.Replicas.Desired, later)
			detail = rt.resultDetail(Result{Status: rt.normalise(in.Target, st)})
		} else {
			msg += "; " + probeMessage(st, ok, waited)
			detail = rt.resultDetail(Result{Status: rt.normalise(in.Target, st)})
		}
	} else if in.Service != "" {
		msg += "; target " + in.Target + " is no longer configured, so its status was not probed"
	}
	_, err = rt.append(ctx, ledger.Record{
		RunID: in.RunID, Kind: ledger.KindResult, UserID: in.UserID, Auth: in.Auth, UserName: in.UserName, Action: in.Action, Target: in.Target,
		Service: in.Service, Provider: in.Provider, RequestDigest: in.RequestDigest, IdempotencyKey: in.IdempotencyKey,
		Outcome: ledger.OutcomeInterrupted, ErrorCode: string(workload.Unavailable), Message: rt.creds.Redact(msg),
		Detail: detail, Duration: time.Since(in.Time),
	})
	if err == nil {
		rt.log.Warn("recovery: closed an interrupted run", "run", in.RunID, "action", in.Action, "service", in.Service, "probe", msg)
	}
	return err
}

// laterRun returns the run ID of the newest intent on in's service that
// came after in and changes what the service should be (exec and halt do
// not), or "" when there is none.
func (rt *Runtime) laterRun(ctx context.Context, in ledger.Record) (string, error) {
	page, err := rt.ledger.Query(ctx, ledger.Filter{Target: in.Target, Service: in.Service, Kind: ledger.KindIntent,
		Descending: true, Limit: 20})
	if err != nil {
		return "", err
	}
	for _, r := range page.Records {
		if r.Seq <= in.Seq {
			break
		}
		switch workload.Action(r.Action) {
		case workload.ActionExec, workload.ActionHalt:
			continue
		}
		return r.RunID, nil
	}
	return "", nil
}

// recoveryMark is what this process's recovery passes know of the ledger,
// so that a pass reads what changed since the last one instead of every
// intent (a periodic pass runs every minute in every replica): every
// intent with a seq up to seq had a result when read, except those in
// open. A pass asks the ledger for the intents after seq
// (ledger.UnfinishedAfter: a range of the primary key) and looks up the
// result of each run in open (one index look-up each; they are the runs in
// flight, or held by a live controller for a long time, like an exec).
//
// It is sound whichever process writes the rows: a ledger is one chain
// whose rows become visible in seq order, so no intent can appear at or
// below a head already read, and results are never removed, so an intent
// found closed stays closed. Runs closed in any order, by any replica,
// leave open when their result is seen. Concurrent passes may each set
// the mark: each state they set holds on its own (open may name a run
// closed since, which the next pass looks up and drops).
type recoveryMark struct {
	mu   sync.Mutex
	seq  int64
	open map[string]ledger.Record // by run ID
}

// unfinished returns the intents of l without a result, oldest first: the
// answer of l.Unfinished, read as recoveryMark says.
func (m *recoveryMark) unfinished(ctx context.Context, l ledger.Ledger) ([]ledger.Record, error) {
	m.mu.Lock()
	after, carried := m.seq, slices.Collect(maps.Values(m.open))
	m.mu.Unlock()
	fresh, head, err := ledger.UnfinishedAfter(ctx, l, after)
	if err != nil {
		return nil, err
	}
	if head < after {
		// The ledger ends before a row this process saw: rows were
		// removed from the tail (the head guard refuses appends then).
		// What this process knew no longer holds: read it all.
		m.mu.Lock()
		m.seq, m.open = 0, nil
		m.mu.Unlock()
		if fresh, head, err = ledger.UnfinishedAfter(ctx, l, 0); err != nil {
			return nil, err
		}
		carried = nil
	}
	slices.SortFunc(carried, func(a, b ledger.Record) int { return cmp.Compare(a.Seq, b.Seq) })
	open := make([]ledger.Record, 0, len(carried)+len(fresh))
	for _, in := range carried {
		page, err := l.Query(ctx, ledger.Filter{RunID: in.RunID, Kind: ledger.KindResult, Limit: 1})
		if err != nil {
			return nil, err
		}
		if len(page.Records) == 0 {
			open = append(open, in)
		}
	}
	open = append(open, fresh...) // all after every carried one
	m.mu.Lock()
	if head >= m.seq {
		m.seq, m.open = head, make(map[string]ledger.Record, len(open))
		for _, in := range open {
			m.open[in.RunID] = in
		}
	}
	m.mu.Unlock()
	return open, nil
}

// closed records that the run has a result (recovery appended it, or
// found it appended).
func (m *recoveryMark) closed(runID string) {
	m.mu.Lock()
	delete(m.open, runID)
	m.mu.Unlock()
}

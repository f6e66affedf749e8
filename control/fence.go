package control

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
)

// Fencing: a service lock that is lost while held.
//
// On a ledger.Fencer (PostgreSQL) the service lock lives in a database
// session, and a session can end under a live holder: the server
// terminates it, times it out or restarts, or loses the connection. The
// lock is then free while the holder's provider call is still in flight,
// and another controller can take it. Taking the lock therefore no longer
// proves that the service is idle:
//
//   - A run is possibly live while it has no result, unless its owner is
//     proven gone (ledger.Fencer.OwnerGone: the owner's own session lock
//     has been seen free for a grace period the ledger documents) or its
//     deadline has passed: the intent's time plus the provider timeout the
//     run was given (the request's timeout, recorded in the intent's
//     detail, or the action's configured one; controllers sharing a ledger
//     must share their timeouts) plus fenceGrace, for the call to return
//     after its context ends and for clocks that differ.
//   - Do, having taken the lock, refuses to start while the service's
//     newest run is possibly live (Unavailable, retryable, naming the run;
//     recorded as a rejected row like every refusal). The ledger reads that
//     run in the round trip that takes the lock (no extra round trip).
//   - The holder looks at its lock, without a round trip, after writing its
//     intent: a lost lock means no provider call (the result says so). The
//     call runs under a watch that cancels it once the lock's session is
//     seen ended; its result is written as usual, saying the lock was lost.
//   - Recovery closes another controller's open run as interrupted only
//     when it is not possibly live (recover.go).
//
// Every intent written under a fenced lock records its owner in its detail
// ("owner"). Intents written before fencing have none: they are possibly
// live until their deadline.
//
// What is left: the holder's look after its intent relies on the server's
// notice of the ended session arriving before the reply to its intent
// append (another connection); a reordering (a lost packet) leaves a
// window in which both calls start: they overlap until the old holder's
// watch cancels its call (within its polling interval,
// ledger/postgres/fence.go) and the call returns. A provider that ignores
// its context keeps running past the deadline; the deadline assumes it
// does not.

// fencerOf is l's ledger.Fencer: l itself, or the backend of a wrapper
// that passes its service locks through to it and says so with Inner
// (ledger/checkpoint, which serve puts around the ledger when checkpoints
// are configured: without this, fencing would be off exactly there).
func fencerOf(l ledger.Ledger) (ledger.Fencer, bool) {
	for l != nil {
		if f, ok := l.(ledger.Fencer); ok {
			return f, true
		}
		w, ok := l.(interface{ Inner() ledger.Ledger })
		if !ok {
			break
		}
		l = w.Inner()
	}
	return nil, false
}

// fenceGrace is added to a run's timeout to make its deadline.
const fenceGrace = time.Minute

// serviceHold is a held service lock as Do uses it.
type serviceHold struct {
	rt       *Runtime
	fl       ledger.FencedLock // nil: the ledger does not fence
	unlockFn func()
	released atomic.Bool
}

// unlock gives the lock back.
func (h *serviceHold) unlock() {
	h.released.Store(true)
	h.unlockFn()
}

// lockService takes the service lock of r (the halt lock for a halt) and,
// on a fencing ledger, refuses while the service's newest run is possibly
// live; the refusal is recorded like every other.
func (rt *Runtime) lockService(ctx context.Context, r *Request, digest string) (*serviceHold, error) {
	f, ok := fencerOf(rt.ledger)
	if !ok || r.Action == workload.ActionHalt {
		unlock, err := rt.lock(ctx, r.key())
		if err != nil {
			return nil, err
		}
		return &serviceHold{rt: rt, unlockFn: unlock}, nil
	}
	fl, err := rt.lockFenced(ctx, f, r.Target, r.Service)
	if err != nil {
		return nil, err
	}
	if open := fl.Open(); open != nil {
		live, err := rt.possiblyLive(ctx, f, *open)
		if err != nil {
			fl.Unlock()
			return nil, workload.Errorf(workload.Unavailable, "ledger unavailable, refusing to operate: %w", err)
		}
		if live {
			fl.Unlock()
			// Who started it is left out: the caller may not see other
			// principals' runs; the run ID finds it for one who may.
			e := workload.Errorf(workload.Unavailable, "run %s (%s on %s, started %s) may still be running: "+
				"its controller lost the service lock but is not proven gone; retry once it has a result (at the latest after %s)",
				open.RunID, open.Action, r.key(), open.Time.Format(time.RFC3339), rt.deadline(*open).Format(time.RFC3339))
			_ = rt.reject(ctx, r, digest, e)
			return nil, e
		}
	}
	return &serviceHold{rt: rt, fl: fl, unlockFn: fl.Unlock}, nil
}

// lockFenced takes the service lock target/service in this process and
// through f.
func (rt *Runtime) lockFenced(ctx context.Context, f ledger.Fencer, target, service string) (ledger.FencedLock, error) {
	key := workload.ServiceID(target, service)
	unlock, err := rt.locks.Lock(ctx, key)
	if err != nil {
		return nil, workload.Errorf(workload.Timeout, "waiting for another operation on %s: %w", key, err)
	}
	fl, err := f.LockFenced(ctx, key, target, service)
	if err != nil {
		unlock()
		if ctx.Err() != nil {
			return nil, workload.Errorf(workload.Timeout, "waiting for another controller's operation on %s: %w", key, err)
		}
		return nil, workload.Errorf(workload.Unavailable, "ledger lock for %s: %w", key, err)
	}
	return &localFenced{FencedLock: fl, local: unlock}, nil
}

// localFenced is a fenced lock plus this process's lock of the same key.
type localFenced struct {
	ledger.FencedLock
	local func()
}

func (l *localFenced) Unlock() { l.FencedLock.Unlock(); l.local() }

// intentDetail adds the lock's owner to an intent's detail.
func (h *serviceHold) intentDetail(detail string) string {
	if h.fl == nil {
		return detail
	}
	owner, _ := json.Marshal(h.fl.Owner())
	if detail == "" || detail == "{}" {
		return `{"owner":` + string(owner) + `}`
	}
	if strings.HasPrefix(detail, "{") {
		return `{"owner":` + string(owner) + "," + detail[1:]
	}
	return detail
}

// call runs the provider call of r under the lock: not at all when the
// lock is already lost, cancelled when it is lost during the call.
func (h *serviceHold) call(ctx context.Context, r *Request) (Result, error) {
	if h.fl == nil || h.released.Load() { // exec gave the service back (execlock.go)
		return h.rt.call(ctx, r)
	}
	if !h.fl.Held() {
		return Result{}, workload.Errorf(workload.Unavailable, "the provider was not called: this controller lost the "+
			"service lock of %s (its ledger session ended) before the call; another controller may hold it now", r.key())
	}
	wctx, stop := h.fl.Watch(ctx)
	res, err := h.rt.call(wctx, r)
	stop()
	if err != nil && ctx.Err() == nil && errors.Is(context.Cause(wctx), ledger.ErrLockLost) {
		err = workload.Errorf(workload.Unavailable, "the provider call was cancelled: this controller lost the service lock "+
			"of %s while the call was in flight (its ledger session ended), so another controller may take the service; "+
			"the backend may have applied part of the change: %w", r.key(), err)
	}
	return res, err
}

// possiblyLive reports whether in, an intent without a result, may still
// have its provider call in flight (see Fencing above).
func (rt *Runtime) possiblyLive(ctx context.Context, f ledger.Fencer, in ledger.Record) (bool, error) {
	if !time.Now().Before(rt.deadline(in)) {
		return false, nil
	}
	owner := intentOwner(in.Detail)
	if owner == "" {
		return true, nil
	}
	gone, err := f.OwnerGone(ctx, owner)
	return !gone, err
}

// deadline is when in's provider call has certainly ended (its context
// did), by the time of its intent.
func (rt *Runtime) deadline(in ledger.Record) time.Time {
	d, ok := rt.timeouts[workload.Action(in.Action)]
	if !ok {
		d = MaxTimeout
	}
	var m struct {
		Timeout string `json:"timeout"`
	}
	if json.Unmarshal([]byte(in.Detail), &m) == nil && m.Timeout != "" {
		if t, err := time.ParseDuration(m.Timeout); err == nil && t > 0 {
			d = t
		} else {
			d = max(d, MaxTimeout)
		}
	}
	return in.Time.Add(d + fenceGrace)
}

// intentOwner is the owner an intent's detail records ("" when none).
func intentOwner(detail string) string {
	var m struct {
		Owner string `json:"owner"`
	}
	if json.Unmarshal([]byte(detail), &m) != nil {
		return ""
	}
	return m.Owner
}

// recoverable tells recovery whether it may close in, whose lock it holds
// (fl: the service's fenced lock; nil for an exec's run lock, or on a
// ledger that does not fence): not while in is possibly live.
func (rt *Runtime) recoverable(ctx context.Context, fl ledger.FencedLock, in ledger.Record) (bool, error) {
	f, ok := fencerOf(rt.ledger)
	if !ok || in.Action == string(workload.ActionHalt) {
		// Taking the lock proves the run is not live; a halt calls no
		// provider.
		return true, nil
	}
	if fl != nil {
		// A later intent on the service was written by a controller that
		// passed the fence while in was open: it found in not live.
		if open := fl.Open(); open == nil || open.RunID != in.RunID {
			return true, nil
		}
	}
	live, err := rt.possiblyLive(ctx, f, in)
	return !live, err
}

// lockForRecovery takes the lock recovery needs to close in: the exec run's
// own lock, the halt lock, or the service's (fenced when the ledger
// fences; fl is nil otherwise).
func (rt *Runtime) lockForRecovery(ctx context.Context, in ledger.Record) (fl ledger.FencedLock, unlock func(), err error) {
	switch {
	case in.Action == string(workload.ActionExec):
		unlock, err = rt.lock(ctx, runLockKey(in.RunID))
	case in.Action == string(workload.ActionHalt):
		unlock, err = rt.lock(ctx, "halt")
	default:
		f, ok := fencerOf(rt.ledger)
		if !ok {
			unlock, err = rt.lock(ctx, workload.ServiceID(in.Target, in.Service))
			break
		}
		if fl, err = rt.lockFenced(ctx, f, in.Target, in.Service); err != nil {
			return nil, nil, err
		}
		unlock = fl.Unlock
	}
	if err != nil {
		return nil, nil, fmt.Errorf("recovery lock: %w", err)
	}
	return fl, unlock, nil
}

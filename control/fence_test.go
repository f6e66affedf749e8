package control_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"log/slog"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

var bob = control.Principal{User: "bob", Role: "operator"}

// fenceRig is two controllers (a and b) on one PostgreSQL ledger, sharing
// one memory backend whose calls on a service are watched for overlap; the
// next call on "web" can be held (hold) until release, ignoring its
// context, as a provider slow to notice a cancellation would.
type fenceRig struct {
	dsn            string
	la, lb         *postgres.Ledger
	a, b           *control.Runtime
	mu             sync.Mutex
	inFlight       map[string]int
	overlap        []string
	held           chan context.Context // the held call's context, once entered
	release        chan struct{}
	holdNext       bool
	releaseOnClean sync.Once
}

func newFenceRig(t *testing.T) *fenceRig { return newFenceRigWrapped(t, nil) }

// newFenceRigWrapped is newFenceRig with b's ledger wrapped by wrap (nil:
// none), as serve wraps it in ledger/checkpoint.
func newFenceRigWrapped(t *testing.T, wrap func(ledger.Ledger) ledger.Ledger) *fenceRig {
	t.Helper()
	g := &fenceRig{dsn: pgtest.CreateDB(t), inFlight: map[string]int{}}
	mem := providertest.NewMemory("local")
	mem.Enter = func(ctx context.Context, _ provider.Operation, service string) error {
		g.mu.Lock()
		g.inFlight[service]++
		if g.inFlight[service] > 1 {
			g.overlap = append(g.overlap, service)
		}
		hold := g.holdNext && service == "web"
		g.holdNext = g.holdNext && !hold
		held, release := g.held, g.release
		g.mu.Unlock()
		if hold {
			held <- ctx
			<-release
			if ctx.Err() != nil {
				g.mu.Lock()
				g.inFlight[service]-- // Exit is called only after an Enter that let the call in
				g.mu.Unlock()
				return workload.Errorf(workload.Timeout, "scale web: %w", context.Cause(ctx))
			}
		}
		return nil
	}
	mem.Exit = func(_ provider.Operation, service string) {
		g.mu.Lock()
		g.inFlight[service]--
		g.mu.Unlock()
	}
	open := func() *postgres.Ledger {
		l, err := postgres.Open(context.Background(), g.dsn)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { l.Close() })
		return l
	}
	newRT := func(l ledger.Ledger) *control.Runtime {
		rt, err := control.New(context.Background(), control.Options{Ledger: l, Credentials: credentials.FromMap(nil),
			Targets: []control.Target{{Name: "local", Provider: mem}}, Logger: slog.New(slog.DiscardHandler),
			RecoverLockWait: 5 * time.Second, RecoverSettle: 100 * time.Millisecond})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(rt.Close)
		return rt
	}
	g.la, g.lb = open(), open()
	var lb ledger.Ledger = g.lb
	if wrap != nil {
		lb = wrap(lb)
	}
	g.a, g.b = newRT(g.la), newRT(lb)
	if _, err := g.a.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionStart,
		Target: "local", Service: "web", Spec: spec("web", 1)}); err != nil {
		t.Fatal(err)
	}
	return g
}

// startHeld runs a scale of web on a whose provider call is held, and
// returns once the call is in flight, with its context and the answer to
// come.
func (g *fenceRig) startHeld(t *testing.T) (context.Context, <-chan error) {
	t.Helper()
	g.mu.Lock()
	g.holdNext, g.held, g.release = true, make(chan context.Context, 1), make(chan struct{})
	g.mu.Unlock()
	t.Cleanup(g.releaseHeld)
	done := make(chan error, 1)
	go func() {
		_, err := g.a.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionScale,
			Target: "local", Service: "web", Replicas: 2})
		done <- err
	}()
	select {
	case ctx := <-g.held:
		return ctx, done
	case err := <-done:
		t.Fatalf("the held scale ended before its provider call: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("the held scale never reached its provider call")
	}
	return nil, nil
}

func (g *fenceRig) releaseHeld() { g.releaseOnClean.Do(func() { close(g.release) }) }

// terminateLockSession ends, on the server, the session holding web's
// service lock (as pg_terminate_backend, idle_session_timeout or a restart
// would); PostgreSQL frees the lock.
func (g *fenceRig) terminateLockSession(t *testing.T) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, g.dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var pid int32
	if err := admin.QueryRow(ctx, `SELECT pid FROM pg_locks, (SELECT hashtextextended('local/web', 0) AS k) s
		WHERE locktype = 'advisory' AND granted AND objsubid = 1
		  AND classid = ((k >> 32) & 4294967295)::oid AND objid = (k & 4294967295)::oid`).Scan(&pid); err != nil {
		t.Fatalf("finding the session holding local/web: %v", err)
	}
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating session %d: %v, %v", pid, ok, err)
	}
	// pg_terminate_backend only signals: wait until the lock is free.
	for n := 1; ; n++ {
		var left int
		if err := admin.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE pid = $1", pid).Scan(&left); err != nil {
			t.Fatal(err)
		}
		if left == 0 {
			return
		}
		if n == 300 {
			t.Fatalf("session %d still holds %d locks", pid, left)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (g *fenceRig) scaleB(replicas int) error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	_, err := g.b.Do(ctx, control.Request{Principal: bob, Action: workload.ActionScale, Target: "local", Service: "web", Replicas: replicas})
	return err
}

// openRun is the run ID of web's intent without a result ("" when none).
func (g *fenceRig) openRun(t *testing.T) string {
	t.Helper()
	open, err := g.lb.Unfinished(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, in := range open {
		if in.Service == "web" {
			return in.RunID
		}
	}
	return ""
}

func (g *fenceRig) noOverlap(t *testing.T) {
	t.Helper()
	g.mu.Lock()
	defer g.mu.Unlock()
	if len(g.overlap) > 0 {
		t.Errorf("two provider calls on %v were in flight at once", g.overlap)
	}
}

// TestFenceLostLockSession: the session holding web's service lock is
// terminated while a's scale is in its (slow) provider call. b can take
// the lock now, but must not run a second operation on web while a's may
// still be running: it refuses (unavailable, retryable, naming a's run),
// and records the refusal. a notices that its lock is gone and cancels its
// call; its result says so. Once a's run has its result, b proceeds.
func TestFenceLostLockSession(t *testing.T) {
	t.Run("plain", func(t *testing.T) { testFenceLostLockSession(t, newFenceRig(t)) })
	// serve puts ledger/checkpoint around the ledger when checkpoints
	// are configured; the fence must see through it.
	t.Run("checkpoints", func(t *testing.T) {
		testFenceLostLockSession(t, newFenceRigWrapped(t, func(l ledger.Ledger) ledger.Ledger {
			_, key, err := ed25519.GenerateKey(rand.Reader)
			if err != nil {
				t.Fatal(err)
			}
			cp, _, err := checkpoint.Open(context.Background(), l, checkpoint.Options{Key: key,
				File: filepath.Join(t.TempDir(), "checkpoints"), Logger: slog.New(slog.DiscardHandler)})
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { cp.Close() }) // closes l too (the rig's Close after it is a no-op)
			return cp
		}))
	})
}

func testFenceLostLockSession(t *testing.T, g *fenceRig) {
	callCtx, done := g.startHeld(t)
	run := g.openRun(t)
	g.terminateLockSession(t)

	err := g.scaleB(3)
	if workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), run) || !workload.AsError(err).Retryable {
		t.Fatalf("b's scale while a's run %s may be live: %v; want a retryable unavailable naming the run", run, err)
	}
	page, qerr := g.lb.Query(context.Background(), ledger.Filter{UserID: bob.User, Kind: ledger.KindRejected})
	if qerr != nil || len(page.Records) != 1 || page.Records[0].ErrorCode != string(workload.Unavailable) {
		t.Fatalf("b's refusal in the ledger: %+v, %v; want one rejected row, unavailable", page.Records, qerr)
	}

	// a's watch sees the ended session and cancels its call.
	select {
	case <-callCtx.Done():
		if !errors.Is(context.Cause(callCtx), ledger.ErrLockLost) {
			t.Errorf("a's call cancelled with %v, want ledger.ErrLockLost", context.Cause(callCtx))
		}
	case <-time.After(10 * time.Second):
		t.Fatal("a's provider call was not cancelled after its lock session ended")
	}
	if err := g.scaleB(3); workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("b's scale while a's cancelled call has not returned: %v, want unavailable", err)
	}
	g.releaseHeld()
	err = <-done
	if workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), "lost the service lock") {
		t.Fatalf("a's scale: %v; want unavailable, saying it lost the service lock", err)
	}
	res, qerr := g.lb.Query(context.Background(), ledger.Filter{RunID: run, Kind: ledger.KindResult})
	if qerr != nil || len(res.Records) != 1 || res.Records[0].Outcome != ledger.OutcomeError ||
		!strings.Contains(res.Records[0].Message, "lost the service lock") {
		t.Fatalf("a's result row: %+v, %v; want one error result saying the lock was lost", res.Records, qerr)
	}

	if err := g.scaleB(3); err != nil {
		t.Fatalf("b's scale after a's run ended: %v", err)
	}
	g.noOverlap(t)
}

// TestFenceRecoveryLeavesLiveRun: recovery takes web's lock after the
// session of a's lock ended, but a's run may still be running (a is alive:
// its owner lock is held), so it is left open; a closes it itself.
func TestFenceRecoveryLeavesLiveRun(t *testing.T) {
	g := newFenceRig(t)
	callCtx, done := g.startHeld(t)
	run := g.openRun(t)
	g.terminateLockSession(t)
	if n, err := g.b.Recover(context.Background()); err != nil || n != 0 {
		t.Fatalf("recovery while a's run may be live: closed %d, %v; want 0", n, err)
	}
	if open := g.openRun(t); open != run {
		t.Fatalf("open run after recovery: %q, want %s", open, run)
	}
	// a's watch (a look at its session every 200 ms) cancels its call; a
	// call that returned before the watch saw the ended session would have
	// succeeded, truthfully, and a's result would say so. Recovery can take
	// less than 200 ms on a quiet machine: wait for the watch.
	select {
	case <-callCtx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("a's provider call was not cancelled after its lock session ended")
	}
	g.releaseHeld()
	if err := <-done; workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("a's scale: %v", err)
	}
	res, err := g.lb.Query(context.Background(), ledger.Filter{RunID: run, Kind: ledger.KindResult})
	if err != nil || len(res.Records) != 1 || res.Records[0].Outcome == ledger.OutcomeInterrupted {
		t.Fatalf("a's run's results: %+v, %v; want a's own, one", res.Records, err)
	}
	g.noOverlap(t)
}

// TestFenceOwnerGone: a dies with its scale in flight (its ledger closes:
// every session of a ends, the owner lock's too). b refuses and recovery
// leaves the run until the owner has been seen gone for the grace; then
// recovery closes it as interrupted and b proceeds.
func TestFenceOwnerGone(t *testing.T) {
	g := newFenceRig(t)
	const grace = 500 * time.Millisecond
	g.lb.SetOwnerGrace(grace)
	_, done := g.startHeld(t)
	run := g.openRun(t)
	g.la.Close() // as a crash: a's sessions end, its result cannot be written
	if err := g.scaleB(3); workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), run) {
		t.Fatalf("b's scale right after a died: %v; want unavailable until a is proven gone", err)
	}
	if n, err := g.b.Recover(context.Background()); err != nil || n != 0 {
		t.Fatalf("recovery within the grace: closed %d, %v; want 0", n, err)
	}
	time.Sleep(grace + 100*time.Millisecond)
	if n, err := g.b.Recover(context.Background()); err != nil || n != 1 {
		t.Fatalf("recovery after the grace: closed %d, %v; want 1", n, err)
	}
	if err := g.scaleB(3); err != nil {
		t.Fatalf("b's scale after a's run was closed: %v", err)
	}
	g.releaseHeld()
	<-done
	res, err := g.lb.Query(context.Background(), ledger.Filter{RunID: run, Kind: ledger.KindResult})
	if err != nil || len(res.Records) != 1 || res.Records[0].Outcome != ledger.OutcomeInterrupted {
		t.Fatalf("a's run's results: %+v, %v; want one, interrupted", res.Records, err)
	}
}

package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
)

// terminate ends session pid on the server, as pg_terminate_backend,
// idle_session_timeout or a restart would.
func terminate(t *testing.T, dsn string, pid uint32) {
	t.Helper()
	ctx := context.Background()
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating session %d: %v, %v", pid, ok, err)
	}
}

// TestLockFencedOpenRun: a fenced lock reports the service's newest intent
// that has no result (an exec's excepted, another service's ignored), and
// nothing once it has one.
func TestLockFencedOpenRun(t *testing.T) {
	dsn := newDB(t)
	b := openDSN(t, dsn)
	ctx := context.Background()
	rec := func(run string, kind ledger.Kind, action, service string) {
		t.Helper()
		if _, err := b.Append(ctx, ledger.Record{RunID: run, Kind: kind, UserID: "u", Action: action, Target: "local", Service: service}); err != nil {
			t.Fatal(err)
		}
	}
	openOf := func() string {
		t.Helper()
		a := openDSN(t, dsn) // a lock taken afresh: this test appends without it
		fl, err := a.LockFenced(ctx, "local/web", "local", "web")
		if err != nil {
			t.Fatal(err)
		}
		defer fl.Unlock()
		if fl.Owner() == "" || !fl.Held() {
			t.Fatalf("owner %q, held %v", fl.Owner(), fl.Held())
		}
		if o := fl.Open(); o != nil {
			return o.RunID
		}
		return ""
	}
	if got := openOf(); got != "" {
		t.Fatalf("empty ledger: open run %q", got)
	}
	rec("run_1", ledger.KindIntent, "scale", "web")
	rec("run_2", ledger.KindIntent, "exec", "web")
	rec("run_3", ledger.KindIntent, "scale", "api")
	if got := openOf(); got != "run_1" {
		t.Fatalf("open run %q, want run_1 (exec and another service excepted)", got)
	}
	rec("run_1", ledger.KindResult, "scale", "web")
	if got := openOf(); got != "" {
		t.Fatalf("open run %q after its result", got)
	}
}

// TestLockFencedLingerChecks: a lingering lock whose last check found a run
// open is checked again when taken back; one that found none, and was held
// since, is not (nobody else could write an intent meanwhile).
func TestLockFencedLingerChecks(t *testing.T) {
	a, b, _ := twoProcesses(t)
	a.setLockTimes(time.Hour, time.Hour)
	ctx := context.Background()
	if _, err := b.Append(ctx, ledger.Record{RunID: "run_1", Kind: ledger.KindIntent, UserID: "u", Action: "scale", Target: "local", Service: "web"}); err != nil {
		t.Fatal(err)
	}
	fl, err := a.LockFenced(ctx, "local/web", "local", "web")
	if err != nil || fl.Open() == nil {
		t.Fatalf("first lock: %v, open %v", err, fl)
	}
	fl.Unlock()
	if _, err := b.Append(ctx, ledger.Record{RunID: "run_1", Kind: ledger.KindResult, UserID: "u", Action: "scale", Target: "local", Service: "web"}); err != nil {
		t.Fatal(err)
	}
	fl, err = a.LockFenced(ctx, "local/web", "local", "web")
	if err != nil || fl.Open() != nil {
		t.Fatalf("relock after the result: %v, open %+v", err, fl.Open())
	}
	fl.Unlock()
	if !a.idleLocks["local/web"].clean {
		t.Fatal("a check that found no open run left the lock unclean")
	}
}

// TestFencedLockWatch: the session of a held fenced lock is terminated;
// Held turns false and a watched context is cancelled with ErrLockLost.
func TestFencedLockWatch(t *testing.T) {
	dsn := newDB(t)
	a := openDSN(t, dsn)
	ctx := context.Background()
	fl, err := a.LockFenced(ctx, "local/web", "local", "web")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Unlock()
	wctx, stop := fl.Watch(ctx)
	defer stop()
	terminate(t, dsn, a.heldBy("local/web"))
	select {
	case <-wctx.Done():
	case <-time.After(10 * time.Second):
		t.Fatal("watch did not see the lock's session end")
	}
	if !errors.Is(context.Cause(wctx), ledger.ErrLockLost) {
		t.Errorf("cause %v, want ErrLockLost", context.Cause(wctx))
	}
	if fl.Held() {
		t.Error("Held after the session ended")
	}
}

// TestOwnerGone: an owner is alive while its owner lock is held, and gone
// only once it has been seen free for the grace; a Ledger's own owner is
// never gone, and a lost owner session gives way to a new owner.
func TestOwnerGone(t *testing.T) {
	a, b, dsn := twoProcesses(t)
	const grace = 300 * time.Millisecond
	b.SetOwnerGrace(grace)
	ctx := context.Background()
	fl, err := a.LockFenced(ctx, "local/web", "local", "web")
	if err != nil {
		t.Fatal(err)
	}
	owner := fl.Owner()
	fl.Unlock()
	gone := func(l *Ledger) bool {
		t.Helper()
		g, err := l.OwnerGone(ctx, owner)
		if err != nil {
			t.Fatal(err)
		}
		return g
	}
	if gone(b) || gone(a) {
		t.Fatal("a live owner is gone")
	}
	a.fence.mu.Lock()
	pid := a.fence.owner.conn.PgConn().PID()
	lost := a.fence.owner.lost
	a.fence.mu.Unlock()
	terminate(t, dsn, pid)
	select {
	case <-lost:
	case <-time.After(10 * time.Second):
		t.Fatal("the owner's monitor did not see its session end")
	}
	if gone(b) {
		t.Fatal("gone as soon as its lock is free: want the grace first")
	}
	time.Sleep(grace + 50*time.Millisecond)
	if !gone(b) {
		t.Fatal("not gone after the grace")
	}
	fl, err = a.LockFenced(ctx, "local/web", "local", "web")
	if err != nil {
		t.Fatal(err)
	}
	defer fl.Unlock()
	if fl.Owner() == owner {
		t.Error("a lost owner session came back under the same owner id")
	}
}

// TestLockFencedHandOver: a hand-over nobody waited for keeps a clean lock
// clean (no check, no round trip beyond the hand-over's); one that another
// process took in between checks again, and sees the run that process left
// open.
func TestLockFencedHandOver(t *testing.T) {
	a, b, _ := twoProcesses(t)
	a.pollPaused.Store(true)
	a.setLockTimes(time.Hour, 0)
	a.setWaiterStale(0) // every relock hands over, as while the waiter polls fail
	ctx := context.Background()
	lock := func(l *Ledger) ledger.FencedLock {
		t.Helper()
		fl, err := l.LockFenced(ctx, "local/web", "local", "web")
		if err != nil {
			t.Fatal(err)
		}
		return fl
	}
	lock(a).Unlock()
	// Written without the lock, which no controller does: a clean
	// hand-over does not look, so it does not see it.
	if _, err := b.Append(ctx, ledger.Record{RunID: "run_0", Kind: ledger.KindIntent, UserID: "u", Action: "scale", Target: "local", Service: "web"}); err != nil {
		t.Fatal(err)
	}
	fl := lock(a)
	if fl.Open() != nil {
		t.Fatalf("a hand-over nobody waited for checked: open %s", fl.Open().RunID)
	}
	if _, err := b.Append(ctx, ledger.Record{RunID: "run_0", Kind: ledger.KindResult, UserID: "u", Action: "scale", Target: "local", Service: "web"}); err != nil {
		t.Fatal(err)
	}
	got := make(chan ledger.FencedLock, 1)
	go func() { got <- lock(b) }() // waits for a
	for {
		var waiting int
		if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted").Scan(&waiting); err != nil {
			t.Fatal(err)
		}
		if waiting > 0 {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	fl.Unlock()
	relocked := make(chan ledger.FencedLock, 1)
	go func() { relocked <- lock(a) }() // hands over to b, then waits
	fb := <-got
	if _, err := b.Append(ctx, ledger.Record{RunID: "run_1", Kind: ledger.KindIntent, UserID: "u", Action: "scale", Target: "local", Service: "web"}); err != nil {
		t.Fatal(err)
	}
	fb.Unlock() // as if b's session ended with its run open
	b.Close()
	fa := <-relocked
	defer fa.Unlock()
	if fa.Open() == nil || fa.Open().RunID != "run_1" {
		t.Fatalf("after b had the lock: open %+v, want run_1", fa.Open())
	}
}

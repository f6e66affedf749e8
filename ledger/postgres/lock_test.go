package postgres

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// TestLockLingers: an unlocked service lock lingers on its session, so the
// next LockService of the key in this process takes it back without a
// round trip (same session, no pg_advisory_lock); another process gets it
// once it stopped lingering, at most lockLinger after the unlock.
func TestLockLingers(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx := context.Background()
	unlock, err := a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	first := a.heldBy("svc/web")
	unlock()
	unlock() // idempotent: the lock lingers once
	unlock, err = a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	if again := a.heldBy("svc/web"); again == 0 || again != first {
		t.Errorf("relocked on session %d, first on %d: not taken back", again, first)
	}
	// Exclusion holds while it is held again.
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := b.LockService(short, "svc/web"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("other process while held: %v", err)
	}
	unlock()
	start := time.Now()
	ub, err := b.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	t.Logf("the other process had it %v after the unlock", waited)
	// Not taken back while the other process holds it.
	short2, cancel2 := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel2()
	if _, err := a.LockService(short2, "svc/web"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("taken back while another process holds it: %v", err)
	}
	ub()
}

// TestLockLingerIsFair: a process that takes and gives back a lock in a
// tight loop keeps it at most lockMaxHold from another process waiting for
// it.
func TestLockLingerIsFair(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	u, err := a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	u()
	done := make(chan error, 1)
	go func() {
		for ctx.Err() == nil {
			u, err := a.LockService(ctx, "svc/web")
			if err != nil {
				if ctx.Err() == nil {
					done <- err
				}
				break
			}
			u()
		}
		close(done)
	}()
	start := time.Now()
	ub, err := b.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	waited := time.Since(start)
	ub()
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	t.Logf("the waiting process had it after %v", waited)
	if waited > lockMaxHold+30*time.Second { // starved: without lockMaxHold it would wait until the loop ends
		t.Errorf("the waiting process waited %v (lockMaxHold %v)", waited, lockMaxHold)
	}
}

// TestLockLingerClose: Close ends lingering sessions: another process has
// the lock at once.
func TestLockLingerClose(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx := context.Background()
	u, err := a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	u()
	if a.heldBy("svc/web") == 0 {
		t.Fatal("the lock does not linger")
	}
	a.Close()
	if _, err := a.LockService(ctx, "svc/web"); !errors.Is(err, ErrClosed) {
		t.Errorf("LockService after Close: %v", err)
	}
	ub, err := b.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	ub()
}

// heldBy is the backend PID of the session holding key's lock in l, held
// or lingering; 0 if none.
func (l *Ledger) heldBy(key string) uint32 {
	l.locksMu.Lock()
	defer l.locksMu.Unlock()
	for h := range l.locks {
		if h.key == key {
			return h.conn.Conn().PgConn().PID()
		}
	}
	return 0
}

// TestLockLingerSessionLost: a lingering lock whose session the server
// ended (pg_terminate_backend here; an idle timeout or a restart alike) is
// not taken back: the server freed the lock and another process holds it
// now, so the relock waits for that process. Two processes must never
// hold one service lock at once.
func TestLockLingerSessionLost(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	a.linger, a.maxHold = time.Hour, time.Hour // however slow the machine, the relock below is the no-round-trip one
	ctx := context.Background()
	ua, err := a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	pid := a.heldBy("svc/web")
	admin, err := pgx.Connect(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close(ctx)
	var ok bool
	if err := admin.QueryRow(ctx, "SELECT pg_terminate_backend($1)", pid).Scan(&ok); err != nil || !ok {
		t.Fatalf("terminating session %d: %v, %v", pid, ok, err)
	}
	wait, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	ub, err := b.LockService(wait, "svc/web") // the server freed it
	if err != nil {
		t.Fatal(err)
	}
	ua() // lingers, on a session that is gone
	short, cancel2 := context.WithTimeout(ctx, 300*time.Millisecond)
	defer cancel2()
	if u, err := a.LockService(short, "svc/web"); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u()
		}
		t.Fatalf("relock while another process holds the lock: err = %v, want a wait that times out", err)
	}
	ub()
	ua, err = a.LockService(wait, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	if again := a.heldBy("svc/web"); again == pid {
		t.Errorf("relocked on the ended session %d", pid)
	}
	ua()
}

// TestLockHandOver: a lock held for lockMaxHold or more is taken back on
// its own session, which holds it again (one round trip: unlock and lock
// pipelined), and excludes another process as before.
func TestLockHandOver(t *testing.T) {
	dsn := newDB(t)
	a, b := openDSN(t, dsn), openDSN(t, dsn)
	ctx := context.Background()
	u, err := a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	first := a.heldBy("svc/web")
	time.Sleep(lockMaxHold + 10*time.Millisecond)
	u()
	u, err = a.LockService(ctx, "svc/web")
	if err != nil {
		t.Fatal(err)
	}
	if again := a.heldBy("svc/web"); again != first {
		t.Errorf("relocked on session %d, first on %d", again, first)
	}
	var n int
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1", first).Scan(&n); err != nil || n != 1 {
		t.Errorf("advisory locks of session %d: %d (%v), want 1", first, n, err)
	}
	short, cancel := context.WithTimeout(ctx, 100*time.Millisecond)
	defer cancel()
	if _, err := b.LockService(short, "svc/web"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("other process while held again: %v", err)
	}
	u()
}

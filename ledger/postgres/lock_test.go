package postgres

import (
	"context"
	"errors"
	"testing"
	"time"
)

// TestLockLingers: an unlocked service lock lingers on its session, so the
// next LockService of the key in this process takes it back without a
// round trip (same session, no pg_advisory_lock); another process gets it
// once it stopped lingering: as soon as a waiter poll finds that process
// waiting (waiters.go).
func TestLockLingers(t *testing.T) {
	a, b, _ := twoProcesses(t)
	ctx := context.Background()
	unlock := mustLock(t, ctx, a, "svc/web")
	first := a.heldBy("svc/web")
	unlock()
	unlock() // idempotent: the lock lingers once
	unlock = mustLock(t, ctx, a, "svc/web")
	if again := a.heldBy("svc/web"); again == 0 || again != first {
		t.Errorf("relocked on session %d, first on %d: not taken back", again, first)
	}
	mustWait(t, b, "svc/web", 100*time.Millisecond, "other process while held again") // exclusion holds
	unlock()
	start := time.Now()
	ub := mustLock(t, ctx, b, "svc/web")
	t.Logf("the other process had it %v after the unlock", time.Since(start))
	mustWait(t, a, "svc/web", 100*time.Millisecond, "taken back while another process holds it")
	ub()
}

// TestLockLingerIsFair: a process that takes and gives back a lock in a
// tight loop keeps it at most lockMaxHold from another process waiting for
// it.
func TestLockLingerIsFair(t *testing.T) {
	a, b, _ := twoProcesses(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	mustLock(t, ctx, a, "svc/web")()
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
	mustLock(t, ctx, b, "svc/web")()
	waited := time.Since(start)
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
	a, b, _ := twoProcesses(t)
	ctx := context.Background()
	mustLock(t, ctx, a, "svc/web")()
	if a.heldBy("svc/web") == 0 {
		t.Fatal("the lock does not linger")
	}
	a.Close()
	if _, err := a.LockService(ctx, "svc/web"); !errors.Is(err, ErrClosed) {
		t.Errorf("LockService after Close: %v", err)
	}
	mustLock(t, ctx, b, "svc/web")()
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

// twoProcesses opens two Ledgers on one new database, as two controller
// processes sharing a ledger; dsn is the database's.
func twoProcesses(t *testing.T) (a, b *Ledger, dsn string) {
	t.Helper()
	dsn = newDB(t)
	return openDSN(t, dsn), openDSN(t, dsn), dsn
}

// mustLock takes key in l, or fails the test.
func mustLock(t *testing.T, ctx context.Context, l *Ledger, key string) (unlock func()) {
	t.Helper()
	unlock, err := l.LockService(ctx, key)
	if err != nil {
		t.Fatal(err)
	}
	return unlock
}

// mustWait fails the test unless l's LockService of key is still waiting
// after d (another session holds key); what says when.
func mustWait(t *testing.T, l *Ledger, key string, d time.Duration, what string) {
	t.Helper()
	short, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	if u, err := l.LockService(short, key); !errors.Is(err, context.DeadlineExceeded) {
		if err == nil {
			u()
		}
		t.Fatalf("%s: err = %v, want a wait that times out", what, err)
	}
}

// TestLockLingerSessionLost: a lingering lock whose session the server
// ended (pg_terminate_backend here; an idle timeout or a restart alike) is
// not taken back: the server freed the lock and another process holds it
// now, so the relock waits for that process. Two processes must never
// hold one service lock at once.
func TestLockLingerSessionLost(t *testing.T) {
	a, b, dsn := twoProcesses(t)
	a.setLockTimes(time.Hour, time.Hour) // however slow the machine, the relock below is the no-round-trip one
	wait, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	ua := mustLock(t, wait, a, "svc/web")
	pid := a.heldBy("svc/web")
	terminate(t, dsn, pid)
	ub := mustLock(t, wait, b, "svc/web") // the server freed it
	ua()                                  // lingers, on a session that is gone
	mustWait(t, a, "svc/web", 300*time.Millisecond, "relock while another process holds the lock")
	ub()
	ua = mustLock(t, wait, a, "svc/web")
	if again := a.heldBy("svc/web"); again == pid {
		t.Errorf("relocked on the ended session %d", pid)
	}
	ua()
}

// TestLockHandOver: while the waiter polls fail (waiters.go), a lock held
// for lockMaxHold or more is handed over at its relock whether or not
// anybody waits, and taken back on its own session, which holds it again
// (one round trip: unlock and lock pipelined), and excludes another
// process as before.
func TestLockHandOver(t *testing.T) {
	a, b, _ := twoProcesses(t)
	a.pollPaused.Store(true)
	a.setWaiterStale(0) // every answer is stale
	ctx := context.Background()
	u := mustLock(t, ctx, a, "svc/web")
	first := a.heldBy("svc/web")
	time.Sleep(lockMaxHold + 10*time.Millisecond)
	u()
	u = mustLock(t, ctx, a, "svc/web")
	if again := a.heldBy("svc/web"); again != first {
		t.Errorf("relocked on session %d, first on %d", again, first)
	}
	var n int
	if err := a.pool.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted AND pid = $1", first).Scan(&n); err != nil || n != 1 {
		t.Errorf("advisory locks of session %d: %d (%v), want 1", first, n, err)
	}
	mustWait(t, b, "svc/web", 100*time.Millisecond, "other process while held again")
	u()
	if n := a.handOvers.Load(); n != 1 {
		t.Errorf("%d hand-overs, want 1", n)
	}
}

// TestLockLetsGoWhenWaited: with the waiter polls answering, a lock held
// for lockMaxHold or more is taken back as is (no round trip) while nobody
// waits for it; once a poll has found another process waiting, the next
// unlock lets it go at once (no lingering), that process has it, and this
// one's next lock waits for it.
func TestLockLetsGoWhenWaited(t *testing.T) {
	a, b, _ := twoProcesses(t)
	a.setWaiterStale(time.Hour) // however late a poll comes on a loaded machine
	ctx := context.Background()
	u := mustLock(t, ctx, a, "svc/web")
	first := a.heldBy("svc/web")
	time.Sleep(lockMaxHold)
	a.waitForPoll(t) // a poll made while held, finding no waiter
	u()
	u = mustLock(t, ctx, a, "svc/web")
	if again := a.heldBy("svc/web"); again != first {
		t.Errorf("relocked on session %d, first on %d", again, first)
	}
	if n := a.handOvers.Load(); n != 0 {
		t.Errorf("%d hand-overs while nobody waited, want 0", n)
	}
	got := make(chan func(), 1)
	go func() {
		ub, err := b.LockService(ctx, "svc/web")
		if err != nil {
			t.Error(err)
			ub = func() {}
		}
		got <- ub
	}()
	deadline := time.Now().Add(30 * time.Second)
	for !a.pollFoundWaiting("svc/web") {
		if time.Now().After(deadline) {
			t.Fatal("no poll found the other process waiting")
		}
		time.Sleep(5 * time.Millisecond)
	}
	u() // lets go: b has it
	ub := <-got
	mustWait(t, a, "svc/web", 100*time.Millisecond, "while the other process holds it")
	ub()
	mustLock(t, ctx, a, "svc/web")()
	if n := a.handOvers.Load(); n != 0 {
		t.Errorf("%d hand-overs, want 0 (the unlock let go)", n)
	}
}

// pollFoundWaiting tells whether the last waiter poll found key waited
// for by another session.
func (l *Ledger) pollFoundWaiting(key string) bool {
	l.locksMu.Lock()
	defer l.locksMu.Unlock()
	_, ok := l.waiters.waited[lockText(key)]
	return ok
}

// waitForPoll waits for a waiter poll that starts from now and answers.
func (l *Ledger) waitForPoll(t *testing.T) {
	t.Helper()
	start := time.Now()
	deadline := start.Add(30 * time.Second)
	for {
		l.locksMu.Lock()
		at := l.waiters.at
		l.locksMu.Unlock()
		if !at.Before(start) {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("no waiter poll answered")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestLockLingersWhileWatched: while the waiter polls answer, an unlocked
// lock that was taken back before (a service operated on again and again)
// lingers far longer than lockLinger (lockLingerWatched), and ends as soon
// as a poll finds another process waiting for it (TestLockLingers); a lock
// never taken back (a key used once, as an Idempotency-Key's) lingers
// lockLinger only, so such keys do not fill the lock sessions.
func TestLockLingersWhileWatched(t *testing.T) {
	a, _, _ := twoProcesses(t)
	a.setWaiterStale(time.Hour) // a poll late on a loaded machine must not end the lock (the fallback)
	ctx := context.Background()
	mustLock(t, ctx, a, "svc/once")()
	u := mustLock(t, ctx, a, "svc/web")
	first := a.heldBy("svc/web")
	u()
	u = mustLock(t, ctx, a, "svc/web") // taken back
	a.waitForPoll(t)
	u()
	time.Sleep(5 * lockLinger)
	if again := a.heldBy("svc/web"); again != first {
		t.Fatalf("after %v the lock is held by session %d, was %d: it did not linger", 5*lockLinger, again, first)
	}
	if s := a.heldBy("svc/once"); s != 0 {
		t.Errorf("a lock used once still lingers on session %d after %v", s, 5*lockLinger)
	}
	mustLock(t, ctx, a, "svc/web")()
	if again := a.heldBy("svc/web"); again != first {
		t.Errorf("relocked on session %d, first on %d: not taken back", again, first)
	}
}

// setWaiterStale sets how old a waiter poll may be and still be relied on
// (the poller reads it).
func (l *Ledger) setWaiterStale(d time.Duration) {
	l.locksMu.Lock()
	l.waiterStale = d
	l.locksMu.Unlock()
}

// setLockTimes sets l.linger and l.maxHold (the poller reads linger).
func (l *Ledger) setLockTimes(linger, maxHold time.Duration) {
	l.locksMu.Lock()
	l.linger, l.maxHold = linger, maxHold
	l.locksMu.Unlock()
}

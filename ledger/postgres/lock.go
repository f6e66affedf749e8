package postgres

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/alphaswarm/controller/ledger"
)

// Lingering. Taking a service lock costs a round trip on its session
// (pg_advisory_lock) and giving it back another (pg_advisory_unlock): two
// of the few round trips an operation pays besides its appends. Most of the
// time the next operation on a service comes from the same controller
// moments later, so an unlocked service lock lingers: its session keeps it
// and a LockService of the same key in that time takes it back without a
// round trip. How long:
//
//   - lockLinger after an unlock, for a lock never taken back yet (a key
//     used once, as an Idempotency-Key's, does not hold a session long);
//   - up to lockLingerWatched for a lock taken back before, ended sooner
//     by the waiter poller (waiters.go): when a poll finds another session
//     waiting for it (and an unlock after such a poll lets the lock go
//     instead of lingering), and, while the polls cannot tell (they fail,
//     or fall behind), once it has lingered lockLinger.
//
// Exclusion is unchanged — the session holds the lock the whole time, and
// in this process a lingering lock is handed to one caller at a time —
// only the moment another process can have it moves: about waiterPollEvery
// (plus the poll's time) after it starts waiting while the polls answer;
// while they fail, once they are stale (waiterPollStale) and the poller's
// next round has come, and at the latest lockLingerWatched after the
// unlock.
//
// Fairness. A process that relocks a lock in a tight loop never leaves it
// lingering long enough for the lock to go by itself. Once a poll has
// found another session waiting, the next unlock lets the lock go (above),
// and that session has it. In the fallback, while the polls cannot tell, a
// lock its session has held for lockMaxHold or more is not taken back as
// is: the relock sends pg_advisory_unlock and pg_try_advisory_lock in one
// pipelined round trip on the same session (handOver). The unlock hands the
// lock to a process that waits for it (PostgreSQL grants it to the queued
// waiter at once), so the try fails and the session then queues behind it
// (pg_advisory_lock, a second round trip, while that process runs its
// operation); with no waiter the try takes it again. So a
// process waiting for a lock that another relocks in a tight loop gets it
// within waiterPollEvery (plus the poll's time and the operation under
// way) while the polls answer, and within lockMaxHold plus the operation
// while they do not; the loop pays no round trip for fairness while nobody
// waits, and knows whether anyone else had the lock in between (fence.go's
// check is skipped when nobody did).
//
// A lost session. A lingering lock is only taken back when its session is
// quiet (session_unix.go: nothing to read, not closed: one non-blocking
// look at the socket). A session the server ended — terminated, timed out,
// restarted — has freed its locks, and another process may hold them now;
// the server's last message or EOF is on the socket, so the lock is not
// reused but taken afresh, waiting for that process like any other.
// Where the socket cannot be looked at, a lingering lock is never reused.
// Close ends lingering sessions like held ones.
//
// Why a session per lock, not one session for every lock of the process:
// one shared session would take many locks in one round trip, but its loss
// would free every lock the process holds at once, and while one
// pg_advisory_lock waits on a session nothing else can be sent on it. A
// session per lock keeps a waiter from blocking others and a lost session
// to the one lock it held; lingering takes away most of the round trips
// that sharing would save.
const (
	lockLinger        = 20 * time.Millisecond
	lockLingerWatched = 2 * time.Second
	lockMaxHold       = 100 * time.Millisecond
)

// heldLock is a service lock and the session holding it. Its fields but
// l, key and conn are guarded by l.locksMu.
type heldLock struct {
	l     *Ledger
	key   string
	conn  *pgxpool.Conn
	since time.Time // when the session took the lock
	gen   uint64    // acquisitions
	idle  bool      // lingering: held by the session, by no caller
	// idleSince is when the lock last began to linger; reused, whether
	// it was ever taken back (only such a lock lingers long: unlock).
	idleSince time.Time
	reused    bool
	// timer ends the lingering of acquisition armed (expire); one per
	// lock, reset at each unlock, stopped by release.
	timer *time.Timer
	armed uint64
	// clean: the last open-run check (fence.go) on this session found
	// none, and the session has held the lock without a break since.
	clean bool
	once  sync.Once
	// connMu guards conn against release while a fenced lock's watch
	// looks at it (fence.go); dead is set by release.
	connMu sync.Mutex
	dead   bool
}

// LockService waits until no other session, in this or any other process,
// holds key, then holds it until unlock is called, the Ledger is closed or
// the process dies. It gives up with ctx's error when ctx ends first.
func (l *Ledger) LockService(ctx context.Context, key string) (unlock func(), err error) {
	h, _, err := l.acquire(ctx, key, nil)
	if err != nil {
		return nil, err
	}
	return h.unlocker(), nil
}

// acquire takes key's lock as LockService says. With chk, it also reads
// the service's newest open run on the lock's session right after the lock
// is granted, in the same round trip (fence.go), except when the lock is
// taken back from a session that held it without a break since its last
// check found none.
func (l *Ledger) acquire(ctx context.Context, key string, chk *openCheck) (*heldLock, *ledger.Record, error) {
	select {
	case <-l.done:
		return nil, nil, ErrClosed
	default:
	}
	// Wait until ctx ends or the Ledger is closed, whichever is first.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.closing, cancel)()
	fail := func(err error) (*heldLock, *ledger.Record, error) {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case l.closing.Err() != nil:
			err = ErrClosed
		}
		return nil, nil, fmt.Errorf("ledger/postgres: lock %q: %w", key, err)
	}
	if h, handOver, clean := l.reuse(key); h != nil {
		var open *ledger.Record
		var err error
		switch {
		case handOver:
			l.handOvers.Add(1)
			open, err = h.handOver(wctx, chk)
		case chk != nil && !clean:
			open, err = h.check(wctx, chk) // after a run found open: rare
		}
		if err == nil {
			return h, open, nil
		}
		h.release(false) // its state is unknown; ending it frees the lock
		if wctx.Err() != nil {
			return fail(err)
		}
		// The session failed: take the lock afresh, below.
	}
	l.evictIfFull()
	conn, err := l.lockPool.Acquire(wctx)
	if err != nil {
		return fail(err)
	}
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_lock(hashtextextended($1, 0))", lockText(key))
	chk.queue(b)
	br := conn.SendBatch(wctx, b)
	_, err = br.Exec()
	var open *ledger.Record
	if err == nil {
		open, err = chk.read(br)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		// The session's state is unknown (the lock may have been granted
		// as the wait was cancelled): end it, which frees anything it
		// holds.
		discard(conn)
		return fail(err)
	}
	h := &heldLock{l: l, key: key, conn: conn, since: time.Now(), clean: chk != nil && open == nil}
	l.locksMu.Lock()
	if l.closed {
		l.locksMu.Unlock()
		discard(conn)
		return nil, nil, ErrClosed
	}
	l.locks[h] = struct{}{}
	l.locksMu.Unlock()
	return h, open, nil
}

// reuse takes key's lingering lock, if there is one whose session is
// quiet, and tells whether to hand it over first (Fairness above) and
// whether its last check found the service without an open run (clean).
func (l *Ledger) reuse(key string) (h *heldLock, handOver, clean bool) {
	l.locksMu.Lock()
	h = l.idleLocks[key]
	if h == nil || l.closed {
		l.locksMu.Unlock()
		return nil, false, false
	}
	delete(l.idleLocks, key)
	h.idle = false
	h.gen++
	h.reused = true
	handOver = time.Since(h.since) >= l.maxHold && l.mayBeWaitedFor(key, h.since)
	clean = h.clean
	l.locksMu.Unlock()
	if !quiet(h.conn.Conn().PgConn()) {
		h.release(false)
		return nil, false, false
	}
	return h, handOver, clean
}

// handOver gives h's lock to a process waiting for it, if any, and takes
// it back (after that process, if it had it; see Fairness above): one
// round trip (pg_advisory_unlock and pg_try_advisory_lock pipelined) when
// nobody was waiting, a second one (pg_advisory_lock) to queue behind a
// process that was. chk's read follows in that second round trip, or, when
// nobody had the lock in between, only if the last check found a run open
// (a clean lock stays clean: no other process had it). On an error the
// session's state is unknown: the caller ends it.
func (h *heldLock) handOver(ctx context.Context, chk *openCheck) (*ledger.Record, error) {
	b := &pgx.Batch{}
	b.Queue("SELECT pg_advisory_unlock(hashtextextended($1, 0))", lockText(h.key))
	b.Queue("SELECT pg_try_advisory_lock(hashtextextended($1, 0))", lockText(h.key))
	br := h.conn.SendBatch(ctx, b)
	var held, again bool
	err := br.QueryRow().Scan(&held)
	if err == nil && !held {
		err = errors.New("the session did not hold the lock it was lingering with")
	}
	if err == nil {
		err = br.QueryRow().Scan(&again)
	}
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	h.l.locksMu.Lock()
	clean := h.clean
	h.l.locksMu.Unlock()
	var open *ledger.Record
	switch {
	case !again: // a waiting process has it now: queue behind it
		b := &pgx.Batch{}
		b.Queue("SELECT pg_advisory_lock(hashtextextended($1, 0))", lockText(h.key))
		chk.queue(b)
		br := h.conn.SendBatch(ctx, b)
		_, err = br.Exec()
		if err == nil {
			open, err = chk.read(br)
		}
		if cerr := br.Close(); err == nil {
			err = cerr
		}
		clean = chk != nil && open == nil
	case chk != nil && !clean:
		open, err = h.check(ctx, chk)
		clean = open == nil
	}
	if err != nil {
		return nil, err
	}
	h.l.locksMu.Lock()
	h.since, h.clean = time.Now(), clean
	h.l.locksMu.Unlock()
	return open, nil
}

// check reads chk on h's session (one round trip).
func (h *heldLock) check(ctx context.Context, chk *openCheck) (*ledger.Record, error) {
	b := &pgx.Batch{}
	chk.queue(b)
	br := h.conn.SendBatch(ctx, b)
	open, err := chk.read(br)
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return nil, err
	}
	h.l.locksMu.Lock()
	h.clean = open == nil
	h.l.locksMu.Unlock()
	return open, nil
}

// evictIfFull ends one lingering lock when every session of the lock pool
// is taken, so that lingering never makes a caller wait for a session.
func (l *Ledger) evictIfFull() {
	if l.lockPool.Stat().AcquiredConns() < maxLockConns {
		return
	}
	l.locksMu.Lock()
	var h *heldLock
	for k, x := range l.idleLocks {
		h = x
		delete(l.idleLocks, k)
		h.idle = false
		break
	}
	l.locksMu.Unlock()
	if h != nil {
		h.release(true)
	}
}

// unlocker is the unlock function of one acquisition of h.
func (h *heldLock) unlocker() func() {
	var once sync.Once
	return func() { once.Do(h.unlock) }
}

// unlock lets h linger when it may (Lingering above), and frees it
// otherwise: at once when a waiter poll has found another session waiting
// for it.
func (h *heldLock) unlock() {
	l := h.l
	l.locksMu.Lock()
	if !l.closed && l.idleLocks[h.key] == nil && !l.waitedFor(h.key, h.since) {
		if l.idleLocks == nil {
			l.idleLocks = map[string]*heldLock{}
		}
		l.idleLocks[h.key] = h
		h.idle, h.idleSince, h.armed = true, time.Now(), h.gen
		linger := l.linger
		if h.reused {
			// The poller ends it sooner: when a poll finds it waited for,
			// or once it has lingered lockLinger while the polls cannot
			// tell (decided then, not now: a poll late at this moment
			// must not end every lock a busy moment left lingering).
			linger = max(linger, lockLingerWatched)
		}
		if h.timer == nil {
			h.timer = time.AfterFunc(linger, h.expire)
		} else {
			h.timer.Reset(linger)
		}
		l.locksMu.Unlock()
		return
	}
	l.locksMu.Unlock()
	h.release(true)
}

// expire frees h if it still lingers since its timer was armed.
func (h *heldLock) expire() {
	l := h.l
	l.locksMu.Lock()
	if !h.idle || h.gen != h.armed || l.idleLocks[h.key] != h {
		l.locksMu.Unlock()
		return
	}
	delete(l.idleLocks, h.key)
	h.idle = false
	l.locksMu.Unlock()
	h.release(true)
}

// release frees the lock for good (once). It unlocks and returns the
// connection to the pool, or, when that fails or keep is false, ends the
// session, which frees the lock as surely.
func (h *heldLock) release(keep bool) {
	h.once.Do(func() {
		h.connMu.Lock()
		defer h.connMu.Unlock()
		h.dead = true
		h.l.locksMu.Lock()
		if h.l.locks != nil {
			delete(h.l.locks, h)
		}
		if h.timer != nil {
			h.timer.Stop()
		}
		h.l.locksMu.Unlock()
		if keep {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			var ok bool
			err := h.conn.QueryRow(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", lockText(h.key)).Scan(&ok)
			if err == nil && ok {
				h.conn.Release()
				return
			}
		}
		discard(h.conn)
	})
}

// discard closes a pooled connection, ending its session, and gives its
// slot back to the pool.
func discard(c *pgxpool.Conn) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = c.Conn().Close(ctx)
	c.Release()
}

// lockText is key as PostgreSQL text, which holds neither NUL nor invalid
// UTF-8 (control's Idempotency-Key lock joins its parts with NUL): such a
// key is locked by its hex form. A key that is valid text is passed as
// is, so it hashes to the same lock as before.
func lockText(key string) string {
	if utf8.ValidString(key) && !strings.ContainsRune(key, 0) {
		return key
	}
	return "\\x" + hex.EncodeToString([]byte(key))
}

package postgres

import (
	"context"
	"encoding/hex"
	"fmt"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5/pgxpool"
)

// Lingering. Taking a service lock costs a round trip on its session
// (pg_advisory_lock) and giving it back another (pg_advisory_unlock): two
// of the few round trips an operation pays besides its appends. Most of the
// time the next operation on a service comes from the same controller
// moments later, so an unlocked service lock lingers: its session keeps it
// for up to lockLinger, and a LockService of the same key in that time
// takes it back without a round trip. Exclusion is unchanged — the
// session holds the lock the whole time, and in this process a lingering
// lock is handed to one caller at a time — only the moment another
// process can have it moves: at most lockLinger after the last unlock, and
// never later than lockMaxHold after the session took it, whatever this
// process does (a waiting process is queued by PostgreSQL before our next
// pg_advisory_lock). A lingering lock whose session is seen closed is not
// reused, and Close ends lingering sessions like held ones.
const (
	lockLinger  = 20 * time.Millisecond
	lockMaxHold = 100 * time.Millisecond
)

// heldLock is a service lock and the session holding it. Its fields but
// l, key and conn are guarded by l.locksMu.
type heldLock struct {
	l     *Ledger
	key   string
	conn  *pgxpool.Conn
	since time.Time // when the session took the lock
	gen   uint64    // acquisitions: a linger timer ends only the one it was set for
	idle  bool      // lingering: held by the session, by no caller
	once  sync.Once
}

// LockService waits until no other session, in this or any other process,
// holds key, then holds it until unlock is called, the Ledger is closed or
// the process dies. It gives up with ctx's error when ctx ends first.
func (l *Ledger) LockService(ctx context.Context, key string) (unlock func(), err error) {
	select {
	case <-l.done:
		return nil, ErrClosed
	default:
	}
	if h := l.reuse(key); h != nil {
		return h.unlocker(), nil
	}
	l.evictIfFull()
	// Wait until ctx ends or the Ledger is closed, whichever is first.
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	defer context.AfterFunc(l.closing, cancel)()
	fail := func(err error) (func(), error) {
		switch {
		case ctx.Err() != nil:
			err = ctx.Err()
		case l.closing.Err() != nil:
			err = ErrClosed
		}
		return nil, fmt.Errorf("ledger/postgres: lock %q: %w", key, err)
	}
	conn, err := l.lockPool.Acquire(wctx)
	if err != nil {
		return fail(err)
	}
	if _, err := conn.Exec(wctx, "SELECT pg_advisory_lock(hashtextextended($1, 0))", lockText(key)); err != nil {
		// The session's state is unknown (the lock may have been granted
		// as the wait was cancelled): end it, which frees anything it
		// holds.
		discard(conn)
		return fail(err)
	}
	h := &heldLock{l: l, key: key, conn: conn, since: time.Now()}
	l.locksMu.Lock()
	if l.closed {
		l.locksMu.Unlock()
		discard(conn)
		return nil, ErrClosed
	}
	l.locks[h] = struct{}{}
	l.locksMu.Unlock()
	return h.unlocker(), nil
}

// reuse takes key's lingering lock, if there is one whose session is open.
func (l *Ledger) reuse(key string) *heldLock {
	l.locksMu.Lock()
	h := l.idleLocks[key]
	if h == nil || l.closed {
		l.locksMu.Unlock()
		return nil
	}
	delete(l.idleLocks, key)
	h.idle = false
	h.gen++
	dead := h.conn.Conn().IsClosed()
	l.locksMu.Unlock()
	if dead {
		h.release(false)
		return nil
	}
	return h
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

// unlock lets h linger when it may, and frees it otherwise.
func (h *heldLock) unlock() {
	l := h.l
	l.locksMu.Lock()
	if !l.closed && time.Since(h.since) < lockMaxHold && l.idleLocks[h.key] == nil {
		if l.idleLocks == nil {
			l.idleLocks = map[string]*heldLock{}
		}
		l.idleLocks[h.key] = h
		h.idle = true
		gen := h.gen
		l.locksMu.Unlock()
		time.AfterFunc(lockLinger, func() { h.expire(gen) })
		return
	}
	l.locksMu.Unlock()
	h.release(true)
}

// expire frees h if it still lingers since the acquisition gen.
func (h *heldLock) expire(gen uint64) {
	l := h.l
	l.locksMu.Lock()
	if !h.idle || h.gen != gen || l.idleLocks[h.key] != h {
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
		h.l.locksMu.Lock()
		if h.l.locks != nil {
			delete(h.l.locks, h)
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

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

// heldLock is a service lock and the session holding it.
type heldLock struct {
	l    *Ledger
	key  string
	conn *pgxpool.Conn
	once sync.Once
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
	h := &heldLock{l: l, key: key, conn: conn}
	l.locksMu.Lock()
	if l.closed {
		l.locksMu.Unlock()
		discard(conn)
		return nil, ErrClosed
	}
	l.locks[h] = struct{}{}
	l.locksMu.Unlock()
	return func() { h.release(true) }, nil
}

// release frees the lock (once). It unlocks and returns the connection to
// the pool, or, when that fails or keep is false, ends the session, which
// frees the lock as surely.
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
			err := h.conn.QueryRow(ctx, "SELECT pg_advisory_unlock(hashtextextended($1, 0))", h.key).Scan(&ok)
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

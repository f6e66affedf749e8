package postgres

import (
	"context"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Who waits for this Ledger's locks (lock.go's Lingering and Fairness).
//
// A lock held for lockMaxHold or more used to be handed over (a round trip
// on its session: pg_advisory_unlock and pg_try_advisory_lock) at every
// relock, whether or not anybody waited for it. At 64 busy services that
// was a round trip in about one operation in three, each in the caller's
// path and on a server the append transactions share; and a lock lingered
// 20 ms only, so that a waiting process was not kept out long, which made
// every pause of a service's operations cost a fresh lock.
//
// Instead, a poller asks pg_locks every waiterPollEvery, while this Ledger
// holds or lingers with any lock, which of them another session waits for
// (one query for all of them, on a pooled connection, off every caller's
// path). Its answer lets the next unlock of a waited-for lock go at once,
// ends a lingering one, and makes a relock hand over; with it, a lock can
// linger long (lockLingerWatched). When the polls fail or fall behind —
// the last answer started more than waiterPollStale ago — locks linger
// lockLinger and relocks after lockMaxHold hand over, as before: fairness
// does not depend on the poller. A waiter of any kind (another controller,
// psql) is seen, since pg_locks shows every session's wait.
//
// The cost: reading pg_locks takes each lock-manager partition's lock and
// each backend's fast-path lock in turn, briefly; twenty times a second
// per controller holding locks (0.1–0.4 ms of server time each on the
// bench's 2-core machine).
const (
	waiterPollEvery = lockMaxHold / 2
	waiterPollStale = 3 * waiterPollEvery
)

// waiterPoll is the last answer of the poller.
type waiterPoll struct {
	at     time.Time           // when the last successful poll started; zero: none
	waited map[string]struct{} // keys it found another session waiting for
}

// waitersSQL returns the keys of $1 (lockText) whose advisory lock a
// session of this database waits for (a bigint advisory lock shows its
// high half in classid, its low half in objid; pg_locks is read once).
const waitersSQL = `SELECT k FROM unnest($1::text[]) AS k
WHERE (((hashtextextended(k, 0) >> 32) & 4294967295)::oid, (hashtextextended(k, 0) & 4294967295)::oid) IN (
  SELECT classid, objid FROM pg_locks
  WHERE locktype = 'advisory' AND NOT granted AND objsubid = 1
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database()))`

// pollWaiters polls until the Ledger closes.
func (l *Ledger) pollWaiters() {
	defer close(l.pollerExited)
	t := time.NewTicker(waiterPollEvery)
	defer t.Stop()
	for {
		select {
		case <-l.done:
			return
		case <-t.C:
		}
		if l.pollPaused.Load() {
			continue
		}
		keys := l.lockKeys()
		if len(keys) == 0 {
			continue
		}
		start := time.Now()
		waited, err := l.readWaiters(keys)
		l.locksMu.Lock()
		if err == nil {
			l.waiters = waiterPoll{at: start, waited: waited}
		}
		// A lingering lock another session waits for ends now; so does
		// one that has lingered lockLinger while the polls cannot tell.
		var ending []*heldLock
		for key, h := range l.idleLocks {
			if l.waitedFor(key, h.since) || (!l.pollsAnswer() && time.Since(h.idleSince) >= l.linger) {
				delete(l.idleLocks, key)
				h.idle = false
				ending = append(ending, h)
			}
		}
		l.locksMu.Unlock()
		for _, h := range ending {
			h.release(true)
		}
	}
}

// lockKeys are the lock texts of the locks this Ledger holds or lingers
// with.
func (l *Ledger) lockKeys() []string {
	l.locksMu.Lock()
	defer l.locksMu.Unlock()
	keys := make([]string, 0, len(l.locks))
	for h := range l.locks {
		keys = append(keys, lockText(h.key))
	}
	return keys
}

// readWaiters asks pg_locks which of keys (lock texts) are waited for, and
// answers with the keys they are the lock texts of.
func (l *Ledger) readWaiters(keys []string) (map[string]struct{}, error) {
	ctx, cancel := context.WithTimeout(l.closing, waiterPollStale)
	defer cancel()
	rows, err := l.pool.Query(ctx, waitersSQL, keys)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: reading lock waiters: %w", err)
	}
	texts, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: reading lock waiters: %w", err)
	}
	waited := make(map[string]struct{}, len(texts))
	for _, s := range texts {
		waited[s] = struct{}{}
	}
	return waited, nil
}

// The helpers below are called with l.locksMu held.

// pollsAnswer tells whether the last poll is recent enough to rely on.
func (l *Ledger) pollsAnswer() bool { return time.Since(l.waiters.at) < l.waiterStale }

// waitedFor tells whether the last poll, recent and made after since (when
// the session took key's lock: a poll made before may have seen this very
// session waiting for it), found another session waiting for key.
func (l *Ledger) waitedFor(key string, since time.Time) bool {
	w := l.waiters
	_, waited := w.waited[lockText(key)]
	return waited && l.pollsAnswer() && !w.at.Before(since)
}

// mayBeWaitedFor tells a relock of key, whose session has held it since
// since, whether to hand it over: when the last poll, made after since,
// found it waited for, or when the polls cannot tell.
func (l *Ledger) mayBeWaitedFor(key string, since time.Time) bool {
	return !l.pollsAnswer() || l.waitedFor(key, since)
}

package postgres

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
)

// Fencing (ledger.Fencer). A service lock lives in its session: if the
// server ends that session while the holder's provider call is in flight
// (pg_terminate_backend, idle_session_timeout, a restart, a lost
// connection noticed by keepalives), PostgreSQL frees the lock and another
// process can take it. What makes that safe:
//
//   - The open-run check. LockFenced reads, on the lock's own session and
//     in the round trip that takes the lock (the SELECT is pipelined after
//     pg_advisory_lock, so it runs once the lock is granted), the newest
//     intent on the service, exec's excepted, if it has no result. A lock
//     taken back from a session that held it without a break since its
//     last check found none skips the read (a lingering lock, or a
//     hand-over that nobody waited for: lock.go): no other process can
//     have written an intent in between. So the check costs no round trip
//     on the hot path, and its query runs only when the lock changed hands.
//   - The owner. Each Ledger that takes a fenced lock holds an owner lock
//     ("alphaswarm-owner:<random id>") on a session of its own for as long
//     as it lives, and its intents record the owner id (package control
//     writes it). OwnerGone asks pg_locks whether that lock is held:
//     a process that died (SIGKILL, a crash) has lost its sessions at
//     once. An owner lock that is free is taken as proof that the owner is
//     gone only after ownerGrace from the moment this Ledger first saw it
//     free, because an owner whose session alone ended is still running:
//     its monitor notices within ownerCheckEvery when the server ended the
//     session (the server's last message or EOF is on the socket), or
//     within pingEvery+pingTimeout when the connection went silent (a ping
//     fails), and cancels every watched call of that owner. ownerGrace
//     covers both with room for the cancelled calls to return.
//   - The watch. While a provider call runs under a fenced lock, Watch
//     looks at the lock's session every ownerCheckEvery (a non-blocking
//     peek, session_unix.go) and pings it every pingEvery, and cancels the
//     call's context with ledger.ErrLockLost when the session is gone.
//     Held is the same peek, made before the call starts. Where a socket
//     cannot be peeked at (session_other.go), Held pings instead (a round
//     trip) and the watch only pings.
//
// What remains (documented in control/fence.go too): the holder's peek
// after writing its intent relies on the server's FATAL message arriving
// before the reply to a later query on another connection; if a packet
// loss reorders them, the holder can start its call just as another
// process takes the lock and starts its own: the two overlap until the
// watch cancels the first (within ownerCheckEvery) and it returns. Carrying
// the lock session's pid into the intent's append transaction (a pg_locks
// check there) would close this at no round trip.
const (
	ownerCheckEvery = 200 * time.Millisecond
	pingEvery       = 5 * time.Second
	pingTimeout     = 3 * time.Second
	ownerGrace      = 15 * time.Second
)

var _ ledger.Fencer = (*Ledger)(nil)

// openCheck is the open-run read of one fenced lock.
type openCheck struct{ target, service string }

// openRunSQL selects the newest intent on a service (exec's excepted, which
// do not hold the service), if it has no result. It walks the (service,
// seq) index from the end: on a service the newest rows are its last runs.
var openRunSQL = "SELECT " + selectColumns + ` FROM (SELECT * FROM workload_runs
  WHERE service = $1 AND target = $2 AND kind = 'intent' AND action <> 'exec'
  ORDER BY seq DESC LIMIT 1) i
WHERE NOT EXISTS (SELECT 1 FROM workload_runs r WHERE r.run_id = i.run_id AND r.kind = 'result')`

// queue adds the read to b; a nil check adds nothing.
func (c *openCheck) queue(b *pgx.Batch) {
	if c != nil {
		b.Queue(openRunSQL, c.service, c.target)
	}
}

// read reads the answer of queue from br (nil: no open run).
func (c *openCheck) read(br pgx.BatchResults) (*ledger.Record, error) {
	if c == nil {
		return nil, nil
	}
	rows, err := br.Query()
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var open *ledger.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		open = &r
	}
	return open, rows.Err()
}

// LockFenced implements ledger.Fencer: LockService of key with the open-run
// check of target/service, under this Ledger's owner.
func (l *Ledger) LockFenced(ctx context.Context, key, target, service string) (ledger.FencedLock, error) {
	o, err := l.fence.current(ctx, l)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: lock %q: owner session: %w", key, err)
	}
	h, open, err := l.acquire(ctx, key, &openCheck{target: target, service: service})
	if err != nil {
		return nil, err
	}
	return &fencedLock{h: h, open: open, owner: o, unlock: h.unlocker()}, nil
}

// fencedLock is a ledger.FencedLock.
type fencedLock struct {
	h      *heldLock
	open   *ledger.Record
	owner  *ownerSession
	unlock func()
}

func (f *fencedLock) Unlock()              { f.unlock() }
func (f *fencedLock) Open() *ledger.Record { return f.open }
func (f *fencedLock) Owner() string        { return f.owner.id }

func (f *fencedLock) Held() bool {
	return !f.owner.isLost() && f.h.alive(!canPeek)
}

// alive reports whether h's session still holds its lock as far as a peek
// at its socket (and, with ping, a round trip) can tell.
func (h *heldLock) alive(ping bool) bool {
	h.connMu.Lock()
	defer h.connMu.Unlock()
	if h.dead || (canPeek && !quiet(h.conn.Conn().PgConn())) {
		return false
	}
	if !ping {
		return true
	}
	ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
	defer cancel()
	return h.conn.Ping(ctx) == nil
}

func (f *fencedLock) Watch(ctx context.Context) (context.Context, func()) {
	wctx, cancel := context.WithCancelCause(ctx)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(ownerCheckEvery)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case <-wctx.Done():
				return
			case <-f.owner.lost:
				cancel(ledger.ErrLockLost)
				return
			case <-t.C:
			}
			// A silent connection (no FIN, no message) shows nothing to
			// a peek; a ping finds it. The holder is in its provider
			// call: nothing else uses the session now.
			ping := time.Since(last) >= pingEvery
			if ping {
				last = time.Now()
			}
			if !f.h.alive(ping) {
				cancel(ledger.ErrLockLost)
				return
			}
		}
	}()
	var once sync.Once
	return wctx, func() {
		once.Do(func() {
			close(stop)
			<-done
			cancel(nil)
		})
	}
}

// fenceState is a Ledger's owner session and what it knows of others'.
type fenceState struct {
	mu     sync.Mutex
	owner  *ownerSession // nil until the first fenced lock, and after Close
	closed bool
	gone   map[string]time.Time // owner id → when first seen without its lock
	grace  time.Duration        // ownerGrace; tests shorten it
}

// SetOwnerGrace sets how long an owner lock must have been seen free before
// OwnerGone calls its owner gone (default 15s; see fence.go). Shortening it
// below the owner's own detection time (pingEvery+pingTimeout) gives up the
// guarantee; tests do, to see the crash path without waiting.
func (l *Ledger) SetOwnerGrace(d time.Duration) {
	l.fence.mu.Lock()
	l.fence.grace = d
	l.fence.mu.Unlock()
}

// ownerSession holds one owner lock on a session of its own.
type ownerSession struct {
	id   string
	conn *pgx.Conn
	lost chan struct{} // closed once the session is seen ended
	stop chan struct{}
	done chan struct{}
}

func (o *ownerSession) isLost() bool {
	select {
	case <-o.lost:
		return true
	default:
		return false
	}
}

// ownerKey is the lock text of an owner id.
func ownerKey(id string) string { return "alphaswarm-owner:" + id }

// current returns the live owner session, starting one when there is none
// or the last one was lost (a new owner id: the runs of a lost owner were
// cancelled by their watches and must not be confused with new ones).
func (s *fenceState) current(ctx context.Context, l *Ledger) (*ownerSession, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil, ErrClosed
	}
	if s.owner != nil && !s.owner.isLost() {
		return s.owner, nil
	}
	if s.owner != nil {
		s.owner.close()
		s.owner = nil
	}
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	o := &ownerSession{id: hex.EncodeToString(b), lost: make(chan struct{}), stop: make(chan struct{}), done: make(chan struct{})}
	conn, err := pgx.ConnectConfig(ctx, l.lockPool.Config().ConnConfig.Copy())
	if err != nil {
		return nil, err
	}
	var ok bool
	if err := conn.QueryRow(ctx, "SELECT pg_try_advisory_lock(hashtextextended($1, 0))", ownerKey(o.id)).Scan(&ok); err != nil || !ok {
		_ = conn.Close(context.Background())
		if err == nil {
			err = fmt.Errorf("owner lock %s is held by another session", o.id)
		}
		return nil, err
	}
	o.conn = conn
	go o.monitor()
	s.owner = o
	return o, nil
}

// monitor watches the owner session until it is lost or closed.
func (o *ownerSession) monitor() {
	defer close(o.done)
	t := time.NewTicker(ownerCheckEvery)
	defer t.Stop()
	last := time.Now()
	for {
		select {
		case <-o.stop:
			return
		case <-t.C:
		}
		ok := !canPeek || quiet(o.conn.PgConn())
		if ok && time.Since(last) >= pingEvery {
			ctx, cancel := context.WithTimeout(context.Background(), pingTimeout)
			ok = o.conn.Ping(ctx) == nil
			cancel()
			last = time.Now()
		}
		if !ok {
			close(o.lost)
			return
		}
	}
}

// close stops the monitor and ends the session (freeing the owner lock).
func (o *ownerSession) close() {
	close(o.stop)
	<-o.done
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_ = o.conn.Close(ctx)
}

// closeOwner ends the owner session at Close.
func (s *fenceState) closeOwner() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.closed = true
	if s.owner != nil {
		s.owner.close()
		s.owner = nil
	}
}

// ownerHeldSQL tells whether any session holds an owner lock (a bigint
// advisory lock shows its high half in classid, its low half in objid).
const ownerHeldSQL = `SELECT EXISTS (SELECT 1 FROM pg_locks
  WHERE locktype = 'advisory' AND granted AND objsubid = 1
    AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
    AND classid = ((k >> 32) & 4294967295)::oid AND objid = (k & 4294967295)::oid)
FROM (SELECT hashtextextended($1, 0) AS k) s`

// OwnerGone implements ledger.Fencer (see Fencing above).
func (l *Ledger) OwnerGone(ctx context.Context, owner string) (bool, error) {
	s := &l.fence
	s.mu.Lock()
	own := s.owner != nil && s.owner.id == owner && !s.owner.isLost()
	s.mu.Unlock()
	if own {
		return false, nil
	}
	var held bool
	if err := l.pool.QueryRow(ctx, ownerHeldSQL, ownerKey(owner)).Scan(&held); err != nil {
		return false, fmt.Errorf("ledger/postgres: owner lock: %w", err)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if held {
		delete(s.gone, owner)
		return false, nil
	}
	first, seen := s.gone[owner]
	if !seen {
		if s.gone == nil || len(s.gone) >= 4096 {
			s.gone = map[string]time.Time{} // forgetting only delays a verdict
		}
		first = time.Now()
		s.gone[owner] = first
	}
	grace := s.grace
	if grace == 0 {
		grace = ownerGrace
	}
	return time.Since(first) >= grace, nil
}

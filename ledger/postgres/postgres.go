// Package postgres is the PostgreSQL implementation of ledger.Ledger, for
// controllers that share one ledger between several processes. Importing it
// registers the "postgres" scheme (and, through ledger.Open, "postgresql"):
//
//	l, err := ledger.Open(ctx, "postgres://user@host/db?sslmode=disable")
//
// The URL is a pgx connection string; pgxpool settings such as
// pool_max_conns are honoured.
//
// # Schema
//
// Open applies the embedded, versioned migrations (migrations/NNNN_*.sql) in
// one transaction under an advisory lock, recording them in
// schema_migrations, so processes starting together neither race nor apply a
// migration twice. Table workload_runs has one column per ledger.Record
// field; Time and Duration are int64 nanoseconds and Detail is text, so a row
// read back hashes exactly as it was sealed. Triggers make the table
// append-only (UPDATE, DELETE and TRUNCATE raise) and refuse an INSERT that
// does not extend the chain (next seq, prev_hash = hash of the last row).
//
// # Appending
//
// An append transaction takes a transaction-level advisory lock, reads the
// last row, seals the new records after it with ledger.Seal, inserts them and
// commits with synchronous_commit on (forced unless the URL sets it), so
// appends from any number of processes form one chain and a nil error means
// the record is durable. Within a process, concurrent Append calls are
// batched by one writer goroutine into one transaction and one commit (group
// commit); each caller gets its own sealed record back after that commit. A
// caller whose context ends before its record is taken into a batch gets the
// context's error and its record is not written; once taken, Append waits
// for the commit's outcome.
//
// PostgreSQL text cannot hold NUL bytes: Append refuses a record with one in
// a string field. Invalid UTF-8 is replaced by U+FFFD before the record is
// sealed; the record Append returns is what was stored and hashed.
//
// # Service locks
//
// Ledger implements ledger.ServiceLocker with session-level advisory locks
// (pg_advisory_lock(hashtextextended(key, 0))), each held on its own
// connection from a pool kept apart from the one used for appends and
// queries, so held locks can never starve the appends made under them. When
// the holding process dies its sessions end and PostgreSQL frees the locks.
// Locks need a session that lasts: do not put a transaction-pooling proxy
// (pgbouncer in transaction mode) between the controller and the database.
package postgres

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgconn/ctxwatch"
	"github.com/jackc/pgx/v5/pgxpool"

	"github.com/alphaswarm/controller/ledger"
)

func init() {
	ledger.Register("postgres", func(ctx context.Context, u *url.URL) (ledger.Ledger, error) {
		l, err := Open(ctx, u.String())
		if err != nil {
			return nil, err
		}
		return l, nil
	})
}

// ErrClosed is returned by Append and LockService after Close.
var ErrClosed = errors.New("ledger/postgres: ledger is closed")

// Advisory lock keys of this package, in the two-int4 key space, which
// PostgreSQL keeps apart from the one-bigint space that LockService's
// hashtextextended keys live in: a service key can never collide with them.
const (
	lockClass   int32 = 0x6c656467 // "ledg"
	lockMigrate int32 = 1
	lockAppend  int32 = 2
)

const (
	// maxBatch caps the records committed in one append transaction.
	maxBatch = 512
	// writeTimeout bounds one append transaction, including the wait for
	// other processes' appends.
	writeTimeout = 30 * time.Second
	// maxLockConns caps the service locks held at once by one Ledger.
	maxLockConns = 64
)

// Ledger is a ledger.Ledger and ledger.ServiceLocker on PostgreSQL. It is
// safe for concurrent use.
type Ledger struct {
	pool     *pgxpool.Pool // appends and queries
	lockPool *pgxpool.Pool // one connection per held service lock

	reqs         chan *appendReq
	done         chan struct{} // closed by Close
	closing      context.Context
	stopLocks    context.CancelFunc // cancels lock waits at Close
	writerExited chan struct{}
	closeOnce    sync.Once

	locksMu sync.Mutex
	locks   map[*heldLock]struct{}
	closed  bool
	// idleLocks are the lingering service locks by key (lock.go); they
	// are in locks too.
	idleLocks map[string]*heldLock
	// linger and maxHold are lockLinger and lockMaxHold (tests lengthen
	// them).
	linger, maxHold time.Duration
	// waiters is what the poller last found about this Ledger's locks
	// (waiters.go), guarded by locksMu; waiterStale is waiterPollStale
	// (tests shorten it).
	waiters      waiterPoll
	waiterStale  time.Duration
	pollerExited chan struct{}
	pollPaused   atomic.Bool  // tests: the poller does nothing
	handOvers    atomic.Int64 // relocks that handed over (lock.go)
	// fence is the owner session of fenced locks (fence.go).
	fence fenceState

	head ledger.HeadWatch
	// guards is what the writer knows of its guards' answers
	// (guardcache.go).
	guards guardCache
	// genericPlans: the server has plan_cache_mode (PostgreSQL 12+),
	// which the append transaction sets (append.go).
	genericPlans bool
	// answers are the answers of the last committed transaction, held
	// until the next is under way (answers.go).
	answers heldAnswers
}

var (
	_ ledger.Ledger        = (*Ledger)(nil)
	_ ledger.ServiceLocker = (*Ledger)(nil)
	_ ledger.Guarded       = (*Ledger)(nil)
)

// HeadWatch implements ledger.Guarded: the head guard checked inside every
// append transaction (after the append lock, so other processes' appends
// are seen as the head moving forward, which is legitimate).
func (l *Ledger) HeadWatch() *ledger.HeadWatch { return &l.head }

// Open connects to the database dsn names (a pgx connection string or
// URL), applies the schema migrations and starts the group-commit writer.
func Open(ctx context.Context, dsn string) (*Ledger, error) {
	cfg, err := pgxpool.ParseConfig(dsn)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: %w", err)
	}
	rp := cfg.ConnConfig.RuntimeParams
	if _, set := rp["synchronous_commit"]; !set {
		rp["synchronous_commit"] = "on" // Append's contract: durable on nil
	}
	if _, set := rp["application_name"]; !set {
		rp["application_name"] = "alphaswarm-ledger"
	}

	lockCfg := cfg.Copy()
	lockCfg.MaxConns = maxLockConns
	lockCfg.MinConns = 0
	// A canceled wait for a lock is cancelled on the server too, so an
	// abandoned waiter cannot be granted the lock behind our back.
	lockCfg.ConnConfig.BuildContextWatcherHandler = func(c *pgconn.PgConn) ctxwatch.Handler {
		return &pgconn.CancelRequestContextWatcherHandler{Conn: c, DeadlineDelay: 5 * time.Second}
	}
	lockCfg.AfterConnect = func(ctx context.Context, c *pgx.Conn) error {
		// Best effort (PostgreSQL 14+): notice a vanished client even
		// while waiting for a lock, not only when next reading from it.
		_, _ = c.Exec(ctx, "SET client_connection_check_interval = 1000")
		// A lock session runs its open-run read (fence.go) only when it
		// takes a lock afresh: left to choose, the planner planned it
		// afresh each time (1–3 ms under load, as much as the read);
		// its generic plan probes the same index (headreads_plan_test.go).
		// (PostgreSQL 12+; best effort.)
		_, _ = c.Exec(ctx, "SET plan_cache_mode = force_generic_plan")
		return nil
	}

	pool, err := pgxpool.NewWithConfig(ctx, cfg)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: %w", err)
	}
	if err := pool.Ping(ctx); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger/postgres: connect: %w", err)
	}
	if err := migrate(ctx, pool); err != nil {
		pool.Close()
		return nil, err
	}
	var version int
	if err := pool.QueryRow(ctx, "SELECT current_setting('server_version_num')::int").Scan(&version); err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger/postgres: server version: %w", err)
	}
	lockPool, err := pgxpool.NewWithConfig(ctx, lockCfg)
	if err != nil {
		pool.Close()
		return nil, fmt.Errorf("ledger/postgres: %w", err)
	}
	closing, stopLocks := context.WithCancel(context.Background())
	l := &Ledger{
		closing:      closing,
		stopLocks:    stopLocks,
		pool:         pool,
		lockPool:     lockPool,
		reqs:         make(chan *appendReq, maxBatch),
		done:         make(chan struct{}),
		writerExited: make(chan struct{}),
		locks:        map[*heldLock]struct{}{},
		linger:       lockLinger,
		maxHold:      lockMaxHold,
		waiterStale:  waiterPollStale,
		pollerExited: make(chan struct{}),
		genericPlans: version >= 120000,
	}
	head := ledger.Record{Hash: ledger.GenesisHash}
	switch err := pool.QueryRow(ctx, "SELECT seq, hash FROM workload_runs ORDER BY seq DESC LIMIT 1").Scan(&head.Seq, &head.Hash); {
	case err == nil, errors.Is(err, pgx.ErrNoRows):
		l.head.Observe(head.Seq, head.Hash)
	default:
		lockPool.Close()
		pool.Close()
		return nil, fmt.Errorf("ledger/postgres: reading the head: %w", err)
	}
	go l.writer()
	go l.pollWaiters()
	return l, nil
}

// Close commits the appends already queued, ends the sessions of held
// service locks (freeing them) and closes the connections. Appends and
// locks asked for after Close fail with ErrClosed.
func (l *Ledger) Close() error {
	l.closeOnce.Do(func() {
		close(l.done)
		l.stopLocks() // a wait for a lock would keep the pool from closing
		<-l.writerExited
		<-l.pollerExited
		l.locksMu.Lock()
		l.closed = true
		held := l.locks
		l.locks = nil
		l.locksMu.Unlock()
		for h := range held {
			h.release(false)
		}
		l.fence.closeOwner()
		l.lockPool.Close()
		l.pool.Close()
	})
	return nil
}

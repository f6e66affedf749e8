// Package sqlite is the embedded ledger: workload_runs in one SQLite file
// (pure Go, modernc.org/sqlite), WAL journal, synchronous=FULL, with group
// commit so that concurrent appends share one transaction and one fsync.
//
// It is meant for one controller process. Appends re-read the chain head
// inside an IMMEDIATE transaction, so a second process on the same file
// cannot fork the chain, but per-service locks do not cross processes: use
// ledger/postgres for several controller replicas.
//
// URL form: sqlite:/var/lib/alphaswarm/ledger.db (or sqlite://relative/path).
package sqlite

import (
	"context"
	"database/sql"
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"iter"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/alphaswarm/controller/ledger"
	_ "modernc.org/sqlite" // the database/sql driver "sqlite"
)

func init() {
	ledger.Register("sqlite", func(ctx context.Context, u *url.URL) (ledger.Ledger, error) {
		path := u.Opaque
		if path == "" {
			path = u.Host + u.Path
		}
		if path == "" {
			return nil, errors.New("sqlite ledger url needs a path: sqlite:/path/to/ledger.db")
		}
		return Open(ctx, path)
	})
}

//go:embed migrations/*.sql
var migrations embed.FS

// maxBatch bounds how many appends share one commit.
const maxBatch = 512

// Ledger is the SQLite ledger. It is safe for concurrent use.
type Ledger struct {
	db      *sql.DB
	path    string
	reqs    chan appendReq
	done    chan struct{}
	stopped chan struct{}
	once    sync.Once

	closeMu sync.RWMutex // held shared while queueing, exclusively by Close
	closed  bool

	head ledger.HeadWatch

	// Statements prepared once (database/sql prepares each on a
	// connection when first used there and keeps it): parsing SQL is a
	// large part of an append's CPU in this pure-Go SQLite.
	headStmt, insertStmt, haltsStmt, revInsertStmt, revHeadStmt *sql.Stmt

	revs revisionConn // revisions.go

	// heads are the revision heads the writer knows (readGuards), right
	// while the ledger's head is headsAt: nothing appended since by another
	// connection or process. Used by the writer goroutine only.
	heads   map[[2]string]int64
	headsAt int64
}

var (
	_ ledger.Ledger            = (*Ledger)(nil)
	_ ledger.Guarded           = (*Ledger)(nil)
	_ ledger.UnfinishedScanner = (*Ledger)(nil)
)

// HeadWatch implements ledger.Guarded: the head guard checked inside every
// append transaction.
func (l *Ledger) HeadWatch() *ledger.HeadWatch { return &l.head }

type appendReq struct {
	ctx context.Context
	rec ledger.Record
	// rev, when set, is inserted in the batch's transaction before rec
	// (AppendWithRevision, revisions.go).
	rev *ledger.Revision
	// guard, when set, must hold in the batch's transaction before rec is
	// written (AppendGuarded, guard.go).
	guard *ledger.Guard
	reply chan appendReply
}

type appendReply struct {
	rec ledger.Record
	err error
}

// Open opens (creating if needed) the ledger file at path and applies the
// embedded migrations.
func Open(ctx context.Context, path string) (*Ledger, error) {
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o700); err != nil {
			return nil, fmt.Errorf("sqlite ledger: %w", err)
		}
	}
	// The ledger is audit data: readable by its owner only.
	if f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600); err == nil {
		f.Close()
	}
	dsn := "file:" + path + "?_pragma=journal_mode(WAL)&_pragma=synchronous(FULL)" +
		"&_pragma=busy_timeout(10000)&_pragma=foreign_keys(ON)&_txlock=immediate"
	db, err := sql.Open("sqlite", dsn)
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger: %w", err)
	}
	db.SetMaxOpenConns(8)
	db.SetMaxIdleConns(8)
	if err := migrate(ctx, db); err != nil {
		db.Close()
		return nil, err
	}
	l := &Ledger{db: db, path: path, reqs: make(chan appendReq, maxBatch), done: make(chan struct{}), stopped: make(chan struct{})}
	if err := l.prepare(ctx); err != nil {
		l.closeStmts()
		db.Close()
		return nil, fmt.Errorf("sqlite ledger: %w", err)
	}
	seq, hash, err := readHead(ctx, db)
	if err != nil {
		l.closeStmts()
		db.Close()
		return nil, fmt.Errorf("sqlite ledger: reading the head: %w", err)
	}
	l.head.Observe(seq, hash)
	go l.writer()
	return l, nil
}

const (
	headSQL   = `SELECT seq, hash FROM workload_runs ORDER BY seq DESC LIMIT 1`
	insertSQL = `INSERT INTO workload_runs (seq, run_id, kind, user_id, action, target, service, provider,
		request_digest, idempotency_key, outcome, error_code, message, detail, duration_ns, time_ns, prev_hash, hash,
		auth, user_name, version, policy_digest)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`
	haltsSQL = `SELECT target, detail FROM workload_runs WHERE seq IN (
		SELECT MAX(seq) FROM workload_runs WHERE action = 'halt' AND kind = 'result' AND outcome = 'ok' GROUP BY target)`
)

// prepare prepares the statements of every append and halt check.
func (l *Ledger) prepare(ctx context.Context) error {
	for _, s := range []struct {
		stmt **sql.Stmt
		sql  string
	}{{&l.headStmt, headSQL}, {&l.insertStmt, insertSQL}, {&l.haltsStmt, haltsSQL}, {&l.revInsertStmt, revInsertSQL}, {&l.revHeadStmt, revHeadSQL}} {
		st, err := l.db.PrepareContext(ctx, s.sql)
		if err != nil {
			return err
		}
		*s.stmt = st
	}
	return nil
}

func (l *Ledger) closeStmts() {
	for _, st := range []*sql.Stmt{l.headStmt, l.insertStmt, l.haltsStmt, l.revInsertStmt, l.revHeadStmt} {
		if st != nil {
			st.Close()
		}
	}
}

func migrate(ctx context.Context, db *sql.DB) error {
	tx, err := db.BeginTx(ctx, nil)
	if err != nil {
		return fmt.Errorf("sqlite ledger migrate: %w", err)
	}
	defer tx.Rollback()
	if _, err := tx.ExecContext(ctx, `CREATE TABLE IF NOT EXISTS schema_migrations (version TEXT PRIMARY KEY, applied_ns INTEGER NOT NULL)`); err != nil {
		return fmt.Errorf("sqlite ledger migrate: %w", err)
	}
	names, err := fs.Glob(migrations, "migrations/*.sql")
	if err != nil {
		return err
	}
	slices.Sort(names)
	for _, name := range names {
		version := strings.TrimSuffix(filepath.Base(name), ".sql")
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT count(*) FROM schema_migrations WHERE version = ?`, version).Scan(&n); err != nil {
			return fmt.Errorf("sqlite ledger migrate: %w", err)
		}
		if n > 0 {
			continue
		}
		body, err := migrations.ReadFile(name)
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, string(body)); err != nil {
			return fmt.Errorf("sqlite ledger migration %s: %w", version, err)
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO schema_migrations (version, applied_ns) VALUES (?, ?)`, version, time.Now().UnixNano()); err != nil {
			return fmt.Errorf("sqlite ledger migrate: %w", err)
		}
	}
	return tx.Commit()
}

// ErrClosed is returned by Append after Close.
var ErrClosed = errors.New("sqlite ledger: closed")

// Append implements ledger.Ledger. Concurrent calls are gathered by one
// writer into a single transaction; each returns once that transaction has
// committed with synchronous=FULL.
func (l *Ledger) Append(ctx context.Context, r ledger.Record) (ledger.Record, error) {
	return l.enqueue(ctx, appendReq{ctx: ctx, rec: r})
}

// enqueue hands req to the writer and waits for its answer.
func (l *Ledger) enqueue(ctx context.Context, req appendReq) (ledger.Record, error) {
	reply := make(chan appendReply, 1)
	req.reply = reply
	l.closeMu.RLock()
	if l.closed {
		l.closeMu.RUnlock()
		return ledger.Record{}, ErrClosed
	}
	select {
	case l.reqs <- req:
		l.closeMu.RUnlock()
	case <-ctx.Done():
		l.closeMu.RUnlock()
		return ledger.Record{}, ctx.Err()
	}
	// Once queued, the record may be committed: wait for the answer even
	// if ctx ends, so the caller never believes a durable row was lost.
	rep := <-reply
	return rep.rec, rep.err
}

func (l *Ledger) writer() {
	defer close(l.stopped)
	batch := make([]appendReq, 0, maxBatch)
	for {
		select {
		case <-l.done:
			// Drain what was queued before Close.
			for {
				select {
				case req := <-l.reqs:
					batch = append(batch, req)
				default:
					if len(batch) > 0 {
						l.commit(batch)
					}
					return
				}
			}
		case req := <-l.reqs:
			batch = append(batch[:0], req)
		fill:
			for len(batch) < maxBatch {
				select {
				case req := <-l.reqs:
					batch = append(batch, req)
				default:
					break fill
				}
			}
			l.commit(batch)
			batch = batch[:0]
		}
	}
}

func (l *Ledger) commit(batch []appendReq) {
	// Requests whose caller gave up before the batch began are dropped
	// (they were never written, and their callers have not been answered).
	live := batch[:0]
	for _, req := range batch {
		if err := req.ctx.Err(); err != nil {
			req.reply <- appendReply{err: err}
			continue
		}
		live = append(live, req)
	}
	if len(live) == 0 {
		return
	}
	sealed, errs, last, err := l.writeBatch(live)
	if err != nil {
		l.head.Failed(err)
	} else if last != nil {
		l.head.Observe(last.Seq, last.Hash)
	}
	for i, req := range live {
		switch {
		case err != nil:
			req.reply <- appendReply{err: fmt.Errorf("sqlite ledger append: %w", err)}
		case errs[i] != nil:
			req.reply <- appendReply{err: errs[i]}
		default:
			req.reply <- appendReply{rec: sealed[i]}
		}
	}
}

// writeBatch writes batch in one transaction. err fails the whole batch;
// errs[i] fails one request whose revision was refused (nothing of it
// written, the others committed); last is the last row written.
func (l *Ledger) writeBatch(batch []appendReq) (out []ledger.Record, errs []error, last *ledger.Record, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	tx, err := l.db.BeginTx(ctx, nil) // BEGIN IMMEDIATE (see _txlock)
	if err != nil {
		return nil, nil, nil, err
	}
	defer tx.Rollback()
	var prev *ledger.Record
	head := ledger.Record{Hash: ledger.GenesisHash}
	err = tx.StmtContext(ctx, l.headStmt).QueryRowContext(ctx).Scan(&head.Seq, &head.Hash)
	switch {
	case errors.Is(err, sql.ErrNoRows):
	case err != nil:
		return nil, nil, nil, err
	default:
		prev = &head
	}
	if err := l.head.Check(head.Seq, head.Hash, func(seq int64) (string, bool, error) {
		var h string
		err := tx.QueryRowContext(ctx, `SELECT hash FROM workload_runs WHERE seq = ?`, seq).Scan(&h)
		if errors.Is(err, sql.ErrNoRows) {
			return "", false, nil
		}
		return h, err == nil, err
	}); err != nil {
		return nil, nil, nil, err
	}
	guards, err := l.readGuards(ctx, tx, batch, head.Seq)
	if err != nil {
		return nil, nil, nil, err
	}
	// The writer's revision heads (readGuards) follow the batch's rows
	// (guards.Accepted); they are only right if it commits.
	defer func() {
		switch {
		case err != nil:
			l.heads = nil
		case last != nil:
			l.headsAt = last.Seq
		default:
			l.headsAt = head.Seq
		}
	}()
	stmt := tx.StmtContext(ctx, l.insertStmt) // closed with tx
	var revStmt *sql.Stmt
	out, errs = make([]ledger.Record, len(batch)), make([]error, len(batch))
	for i, req := range batch {
		// A guard that does not hold fails its own request only, before
		// anything of it is written (guard.go).
		if errs[i] = guards.Check(req.rec, req.guard); errs[i] != nil {
			continue
		}
		r := ledger.Seal(req.rec, prev)
		if req.rev != nil {
			if revStmt == nil {
				revStmt = tx.StmtContext(ctx, l.revInsertStmt)
			}
			// A refused revision row fails its own request only: SQLite
			// undoes just the failed statement, and r is not written.
			if errs[i] = insertRevision(ctx, revStmt, *req.rev, r.Time); errs[i] != nil {
				if !errors.Is(errs[i], ledger.ErrRevisionNotStored) {
					return nil, nil, nil, errs[i]
				}
				continue
			}
		}
		if _, err := stmt.ExecContext(ctx, r.Seq, r.RunID, string(r.Kind), r.UserID, r.Action, r.Target, r.Service, r.Provider,
			r.RequestDigest, r.IdempotencyKey, string(r.Outcome), r.ErrorCode, r.Message, r.Detail, int64(r.Duration),
			r.Time.UnixNano(), r.PrevHash, r.Hash, r.Auth, r.UserName, r.Version, r.PolicyDigest); err != nil {
			return nil, nil, nil, err
		}
		out[i] = r
		prev = &out[i]
		last = prev
		guards.Accepted(r)
	}
	if err := tx.Commit(); err != nil {
		return nil, nil, nil, err
	}
	return out, errs, last, nil
}

// readHead reads the last row's seq and hash (0 and GenesisHash when empty).
func readHead(ctx context.Context, db *sql.DB) (int64, string, error) {
	var seq int64
	var hash string
	err := db.QueryRowContext(ctx, headSQL).Scan(&seq, &hash)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, ledger.GenesisHash, nil
	}
	return seq, hash, err
}

const columns = `seq, run_id, kind, user_id, action, target, service, provider, request_digest, idempotency_key,
	outcome, error_code, message, detail, duration_ns, time_ns, prev_hash, hash, auth, user_name, version, policy_digest`

type scanner interface{ Scan(...any) error }

func scanRecord(s scanner) (ledger.Record, error) {
	var r ledger.Record
	var kind, outcome string
	var dur, tns int64
	err := s.Scan(&r.Seq, &r.RunID, &kind, &r.UserID, &r.Action, &r.Target, &r.Service, &r.Provider, &r.RequestDigest,
		&r.IdempotencyKey, &outcome, &r.ErrorCode, &r.Message, &r.Detail, &dur, &tns, &r.PrevHash, &r.Hash,
		&r.Auth, &r.UserName, &r.Version, &r.PolicyDigest)
	r.Kind, r.Outcome, r.Duration, r.Time = ledger.Kind(kind), ledger.Outcome(outcome), time.Duration(dur), time.Unix(0, tns).UTC()
	return r, err
}

// Query implements ledger.Ledger.
func (l *Ledger) Query(ctx context.Context, f ledger.Filter) (ledger.Page, error) {
	q, args, limit, err := f.SelectSQL(columns, "?")
	if err != nil {
		return ledger.Page{}, err
	}
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return ledger.Page{}, fmt.Errorf("sqlite ledger query: %w", err)
	}
	defer rows.Close()
	var recs []ledger.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return ledger.Page{}, fmt.Errorf("sqlite ledger query: %w", err)
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return ledger.Page{}, fmt.Errorf("sqlite ledger query: %w", err)
	}
	return ledger.PageOf(recs, limit), nil
}

// Verify implements ledger.Ledger, streaming rows in seq order.
func (l *Ledger) Verify(ctx context.Context) (ledger.VerifyResult, error) {
	return ledger.VerifyChain(l.all(ctx))
}

func (l *Ledger) all(ctx context.Context) iter.Seq2[ledger.Record, error] {
	return func(yield func(ledger.Record, error) bool) {
		rows, err := l.db.QueryContext(ctx, "SELECT "+columns+" FROM workload_runs ORDER BY seq")
		if err != nil {
			yield(ledger.Record{}, fmt.Errorf("sqlite ledger verify: %w", err))
			return
		}
		defer rows.Close()
		for rows.Next() {
			r, err := scanRecord(rows)
			if !yield(r, err) || err != nil {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(ledger.Record{}, err)
		}
	}
}

// unfinishedSQL selects the intents that have no result (the run_id index
// answers the NOT EXISTS); callers add a range of seq and the order.
const unfinishedSQL = "SELECT " + columns + ` FROM workload_runs i WHERE kind = 'intent'
	AND NOT EXISTS (SELECT 1 FROM workload_runs r WHERE r.run_id = i.run_id AND r.kind = 'result')`

// Unfinished implements ledger.Ledger. It reads every intent of the
// ledger; recovery uses UnfinishedAfter.
func (l *Ledger) Unfinished(ctx context.Context) ([]ledger.Record, error) {
	return l.unfinished(ctx, unfinishedSQL+" ORDER BY seq")
}

// UnfinishedAfter implements ledger.UnfinishedScanner: the intents in
// (after, head] without a result, read through the primary key's range.
func (l *Ledger) UnfinishedAfter(ctx context.Context, after int64) ([]ledger.Record, int64, error) {
	head, _, err := readHead(ctx, l.db)
	if err != nil {
		return nil, 0, fmt.Errorf("sqlite ledger unfinished: %w", err)
	}
	if head <= after {
		return nil, head, nil
	}
	open, err := l.unfinished(ctx, unfinishedSQL+" AND seq > ? AND seq <= ? ORDER BY seq", after, head)
	return open, head, err
}

func (l *Ledger) unfinished(ctx context.Context, q string, args ...any) ([]ledger.Record, error) {
	rows, err := l.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger unfinished: %w", err)
	}
	defer rows.Close()
	var out []ledger.Record
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// Halts implements ledger.Ledger.
func (l *Ledger) Halts(ctx context.Context) (map[string]bool, error) {
	return readHalts(l.haltsStmt.QueryContext(ctx))
}

// readHalts reads haltsSQL's rows.
func readHalts(rows *sql.Rows, err error) (map[string]bool, error) {
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger halts: %w", err)
	}
	defer rows.Close()
	out := map[string]bool{}
	for rows.Next() {
		var target, detail string
		if err := rows.Scan(&target, &detail); err != nil {
			return nil, err
		}
		var d ledger.HaltDetail
		if err := json.Unmarshal([]byte(detail), &d); err != nil {
			return nil, fmt.Errorf("sqlite ledger halts: row for %q: %w", target, err)
		}
		if d.On {
			out[target] = true
		}
	}
	return out, rows.Err()
}

// Close stops the writer after committing what was queued, then closes the
// database.
func (l *Ledger) Close() error {
	l.once.Do(func() {
		l.closeMu.Lock()
		l.closed = true
		l.closeMu.Unlock()
		close(l.done)
	})
	<-l.stopped
	l.closeStmts()
	l.revs.close()
	return l.db.Close()
}

// Path is the database file.
func (l *Ledger) Path() string { return l.path }

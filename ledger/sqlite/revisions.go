package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

var (
	_ ledger.RevisionStore      = (*Ledger)(nil)
	_ ledger.RevisionAppender   = (*Ledger)(nil)
	_ ledger.RevisionHeadReader = (*Ledger)(nil)
	_ ledger.GuardedAppender    = (*Ledger)(nil)
)

var revHeadSQL = ledger.RevisionHeadSQL("?")

// RevisionHead implements ledger.RevisionHeadReader: one prepared
// statement (parsing SQL is most of a small read's CPU here).
func (l *Ledger) RevisionHead(ctx context.Context, target, service string) (int64, error) {
	var seq int64
	err := l.revHeadStmt.QueryRowContext(ctx, service, target).Scan(&seq)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("sqlite ledger: reading the revision head: %w", err)
	}
	return seq, nil
}

const revInsertSQL = `INSERT INTO workload_revisions (run_id, target, service, revision, spec, sealed, digest, time_ns)
	VALUES (?, ?, ?, ?, ?, ?, ?, ?)`

// AppendWithRevision implements ledger.RevisionAppender: the writer
// inserts rev in the transaction of the batch that appends r, just before
// r, so r's synchronous=FULL commit makes both durable with one fsync. A
// run that has a revision already fails alone (ErrRevisionExists, wrapping
// ErrRevisionNotStored); the rest of its batch commits.
func (l *Ledger) AppendWithRevision(ctx context.Context, r ledger.Record, rev ledger.Revision) (ledger.Record, error) {
	if err := ledger.CheckRevision(r, rev); err != nil {
		return ledger.Record{}, err
	}
	return l.enqueue(ctx, appendReq{ctx: ctx, rec: r, rev: &rev})
}

// AppendGuarded implements ledger.GuardedAppender: the writer checks g in
// the transaction of the batch that appends r, after the head read (under
// BEGIN IMMEDIATE's write lock: no other connection or process can append
// between the check and the row), with one read of the halt switches and
// one of each guarded service's revision head per batch. A guard that
// fails refuses its own request only; the rest of the batch commits.
func (l *Ledger) AppendGuarded(ctx context.Context, r ledger.Record, rev *ledger.Revision, g ledger.Guard) (ledger.Record, error) {
	if rev != nil {
		if err := ledger.CheckRevision(r, *rev); err != nil {
			return ledger.Record{}, err
		}
	}
	return l.enqueue(ctx, appendReq{ctx: ctx, rec: r, rev: rev, guard: &g})
}

// maxHeads bounds the writer's map of revision heads (one entry per
// service it has checked); a full map starts again empty.
const maxHeads = 1 << 16

// readGuards reads, in tx, what the guards of batch check: the halt
// switches when one checks them, the revision head of each service one
// checks. A service's head is read once and then known to the writer
// (l.heads, moved by every row it commits: BatchGuards.Accepted) for as
// long as no other connection or process appends: the ledger's head, read
// in tx under the write lock, is then the one the writer left (headsAt).
func (l *Ledger) readGuards(ctx context.Context, tx *sql.Tx, batch []appendReq, head int64) (*ledger.BatchGuards, error) {
	if l.heads == nil || head != l.headsAt || len(l.heads) >= maxHeads {
		l.heads = map[[2]string]int64{}
	}
	bg := &ledger.BatchGuards{Heads: l.heads}
	var halts bool
	for _, req := range batch {
		g := req.guard
		if g == nil {
			continue
		}
		if len(g.Unhalted) > 0 && !halts {
			halts = true
			h, err := readHalts(tx.StmtContext(ctx, l.haltsStmt).QueryContext(ctx))
			if err != nil {
				return nil, err
			}
			bg.Halts = h
		}
		if !g.CheckHead {
			continue
		}
		k := [2]string{req.rec.Target, req.rec.Service}
		if _, ok := bg.Heads[k]; ok {
			continue
		}
		var seq int64
		err := tx.StmtContext(ctx, l.revHeadStmt).QueryRowContext(ctx, k[1], k[0]).Scan(&seq)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return nil, fmt.Errorf("sqlite ledger: reading the revision head: %w", err)
		}
		bg.Heads[k] = seq
	}
	return bg, nil
}

// insertRevision runs revInsertSQL for rev (at sealed, the time of its
// record, when rev has none).
func insertRevision(ctx context.Context, stmt *sql.Stmt, rev ledger.Revision, sealed time.Time) error {
	if rev.Time.IsZero() {
		rev.Time = sealed
	}
	_, err := stmt.ExecContext(ctx, rev.RunID, rev.Target, rev.Service, rev.Revision, rev.Spec, rev.Sealed, rev.Digest, rev.Time.UnixNano())
	if err != nil && strings.Contains(err.Error(), "UNIQUE constraint failed") {
		return fmt.Errorf("%w: %w: %s", ledger.ErrRevisionNotStored, ledger.ErrRevisionExists, rev.RunID)
	}
	return err
}

// revisionConn is the connection revisions are written on, with
// synchronous=NORMAL: in WAL mode such a commit is not fsynced by itself,
// but the WAL is one sequential file, so the next synchronous=FULL commit
// (the run's result row, appended right after PutRevision returns) makes
// it durable with its own fsync. A revision costs no fsync of its own,
// and a crash between the two loses only a revision the ledger does not
// name yet (which history ignores anyway).
type revisionConn struct {
	mu   sync.Mutex
	conn *sql.Conn
}

func (r *revisionConn) get(ctx context.Context, db *sql.DB) (*sql.Conn, error) {
	if r.conn != nil {
		return r.conn, nil
	}
	c, err := db.Conn(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := c.ExecContext(ctx, "PRAGMA synchronous=NORMAL"); err != nil {
		c.Close()
		return nil, err
	}
	r.conn = c
	return c, nil
}

func (r *revisionConn) close() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.conn != nil {
		r.conn.Close()
		r.conn = nil
	}
}

// PutRevision implements ledger.RevisionStore (table workload_revisions,
// migration 0004). It writes outside the append writer, on its own
// connection (revisionConn): revisions are not part of the hash chain,
// the run's result row vouches for them.
func (l *Ledger) PutRevision(ctx context.Context, rev ledger.Revision) error {
	if rev.Time.IsZero() {
		rev.Time = time.Now()
	}
	l.revs.mu.Lock()
	defer l.revs.mu.Unlock()
	c, err := l.revs.get(ctx, l.db)
	if err != nil {
		return fmt.Errorf("sqlite ledger: storing revision: %w", err)
	}
	_, err = c.ExecContext(ctx, revInsertSQL, rev.RunID, rev.Target, rev.Service, rev.Revision, rev.Spec, rev.Sealed, rev.Digest, rev.Time.UnixNano())
	if err != nil {
		if strings.Contains(err.Error(), "UNIQUE constraint failed") {
			return fmt.Errorf("%w: %s", ledger.ErrRevisionExists, rev.RunID)
		}
		return fmt.Errorf("sqlite ledger: storing revision: %w", err)
	}
	return nil
}

// Revisions implements ledger.RevisionStore.
func (l *Ledger) Revisions(ctx context.Context, target, service string) ([]ledger.Revision, error) {
	rows, err := l.db.QueryContext(ctx, `SELECT run_id, target, service, revision, spec, sealed, digest, time_ns
		FROM workload_revisions WHERE target = ? AND service = ? ORDER BY revision, time_ns`, target, service)
	if err != nil {
		return nil, fmt.Errorf("sqlite ledger: reading revisions: %w", err)
	}
	defer rows.Close()
	out := []ledger.Revision{}
	for rows.Next() {
		var r ledger.Revision
		var ns int64
		if err := rows.Scan(&r.RunID, &r.Target, &r.Service, &r.Revision, &r.Spec, &r.Sealed, &r.Digest, &ns); err != nil {
			return nil, fmt.Errorf("sqlite ledger: reading revisions: %w", err)
		}
		r.Time = time.Unix(0, ns).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("sqlite ledger: reading revisions: %w", err)
	}
	return out, nil
}

// Revision implements ledger.RevisionStore.
func (l *Ledger) Revision(ctx context.Context, runID string) (ledger.Revision, error) {
	var r ledger.Revision
	var ns int64
	err := l.db.QueryRowContext(ctx, `SELECT run_id, target, service, revision, spec, sealed, digest, time_ns
		FROM workload_revisions WHERE run_id = ?`, runID).Scan(&r.RunID, &r.Target, &r.Service, &r.Revision, &r.Spec, &r.Sealed, &r.Digest, &ns)
	if errors.Is(err, sql.ErrNoRows) {
		return ledger.Revision{}, fmt.Errorf("%w: %s", ledger.ErrNoRevision, runID)
	}
	if err != nil {
		return ledger.Revision{}, fmt.Errorf("sqlite ledger: reading a revision: %w", err)
	}
	r.Time = time.Unix(0, ns).UTC()
	return r, nil
}

package postgres

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/alphaswarm/controller/ledger"
)

var (
	_ ledger.RevisionStore      = (*Ledger)(nil)
	_ ledger.RevisionAppender   = (*Ledger)(nil)
	_ ledger.RevisionHeadReader = (*Ledger)(nil)
	_ ledger.GuardedAppender    = (*Ledger)(nil)
)

var revHeadSQL = ledger.RevisionHeadSQL("$")

// RevisionHead implements ledger.RevisionHeadReader: one round trip (the
// pool caches the prepared statement per connection).
func (l *Ledger) RevisionHead(ctx context.Context, target, service string) (int64, error) {
	var seq int64
	err := l.pool.QueryRow(ctx, revHeadSQL, service, target).Scan(&seq)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("ledger/postgres: reading the revision head: %w", err)
	}
	return seq, nil
}

// AppendWithRevision implements ledger.RevisionAppender: the writer
// inserts rev in the transaction that appends r (one more statement in
// the pipeline that inserts the rows and commits: no round trip of its
// own), so r's commit makes both durable. When the database refuses the
// revision row (a run that has one already: ErrRevisionExists) the
// transaction rolls back and r is retried alone by the writer's fallback
// for refused rows, failing with an error wrapping ErrRevisionNotStored;
// the other records of its batch commit.
func (l *Ledger) AppendWithRevision(ctx context.Context, r ledger.Record, rev ledger.Revision) (ledger.Record, error) {
	req, err := revisionRequest(ctx, r, rev)
	if err != nil {
		return ledger.Record{}, err
	}
	return l.enqueue(ctx, req)
}

// revisionRequest is the writer's request to append r with rev, or why
// neither can be stored.
func revisionRequest(ctx context.Context, r ledger.Record, rev ledger.Revision) (*appendReq, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := ledger.CheckRevision(r, rev); err != nil {
		return nil, err
	}
	for _, f := range []string{rev.Spec, rev.Digest} {
		if strings.IndexByte(f, 0) >= 0 || !utf8.ValidString(f) {
			return nil, fmt.Errorf("%w: ledger/postgres: the revision of run %s holds a NUL byte or invalid UTF-8, which PostgreSQL text cannot store as is",
				ledger.ErrRevisionNotStored, rev.RunID)
		}
	}
	r, err := storable(r)
	if err != nil {
		return nil, err
	}
	return &appendReq{rec: r, rev: &rev, res: make(chan appendRes, 1)}, nil
}

// AppendGuarded implements ledger.GuardedAppender: the writer checks g in
// the transaction that appends r, against what the transaction's first
// pipeline reads after the head under the append lock (the halt switches,
// the revision heads of the batch's guarded services: a statement each
// per batch, no round trip of their own). Nothing can be appended between
// that read and the row. A guard that fails refuses its own record only;
// the rest of the batch commits.
func (l *Ledger) AppendGuarded(ctx context.Context, r ledger.Record, rev *ledger.Revision, g ledger.Guard) (ledger.Record, error) {
	if rev == nil {
		if err := ctx.Err(); err != nil {
			return ledger.Record{}, err
		}
		r, err := storable(r)
		if err != nil {
			return ledger.Record{}, err
		}
		return l.enqueue(ctx, &appendReq{rec: r, guard: &g, res: make(chan appendRes, 1)})
	}
	req, err := revisionRequest(ctx, r, *rev)
	if err != nil {
		return ledger.Record{}, err
	}
	req.guard = &g
	return l.enqueue(ctx, req)
}

// haltsSQL reads the newest successful halt result of each scope.
const haltsSQL = `SELECT DISTINCT ON (target) target, seq, detail FROM workload_runs
	WHERE action = 'halt' AND kind = 'result' AND outcome = 'ok'
	ORDER BY target, seq DESC`

// scanHalts reads haltsSQL's rows: the scopes whose newest halt result
// turned the switch on.
func scanHalts(rows pgx.Rows) (map[string]bool, error) {
	defer rows.Close()
	on := map[string]bool{}
	for rows.Next() {
		var target, detail string
		var seq int64
		if err := rows.Scan(&target, &seq, &detail); err != nil {
			return nil, err
		}
		var d ledger.HaltDetail
		if err := json.Unmarshal([]byte(detail), &d); err != nil {
			return nil, fmt.Errorf("row %d: detail is not a halt detail: %w", seq, err)
		}
		if d.On {
			on[target] = true
		}
	}
	return on, rows.Err()
}

// insertRevisions inserts one revision row per element of its arrays (as
// insertRows does for records).
const insertRevisions = `INSERT INTO workload_revisions (run_id, target, service, revision, spec, sealed, digest, time_ns)
	SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::integer[], $5::text[], $6::bytea[], $7::text[], $8::bigint[])`

// revisionArrays are insertRevisions' parameters for the revisions among
// revs (revs[i] belongs to sealed[i]; a zero time is the record's); nil
// when there are none.
func revisionArrays(sealed []ledger.Record, revs []*ledger.Revision) []any {
	var runs, targets, services, specs, digests []string
	var nums []int32
	var blobs [][]byte
	var times []int64
	for i, rev := range revs {
		if rev == nil {
			continue
		}
		t := rev.Time
		if t.IsZero() {
			t = sealed[i].Time
		}
		runs, targets, services = append(runs, rev.RunID), append(targets, rev.Target), append(services, rev.Service)
		nums, specs, blobs = append(nums, int32(rev.Revision)), append(specs, rev.Spec), append(blobs, rev.Sealed)
		digests, times = append(digests, rev.Digest), append(times, t.UnixNano())
	}
	if runs == nil {
		return nil
	}
	return []any{runs, targets, services, nums, specs, blobs, digests, times}
}

// revisionInsertError classifies a failed insertRevisions: refused by the
// database, the transaction is rolled back and nothing was written (an
// insertError, wrapping ErrRevisionNotStored); any other failure leaves
// the commit's outcome unknown.
func revisionInsertError(err error) error {
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		return fmt.Errorf("ledger/postgres: append: insert revision: %w", err)
	}
	if pe.Code == "23505" { // unique_violation
		return &insertError{fmt.Errorf("%w: %w: %w", ledger.ErrRevisionNotStored, ledger.ErrRevisionExists, err)}
	}
	return &insertError{fmt.Errorf("%w: %w", ledger.ErrRevisionNotStored, err)}
}

// PutRevision implements ledger.RevisionStore (table workload_revisions,
// migration 0004). It is one INSERT, committed with the pool's
// synchronous_commit; revisions are not part of the hash chain, the run's
// result row vouches for them.
func (l *Ledger) PutRevision(ctx context.Context, rev ledger.Revision) error {
	if rev.Time.IsZero() {
		rev.Time = time.Now()
	}
	_, err := l.pool.Exec(ctx, `INSERT INTO workload_revisions (run_id, target, service, revision, spec, sealed, digest, time_ns)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8)`, rev.RunID, rev.Target, rev.Service, rev.Revision, rev.Spec, rev.Sealed, rev.Digest, rev.Time.UnixNano())
	if err != nil {
		var pe *pgconn.PgError
		if errors.As(err, &pe) && pe.Code == "23505" { // unique_violation
			return fmt.Errorf("%w: %s", ledger.ErrRevisionExists, rev.RunID)
		}
		return fmt.Errorf("ledger/postgres: storing revision: %w", err)
	}
	return nil
}

// Revisions implements ledger.RevisionStore.
func (l *Ledger) Revisions(ctx context.Context, target, service string) ([]ledger.Revision, error) {
	rows, err := l.pool.Query(ctx, `SELECT run_id, target, service, revision, spec, sealed, digest, time_ns
		FROM workload_revisions WHERE target = $1 AND service = $2 ORDER BY revision, time_ns`, target, service)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: reading revisions: %w", err)
	}
	defer rows.Close()
	out := []ledger.Revision{}
	for rows.Next() {
		var r ledger.Revision
		var ns int64
		var rev int32
		if err := rows.Scan(&r.RunID, &r.Target, &r.Service, &rev, &r.Spec, &r.Sealed, &r.Digest, &ns); err != nil {
			return nil, fmt.Errorf("ledger/postgres: reading revisions: %w", err)
		}
		r.Revision = int(rev)
		r.Time = time.Unix(0, ns).UTC()
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger/postgres: reading revisions: %w", err)
	}
	return out, nil
}

// Revision implements ledger.RevisionStore.
func (l *Ledger) Revision(ctx context.Context, runID string) (ledger.Revision, error) {
	var r ledger.Revision
	var ns int64
	var rev int32
	err := l.pool.QueryRow(ctx, `SELECT run_id, target, service, revision, spec, sealed, digest, time_ns
		FROM workload_revisions WHERE run_id = $1`, runID).Scan(&r.RunID, &r.Target, &r.Service, &rev, &r.Spec, &r.Sealed, &r.Digest, &ns)
	if errors.Is(err, pgx.ErrNoRows) {
		return ledger.Revision{}, fmt.Errorf("%w: %s", ledger.ErrNoRevision, runID)
	}
	if err != nil {
		return ledger.Revision{}, fmt.Errorf("ledger/postgres: reading a revision: %w", err)
	}
	r.Revision = int(rev)
	r.Time = time.Unix(0, ns).UTC()
	return r, nil
}

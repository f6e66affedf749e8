package postgres

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/alphaswarm/controller/ledger"
)

var _ ledger.RevisionStore = (*Ledger)(nil)

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

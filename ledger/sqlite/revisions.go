package sqlite

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

var _ ledger.RevisionStore = (*Ledger)(nil)

// PutRevision implements ledger.RevisionStore (table workload_revisions,
// migration 0004). It writes outside the append writer: revisions are not
// part of the hash chain, the run's result row vouches for them.
func (l *Ledger) PutRevision(ctx context.Context, rev ledger.Revision) error {
	if rev.Time.IsZero() {
		rev.Time = time.Now()
	}
	_, err := l.db.ExecContext(ctx, `INSERT INTO workload_revisions (run_id, target, service, revision, spec, sealed, digest, time_ns)
		VALUES (?, ?, ?, ?, ?, ?, ?, ?)`, rev.RunID, rev.Target, rev.Service, rev.Revision, rev.Spec, rev.Sealed, rev.Digest, rev.Time.UnixNano())
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

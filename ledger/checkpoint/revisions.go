package checkpoint

import (
	"context"
	"fmt"

	"github.com/alphaswarm/controller/ledger"
)

var (
	_ ledger.RevisionStore      = (*Ledger)(nil)
	_ ledger.RevisionAppender   = (*Ledger)(nil)
	_ ledger.RevisionHeadReader = (*Ledger)(nil)
)

// RevisionHead implements ledger.RevisionHeadReader: the backend's
// (ledger.RevisionHead).
func (l *Ledger) RevisionHead(ctx context.Context, target, service string) (int64, error) {
	return ledger.RevisionHead(ctx, l.inner, target, service)
}

// AppendWithRevision implements ledger.RevisionAppender: the backend's
// (one transaction when it is a RevisionAppender, else its PutRevision
// then Append: ledger.AppendWithRevision), then what Append does after.
func (l *Ledger) AppendWithRevision(ctx context.Context, r ledger.Record, rev ledger.Revision) (ledger.Record, error) {
	return l.appendVia(func() (ledger.Record, error) { return ledger.AppendWithRevision(ctx, l.inner, r, rev) })
}

// PutRevision implements ledger.RevisionStore when the backend does.
// Revisions are not rows of the chain: they are neither checkpointed nor
// exported; the result row that names a revision's digest is.
func (l *Ledger) PutRevision(ctx context.Context, rev ledger.Revision) error {
	rs, ok := l.inner.(ledger.RevisionStore)
	if !ok {
		return fmt.Errorf("ledger: %T keeps no revisions", l.inner)
	}
	return rs.PutRevision(ctx, rev)
}

// Revisions implements ledger.RevisionStore when the backend does.
func (l *Ledger) Revisions(ctx context.Context, target, service string) ([]ledger.Revision, error) {
	rs, ok := l.inner.(ledger.RevisionStore)
	if !ok {
		return nil, fmt.Errorf("ledger: %T keeps no revisions", l.inner)
	}
	return rs.Revisions(ctx, target, service)
}

// Revision implements ledger.RevisionStore when the backend does.
func (l *Ledger) Revision(ctx context.Context, runID string) (ledger.Revision, error) {
	rs, ok := l.inner.(ledger.RevisionStore)
	if !ok {
		return ledger.Revision{}, fmt.Errorf("ledger: %T keeps no revisions", l.inner)
	}
	return rs.Revision(ctx, runID)
}

// KeepsRevisions reports whether the backend is a ledger.RevisionStore
// (the runtime asks before recording any).
func (l *Ledger) KeepsRevisions() bool {
	_, ok := l.inner.(ledger.RevisionStore)
	return ok
}

package checkpoint

import (
	"context"
	"fmt"
	"slices"

	"github.com/alphaswarm/controller/ledger"
)

var (
	_ ledger.RevisionStore      = (*Ledger)(nil)
	_ ledger.RevisionAppender   = (*Ledger)(nil)
	_ ledger.RevisionHeadReader = (*Ledger)(nil)
	_ ledger.GuardedAppender    = (*Ledger)(nil)
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

// AppendGuarded implements ledger.GuardedAppender: the backend's guarded
// append (ledger.AppendGuarded), then what Append does after. When a scope
// the guard names is one this process has seen halted (a pin), Halts
// decides first: it sees a halt row removed behind the backend's back,
// which the backend's own check cannot.
func (l *Ledger) AppendGuarded(ctx context.Context, r ledger.Record, rev *ledger.Revision, g ledger.Guard) (ledger.Record, error) {
	l.mu.Lock()
	pinned := slices.ContainsFunc(g.Unhalted, func(s string) bool { _, ok := l.pins[s]; return ok })
	l.mu.Unlock()
	if pinned {
		halts, err := l.Halts(ctx)
		if err != nil {
			return ledger.Record{}, err
		}
		if err := g.CheckHalts(halts); err != nil {
			return ledger.Record{}, err
		}
	}
	return l.appendVia(func() (ledger.Record, error) { return ledger.AppendGuarded(ctx, l.inner, r, rev, g) })
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

package ledger

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
)

// Guarded appends: what an append requires of the ledger, checked in the
// append's own transaction, under the lock that orders every append.
//
// Before them, the runtime read the halt switch (Halts) before each
// operation's intent and, for an operation recording a revision, the
// service's revision head (RevisionHead) before its result: two reads of
// their own per operation, a round trip each on PostgreSQL, and at 64
// concurrent callers a large part of an operation's time. The transaction
// that appends a row already reads the ledger's head under the append
// lock; the same transaction answers both questions, exactly (nothing can
// be appended between the check and the row), and refuses the one row
// whose guard fails while the rest of its batch commits.

// Guard is what AppendGuarded requires before it writes a record.
type Guard struct {
	// Unhalted are halt scopes (GlobalScope, a target) that must not be
	// halted when the record is written; the first that is fails the
	// append with a *HaltedError.
	Unhalted []string
	// CheckHead makes the append require that RevisionHead(record's
	// target, service) is Head when the record is written; otherwise it
	// fails with an error wrapping ErrStaleRevision.
	CheckHead bool
	Head      int64
}

// GuardedAppender is implemented by ledgers that check a Guard in the
// append's transaction (ledger/sqlite: the writer's batch; ledger/postgres:
// the append transaction's first pipeline; ledger/checkpoint passes it
// through). Use the function AppendGuarded, which falls back to reads
// before the append for a ledger without it.
type GuardedAppender interface {
	// AppendGuarded appends r, with rev in the same transaction when rev
	// is not nil (as AppendWithRevision does), if g holds in that
	// transaction. When it does not, nothing of r or rev is written and
	// the error wraps ErrGuard (a *HaltedError, or ErrStaleRevision); the
	// other errors are AppendWithRevision's (rev set) or Append's.
	AppendGuarded(ctx context.Context, r Record, rev *Revision, g Guard) (Record, error)
}

// ErrGuard is wrapped by every AppendGuarded error that refused the
// record because its guard did not hold (nothing of it was written).
var ErrGuard = errors.New("ledger: the append's guard did not hold")

// ErrStaleRevision is wrapped by the error of an AppendGuarded whose
// Guard.Head was not the service's revision head: another writer recorded
// a revision of the service since the caller read it.
var ErrStaleRevision = fmt.Errorf("%w: the service's revision head moved", ErrGuard)

// HaltedError is AppendGuarded's error for a record of a halted scope.
type HaltedError struct {
	Scope string // GlobalScope or a target
}

func (e *HaltedError) Error() string {
	return fmt.Sprintf("ledger: workload operations are halted (scope %q)", e.Scope)
}

// Is makes a *HaltedError match ErrGuard.
func (e *HaltedError) Is(target error) bool { return target == ErrGuard }

// AppendGuarded appends r (with rev when not nil) if g holds: in the
// append's transaction when l is a GuardedAppender, else checked by reads
// (Halts, RevisionHead) just before the append, which is what the runtime
// did before guarded appends, and as exact as the caller's locks make it.
func AppendGuarded(ctx context.Context, l Ledger, r Record, rev *Revision, g Guard) (Record, error) {
	if ga, ok := l.(GuardedAppender); ok {
		return ga.AppendGuarded(ctx, r, rev, g)
	}
	if len(g.Unhalted) > 0 {
		halts, err := l.Halts(ctx)
		if err != nil {
			return Record{}, err
		}
		if err := g.CheckHalts(halts); err != nil {
			return Record{}, err
		}
	}
	if g.CheckHead {
		head, err := RevisionHead(ctx, l, r.Target, r.Service)
		if err != nil {
			return Record{}, err
		}
		if err := g.CheckRevisionHead(head); err != nil {
			return Record{}, err
		}
	}
	if rev != nil {
		return AppendWithRevision(ctx, l, r, *rev)
	}
	return l.Append(ctx, r)
}

// CheckHalts is g's halt check against halts (as Halts returns them).
func (g Guard) CheckHalts(halts map[string]bool) error {
	for _, s := range g.Unhalted {
		if halts[s] {
			return &HaltedError{Scope: s}
		}
	}
	return nil
}

// CheckRevisionHead is g's revision head check against head.
func (g Guard) CheckRevisionHead(head int64) error {
	if g.CheckHead && head != g.Head {
		return fmt.Errorf("%w (the runtime planned from row %d, the ledger's is row %d)", ErrStaleRevision, g.Head, head)
	}
	return nil
}

// BatchGuards is what a ledger's append transaction knows while it checks
// the guards of a batch, in order: the halt switches and revision heads
// read in the transaction before the batch's rows, and the rows of the
// batch accepted so far (a halt result, or a revision-recording result,
// earlier in the batch changes what a later record finds).
type BatchGuards struct {
	Halts map[string]bool     // read in the transaction (Halts' answer)
	Heads map[[2]string]int64 // {target, service} → RevisionHead, read in the transaction
}

// Check is the guard of one record of the batch.
func (b *BatchGuards) Check(r Record, g *Guard) error {
	if g == nil {
		return nil
	}
	if err := g.CheckHalts(b.Halts); err != nil {
		return err
	}
	if g.CheckHead {
		return g.CheckRevisionHead(b.Heads[[2]string{r.Target, r.Service}])
	}
	return nil
}

// Accepted records that sealed (r, with its seq) is written in the batch.
func (b *BatchGuards) Accepted(r Record) {
	if r.Kind != KindResult || r.Outcome != OutcomeOK {
		return
	}
	switch {
	case r.Action == "halt":
		var d HaltDetail
		if json.Unmarshal([]byte(r.Detail), &d) == nil {
			if b.Halts == nil {
				b.Halts = map[string]bool{}
			}
			b.Halts[r.Target] = d.On
		}
	case slices.Contains(RevisionActions, r.Action):
		if b.Heads != nil {
			if _, ok := b.Heads[[2]string{r.Target, r.Service}]; ok {
				b.Heads[[2]string{r.Target, r.Service}] = r.Seq
			}
		}
	}
}

// NeedsHalts reports whether any of guards checks halts; HeadKeys lists
// the {target, service} of records whose guards check the revision head.
func NeedsHalts(guards []*Guard) bool {
	for _, g := range guards {
		if g != nil && len(g.Unhalted) > 0 {
			return true
		}
	}
	return false
}

// HeadKeys returns the distinct {target, service} of recs[i] whose
// guards[i] checks the revision head, in order.
func HeadKeys(recs []Record, guards []*Guard) [][2]string {
	var keys [][2]string
	for i, g := range guards {
		if g == nil || !g.CheckHead {
			continue
		}
		k := [2]string{recs[i].Target, recs[i].Service}
		if !slices.Contains(keys, k) {
			keys = append(keys, k)
		}
	}
	return keys
}

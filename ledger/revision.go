package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"
)

// Revision is one spec revision of a service: what the service ran after a
// successful start, scale, apply_config or rollback. Revisions live beside
// workload_runs, in the same database (table workload_revisions), append
// only, one row per run.
//
// The hash-chained ledger stays the authority: the result row of the run
// carries the revision number and Digest in its Detail, so a revision row
// changed, swapped or invented behind the ledger's back no longer matches
// a ledger row and is not believed (package control reads history that
// way). A revision row whose run has no successful result row (the process
// died between the two writes) is ignored.
//
// Spec is the deployment spec as JSON with every env and config value
// removed (the keys are kept); the values are in Sealed, encrypted by the
// caller (package control: AES-256-GCM). The ledger never sees a value in
// the clear.
type Revision struct {
	// RunID is the ledger run that produced the revision.
	RunID    string `json:"runId"`
	Target   string `json:"target"`
	Service  string `json:"service"`
	Revision int    `json:"revision"`
	// Spec is the spec JSON, values removed.
	Spec string `json:"spec"`
	// Sealed holds the removed values, encrypted; nil when there were
	// none or no key was configured.
	Sealed []byte `json:"sealed,omitempty"`
	// Digest is RevisionDigest(Spec, Sealed).
	Digest string    `json:"digest"`
	Time   time.Time `json:"time"`
}

// RevisionDigest is the sha256 (hex) of a revision's stored bytes: the
// spec JSON, a NUL, the sealed blob. It covers the ciphertext, not the
// values, so the digest in a ledger row reveals nothing guessable.
func RevisionDigest(spec string, sealed []byte) string {
	h := sha256.New()
	h.Write([]byte(spec))
	h.Write([]byte{0})
	h.Write(sealed)
	return hex.EncodeToString(h.Sum(nil))
}

// RevisionStore is implemented by ledgers that keep spec revisions
// (ledger/sqlite, ledger/postgres; ledger/checkpoint passes it through).
// A ledger without it keeps no history: the runtime then records no
// revisions and answers history and rollback with Unsupported.
type RevisionStore interface {
	// PutRevision stores rev. A second revision for the same RunID is
	// ErrRevisionExists. Durable when it returns nil.
	PutRevision(ctx context.Context, rev Revision) error
	// Revisions returns every revision row of one service, oldest first
	// (by Revision, then Time).
	Revisions(ctx context.Context, target, service string) ([]Revision, error)
	// Revision returns the revision of one run; ErrNoRevision when it
	// has none.
	Revision(ctx context.Context, runID string) (Revision, error)
}

// ErrNoRevision is returned by Revision for a run without one.
var ErrNoRevision = errors.New("ledger: no revision for the run")

// ErrRevisionExists is returned by PutRevision for a run that already has
// a revision.
var ErrRevisionExists = errors.New("ledger: the run already has a revision")

// RevisionAppender is implemented by ledgers that store a revision row in
// the transaction that appends the record naming it (ledger/sqlite: the
// writer's batch; ledger/postgres: the append transaction; ledger/checkpoint
// passes it through): one write, one commit, and the record's durable
// commit covers the revision. Use the function AppendWithRevision, which
// falls back to PutRevision then Append for a ledger without it.
type RevisionAppender interface {
	// AppendWithRevision appends r as Append does and stores rev, which
	// must belong to r (CheckRevision), in the same transaction: both
	// are durable when it returns nil. An error wrapping
	// ErrRevisionNotStored (rev exists already, does not belong to r, or
	// the database refused the row) means that neither was written, so
	// r may be appended alone; any other error is Append's. A zero
	// rev.Time is r's sealed time.
	AppendWithRevision(ctx context.Context, r Record, rev Revision) (Record, error)
}

// ErrRevisionNotStored wraps AppendWithRevision's errors that wrote
// nothing because of the revision: the record can still be appended
// alone.
var ErrRevisionNotStored = errors.New("ledger: revision not stored, nor its record")

// CheckRevision refuses a revision that does not belong to the record
// AppendWithRevision would append with it (another run, target or
// service); the error wraps ErrRevisionNotStored.
func CheckRevision(r Record, rev Revision) error {
	if rev.RunID != r.RunID || rev.Target != r.Target || rev.Service != r.Service {
		return fmt.Errorf("%w: the revision of run %s (%s/%s) does not belong to the record of run %s (%s/%s)",
			ErrRevisionNotStored, rev.RunID, rev.Target, rev.Service, r.RunID, r.Target, r.Service)
	}
	return nil
}

// AppendWithRevision appends r with rev in one transaction when l is a
// RevisionAppender. Otherwise it stores rev with PutRevision, then appends
// r: two writes, and a crash between them leaves a revision row no record
// names, which readers ignore (see Revision). A failed PutRevision wraps
// ErrRevisionNotStored; a ledger that is not a RevisionStore too.
func AppendWithRevision(ctx context.Context, l Ledger, r Record, rev Revision) (Record, error) {
	if ra, ok := l.(RevisionAppender); ok {
		return ra.AppendWithRevision(ctx, r, rev)
	}
	if err := CheckRevision(r, rev); err != nil {
		return Record{}, err
	}
	rs, ok := l.(RevisionStore)
	if !ok {
		return Record{}, fmt.Errorf("%w: %T keeps no revisions", ErrRevisionNotStored, l)
	}
	if rev.Time.IsZero() {
		rev.Time = time.Now()
	}
	if err := rs.PutRevision(ctx, rev); err != nil {
		return Record{}, fmt.Errorf("%w: %w", ErrRevisionNotStored, err)
	}
	return l.Append(ctx, r)
}

// RevisionActions are the actions whose successful result rows record a
// revision (package control records one for each; a row of another
// action never names one).
var RevisionActions = []string{"start", "scale", "apply_config", "rollback"}

// RevisionHeadReader is implemented by ledgers that answer RevisionHead
// with one indexed read (ledger/sqlite: a prepared statement; ledger/
// postgres; ledger/checkpoint passes it through). Use the function
// RevisionHead, which falls back to Query.
type RevisionHeadReader interface {
	// RevisionHead returns the seq of the service's newest result row
	// with outcome ok and an action of RevisionActions; 0 when there is
	// none.
	RevisionHead(ctx context.Context, target, service string) (int64, error)
}

// RevisionHead is the seq of the service's newest successful result row
// of an action that records a revision (0: none): the runtime checks its
// cached revision against it (a row appended since means another writer
// recorded one). Through l's RevisionHeadReader, else by pages of Query.
func RevisionHead(ctx context.Context, l Ledger, target, service string) (int64, error) {
	if r, ok := l.(RevisionHeadReader); ok {
		return r.RevisionHead(ctx, target, service)
	}
	f := Filter{Target: target, Service: service, Kind: KindResult, Outcome: OutcomeOK, Descending: true, Limit: 8}
	for {
		page, err := l.Query(ctx, f)
		if err != nil {
			return 0, err
		}
		for _, r := range page.Records {
			if slices.Contains(RevisionActions, r.Action) {
				return r.Seq, nil
			}
		}
		if page.Next == "" {
			return 0, nil
		}
		f.Cursor, f.Limit = page.Next, MaxLimit
	}
}

// RevisionHeadSQL is RevisionHead's statement for the SQL ledgers, with
// the service as parameter 1 and the target as 2; prefix is the backend's
// numbered placeholder ("$" for PostgreSQL, "?" for SQLite). Their index
// on (service, seq) walks back from the service's newest row.
func RevisionHeadSQL(prefix string) string {
	acts := make([]string, len(RevisionActions))
	for i, a := range RevisionActions {
		acts[i] = "'" + a + "'"
	}
	return "SELECT seq FROM workload_runs WHERE service = " + prefix + "1 AND target = " + prefix + "2 AND kind = 'result'" +
		" AND outcome = 'ok' AND action IN (" + strings.Join(acts, ", ") + ") ORDER BY seq DESC LIMIT 1"
}

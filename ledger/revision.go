package ledger

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
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

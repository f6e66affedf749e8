package ledger

import (
	"errors"
	"fmt"
	"sync"
)

// ErrHeadMoved is wrapped by the error a guarded ledger returns when its
// stored head is not what this process last wrote or saw: rows were removed
// from the tail, or rewritten, behind its back.
var ErrHeadMoved = errors.New("ledger: the stored head moved")

// ErrReadOnly is wrapped by the error a guarded ledger returns while it has
// been put in read-only mode (Refuse), typically because the chain did not
// verify at start.
var ErrReadOnly = errors.New("ledger: read-only")

// HeadWatch is the head guard a backend keeps: the (seq, hash) of the last
// row it wrote or read, checked against the stored head inside every append
// transaction, before anything is written. The check costs nothing when the
// head is the expected one (the backend reads the head in that transaction
// anyway). A row count that went down, or a head hash that changed, makes
// the guard refuse every later append until the process restarts (sticky),
// so the server never chains new rows onto a truncated or rewritten ledger.
//
// A head that moved forward is legitimate when other processes share the
// ledger (PostgreSQL); the backend then confirms that the row it knew still
// holds the hash it knew.
//
// The zero HeadWatch knows no head and accepts any. It is safe for
// concurrent use.
type HeadWatch struct {
	mu    sync.Mutex
	known bool
	seq   int64
	hash  string
	err   error // sticky: tampering seen, or Refuse
	fail  error // the last append's failure (cleared by a success)
}

// Guarded is implemented by ledgers that keep a HeadWatch.
type Guarded interface {
	HeadWatch() *HeadWatch
}

// Observe records a head read (at open) or written (after a commit): seq is
// the row count, hash the last row's hash (GenesisHash when empty).
func (h *HeadWatch) Observe(seq int64, hash string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.known || seq >= h.seq {
		h.known, h.seq, h.hash = true, seq, hash
	}
	h.fail = nil
}

// Check compares the stored head (seq, hash) read inside an append
// transaction with the one the guard expects. hashAt reads the hash of one
// row in that same transaction (found=false when the row is gone); it is
// only called when the head moved forward. A failure is sticky.
func (h *HeadWatch) Check(seq int64, hash string, hashAt func(seq int64) (string, bool, error)) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	if !h.known {
		return nil
	}
	var problem string
	switch {
	case seq < h.seq:
		problem = fmt.Sprintf("the ledger ends at row %d but this controller last wrote or read row %d: rows were removed from the tail", seq, h.seq)
	case seq == h.seq && hash != h.hash:
		problem = fmt.Sprintf("row %d does not hold the hash this controller wrote or read (%.12s…, now %.12s…): the ledger was rewritten", seq, h.hash, hash)
	case seq > h.seq && h.seq > 0:
		got, found, err := hashAt(h.seq)
		if err != nil {
			return fmt.Errorf("ledger head check: %w", err)
		}
		if !found {
			problem = fmt.Sprintf("row %d, which this controller wrote or read, is gone", h.seq)
		} else if got != h.hash {
			problem = fmt.Sprintf("row %d does not hold the hash this controller wrote or read: the ledger was rewritten", h.seq)
		}
	}
	if problem == "" {
		return nil
	}
	h.err = fmt.Errorf("%w: %s; refusing to append (restart after an audit, see `alphaswarm ledger verify --checkpoints`)", ErrHeadMoved, problem)
	return h.err
}

// Refuse puts the ledger in read-only mode: every later append fails with
// an error wrapping ErrReadOnly and reason. The first reason stays.
func (h *HeadWatch) Refuse(reason string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err == nil {
		h.err = fmt.Errorf("%w: %s", ErrReadOnly, reason)
	}
}

// Tampered reports the sticky error: tampering seen, or read-only mode.
func (h *HeadWatch) Tampered() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.err
}

// Failed records the outcome of an append transaction: a failure (disk
// full, database gone) is reported by Health until an append succeeds.
func (h *HeadWatch) Failed(err error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.fail = err
}

// Health is nil while the ledger takes appends: no tampering seen, not
// read-only, and the last append transaction did not fail.
func (h *HeadWatch) Health() error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.err != nil {
		return h.err
	}
	if h.fail != nil {
		return fmt.Errorf("the last ledger append failed: %w", h.fail)
	}
	return nil
}

// Head is the head the guard expects (seq 0 when it knows none).
func (h *HeadWatch) Head() (seq int64, hash string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.seq, h.hash
}

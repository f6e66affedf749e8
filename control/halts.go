package control

import (
	"context"
	"maps"
	"sync"
	"time"
)

// Reading the halt switch.
//
// Every mutating request reads the halt switch from the ledger before it
// takes its lock: a halt recorded before the request arrived must refuse
// it, whichever controller recorded it. Read alone, that is one ledger
// query per request, and under load the queries themselves become the
// bottleneck (64 callers: 64 queries competing with the appends for the
// database). haltReader shares reads without weakening that rule, the way
// group commit shares fsyncs: a caller never takes the answer of a read
// that began before it arrived. When no read is running, the caller starts
// one; when one is running, the caller waits for it to end and for the
// next read, which starts then, on behalf of everyone who arrived in the
// meantime. So each answer still reflects every halt committed before the
// request arrived, and concurrent requests cost at most two reads in
// flight instead of one each.

// haltReadTimeout bounds one shared read; the callers' own contexts bound
// how long each waits.
const haltReadTimeout = 30 * time.Second

type haltReader struct {
	read func(context.Context) (map[string]bool, error)

	mu      sync.Mutex
	running *haltRead // started; nil when idle
	next    *haltRead // starts when running ends; nil when nobody waits
}

// haltRead is one shared read; halts and err are set before done closes.
type haltRead struct {
	done    chan struct{}
	halts   map[string]bool
	err     error
	waiters int // callers queued on it before it started (under haltReader.mu)
}

// halts returns the halt switches as a read that began after the call
// found them. Each caller gets its own copy of the map.
func (h *haltReader) halts(ctx context.Context) (map[string]bool, error) {
	h.mu.Lock()
	var r *haltRead
	switch {
	case h.running == nil:
		r = &haltRead{done: make(chan struct{})}
		h.running = r
		h.mu.Unlock()
		go h.run(r)
	default:
		if h.next == nil {
			h.next = &haltRead{done: make(chan struct{})}
		}
		r = h.next
		r.waiters++
		h.mu.Unlock()
	}
	select {
	case <-r.done:
		if r.err != nil {
			return nil, r.err
		}
		return maps.Clone(r.halts), nil
	case <-ctx.Done():
		return nil, ctx.Err()
	}
}

// run performs r, then the read queued behind it, if any. It runs in its
// own goroutine so that a caller that gives up does not stop a read others
// wait for.
func (h *haltReader) run(r *haltRead) {
	for r != nil {
		ctx, cancel := context.WithTimeout(context.Background(), haltReadTimeout)
		r.halts, r.err = h.read(ctx)
		cancel()
		h.mu.Lock()
		next := h.next
		h.running, h.next = next, nil
		h.mu.Unlock()
		close(r.done)
		r = next
	}
}

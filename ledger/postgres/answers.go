package postgres

import (
	"sync"
	"time"
)

// Answering. The writer's transactions are the ledger's throughput, and
// each is two round trips; the first (BEGIN, the append lock, the head)
// takes a quarter of a millisecond on the server. Answering the callers of
// a committed transaction wakes them all at once — at 64 callers, some 30
// goroutines that each run their next piece of work (the runtime: the
// result's log line, the next request's checks, its intent) — and the
// writer, parked on the next transaction's first round trip, then waits
// behind them for a processor: on two cores that tripled the first round
// trip (0.27 → 0.9 ms in the bench's tier, the largest part of what the
// runtime lost to the ledger alone at 64 callers).
//
// So the writer holds the answers of a committed transaction back until
// the next transaction's first round trip is back (or there is no next
// transaction to start, or the writer stops), then sends them while the
// server runs the second round trip (the rows, COMMIT and its fsync),
// which leaves the processors to the callers. Held answers are durable:
// their transaction committed. answerHold bounds the delay: a first round
// trip that waits longer — for the append lock another process holds, or
// for a slow server — lets them go (a timer) without waiting for it. The
// callers answered later join the same next batch as before (they could
// not have been gathered into the transaction already begun), so the
// batches are no smaller for it.
const answerHold = 2 * time.Millisecond

// heldAnswers are answers the writer holds back. flush may be called by
// the writer and by answerHold's timer at once.
type heldAnswers struct {
	mu   sync.Mutex
	list []heldAnswer
}

type heldAnswer struct {
	req *appendReq
	res appendRes
}

// add holds res, req's answer.
func (h *heldAnswers) add(req *appendReq, res appendRes) {
	h.mu.Lock()
	h.list = append(h.list, heldAnswer{req, res})
	h.mu.Unlock()
}

// flush sends the answers held (the channels are buffered: never blocks).
func (h *heldAnswers) flush() {
	h.mu.Lock()
	list := h.list
	h.list = nil
	h.mu.Unlock()
	for _, a := range list {
		a.req.res <- a.res
	}
}

// release starts the answerHold timer of a transaction about to send its
// first round trip; calling the returned func (when that round trip is
// back, or the transaction ends) sends the held answers, if the timer has
// not already.
func (h *heldAnswers) release() func() {
	h.mu.Lock()
	none := len(h.list) == 0
	h.mu.Unlock()
	if none {
		return func() {}
	}
	t := time.AfterFunc(answerHold, h.flush)
	return func() {
		t.Stop()
		h.flush()
	}
}

package ledger

import "context"

// UnfinishedScanner is implemented by ledgers that can list the intents
// without a result among the rows after a given seq at a cost that follows
// those rows, not the size of the ledger (a range of the seq key, and one
// index look-up of each intent's run). Recovery (package control) runs a
// pass every minute in every replica: it remembers the seq up to which it
// has looked and asks only for what came after it. Ledgers without it are
// read with Unfinished, the whole ledger every time (see UnfinishedAfter).
type UnfinishedScanner interface {
	// UnfinishedAfter returns the intents with after < seq <= head that
	// had no result when read, oldest first, and head: the seq of the
	// last row of the ledger when the call began (0 when it is empty;
	// below after when rows were removed from the tail). Every intent in
	// (after, head] that it does not return had a result. Rows appended
	// after head are left for the next call.
	UnfinishedAfter(ctx context.Context, after int64) (open []Record, head int64, err error)
}

// UnfinishedAfter is l's UnfinishedAfter when l is an UnfinishedScanner.
// Otherwise it reads the head, then every unfinished intent (Unfinished,
// a read of the whole ledger), and keeps those in (after, head]: the same
// answer at the old cost.
//
// The answer is complete because a ledger is one chain: a row becomes
// visible only once every row before it is (appends are ordered and
// committed in seq order), so no intent can appear at or below a head
// already read, whichever process appends it; and results are never
// removed, so an intent found closed stays closed.
func UnfinishedAfter(ctx context.Context, l Ledger, after int64) ([]Record, int64, error) {
	if s, ok := l.(UnfinishedScanner); ok {
		return s.UnfinishedAfter(ctx, after)
	}
	page, err := l.Query(ctx, Filter{Descending: true, Limit: 1})
	if err != nil {
		return nil, 0, err
	}
	if len(page.Records) == 0 {
		return nil, 0, nil
	}
	head := page.Records[0].Seq
	all, err := l.Unfinished(ctx)
	if err != nil {
		return nil, 0, err
	}
	var open []Record
	for _, r := range all {
		if r.Seq > after && r.Seq <= head {
			open = append(open, r)
		}
	}
	return open, head, nil
}

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
)

// columns are workload_runs' columns in the order rowValues and scanRecord
// use.
var columns = []string{
	"seq", "run_id", "kind", "user_id", "action", "target", "service", "provider",
	"request_digest", "idempotency_key", "outcome", "error_code", "message", "detail",
	"duration_ns", "time_ns", "prev_hash", "hash", "auth", "user_name", "version", "policy_digest",
}

var selectColumns = strings.Join(columns, ", ")

func rowValues(r *ledger.Record) []any {
	return []any{
		r.Seq, r.RunID, string(r.Kind), r.UserID, r.Action, r.Target, r.Service, r.Provider,
		r.RequestDigest, r.IdempotencyKey, string(r.Outcome), r.ErrorCode, r.Message, r.Detail,
		int64(r.Duration), r.Time.UnixNano(), r.PrevHash, r.Hash, r.Auth, r.UserName, int32(r.Version), r.PolicyDigest,
	}
}

// Request states: a request is taken by the writer or withdrawn by its
// caller, whichever comes first.
const (
	statePending int32 = iota
	stateTaken
	stateWithdrawn
)

type appendReq struct {
	rec   ledger.Record
	state atomic.Int32
	res   chan appendRes // buffered: the writer never blocks on it
}

type appendRes struct {
	rec ledger.Record
	err error
}

// Append seals r after the last record and stores it durably. Concurrent
// calls are committed together by the writer goroutine.
func (l *Ledger) Append(ctx context.Context, r ledger.Record) (ledger.Record, error) {
	if err := ctx.Err(); err != nil {
		return ledger.Record{}, err
	}
	r, err := storable(r)
	if err != nil {
		return ledger.Record{}, err
	}
	req := &appendReq{rec: r, res: make(chan appendRes, 1)}
	select {
	case <-l.done:
		return ledger.Record{}, ErrClosed
	default:
	}
	select {
	case l.reqs <- req:
	case <-ctx.Done():
		return ledger.Record{}, ctx.Err()
	case <-l.done:
		return ledger.Record{}, ErrClosed
	}
	select {
	case res := <-req.res:
		return res.rec, res.err
	case <-ctx.Done():
		if req.state.CompareAndSwap(statePending, stateWithdrawn) {
			return ledger.Record{}, ctx.Err()
		}
	case <-l.writerExited:
		if req.state.CompareAndSwap(statePending, stateWithdrawn) {
			return ledger.Record{}, ErrClosed
		}
	}
	// The writer has taken the record: its transaction (bounded by
	// writeTimeout) decides, and the caller must learn the outcome.
	res := <-req.res
	return res.rec, res.err
}

// storable checks that PostgreSQL text can hold r's strings: it refuses NUL
// bytes and replaces invalid UTF-8 by U+FFFD (before sealing, so the hash
// and the record returned are those of what is stored).
func storable(r ledger.Record) (ledger.Record, error) {
	kind, outcome := string(r.Kind), string(r.Outcome)
	type field struct {
		name string
		s    *string
	}
	for _, f := range []field{
		{"RunID", &r.RunID}, {"Kind", &kind}, {"UserID", &r.UserID}, {"Action", &r.Action},
		{"Target", &r.Target}, {"Service", &r.Service}, {"Provider", &r.Provider},
		{"RequestDigest", &r.RequestDigest}, {"IdempotencyKey", &r.IdempotencyKey},
		{"Outcome", &outcome}, {"ErrorCode", &r.ErrorCode}, {"Message", &r.Message},
		{"Detail", &r.Detail}, {"Auth", &r.Auth}, {"UserName", &r.UserName}, {"PolicyDigest", &r.PolicyDigest},
	} {
		if strings.IndexByte(*f.s, 0) >= 0 {
			return ledger.Record{}, fmt.Errorf("ledger/postgres: record %s contains a NUL byte, which PostgreSQL cannot store", f.name)
		}
		if !utf8.ValidString(*f.s) {
			*f.s = strings.ToValidUTF8(*f.s, "\uFFFD")
		}
	}
	r.Kind, r.Outcome = ledger.Kind(kind), ledger.Outcome(outcome)
	return r, nil
}

// writer commits queued appends, as many per transaction as are waiting.
func (l *Ledger) writer() {
	defer close(l.writerExited)
	batch := make([]*appendReq, 0, maxBatch)
	for {
		var first *appendReq
		stopping := false
		select {
		case first = <-l.reqs:
		case <-l.done:
			stopping = true
		}
		if stopping {
			// Commit what was queued before Close; callers racing
			// with Close withdraw through writerExited.
			for {
				batch = l.gather(batch[:0], nil)
				if len(batch) == 0 {
					return
				}
				l.commit(batch)
			}
		}
		l.commit(l.gather(batch[:0], first))
	}
}

// gather takes first (if any) and whatever else is queued, up to maxBatch,
// skipping requests their callers have withdrawn.
func (l *Ledger) gather(batch []*appendReq, first *appendReq) []*appendReq {
	take := func(r *appendReq) {
		if r.state.CompareAndSwap(statePending, stateTaken) {
			batch = append(batch, r)
		}
	}
	if first != nil {
		take(first)
	}
	for len(batch) < maxBatch {
		select {
		case r := <-l.reqs:
			take(r)
		default:
			return batch
		}
	}
	return batch
}

// insertError is a failure to insert the batch's rows, before any commit:
// nothing was written, so the records can be retried one by one.
type insertError struct{ err error }

func (e *insertError) Error() string { return e.err.Error() }
func (e *insertError) Unwrap() error { return e.err }

// commit appends batch in one transaction and answers every caller. When
// the rows themselves are refused, each record is retried in a transaction
// of its own so one bad record cannot fail the others.
func (l *Ledger) commit(batch []*appendReq) {
	if len(batch) == 0 {
		return
	}
	recs := make([]ledger.Record, len(batch))
	for i, r := range batch {
		recs[i] = r.rec
	}
	sealed, err := l.appendTx(recs)
	if err != nil {
		l.head.Failed(err)
	} else {
		l.head.Observe(sealed[len(sealed)-1].Seq, sealed[len(sealed)-1].Hash)
	}
	var ie *insertError
	if err != nil && len(batch) > 1 && errors.As(err, &ie) {
		for _, r := range batch {
			one, err := l.appendTx([]ledger.Record{r.rec})
			res := appendRes{err: err}
			if err == nil {
				res.rec = one[0]
				l.head.Observe(one[0].Seq, one[0].Hash)
			}
			r.res <- res
		}
		return
	}
	for i, r := range batch {
		if err != nil {
			r.res <- appendRes{err: err}
		} else {
			r.res <- appendRes{rec: sealed[i]}
		}
	}
}

// appendTx seals recs after the last row and inserts them in one
// transaction, under the append lock that orders every process's appends.
func (l *Ledger) appendTx(recs []ledger.Record) ([]ledger.Record, error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	tx, err := l.pool.Begin(ctx)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: append: begin: %w", err)
	}
	defer func() {
		rctx, rcancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer rcancel()
		_ = tx.Rollback(rctx) // no-op after Commit
	}()
	if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockAppend); err != nil {
		return nil, fmt.Errorf("ledger/postgres: append: lock: %w", err)
	}
	// A new statement, so a new snapshot: it sees every append committed
	// before the lock was granted.
	head := ledger.Record{Hash: ledger.GenesisHash}
	var prev *ledger.Record
	switch err := tx.QueryRow(ctx, "SELECT seq, hash FROM workload_runs ORDER BY seq DESC LIMIT 1").Scan(&head.Seq, &head.Hash); {
	case err == nil:
		prev = &head
	case errors.Is(err, pgx.ErrNoRows):
	default:
		return nil, fmt.Errorf("ledger/postgres: append: read head: %w", err)
	}
	if err := l.head.Check(head.Seq, head.Hash, func(seq int64) (string, bool, error) {
		var h string
		err := tx.QueryRow(ctx, "SELECT hash FROM workload_runs WHERE seq = $1", seq).Scan(&h)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", false, nil
		}
		return h, err == nil, err
	}); err != nil {
		return nil, err
	}
	sealed := make([]ledger.Record, len(recs))
	for i, r := range recs {
		sealed[i] = ledger.Seal(r, prev)
		prev = &sealed[i]
	}
	if len(sealed) == 1 {
		_, err = tx.Exec(ctx, insertOne, rowValues(&sealed[0])...)
	} else {
		_, err = tx.CopyFrom(ctx, pgx.Identifier{"workload_runs"}, columns,
			pgx.CopyFromSlice(len(sealed), func(i int) ([]any, error) { return rowValues(&sealed[i]), nil }))
	}
	if err != nil {
		return nil, &insertError{fmt.Errorf("ledger/postgres: append: insert: %w", err)}
	}
	if err := tx.Commit(ctx); err != nil {
		return nil, fmt.Errorf("ledger/postgres: append: commit: %w", err)
	}
	return sealed, nil
}

var insertOne = func() string {
	ps := make([]string, len(columns))
	for i := range ps {
		ps[i] = fmt.Sprintf("$%d", i+1)
	}
	return "INSERT INTO workload_runs (" + selectColumns + ") VALUES (" + strings.Join(ps, ", ") + ")"
}()

package postgres

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
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
	rec ledger.Record
	// rev, when set, is inserted in the transaction that appends rec
	// (AppendWithRevision, revisions.go).
	rev *ledger.Revision
	// guard, when set, must hold in the transaction before rec is written
	// (AppendGuarded, revisions.go).
	guard *ledger.Guard
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
	return l.enqueue(ctx, &appendReq{rec: r, res: make(chan appendRes, 1)})
}

// enqueue hands req to the writer and waits for its answer.
func (l *Ledger) enqueue(ctx context.Context, req *appendReq) (ledger.Record, error) {
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
	defer l.answers.flush()
	for {
		var first *appendReq
		stopping := false
		select {
		case first = <-l.reqs:
		default:
			// Nothing to start: the held answers go now (answers.go).
			l.answers.flush()
			select {
			case first = <-l.reqs:
			case <-l.done:
				stopping = true
			}
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

// commit appends batch in one transaction and answers every caller (the
// answers are held until the next transaction is under way: answers.go).
// When the rows themselves are refused, each record is retried in a
// transaction of its own so one bad record cannot fail the others.
func (l *Ledger) commit(batch []*appendReq) {
	if len(batch) == 0 {
		return
	}
	recs := make([]ledger.Record, len(batch))
	revs := make([]*ledger.Revision, len(batch))
	guards := make([]*ledger.Guard, len(batch))
	for i, r := range batch {
		recs[i], revs[i], guards[i] = r.rec, r.rev, r.guard
	}
	sealed, errs, err := l.appendTx(recs, revs, guards)
	l.observe(sealed, err)
	var ie *insertError
	if err != nil && len(batch) > 1 && errors.As(err, &ie) {
		for _, r := range batch {
			one, errs, err := l.appendTx([]ledger.Record{r.rec}, []*ledger.Revision{r.rev}, []*ledger.Guard{r.guard})
			l.observe(one, err)
			if err == nil {
				err = errs[0]
			}
			res := appendRes{err: err}
			if err == nil {
				res.rec = one[0]
			}
			l.answers.add(r, res)
		}
		return
	}
	for i, r := range batch {
		switch {
		case err != nil:
			l.answers.add(r, appendRes{err: err})
		case errs[i] != nil:
			l.answers.add(r, appendRes{err: errs[i]})
		default:
			l.answers.add(r, appendRes{rec: sealed[i]})
		}
	}
}

// observe tells the head guard how an append transaction ended: the last
// row it wrote, or its failure.
func (l *Ledger) observe(sealed []ledger.Record, err error) {
	if err != nil {
		l.head.Failed(err)
		return
	}
	for i := len(sealed) - 1; i >= 0; i-- {
		if sealed[i].Seq > 0 {
			l.head.Observe(sealed[i].Seq, sealed[i].Hash)
			return
		}
	}
}

// appendTx seals recs after the last row and inserts them in one
// transaction, under the append lock that orders every process's appends.
// The transaction is two round trips, each a pipeline of statements run in
// order: BEGIN, the append lock, the head read (a new statement, so a new
// snapshot: it sees every append committed before the lock was granted);
// then, with the records sealed after that head, one INSERT of every row
// and COMMIT. (It was five: BEGIN, lock, head, INSERT or COPY, COMMIT.)
// revs[i], when set, is recs[i]'s revision row, inserted by one more
// statement of the second pipeline, before COMMIT. guards[i], when set, is
// checked against what the first pipeline read after the head (the halt
// switches, the revision heads of the guarded services: one statement
// each, no round trip of their own, and reading nothing when no other
// process appended since this writer's last commit: guardcache.go); a
// record whose guard fails is not written and errs[i] says why (sealed[i]
// is then zero).
func (l *Ledger) appendTx(recs []ledger.Record, revs []*ledger.Revision, guards []*ledger.Guard) (sealed []ledger.Record, errs []error, err error) {
	ctx, cancel := context.WithTimeout(context.Background(), writeTimeout)
	defer cancel()
	// The last transaction's answers go once this one's first round trip
	// is back, at the latest after answerHold (answers.go).
	answer := l.answers.release()
	defer answer()
	conn, err := l.pool.Acquire(ctx)
	if err != nil {
		return nil, nil, fmt.Errorf("ledger/postgres: append: begin: %w", err)
	}
	committed := false
	defer func() {
		if committed {
			conn.Release()
			return
		}
		// The transaction may be open, failed or unknown: ending the
		// session rolls it back and frees the append lock.
		discard(conn)
	}()
	b := &pgx.Batch{}
	b.Queue("BEGIN")
	// Every statement of the transaction is an index probe or an insert
	// whose plan does not depend on its parameters, but the planner kept
	// planning the guards' revision heads afresh for every transaction
	// (a custom plan, 0.27 ms: more than the rest of the first round trip
	// on the server); the generic plan is planned once per session.
	if l.genericPlans {
		b.Queue("SET LOCAL plan_cache_mode = force_generic_plan")
	}
	b.Queue("SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockAppend)
	b.Queue("SELECT seq, hash FROM workload_runs ORDER BY seq DESC LIMIT 1")
	reads := l.guards.queue(b, recs, guards)
	head := ledger.Record{Hash: ledger.GenesisHash}
	var prev *ledger.Record
	br := conn.SendBatch(ctx, b)
	begin := 1 // BEGIN, and SET LOCAL
	if l.genericPlans {
		begin = 2
	}
	for range begin {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, nil, fmt.Errorf("ledger/postgres: append: begin: %w", err)
		}
	}
	if _, err := br.Exec(); err != nil {
		br.Close()
		return nil, nil, fmt.Errorf("ledger/postgres: append: lock: %w", err)
	}
	switch err := br.QueryRow().Scan(&head.Seq, &head.Hash); {
	case err == nil:
		prev = &head
	case errors.Is(err, pgx.ErrNoRows):
	default:
		br.Close()
		return nil, nil, fmt.Errorf("ledger/postgres: append: read head: %w", err)
	}
	guardReads, err := l.guards.read(br, reads, head.Seq)
	if err != nil {
		br.Close()
		return nil, nil, fmt.Errorf("ledger/postgres: append: read guards: %w", err)
	}
	if err := br.Close(); err != nil {
		return nil, nil, fmt.Errorf("ledger/postgres: append: read head: %w", err)
	}
	answer()
	if err := l.head.Check(head.Seq, head.Hash, func(seq int64) (string, bool, error) {
		var h string
		err := conn.QueryRow(ctx, "SELECT hash FROM workload_runs WHERE seq = $1", seq).Scan(&h)
		if errors.Is(err, pgx.ErrNoRows) {
			return "", false, nil
		}
		return h, err == nil, err
	}); err != nil {
		return nil, nil, err
	}
	sealed, errs = make([]ledger.Record, len(recs)), make([]error, len(recs))
	var rows []ledger.Record
	var rowRevs []*ledger.Revision
	for i, r := range recs {
		if errs[i] = guardReads.Check(r, guards[i]); errs[i] != nil {
			continue
		}
		sealed[i] = ledger.Seal(r, prev)
		prev = &sealed[i]
		guardReads.Accepted(sealed[i])
		rows, rowRevs = append(rows, sealed[i]), append(rowRevs, revs[i])
	}
	b = &pgx.Batch{}
	if len(rows) > 0 {
		b.Queue(insertRows, rowArrays(rows)...)
	}
	revArgs := revisionArrays(rows, rowRevs)
	if revArgs != nil {
		b.Queue(insertRevisions, revArgs...)
	}
	b.Queue("COMMIT")
	br = conn.SendBatch(ctx, b)
	if len(rows) > 0 {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, nil, &insertError{fmt.Errorf("ledger/postgres: append: insert: %w", err)}
		}
	}
	if revArgs != nil {
		if _, err := br.Exec(); err != nil {
			br.Close()
			return nil, nil, revisionInsertError(err)
		}
	}
	tag, err := br.Exec()
	if cerr := br.Close(); err == nil {
		err = cerr
	}
	if err == nil && tag.String() != "COMMIT" {
		err = fmt.Errorf("the transaction ended with %s", tag)
	}
	if err != nil {
		return nil, nil, fmt.Errorf("ledger/postgres: append: commit: %w", err)
	}
	committed = true
	at := head.Seq
	if len(rows) > 0 {
		at = rows[len(rows)-1].Seq
	}
	l.guards.committed(rows, at)
	return sealed, errs, nil
}

// insertRows inserts one row per element of its array parameters (one
// array per column, in columns' order), so that any number of rows is one
// statement, prepared once, that can share a round trip with COMMIT.
var insertRows = func() string {
	ps := make([]string, len(columns))
	for i, c := range columns {
		ps[i] = fmt.Sprintf("$%d::%s[]", i+1, columnTypes[c])
	}
	return "INSERT INTO workload_runs (" + selectColumns + ") SELECT * FROM unnest(" + strings.Join(ps, ", ") + ")"
}()

// columnTypes are the columns' PostgreSQL types (migrations/).
var columnTypes = map[string]string{
	"seq": "bigint", "duration_ns": "bigint", "time_ns": "bigint", "version": "integer",
	"run_id": "text", "kind": "text", "user_id": "text", "action": "text", "target": "text", "service": "text",
	"provider": "text", "request_digest": "text", "idempotency_key": "text", "outcome": "text", "error_code": "text",
	"message": "text", "detail": "text", "prev_hash": "text", "hash": "text", "auth": "text", "user_name": "text",
	"policy_digest": "text",
}

// rowArrays are recs as insertRows' parameters: per column, the slice of
// its values (rowValues' types) in recs' order.
func rowArrays(recs []ledger.Record) []any {
	cols := make([][]any, len(columns))
	for i := range cols {
		cols[i] = make([]any, len(recs))
	}
	for j := range recs {
		for i, v := range rowValues(&recs[j]) {
			cols[i][j] = v
		}
	}
	args := make([]any, len(columns))
	for i, vs := range cols {
		switch vs[0].(type) {
		case int64:
			args[i] = typed[int64](vs)
		case int32:
			args[i] = typed[int32](vs)
		case string:
			args[i] = typed[string](vs)
		default:
			panic(fmt.Sprintf("ledger/postgres: column %s: no array type for %T", columns[i], vs[0]))
		}
	}
	return args
}

func typed[T any](vs []any) []T {
	out := make([]T, len(vs))
	for i, v := range vs {
		out[i] = v.(T)
	}
	return out
}

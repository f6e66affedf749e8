package postgres

import (
	"context"
	"fmt"
	"iter"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
)

var _ ledger.UnfinishedScanner = (*Ledger)(nil)

// scanRecord reads a row selected with selectColumns.
func scanRecord(rows pgx.Rows) (ledger.Record, error) {
	var r ledger.Record
	var kind, outcome string
	var durNS, timeNS int64
	var version int32
	err := rows.Scan(&r.Seq, &r.RunID, &kind, &r.UserID, &r.Action, &r.Target, &r.Service,
		&r.Provider, &r.RequestDigest, &r.IdempotencyKey, &outcome, &r.ErrorCode, &r.Message,
		&r.Detail, &durNS, &timeNS, &r.PrevHash, &r.Hash, &r.Auth, &r.UserName, &version, &r.PolicyDigest)
	r.Version = int(version)
	if err != nil {
		return ledger.Record{}, fmt.Errorf("ledger/postgres: scan: %w", err)
	}
	r.Kind, r.Outcome = ledger.Kind(kind), ledger.Outcome(outcome)
	r.Duration = time.Duration(durNS)
	r.Time = time.Unix(0, timeNS).UTC()
	return r, nil
}

func (l *Ledger) queryRecords(ctx context.Context, sql string, args ...any) ([]ledger.Record, error) {
	rows, err := l.pool.Query(ctx, sql, args...)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: query: %w", err)
	}
	defer rows.Close()
	recs := []ledger.Record{}
	for rows.Next() {
		r, err := scanRecord(rows)
		if err != nil {
			return nil, err
		}
		recs = append(recs, r)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("ledger/postgres: query: %w", err)
	}
	return recs, nil
}

// Query returns one page of the records matching f, in seq order (newest
// first when f.Descending).
func (l *Ledger) Query(ctx context.Context, f ledger.Filter) (ledger.Page, error) {
	q, args, limit, err := f.SelectSQL(selectColumns, "$")
	if err != nil {
		return ledger.Page{}, err
	}
	recs, err := l.queryRecords(ctx, q, args...)
	if err != nil {
		return ledger.Page{}, err
	}
	return ledger.PageOf(recs, limit), nil
}

// Verify streams every row in seq order through ledger.VerifyChain, in one
// statement (one snapshot), without holding the table in memory.
func (l *Ledger) Verify(ctx context.Context) (ledger.VerifyResult, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	rows, err := l.pool.Query(ctx, "SELECT "+selectColumns+" FROM workload_runs ORDER BY seq")
	if err != nil {
		return ledger.VerifyResult{}, fmt.Errorf("ledger/postgres: verify: %w", err)
	}
	res, err := ledger.VerifyChain(recordSeq(rows))
	if !res.OK {
		// Stop the server sending rows nobody will read; the
		// connection is discarded.
		cancel()
	}
	rows.Close()
	if err != nil {
		return ledger.VerifyResult{}, fmt.Errorf("ledger/postgres: verify: %w", err)
	}
	return res, nil
}

// recordSeq iterates over rows; it yields a final error if reading fails.
func recordSeq(rows pgx.Rows) iter.Seq2[ledger.Record, error] {
	return func(yield func(ledger.Record, error) bool) {
		for rows.Next() {
			r, err := scanRecord(rows)
			if !yield(r, err) || err != nil {
				return
			}
		}
		if err := rows.Err(); err != nil {
			yield(ledger.Record{}, err)
		}
	}
}

// unfinishedSQL selects the intents that have no result (the run_id index
// answers the NOT EXISTS); callers add a range of seq and the order.
var unfinishedSQL = `SELECT ` + selectColumns + ` FROM workload_runs i
		WHERE kind = 'intent'
		  AND NOT EXISTS (SELECT 1 FROM workload_runs r WHERE r.run_id = i.run_id AND r.kind = 'result')`

// Unfinished returns the intents with no result for their run, oldest
// first. It reads every intent of the ledger; recovery uses
// UnfinishedAfter.
func (l *Ledger) Unfinished(ctx context.Context) ([]ledger.Record, error) {
	return l.queryRecords(ctx, unfinishedSQL+" ORDER BY seq")
}

// UnfinishedAfter implements ledger.UnfinishedScanner: the intents in
// (after, head] without a result, read through the primary key's range.
// The head is read first, by its own statement: appends commit in seq
// order under the append lock, so the range's statement sees every row up
// to it.
func (l *Ledger) UnfinishedAfter(ctx context.Context, after int64) ([]ledger.Record, int64, error) {
	var head int64
	if err := l.pool.QueryRow(ctx, "SELECT coalesce(max(seq), 0) FROM workload_runs").Scan(&head); err != nil {
		return nil, 0, fmt.Errorf("ledger/postgres: unfinished: %w", err)
	}
	if head <= after {
		return nil, head, nil
	}
	open, err := l.queryRecords(ctx, unfinishedSQL+" AND seq > $1 AND seq <= $2 ORDER BY seq", after, head)
	return open, head, err
}

// Halts returns the scopes ("*" or a target) whose latest successful halt
// result turned the switch on.
func (l *Ledger) Halts(ctx context.Context) (map[string]bool, error) {
	rows, err := l.pool.Query(ctx, haltsSQL)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: halts: %w", err)
	}
	on, err := scanHalts(rows)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: halts: %w", err)
	}
	return on, nil
}

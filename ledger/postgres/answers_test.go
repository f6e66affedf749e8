package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
)

// TestHeldAnswersDoNotWaitForTheAppendLock: the answer of a committed
// append is held only while the next transaction's first round trip is
// quick (answers.go): when that round trip waits for the append lock,
// which another process holds, the caller still has its answer at once
// (answerHold), not when the other process lets go.
func TestHeldAnswersDoNotWaitForTheAppendLock(t *testing.T) {
	l, dsn := openLedger(t)
	ctx := context.Background()
	b, c := sqlConn(t, dsn), sqlConn(t, dsn)
	holdLock := func(conn *pgx.Conn) (pgx.Tx, error) {
		tx, err := conn.Begin(ctx)
		if err != nil {
			return nil, err
		}
		if _, err := tx.Exec(ctx, "SELECT pg_advisory_xact_lock($1, $2)", lockClass, lockAppend); err != nil {
			return nil, err
		}
		return tx, nil
	}
	waiting := func(n int) {
		t.Helper()
		deadline := time.Now().Add(30 * time.Second)
		for {
			var w int
			if err := b.QueryRow(ctx, "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objsubid = 2 AND NOT granted").Scan(&w); err != nil {
				t.Fatal(err)
			}
			if w >= n {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%d sessions wait for the append lock, want %d", w, n)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
	// Another process holds the append lock; the first append's
	// transaction queues behind it, and a second append behind that.
	txB, err := holdLock(b)
	if err != nil {
		t.Fatal(err)
	}
	first := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, rec("first", 1))
		first <- err
	}()
	waiting(1)
	second := make(chan error, 1)
	go func() {
		_, err := l.Append(ctx, rec("second", 2))
		second <- err
	}()
	for len(l.reqs) == 0 {
		time.Sleep(time.Millisecond)
	}
	// A third process queues for the lock after the first transaction:
	// it has the lock once that commits, so the second transaction's
	// first round trip waits for it.
	type held struct {
		tx  pgx.Tx
		err error
	}
	gotC := make(chan held, 1)
	go func() {
		tx, err := holdLock(c)
		gotC <- held{tx, err}
	}()
	waiting(2)
	if err := txB.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	hc := <-gotC
	if hc.err != nil {
		t.Fatal(hc.err)
	}
	txC := hc.tx
	defer txC.Rollback(ctx)
	select {
	case err := <-first:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("the first append's answer waits for the next transaction, which waits for another process's append lock")
	}
	select {
	case err := <-second:
		t.Fatalf("the second append returned (%v) while another process holds the append lock", err)
	default:
	}
	if err := txC.Commit(ctx); err != nil {
		t.Fatal(err)
	}
	if err := <-second; err != nil {
		t.Fatal(err)
	}
	page, err := l.Query(ctx, ledger.Filter{})
	if err != nil || len(page.Records) != 2 {
		t.Fatalf("records: %d (%v), want 2", len(page.Records), err)
	}
}

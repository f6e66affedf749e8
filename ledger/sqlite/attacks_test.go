package sqlite_test

import (
	"context"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// attacker works on the file the way `sqlite3 ledger.db` would: it drops
// the append-only triggers, changes rows, and puts the triggers back.
type attacker struct{ l *sqlite.Ledger }

const restoreTriggers = `
CREATE TRIGGER IF NOT EXISTS workload_runs_no_update BEFORE UPDATE ON workload_runs
BEGIN SELECT RAISE(ABORT, 'workload_runs is append-only'); END;
CREATE TRIGGER IF NOT EXISTS workload_runs_no_delete BEFORE DELETE ON workload_runs
BEGIN SELECT RAISE(ABORT, 'workload_runs is append-only'); END;`

func (a attacker) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	db := sqlite.DB(a.l)
	for _, s := range []string{`DROP TRIGGER IF EXISTS workload_runs_no_update`, `DROP TRIGGER IF EXISTS workload_runs_no_delete`} {
		if _, err := db.Exec(s); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := db.Exec(q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if _, err := db.Exec(restoreTriggers); err != nil {
		t.Fatal(err)
	}
}

func (a attacker) DeleteFrom(t *testing.T, from int64) {
	a.exec(t, `DELETE FROM workload_runs WHERE seq >= ?`, from)
}

func (a attacker) DeleteSeq(t *testing.T, seq int64) {
	a.exec(t, `DELETE FROM workload_runs WHERE seq = ?`, seq)
}

func (a attacker) Rewrite(t *testing.T, recs []ledger.Record) {
	for _, r := range recs {
		a.exec(t, `UPDATE workload_runs SET run_id=?, kind=?, user_id=?, action=?, target=?, service=?, provider=?,
			request_digest=?, idempotency_key=?, outcome=?, error_code=?, message=?, detail=?, duration_ns=?, time_ns=?,
			prev_hash=?, hash=? WHERE seq=?`, r.RunID, string(r.Kind), r.UserID, r.Action, r.Target, r.Service, r.Provider,
			r.RequestDigest, r.IdempotencyKey, string(r.Outcome), r.ErrorCode, r.Message, r.Detail, int64(r.Duration),
			r.Time.UnixNano(), r.PrevHash, r.Hash, r.Seq)
	}
}

// FailAppends makes inserts fail with SQLite's own disk-full message
// (TestDiskFull fills a real file system).
func (a attacker) FailAppends(t *testing.T, on bool) {
	q := `DROP TRIGGER IF EXISTS test_disk_full`
	if on {
		q = `CREATE TRIGGER test_disk_full BEFORE INSERT ON workload_runs BEGIN SELECT RAISE(ABORT, 'database or disk is full'); END`
	}
	if _, err := sqlite.DB(a.l).Exec(q); err != nil {
		t.Fatal(err)
	}
}

func TestAttacks(t *testing.T) {
	ledgertest.RunAttacks(t, open,
		func(t *testing.T, l ledger.Ledger) ledger.Ledger {
			second, err := sqlite.Open(context.Background(), l.(*sqlite.Ledger).Path())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { second.Close() })
			return second
		},
		func(t *testing.T, l ledger.Ledger) ledgertest.Attacker { return attacker{l.(*sqlite.Ledger)} })
}

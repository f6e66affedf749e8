package postgres

import (
	"context"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
)

// attacker uses the table owner's own powers, as the review did with the
// controller's role: ALTER TABLE … DISABLE TRIGGER USER, change rows, ENABLE
// TRIGGER USER.
type attacker struct {
	c *pgx.Conn
}

func (a attacker) exec(t *testing.T, q string, args ...any) {
	t.Helper()
	ctx := context.Background()
	if _, err := a.c.Exec(ctx, "ALTER TABLE workload_runs DISABLE TRIGGER USER"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.c.Exec(ctx, q, args...); err != nil {
		t.Fatalf("%s: %v", q, err)
	}
	if _, err := a.c.Exec(ctx, "ALTER TABLE workload_runs ENABLE TRIGGER USER"); err != nil {
		t.Fatal(err)
	}
}

func (a attacker) DeleteFrom(t *testing.T, from int64) {
	a.exec(t, "DELETE FROM workload_runs WHERE seq >= $1", from)
}

func (a attacker) DeleteSeq(t *testing.T, seq int64) {
	a.exec(t, "DELETE FROM workload_runs WHERE seq = $1", seq)
}

func (a attacker) Rewrite(t *testing.T, recs []ledger.Record) {
	for _, r := range recs {
		v := rowValues(&r)
		a.exec(t, `UPDATE workload_runs SET run_id=$2, kind=$3, user_id=$4, action=$5, target=$6, service=$7, provider=$8,
			request_digest=$9, idempotency_key=$10, outcome=$11, error_code=$12, message=$13, detail=$14, duration_ns=$15,
			time_ns=$16, prev_hash=$17, hash=$18, auth=$19, user_name=$20, version=$21, policy_digest=$22 WHERE seq=$1`, v...)
	}
}

// FailAppends makes inserts fail with PostgreSQL's disk_full SQLSTATE.
func (a attacker) FailAppends(t *testing.T, on bool) {
	ctx := context.Background()
	q := "DROP TRIGGER IF EXISTS test_disk_full ON workload_runs"
	if on {
		if _, err := a.c.Exec(ctx, `CREATE OR REPLACE FUNCTION test_disk_full() RETURNS trigger LANGUAGE plpgsql AS $$
			BEGIN RAISE EXCEPTION 'could not extend file: No space left on device' USING ERRCODE = 'disk_full'; END $$`); err != nil {
			t.Fatal(err)
		}
		q = "CREATE TRIGGER test_disk_full BEFORE INSERT ON workload_runs FOR EACH ROW EXECUTE FUNCTION test_disk_full()"
	}
	if _, err := a.c.Exec(ctx, q); err != nil {
		t.Fatal(err)
	}
}

func TestAttacks(t *testing.T) {
	var dsnOf sync.Map // *Ledger → dsn
	ledgertest.RunAttacks(t,
		func(t *testing.T) ledger.Ledger {
			l, dsn := openLedger(t)
			dsnOf.Store(l, dsn)
			return l
		},
		func(t *testing.T, l ledger.Ledger) ledger.Ledger {
			dsn, _ := dsnOf.Load(l.(*Ledger))
			return openDSN(t, dsn.(string))
		},
		func(t *testing.T, l ledger.Ledger) ledgertest.Attacker {
			dsn, _ := dsnOf.Load(l.(*Ledger))
			return attacker{c: sqlConn(t, dsn.(string))}
		})
}

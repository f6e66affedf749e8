package postgres

import (
	"context"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
)

// TestMigrateKeepsVersion1Rows: a database at schema 0001 (no auth,
// user_name or version columns) with rows sealed as version 1 is migrated
// on Open; the old rows verify as version 1 and new rows are version 2 on
// the same chain.
func TestMigrateKeepsVersion1Rows(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	c := sqlConn(t, dsn)
	ms, err := migrations()
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, ms[0].sql); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now()); INSERT INTO schema_migrations (version, name) VALUES (1, '0001_workload_runs.sql')`); err != nil {
		t.Fatal(err)
	}
	var prev *ledger.Record
	for i, user := range []string{"admin", "carol"} {
		r := ledger.Seal(ledger.Record{RunID: "old" + user, Kind: ledger.KindIntent, UserID: user, Action: "scale",
			Target: "local", Service: "web", Provider: "docker", RequestDigest: "d", Detail: "{}",
			Time: time.Unix(int64(i), 0), Version: 1}, prev)
		prev = &r
		if _, err := c.Exec(ctx, `INSERT INTO workload_runs (seq, run_id, kind, user_id, action, target, service, provider,
			request_digest, idempotency_key, outcome, error_code, message, detail, duration_ns, time_ns, prev_hash, hash)
			VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17, $18)`, rowValues(&r)[:18]...); err != nil {
			t.Fatal(err)
		}
	}
	l := openDSN(t, dsn)
	if res := mustVerify(t, l); !res.OK || res.Count != 2 {
		t.Fatalf("after migration: Verify = %+v", res)
	}
	n := mustAppend(t, l, ledger.Record{RunID: "new", Kind: ledger.KindIntent, UserID: "oidc:https://idp.example#carol",
		Auth: "oidc:https://idp.example", UserName: "carol@example.com", Action: "scale"})
	if n.Version != ledger.CurrentVersion {
		t.Errorf("new row version %d, want %d", n.Version, ledger.CurrentVersion)
	}
	if res := mustVerify(t, l); !res.OK || res.Count != 3 {
		t.Fatalf("after a version-2 append: Verify = %+v", res)
	}
	recs := all(t, l, ledger.Filter{})
	for i, want := range []int{1, 1, ledger.CurrentVersion} {
		if recs[i].Version != want {
			t.Errorf("row %d version %d, want %d", i+1, recs[i].Version, want)
		}
	}
	for user, want := range map[string]string{"carol": "oldcarol", "carol@example.com": "new", "oidc:https://idp.example#carol": "new"} {
		got := all(t, l, ledger.Filter{UserID: user})
		if len(got) != 1 || got[0].RunID != want {
			t.Errorf("Query(user %q) = %+v; want the %s row", user, got, want)
		}
	}
}

// TestMigrate0005: a database an older controller wrote (schema 0004,
// many rows) is migrated on Open, gains the indexes of 0005, 0006 and
// 0007, and answers as before.
func TestMigrate0005(t *testing.T) {
	dsn := newDB(t)
	recs := ledgertest.Synthetic(3000, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	c := loadAt0004(t, dsn, recs)
	l := openDSN(t, dsn)
	var names []string
	rows, err := c.Query(context.Background(), `SELECT indexname FROM pg_indexes WHERE tablename = 'workload_runs'
		AND indexname IN ('workload_runs_unusual_kind', 'workload_runs_unusual_outcome', 'workload_runs_time', 'workload_runs_action_seq', 'workload_runs_target_seq') ORDER BY indexname`)
	if err == nil {
		names, err = pgx.CollectRows(rows, pgx.RowTo[string])
	}
	if err != nil || len(names) != 5 {
		t.Fatalf("indexes of 0005-0007: %v, %v", names, err)
	}
	ledgertest.CheckUpgraded(t, l, recs)
}

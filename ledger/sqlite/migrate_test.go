package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// TestMigrateKeepsVersion1Rows: a ledger written by the version-1 schema
// (no auth, user_name or version columns) opens, its rows verify as
// version 1, and new rows are sealed as version 2 on the same chain.
func TestMigrateKeepsVersion1Rows(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	schema, err := os.ReadFile("migrations/0001_workload_runs.sql")
	if err != nil {
		t.Fatal(err)
	}
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{string(schema),
		`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_ns INTEGER NOT NULL)`,
		`INSERT INTO schema_migrations VALUES ('0001_workload_runs', 1)`} {
		if _, err := db.Exec(q); err != nil {
			t.Fatal(err)
		}
	}
	var prev *ledger.Record
	for i, user := range []string{"admin", "carol"} {
		r := ledger.Seal(ledger.Record{RunID: "old" + user, Kind: ledger.KindIntent, UserID: user, Action: "scale",
			Target: "local", Service: "web", Provider: "docker", RequestDigest: "d", Detail: "{}",
			Time: time.Unix(int64(i), 0), Version: 1}, prev)
		prev = &r
		if _, err := db.Exec(`INSERT INTO workload_runs (seq, run_id, kind, user_id, action, target, service, provider,
			request_digest, idempotency_key, outcome, error_code, message, detail, duration_ns, time_ns, prev_hash, hash)
			VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`, r.Seq, r.RunID, string(r.Kind), r.UserID, r.Action,
			r.Target, r.Service, r.Provider, r.RequestDigest, r.IdempotencyKey, string(r.Outcome), r.ErrorCode, r.Message,
			r.Detail, int64(r.Duration), r.Time.UnixNano(), r.PrevHash, r.Hash); err != nil {
			t.Fatal(err)
		}
	}
	db.Close()

	l, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	if res, err := l.Verify(ctx); err != nil || !res.OK || res.Count != 2 {
		t.Fatalf("after migration: Verify = %+v, %v", res, err)
	}
	n, err := l.Append(ctx, ledger.Record{RunID: "new", Kind: ledger.KindIntent, UserID: "oidc:https://idp.example#carol",
		Auth: "oidc:https://idp.example", UserName: "carol@example.com", Action: "scale"})
	if err != nil {
		t.Fatal(err)
	}
	if n.Version != ledger.CurrentVersion {
		t.Errorf("new row version %d, want %d", n.Version, ledger.CurrentVersion)
	}
	if res, err := l.Verify(ctx); err != nil || !res.OK || res.Count != 3 {
		t.Fatalf("after a version-2 append: Verify = %+v, %v", res, err)
	}
	page, err := l.Query(ctx, ledger.Filter{})
	if err != nil {
		t.Fatal(err)
	}
	for i, want := range []int{1, 1, ledger.CurrentVersion} {
		if page.Records[i].Version != want {
			t.Errorf("row %d version %d, want %d", i+1, page.Records[i].Version, want)
		}
	}
	// "carol" finds the old local row; the display name finds the new one.
	for user, want := range map[string]string{"carol": "oldcarol", "carol@example.com": "new", "oidc:https://idp.example#carol": "new"} {
		p, err := l.Query(ctx, ledger.Filter{UserID: user})
		if err != nil || len(p.Records) != 1 || p.Records[0].RunID != want {
			t.Errorf("Query(user %q) = %+v, %v; want the %s row", user, p.Records, err, want)
		}
	}
}

// TestMigrate0005: a ledger an older controller wrote (schema 0004, many
// rows) opens, gains the indexes of 0005, 0006 and 0007 (and 0007's
// figures for the planner), and answers as before.
func TestMigrate0005(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ledger.db")
	db, err := sql.Open("sqlite", "file:"+path)
	if err != nil {
		t.Fatal(err)
	}
	writeSchema0004(t, db)
	recs := ledgertest.Synthetic(3000, time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	insertRows(t, db, recs)
	db.Close()
	l, err := sqlite.Open(ctx, path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	var n int
	if err := sqlite.DB(l).QueryRow(`SELECT count(*) FROM sqlite_master WHERE type = 'index' AND name IN ('workload_runs_unusual_kind', 'workload_runs_unusual_outcome', 'workload_runs_action_seq', 'workload_runs_target_seq')`).Scan(&n); err != nil || n != 4 {
		t.Fatalf("indexes of 0005, 0006 and 0007: %d of 4, %v", n, err)
	}
	var stat string
	if err := sqlite.DB(l).QueryRow(`SELECT stat FROM sqlite_stat1 WHERE idx = 'workload_runs_target_seq'`).Scan(&stat); err != nil || stat != "1000000 100000 1" {
		t.Fatalf("sqlite_stat1 of workload_runs_target_seq: %q, %v", stat, err)
	}
	ledgertest.CheckUpgraded(t, l, recs)
}

package sqlite_test

import (
	"context"
	"database/sql"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// benchColumns is the ledger's column list (sqlite.go).
const benchColumns = `seq, run_id, kind, user_id, action, target, service, provider, request_digest, idempotency_key,
	outcome, error_code, message, detail, duration_ns, time_ns, prev_hash, hash, auth, user_name, version, policy_digest`

// haltsBefore is the halt query of schema 0004 (sqlite.go haltsSQL).
const haltsBefore = `SELECT target, detail FROM workload_runs WHERE seq IN (
		SELECT MAX(seq) FROM workload_runs WHERE action = 'halt' AND kind = 'result' AND outcome = 'ok' GROUP BY target)`

// writeSchema0004 creates the schema as migrations 0001-0004 left it, as
// an older controller did, in a database opened without the ledger.
func writeSchema0004(tb testing.TB, db *sql.DB) {
	tb.Helper()
	for _, v := range []string{"0001_workload_runs", "0002_principal", "0003_policy_digest", "0004_revisions"} {
		body, err := os.ReadFile(filepath.Join("migrations", v+".sql"))
		if err != nil {
			tb.Fatal(err)
		}
		if _, err := db.Exec(string(body)); err != nil {
			tb.Fatalf("%s: %v", v, err)
		}
	}
	if _, err := db.Exec(`CREATE TABLE schema_migrations (version TEXT PRIMARY KEY, applied_ns INTEGER NOT NULL);
		INSERT INTO schema_migrations VALUES ('0001_workload_runs', 1), ('0002_principal', 1), ('0003_policy_digest', 1), ('0004_revisions', 1)`); err != nil {
		tb.Fatal(err)
	}
}

// insertRows writes recs in one transaction, as an older controller's
// appends left them.
func insertRows(tb testing.TB, db *sql.DB, recs []ledger.Record) {
	tb.Helper()
	tx, err := db.Begin()
	if err != nil {
		tb.Fatal(err)
	}
	st, err := tx.Prepare(`INSERT INTO workload_runs (` + benchColumns + `) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`)
	if err != nil {
		tb.Fatal(err)
	}
	for _, r := range recs {
		if _, err := st.Exec(r.Seq, r.RunID, string(r.Kind), r.UserID, r.Action, r.Target, r.Service, r.Provider, r.RequestDigest,
			r.IdempotencyKey, string(r.Outcome), r.ErrorCode, r.Message, r.Detail, int64(r.Duration), r.Time.UnixNano(),
			r.PrevHash, r.Hash, r.Auth, r.UserName, r.Version, r.PolicyDigest); err != nil {
			tb.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		tb.Fatal(err)
	}
}

// plan is SQLite's EXPLAIN QUERY PLAN of q, one step a line.
func plan(tb testing.TB, db *sql.DB, q string, args ...any) string {
	tb.Helper()
	rows, err := db.Query("EXPLAIN QUERY PLAN "+q, args...)
	if err != nil {
		tb.Fatalf("explain %s: %v", q, err)
	}
	defer rows.Close()
	var lines []string
	for rows.Next() {
		var id, parent, notused int
		var detail string
		if err := rows.Scan(&id, &parent, &notused, &detail); err != nil {
			tb.Fatal(err)
		}
		lines = append(lines, detail)
	}
	return strings.Join(lines, "; ")
}

// readDB is a database ledgertest.BenchmarkReads reads through.
type readDB struct{ db *sql.DB }

func (r readDB) ReadAll(ctx context.Context, q string, args ...any) error {
	rows, err := r.db.QueryContext(ctx, q, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
	}
	return rows.Err()
}

func (r readDB) Plan(tb testing.TB, q string, args ...any) string { return plan(tb, r.db, q, args...) }

// BenchmarkLedgerReads times the reads a controller does routinely on a
// ledger of ~200k rows (ledgertest.Synthetic), the old way — the statement
// as it was, on a copy of the ledger at schema 0004 — and the new way — the
// ledger's own read after it migrated the copy — alternately in the same
// run, and reports both and their ratio (new/old; below 1 is faster). With
// -v it logs the plans of both statements (EXPLAIN QUERY PLAN).
//
//	go test -run '^$' -bench LedgerReads -benchtime 20x -v ./ledger/sqlite
func BenchmarkLedgerReads(b *testing.B) {
	ctx := context.Background()
	const runs = 100_000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := ledgertest.Synthetic(runs, base)
	head := recs[len(recs)-1].Seq
	dir := b.TempDir()
	oldPath, newPath := filepath.Join(dir, "old.db"), filepath.Join(dir, "new.db")
	// Both files in the ledger's journal mode, the WAL checkpointed once
	// loaded: the two differ only in schema and statements.
	old, err := sql.Open("sqlite", "file:"+oldPath+"?_pragma=journal_mode(WAL)")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { old.Close() })
	writeSchema0004(b, old)
	insertRows(b, old, recs)
	if _, err := old.Exec("VACUUM INTO ?", newPath); err != nil { // a consistent copy
		b.Fatal(err)
	}
	start := time.Now()
	l, err := sqlite.Open(ctx, newPath) // migrates the copy
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	for _, db := range []*sql.DB{old, sqlite.DB(l)} {
		if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d rows; opening (and migrating) the copy took %s", head, time.Since(start).Round(time.Millisecond))
	ledgertest.BenchmarkReads(b, ledgertest.ReadCases(runs, head, base, haltsBefore), ledgertest.ReadBench{
		Ledger: l, Columns: benchColumns, Prefix: "?", Old: readDB{old}, Now: readDB{sqlite.DB(l)}})
}

// BenchmarkTargetReads times the runs listings of a principal with roles
// on some targets only (ledgertest.ReadCases "runs-targets-*") on a ledger
// of ~400k rows, before migration 0007 — the OR of targets, on a copy of
// the ledger without the index on (target, seq) — and after — the union
// on the ledger's database — alternately in the same run, both read as
// statements (see BenchmarkLedgerReads).
//
//	go test -run '^$' -bench TargetReads -benchtime 20x -v ./ledger/sqlite
func BenchmarkTargetReads(b *testing.B) {
	ctx := context.Background()
	const runs = 200_000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := ledgertest.Synthetic(runs, base)
	head := recs[len(recs)-1].Seq
	dir := b.TempDir()
	l, err := sqlite.Open(ctx, filepath.Join(dir, "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { l.Close() })
	insertRows(b, sqlite.DB(l), recs)
	oldPath := filepath.Join(dir, "old.db")
	if _, err := sqlite.DB(l).Exec("VACUUM INTO ?", oldPath); err != nil {
		b.Fatal(err)
	}
	old, err := sql.Open("sqlite", "file:"+oldPath+"?_pragma=journal_mode(WAL)")
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { old.Close() })
	// Schema 0006: the migration undone.
	if _, err := old.Exec(`DROP INDEX workload_runs_target_seq; DELETE FROM sqlite_stat1; DELETE FROM schema_migrations WHERE version = '0007_target_seq'`); err != nil {
		b.Fatal(err)
	}
	for _, db := range []*sql.DB{old, sqlite.DB(l)} {
		if _, err := db.Exec("PRAGMA wal_checkpoint(TRUNCATE)"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d rows", head)
	now := readDB{sqlite.DB(l)}
	ledgertest.BenchmarkReads(b, ledgertest.TargetCases(ledgertest.ReadCases(runs, head, base, haltsBefore), now, benchColumns, "?"),
		ledgertest.ReadBench{Ledger: l, Columns: benchColumns, Prefix: "?", Old: readDB{old}, Now: now})
}

// TestRoutineReadsUseAnIndex: the plan of every read of a controller's hot
// and periodic paths (ledgertest.ReadCases) reaches its rows through an
// index, never by reading the table from one end (a plan step "SCAN t"
// without "USING"), and does not sort every matching row to return one
// page. The listings that still scan are named with the reason: their
// LIMIT stops the scan after a page of common rows. Where two indexes
// could serve a read, the plan is pinned to the one that reads less.
func TestRoutineReadsUseAnIndex(t *testing.T) {
	ctx := context.Background()
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	const runs = 1500 // more rows than the reads skip (2000)
	recs := ledgertest.Synthetic(runs, base)
	l := open(t).(*sqlite.Ledger)
	insertRows(t, sqlite.DB(l), recs)
	scans := map[string]string{ // case → why a scan is fine
		"runs-dashboard-results": "the newest results: a page of them ends the scan",
		"runs-user-name":         "the OR of two indexed columns sorts every row of the user; the scan stops after a page",
		"runs-user-id":           "as runs-user-name",
		"runs-since":             "SQLite without statistics prefers the seq order to the time index",
		"runs-until":             "as runs-since",
	}
	// case → the indexes its plan walks, in order (the runs-targets-*
	// branches, then the global halt's), where another index would read
	// more: (target, seq) of 0007 must not take a service's reads (the
	// append guard's revision head among them) nor a target's rare rows.
	uses := map[string][]string{
		"history-revision-head": {"workload_runs_service"},
		"history-page":          {"workload_runs_service"},
		"history-scan-one-page": {"workload_runs_service"},
		"recovery-later-run":    {"workload_runs_service"},
		"runs-target":           {"workload_runs_target_seq"},
		"runs-target-rejected":  {"workload_runs_unusual_kind"},
		"runs-targets-large":    {"workload_runs_target_seq", "workload_runs_action_seq"},
		"runs-targets-empty":    {"workload_runs_target_seq", "workload_runs_action_seq"},
		"runs-targets-two":      {"workload_runs_target_seq", "workload_runs_target_seq", "workload_runs_action_seq"},
		"runs-targets-rejected": {"workload_runs_unusual_kind", "workload_runs_action_seq"},
		"runs-targets-results":  {"workload_runs_target_seq", "workload_runs_action_seq"},
	}
	for _, c := range ledgertest.ReadCases(runs, recs[len(recs)-1].Seq, base, haltsBefore) {
		t.Run(c.Name, func(t *testing.T) {
			q, args := c.Now(benchColumns, "?")
			p := plan(t, sqlite.DB(l), q, args...)
			full := false
			for _, step := range strings.Split(p, "; ") {
				if strings.HasPrefix(step, "SCAN ") && !strings.Contains(step, " USING ") && !strings.Contains(step, "(subquery") {
					full = true
				}
			}
			if _, ok := scans[c.Name]; full != ok {
				t.Errorf("plan %q: full scan %v, want %v", p, full, ok)
			}
			// A sort of every matching row for one page costs what
			// matches, not what the page returns.
			if strings.Contains(p, "TEMP B-TREE FOR ORDER BY") {
				t.Errorf("plan %q sorts every matching row for one page", p)
			}
			if want, ok := uses[c.Name]; ok {
				var got []string
				for _, step := range strings.Split(p, "; ") {
					if _, idx, ok := strings.Cut(step, " USING INDEX "); ok {
						got = append(got, strings.Fields(idx)[0])
					}
				}
				if !slices.Equal(got, want) {
					t.Errorf("plan %q walks %v, want %v", p, got, want)
				}
			}
			if err := c.New(ctx, l); err != nil {
				t.Fatal(err)
			}
		})
	}
}

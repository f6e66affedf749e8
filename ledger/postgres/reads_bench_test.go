package postgres

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
)

// haltsBefore is the halt query of schema 0004 (query.go Halts).
const haltsBefore = `SELECT DISTINCT ON (target) target, seq, detail FROM workload_runs
		WHERE action = 'halt' AND kind = 'result' AND outcome = 'ok'
		ORDER BY target, seq DESC`

// loadAt0004 fills a new database with the schema as migrations 0001-0004
// left it and recs, in bulk (COPY, the chain trigger off while loading),
// then ANALYZE (autovacuum's statistics, which a long-lived ledger has).
func loadAt0004(tb testing.TB, dsn string, recs []ledger.Record) *pgx.Conn {
	tb.Helper()
	ctx := context.Background()
	c := sqlConn(tb, dsn)
	ms, err := migrations()
	if err != nil {
		tb.Fatal(err)
	}
	for _, m := range ms[:4] {
		if _, err := c.Exec(ctx, m.sql); err != nil {
			tb.Fatalf("%s: %v", m.name, err)
		}
	}
	if _, err := c.Exec(ctx, `CREATE TABLE schema_migrations (version integer PRIMARY KEY, name text NOT NULL,
		applied_at timestamptz NOT NULL DEFAULT now());
		INSERT INTO schema_migrations (version, name) VALUES (1, '0001'), (2, '0002'), (3, '0003'), (4, '0004');
		ALTER TABLE workload_runs DISABLE TRIGGER workload_runs_chain`); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.CopyFrom(ctx, pgx.Identifier{"workload_runs"}, columns, pgx.CopyFromSlice(len(recs), func(i int) ([]any, error) {
		return rowValues(&recs[i]), nil
	})); err != nil {
		tb.Fatal(err)
	}
	if _, err := c.Exec(ctx, `ALTER TABLE workload_runs ENABLE TRIGGER workload_runs_chain; ANALYZE workload_runs`); err != nil {
		tb.Fatal(err)
	}
	return c
}

// explain is PostgreSQL's EXPLAIN of q, one plan node a line.
func explain(tb testing.TB, c *pgx.Conn, q string, args ...any) string {
	tb.Helper()
	rows, err := c.Query(context.Background(), "EXPLAIN "+q, args...)
	if err != nil {
		tb.Fatalf("explain %s: %v", q, err)
	}
	lines, err := pgx.CollectRows(rows, pgx.RowTo[string])
	if err != nil {
		tb.Fatal(err)
	}
	return strings.Join(lines, "\n    ")
}

// readConn is a connection ledgertest.BenchmarkReads reads through.
type readConn struct{ c *pgx.Conn }

func (r readConn) ReadAll(ctx context.Context, q string, args ...any) error {
	rows, err := r.c.Query(ctx, q, args...)
	if err != nil {
		return err
	}
	for rows.Next() {
	}
	return rows.Err()
}

func (r readConn) Plan(tb testing.TB, q string, args ...any) string {
	return "\n    " + explain(tb, r.c, q, args...)
}

// BenchmarkLedgerReads times the reads a controller does routinely on a
// ledger of ~200k rows (ledgertest.Synthetic), the old way — the statement
// as it was, on a database at schema 0004 — and the new way — the ledger's
// own read on a database with the same rows that the ledger migrated —
// alternately in the same run, and reports both and their ratio (new/old;
// below 1 is faster). With -v it logs the EXPLAIN of both statements.
//
//	CI=true go test -run '^$' -bench LedgerReads -benchtime 20x -v ./ledger/postgres
func BenchmarkLedgerReads(b *testing.B) {
	const runs = 100_000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := ledgertest.Synthetic(runs, base)
	head := recs[len(recs)-1].Seq
	old := loadAt0004(b, newDB(b), recs)
	dsn := newDB(b)
	loadAt0004(b, dsn, recs)
	start := time.Now()
	l := openDSN(b, dsn) // migrates
	b.Logf("%d rows; opening (and migrating) the ledger took %s", head, time.Since(start).Round(time.Millisecond))
	ledgertest.BenchmarkReads(b, ledgertest.ReadCases(runs, head, base, haltsBefore), ledgertest.ReadBench{
		Ledger: l, Columns: selectColumns, Prefix: "$", Old: readConn{old}, Now: readConn{sqlConn(b, dsn)}})
}

// BenchmarkTargetReads times the runs listings of a principal with roles
// on some targets only (ledgertest.ReadCases "runs-targets-*") on a ledger
// of ~400k rows, before migration 0007 — a database at schema 0006 — and
// after — the ledger's database, migrated — alternately in the same run,
// both read as statements (the same OR of targets: the schema differs).
// With -v it logs the EXPLAIN of both.
//
//	CI=true go test -run '^$' -bench TargetReads -benchtime 20x -v ./ledger/postgres
func BenchmarkTargetReads(b *testing.B) {
	ctx := context.Background()
	const runs = 200_000
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := ledgertest.Synthetic(runs, base)
	head := recs[len(recs)-1].Seq
	old := loadAt0004(b, newDB(b), recs)
	ms, err := migrations()
	if err != nil {
		b.Fatal(err)
	}
	for _, m := range ms[4:6] { // 0005 and 0006
		if _, err := old.Exec(ctx, m.sql); err != nil {
			b.Fatalf("%s: %v", m.name, err)
		}
	}
	dsn := newDB(b)
	loadAt0004(b, dsn, recs)
	l := openDSN(b, dsn) // migrates
	now := sqlConn(b, dsn)
	for _, c := range []*pgx.Conn{old, now} {
		if _, err := c.Exec(ctx, "ANALYZE workload_runs"); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("%d rows", head)
	ledgertest.BenchmarkReads(b, ledgertest.TargetCases(ledgertest.ReadCases(runs, head, base, haltsBefore), readConn{now}, selectColumns, "$"),
		ledgertest.ReadBench{Ledger: l, Columns: selectColumns, Prefix: "$", Old: readConn{old}, Now: readConn{now}})
}

// TestTargetReadsUseAnIndex: on PostgreSQL the runs listings of a
// principal with roles on some targets only (ledgertest.ReadCases
// "runs-targets-*", one OR of targets) are planned as SQLite's
// TestRoutineReadsUseAnIndex pins them: a target with no rows through
// (target, seq) of migration 0007 (a BitmapOr with the global halt's
// target), a target's rejected rows through their partial index, and a
// large target's page in seq order; none reads the whole table or sorts
// every matching row.
func TestTargetReadsUseAnIndex(t *testing.T) {
	const runs = 20_000 // enough rows that PostgreSQL's plans are a large ledger's
	base := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	recs := ledgertest.Synthetic(runs, base)
	dsn := newDB(t)
	loadAt0004(t, dsn, recs)
	openDSN(t, dsn) // migrates
	c := sqlConn(t, dsn)
	if _, err := c.Exec(context.Background(), "ANALYZE workload_runs"); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{ // case → what its plan reads the rows with
		"runs-targets-large":    "Index Scan Backward using workload_runs_pkey",
		"runs-targets-empty":    "Bitmap Index Scan on workload_runs_target_seq",
		"runs-targets-two":      "Index Scan Backward using workload_runs_pkey",
		"runs-targets-rejected": "Index Scan Backward using workload_runs_unusual_kind",
		"runs-targets-results":  "Index Scan Backward using workload_runs_pkey",
	}
	n := 0
	for _, rc := range ledgertest.ReadCases(runs, recs[len(recs)-1].Seq, base, haltsBefore) {
		w, ok := want[rc.Name]
		if !ok {
			continue
		}
		n++
		t.Run(rc.Name, func(t *testing.T) {
			q, args := rc.Now(selectColumns, "$")
			p := explain(t, c, q, args...)
			if !strings.Contains(p, w) || strings.Contains(p, "Seq Scan") {
				t.Errorf("plan:\n    %s\nwant %q and no Seq Scan", p, w)
			}
			if strings.Contains(p, "Sort") && !strings.Contains(p, "Bitmap Index Scan on workload_runs_target_seq") {
				t.Errorf("plan:\n    %s\nsorts every matching row for one page", p)
			}
		})
	}
	if n != len(want) {
		t.Fatalf("%d of the %d runs-targets-* cases in ReadCases", n, len(want))
	}
}

package main

import (
	"context"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// The harness is a benchmark, not a test: these only check that its parts
// run and that it prints its table. No time is asserted.

func TestOverheadRuns(t *testing.T) {
	ctx := context.Background()
	led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	r, err := measureOverhead(ctx, led, nil, 2, 2, 3)
	if err != nil {
		t.Fatal(err)
	}
	if r.opsPerSec <= 0 || r.boundOps <= 0 || r.p99 < r.p50 || r.boundP99 < r.boundP50 {
		t.Errorf("measureOverhead = %+v", r)
	}
	res, err := led.Verify(ctx)
	if err != nil || !res.OK {
		t.Errorf("ledger after the rounds: %+v, %v", res, err)
	}
}

// TestOverheadHistory: the runtime records revisions on the ledger as it
// is, and none on the same ledger withoutHistory, whose other capabilities
// (the head guard) are kept.
func TestOverheadHistory(t *testing.T) {
	ctx := context.Background()
	for _, hist := range []bool{true, false} {
		led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
		if err != nil {
			t.Fatal(err)
		}
		defer led.Close()
		var l ledger.Ledger = led
		if !hist {
			l = withoutHistory(led)
			if _, ok := l.(ledger.Guarded); !ok {
				t.Error("withoutHistory dropped the head guard")
			}
		}
		if _, err := measureOverhead(ctx, l, nil, 2, 1, 2); err != nil {
			t.Fatal(err)
		}
		revs, err := led.Revisions(ctx, "local", "svc-0")
		if err != nil {
			t.Fatal(err)
		}
		if hist && len(revs) == 0 || !hist && len(revs) != 0 {
			t.Errorf("history %v: %d revisions of svc-0", hist, len(revs))
		}
	}
}

func TestPrintTable(t *testing.T) {
	var b strings.Builder
	printTable(&b, []row{{op: "status", alpha: "4.1 ms", peer: "docker inspect 40 ms", ratio: "0.10× docker"}})
	for _, want := range []string{"operation", "status", "docker inspect 40 ms", "0.10× docker", "—"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, b.String())
		}
	}
}

// TestPGStatCounts: -pgstat's counters add up each kind of round's
// statements on a cluster started with pg_stat_statements: the runtime's
// intents and results and the bound's rows are both inserts, counted once
// per row batch, and the report names them.
func TestPGStatCounts(t *testing.T) {
	pg := pgtest.LaunchT(t, pgStatSettings...)
	ctx := context.Background()
	dsn, err := pg.CreateDB(ctx, "bench_pgstat")
	if err != nil {
		t.Fatal(err)
	}
	led, err := postgres.Open(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	st, err := newPGStat(ctx, dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer st.close()
	if _, err := measureOverhead(ctx, led, st, 2, 2, 3); err != nil {
		t.Fatal(err)
	}
	if st.rounds[false] != 2 || st.rounds[true] != 2 {
		t.Errorf("rounds counted: %v, want 2 of each", st.rounds)
	}
	for _, bound := range []bool{false, true} {
		var inserts int64
		for q, s := range st.stmts[bound] {
			if strings.HasPrefix(q, "INSERT INTO workload_runs") {
				inserts += s.calls
			}
		}
		// 2 callers × 3 operations × 2 rows, in at most as many
		// transactions and at least one per round.
		if inserts < 2 || inserts > 2*2*3*2 {
			t.Errorf("bound=%v: %d row inserts counted", bound, inserts)
		}
	}
	var b strings.Builder
	st.print(&b, "test", 3)
	if !strings.Contains(b.String(), "runtime rounds (2)") || !strings.Contains(b.String(), "bound rounds (the ledger alone) (2)") {
		t.Errorf("report:\n%s", b.String())
	}
	t.Log(b.String())
}

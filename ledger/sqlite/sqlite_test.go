package sqlite_test

import (
	"context"
	"fmt"
	"path/filepath"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

func open(t *testing.T) ledger.Ledger {
	l, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	return l
}

func TestConformance(t *testing.T) {
	ledgertest.Run(t, open,
		ledgertest.WithReopen(func(t *testing.T, l ledger.Ledger) ledger.Ledger {
			second, err := ledger.Open(context.Background(), "sqlite:"+l.(*sqlite.Ledger).Path())
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { second.Close() })
			return second
		}),
		ledgertest.WithTamper(func(t *testing.T, l ledger.Ledger, seq int64, column string, value any) {
			db := sqlite.DB(l.(*sqlite.Ledger))
			if _, err := db.Exec(`DROP TRIGGER IF EXISTS workload_runs_no_update`); err != nil {
				t.Fatal(err)
			}
			if _, err := db.Exec(fmt.Sprintf(`UPDATE workload_runs SET %s = ? WHERE seq = ?`, column), value, seq); err != nil {
				t.Fatalf("tamper %s: %v", column, err)
			}
		}))
}

func TestAppendOnly(t *testing.T) {
	l := open(t).(*sqlite.Ledger)
	if _, err := l.Append(context.Background(), ledger.Record{RunID: "r", Kind: ledger.KindIntent}); err != nil {
		t.Fatal(err)
	}
	for _, q := range []string{`UPDATE workload_runs SET user_id = 'x'`, `DELETE FROM workload_runs`} {
		if _, err := sqlite.DB(l).Exec(q); err == nil {
			t.Errorf("%s: succeeded on an append-only table", q)
		}
	}
}

func TestReopenKeepsChain(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ledger.db")
	for i := range 3 {
		l, err := sqlite.Open(context.Background(), path)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := l.Append(context.Background(), ledger.Record{RunID: fmt.Sprint(i), Kind: ledger.KindIntent}); err != nil {
			t.Fatal(err)
		}
		res, err := l.Verify(context.Background())
		if err != nil || !res.OK || res.Count != int64(i+1) {
			t.Fatalf("open %d: %+v %v", i, res, err)
		}
		l.Close()
	}
}

func TestAppendAfterClose(t *testing.T) {
	l := open(t)
	l.Close()
	if _, err := l.Append(context.Background(), ledger.Record{RunID: "r"}); err == nil {
		t.Fatal("Append after Close succeeded")
	}
}

func TestBadURL(t *testing.T) {
	if _, err := ledger.Open(context.Background(), "sqlite:"); err == nil {
		t.Fatal("empty path accepted")
	}
	if _, err := ledger.Open(context.Background(), "mysql://x"); err == nil {
		t.Fatal("unknown scheme accepted")
	}
}

func BenchmarkAppend(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("callers=%d", callers), func(b *testing.B) {
			l, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ledger.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer l.Close()
			b.SetParallelism((callers + 1) / 2)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					if _, err := l.Append(context.Background(), ledger.Record{RunID: "bench", Kind: ledger.KindIntent}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "appends/s")
		})
	}
}

// plain hides every method but ledger.Ledger's, so ledger.UnfinishedAfter
// takes its fallback (Unfinished, filtered).
type plain struct{ ledger.Ledger }

// TestUnfinishedAfterFallback: a ledger without ledger.UnfinishedScanner
// gives the same answers through ledger.UnfinishedAfter.
func TestUnfinishedAfterFallback(t *testing.T) {
	if _, ok := ledger.Ledger(plain{}).(ledger.UnfinishedScanner); ok {
		t.Fatal("plain must not be an UnfinishedScanner")
	}
	ledgertest.RunUnfinishedAfter(t, func(t *testing.T) ledger.Ledger { return plain{open(t)} })
}

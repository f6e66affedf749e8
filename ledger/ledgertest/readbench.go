package ledgertest

import (
	"context"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// ReadDB is a database BenchmarkReads reads through the backend's own
// driver.
type ReadDB interface {
	// ReadAll runs q and reads every row it returns.
	ReadAll(ctx context.Context, q string, args ...any) error
	// Plan is the database's plan of q, for the log.
	Plan(tb testing.TB, q string, args ...any) string
}

// ReadBench is what BenchmarkReads needs of a backend.
type ReadBench struct {
	// Ledger is the backend's ledger, opened (so migrated) on a copy of a
	// Synthetic ledger.
	Ledger ledger.Ledger
	// Columns is the ledger's column list and Prefix its placeholder
	// prefix ("?" or "$"), for ReadCase.Old and ReadCase.Now.
	Columns, Prefix string
	// Old is a database with the same rows at schema 0004, which the old
	// statements run on; Now is the ledger's database, for the plans of the
	// new ones.
	Old, Now ReadDB
}

// BenchmarkReads runs each case as a sub-benchmark of b: the old way
// (ReadCase.Old on rb.Old) and the new way (ReadCase.New on rb.Ledger)
// alternately in the same loop, reporting both and their ratio (new/old;
// below 1 is faster). It logs the plans of both statements, which go test
// shows with -v.
func BenchmarkReads(b *testing.B, cases []ReadCase, rb ReadBench) {
	ctx := context.Background()
	for _, c := range cases {
		b.Run(c.Name, func(b *testing.B) {
			q, args := c.Old(rb.Columns, rb.Prefix)
			nq, nargs := c.Now(rb.Columns, rb.Prefix)
			b.Logf("plan before: %s\nplan after:  %s", rb.Old.Plan(b, q, args...), rb.Now.Plan(b, nq, nargs...))
			var oldT, newT time.Duration
			for b.Loop() {
				t0 := time.Now()
				if err := rb.Old.ReadAll(ctx, q, args...); err != nil {
					b.Fatal(err)
				}
				t1 := time.Now()
				if err := c.New(ctx, rb.Ledger); err != nil {
					b.Fatal(err)
				}
				oldT, newT = oldT+t1.Sub(t0), newT+time.Since(t1)
			}
			n := float64(b.N)
			b.ReportMetric(float64(oldT.Microseconds())/n, "old-µs/op")
			b.ReportMetric(float64(newT.Microseconds())/n, "new-µs/op")
			b.ReportMetric(float64(newT)/float64(oldT), "new/old")
		})
	}
}

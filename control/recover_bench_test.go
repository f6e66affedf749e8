package control_test

import (
	"context"
	"database/sql"
	"fmt"
	"log/slog"
	"path/filepath"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider/providertest"
)

// BenchmarkRecoveryPass times one periodic recovery pass (Recover) on a
// SQLite ledger of ~200k rows (ledgertest.Synthetic) to which 30 rows were
// appended since the last pass, by two runtimes on that ledger in the same
// run, alternately: one sees the ledger as it is (a pass reads the rows
// since the previous one), the other through a wrapper without
// ledger.UnfinishedScanner, so every pass reads every intent (the pass as
// it was). It reports both and their ratio (new/old).
//
//	go test -run '^$' -bench RecoveryPass -benchtime 20x ./control
func BenchmarkRecoveryPass(b *testing.B) {
	ctx := context.Background()
	path := filepath.Join(b.TempDir(), "ledger.db")
	l, err := sqlite.Open(ctx, path) // the schema
	if err != nil {
		b.Fatal(err)
	}
	l.Close()
	recs := ledgertest.Synthetic(100_000, time.Now().Add(-time.Hour))
	db, err := sql.Open("sqlite", "file:"+path+"?_pragma=journal_mode(WAL)")
	if err != nil {
		b.Fatal(err)
	}
	tx, err := db.Begin()
	if err != nil {
		b.Fatal(err)
	}
	for _, r := range recs {
		if _, err := tx.Exec(`INSERT INTO workload_runs (seq, run_id, kind, user_id, action, target, service, provider,
			request_digest, idempotency_key, outcome, error_code, message, detail, duration_ns, time_ns, prev_hash, hash,
			auth, user_name, version, policy_digest) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
			r.Seq, r.RunID, string(r.Kind), r.UserID, r.Action, r.Target, r.Service, r.Provider, r.RequestDigest,
			r.IdempotencyKey, string(r.Outcome), r.ErrorCode, r.Message, r.Detail, int64(r.Duration), r.Time.UnixNano(),
			r.PrevHash, r.Hash, r.Auth, r.UserName, r.Version, r.PolicyDigest); err != nil {
			b.Fatal(err)
		}
	}
	if err := tx.Commit(); err != nil {
		b.Fatal(err)
	}
	db.Close()
	led, err := sqlite.Open(ctx, path)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { led.Close() })
	newRT := func(l ledger.Ledger) *control.Runtime {
		rt, err := control.New(ctx, control.Options{Ledger: l, Targets: []control.Target{{Name: "local", Provider: providertest.NewMemory("local")}},
			Credentials: credentials.FromMap(nil), Logger: slog.New(slog.DiscardHandler), RecoverSettle: time.Millisecond})
		if err != nil {
			b.Fatal(err)
		}
		b.Cleanup(rt.Close)
		return rt
	}
	now := newRT(led)                          // its pass at start closed the Synthetic open runs
	old := newRT(struct{ ledger.Ledger }{led}) // no UnfinishedScanner: Unfinished every pass
	var oldT, newT time.Duration
	i := 0
	for b.Loop() {
		b.StopTimer()
		for range 15 { // another replica's runs since the last pass
			i++
			for _, kind := range []ledger.Kind{ledger.KindIntent, ledger.KindResult} {
				r := ledger.Record{RunID: fmt.Sprintf("bench_%d", i), Kind: kind, UserID: "bob", Action: "restart",
					Target: "local", Service: "web", Provider: "memory"}
				if kind == ledger.KindResult {
					r.Outcome = ledger.OutcomeOK
				}
				if _, err := led.Append(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
		}
		b.StartTimer()
		t0 := time.Now()
		if _, err := old.Recover(ctx); err != nil {
			b.Fatal(err)
		}
		t1 := time.Now()
		if _, err := now.Recover(ctx); err != nil {
			b.Fatal(err)
		}
		oldT, newT = oldT+t1.Sub(t0), newT+time.Since(t1)
	}
	n := float64(b.N)
	b.ReportMetric(float64(oldT.Microseconds())/n, "old-µs/pass")
	b.ReportMetric(float64(newT.Microseconds())/n, "new-µs/pass")
	b.ReportMetric(float64(newT)/float64(oldT), "new/old")
}

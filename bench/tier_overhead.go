package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

// overheadTier: the runtime against the ledger alone, 1 and 64 callers, on
// SQLite (in a temp dir) and on PostgreSQL (a throwaway cluster).
func overheadTier(ctx context.Context, o options) ([]row, error) {
	dir, err := os.MkdirTemp("", "alphaswarm-bench-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	var rows []row
	fs, err := fsyncLatency(dir, 200)
	if err != nil {
		return nil, err
	}
	rows = append(rows, row{op: "fsync of 4 KiB (the floor under one durable append)", alpha: ms(fs)})

	type backend struct {
		name string
		// open opens a new ledger, and with -pgstat, what watches its
		// server (nil for SQLite).
		open func(i int) (ledger.Ledger, *pgStat, error)
	}
	var backends []backend
	if o.wantLedger("sqlite") {
		backends = append(backends, backend{"sqlite", func(i int) (ledger.Ledger, *pgStat, error) {
			l, err := sqlite.Open(ctx, filepath.Join(dir, fmt.Sprintf("ledger-%d.db", i)))
			return l, nil, err
		}})
	}
	if o.pgstat && !o.wantLedger("postgres") {
		fmt.Fprintln(os.Stderr, "bench: -pgstat applies to PostgreSQL, which -ledgers leaves out")
	}
	var pg *pgtest.Server
	pgErr := errors.New("not asked for (-ledgers)")
	if o.wantLedger("postgres") {
		var settings []string
		if o.pgstat {
			settings = pgStatSettings
		}
		pg, pgErr = pgtest.Launch(settings...)
	}
	if pgErr == nil {
		defer pg.Stop()
		backends = append(backends, backend{"postgres", func(i int) (ledger.Ledger, *pgStat, error) {
			dsn, err := pg.CreateDB(ctx, fmt.Sprintf("bench_%d", i))
			if err != nil {
				return nil, nil, err
			}
			l, err := postgres.Open(ctx, dsn)
			if err != nil || !o.pgstat {
				return l, nil, err
			}
			st, err := newPGStat(ctx, dsn)
			if err != nil {
				l.Close()
				return nil, nil, err
			}
			return l, st, nil
		}})
	}
	var histories []bool // true: revisions recorded
	switch o.history {
	case "on":
		histories = []bool{true}
	case "off":
		histories = []bool{false}
	default:
		histories = []bool{true, false}
	}
	i := 0
	for _, b := range backends {
		for _, hist := range histories {
			name := b.name
			if !hist {
				name += " (no history)"
			}
			for _, callers := range []int{1, 64} {
				i++
				led, st, err := b.open(i)
				if err != nil {
					return rows, fmt.Errorf("%s: %w", b.name, err)
				}
				per := 50
				if callers == 1 {
					per = 200
				}
				rl := led
				if !hist {
					rl = withoutHistory(led)
				}
				r, err := measureOverhead(ctx, rl, st, callers, o.pairs, per)
				led.Close()
				if st != nil {
					st.print(o.report, fmt.Sprintf("%s, %d callers", name, callers), 8)
					st.close()
				}
				if err != nil {
					return rows, fmt.Errorf("%s, %d callers: %w", name, callers, err)
				}
				rows = append(rows, overheadRows(name, r)...)
			}
		}
	}
	if pgErr != nil && o.wantLedger("postgres") {
		rows = append(rows, row{op: "runtime overhead, postgres", alpha: "skipped: " + pgErr.Error()})
	}
	return rows, nil
}

func overheadRows(backend string, r overheadResult) []row {
	name := fmt.Sprintf("runtime overhead, %s, %d caller", backend, r.callers)
	if r.callers > 1 {
		name += "s"
	}
	rows := "2 appends/op"
	if r.revisionRow {
		rows = "2 appends/op, the 2nd with its revision row"
	}
	return []row{
		{op: name + ": throughput", alpha: perSec(r.opsPerSec, "ops/s"),
			bound: "ledger alone " + perSec(r.boundOps, "ops/s") + " (" + rows + ")",
			ratio: fmt.Sprintf("%.0f %% of bound", 100*r.ratio)},
		{op: name + ": latency p50 / p99", alpha: ms(r.p50) + " / " + ms(r.p99),
			bound: "the appends alone " + ms(r.boundP50) + " / " + ms(r.boundP99),
			ratio: times(r.p50, r.boundP50, "bound (p50)")},
	}
}

// withoutHistory is led keeping no revisions, every other capability
// (service locks, head guard) kept: the runtime then records none, which
// tells the pipeline's own cost from history's.
func withoutHistory(led ledger.Ledger) ledger.Ledger {
	switch l := led.(type) {
	case *sqlite.Ledger:
		return noHistorySQLite{l}
	case *postgres.Ledger:
		return noHistoryPostgres{l}
	}
	return led
}

type noHistorySQLite struct{ *sqlite.Ledger }

func (noHistorySQLite) KeepsRevisions() bool { return false }

type noHistoryPostgres struct{ *postgres.Ledger }

func (noHistoryPostgres) KeepsRevisions() bool { return false }

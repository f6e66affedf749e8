package main

import (
	"context"
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

	backends := []struct {
		name string
		open func(i int) (ledger.Ledger, error)
	}{
		{"sqlite", func(i int) (ledger.Ledger, error) {
			return sqlite.Open(ctx, filepath.Join(dir, fmt.Sprintf("ledger-%d.db", i)))
		}},
	}
	pg, pgErr := pgtest.Launch()
	if pgErr == nil {
		defer pg.Stop()
		backends = append(backends, struct {
			name string
			open func(i int) (ledger.Ledger, error)
		}{"postgres", func(i int) (ledger.Ledger, error) {
			dsn, err := pg.CreateDB(ctx, fmt.Sprintf("bench_%d", i))
			if err != nil {
				return nil, err
			}
			return postgres.Open(ctx, dsn)
		}})
	}
	i := 0
	for _, b := range backends {
		for _, callers := range []int{1, 64} {
			i++
			led, err := b.open(i)
			if err != nil {
				return rows, fmt.Errorf("%s: %w", b.name, err)
			}
			per := 20
			if callers == 1 {
				per = 200
			}
			r, err := measureOverhead(ctx, led, callers, o.pairs, per)
			led.Close()
			if err != nil {
				return rows, fmt.Errorf("%s, %d callers: %w", b.name, callers, err)
			}
			rows = append(rows, overheadRows(b.name, r)...)
		}
	}
	if pgErr != nil {
		rows = append(rows, row{op: "runtime overhead, postgres", alpha: "skipped: " + pgErr.Error()})
	}
	return rows, nil
}

func overheadRows(backend string, r overheadResult) []row {
	name := fmt.Sprintf("runtime overhead, %s, %d caller", backend, r.callers)
	if r.callers > 1 {
		name += "s"
	}
	return []row{
		{op: name + ": throughput", alpha: perSec(r.opsPerSec, "ops/s"),
			bound: "ledger alone " + perSec(r.boundOps, "ops/s") + " (2 appends/op)",
			ratio: fmt.Sprintf("%.0f %% of bound", 100*r.ratio)},
		{op: name + ": latency p50 / p99", alpha: ms(r.p50) + " / " + ms(r.p99),
			bound: "2 appends alone " + ms(r.boundP50) + " / " + ms(r.boundP99),
			ratio: times(r.p50, r.boundP50, "bound (p50)")},
	}
}

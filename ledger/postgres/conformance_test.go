package postgres

import (
	"context"
	"fmt"
	"sync"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
)

// dsns remembers which database each ledger opened by TestConformance uses.
var dsns sync.Map // *Ledger → string

func TestConformance(t *testing.T) {
	ledgertest.Run(t,
		func(t *testing.T) ledger.Ledger {
			l, dsn := openLedger(t)
			dsns.Store(l, dsn)
			return l
		},
		ledgertest.WithReopen(func(t *testing.T, l ledger.Ledger) ledger.Ledger {
			dsn, _ := dsns.Load(l.(*Ledger))
			second, err := ledger.Open(context.Background(), dsn.(string))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { second.Close() })
			return second
		}),
		ledgertest.WithTamper(func(t *testing.T, l ledger.Ledger, seq int64, column string, value any) {
			dsn, _ := dsns.Load(l.(*Ledger))
			c := sqlConn(t, dsn.(string))
			ctx := context.Background()
			if _, err := c.Exec(ctx, "DROP TRIGGER IF EXISTS workload_runs_append_only ON workload_runs"); err != nil {
				t.Fatal(err)
			}
			if _, err := c.Exec(ctx, fmt.Sprintf("UPDATE workload_runs SET %s = $1 WHERE seq = $2", column), value, seq); err != nil {
				t.Fatalf("tamper %s: %v", column, err)
			}
		}))
}

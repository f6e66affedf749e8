package postgres

import (
	"context"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/ledger"
)

// TestRevisionHeadUsesItsIndex: the revision head of a service with many
// rows (the read every guarded result append makes, and RevisionHead) is
// one probe of migration 0008's partial index, never a scan and sort of
// the service's rows (what the planner chose through (service, seq) or
// (target, seq) before it: the cost grew with the ledger).
func TestRevisionHeadUsesItsIndex(t *testing.T) {
	l, dsn := openLedger(t)
	ctx := context.Background()
	for i := range 1200 {
		r := ledger.Record{RunID: ledger.NewRunID(), Kind: ledger.KindIntent, UserID: "a", Action: "scale", Target: "local", Service: "web"}
		if i%2 == 1 {
			r.Kind, r.Outcome = ledger.KindResult, ledger.OutcomeOK
		}
		if i%3 == 0 {
			r.Action = "restart"
		}
		if _, err := l.Append(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	c := sqlConn(t, dsn)
	if _, err := c.Exec(ctx, "ANALYZE workload_runs"); err != nil {
		t.Fatal(err)
	}
	for _, q := range []struct {
		name, sql string
		args      []any
	}{
		{"RevisionHead", revHeadSQL, []any{"web", "local"}},
		{"the guard's revisionHeadsSQL", revisionHeadsSQL, []any{[]string{"local"}, []string{"web"}}},
	} {
		rows, err := c.Query(ctx, "EXPLAIN "+q.sql, q.args...)
		if err != nil {
			t.Fatal(err)
		}
		var plan []string
		for rows.Next() {
			var s string
			if err := rows.Scan(&s); err != nil {
				t.Fatal(err)
			}
			plan = append(plan, s)
		}
		rows.Close()
		p := strings.Join(plan, "\n")
		if !strings.Contains(p, "workload_runs_revision_head") || strings.Contains(p, "Sort") || strings.Contains(p, "Seq Scan") {
			t.Errorf("%s's plan does not probe workload_runs_revision_head:\n%s", q.name, p)
		}
	}
}

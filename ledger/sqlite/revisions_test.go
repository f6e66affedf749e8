package sqlite_test

import (
	"context"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
	"github.com/alphaswarm/controller/ledger/sqlite"
)

func TestRevisions(t *testing.T) {
	reopen := func(t *testing.T, l ledger.Ledger) ledger.Ledger {
		second, err := ledger.Open(context.Background(), "sqlite:"+l.(*sqlite.Ledger).Path())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { second.Close() })
		return second
	}
	ledgertest.RunRevisions(t, open, reopen)
}

// TestRevisionsAppendOnly: the table refuses UPDATE and DELETE like
// workload_runs (migration 0004's triggers).
func TestRevisionsAppendOnly(t *testing.T) {
	l := open(t)
	ctx := context.Background()
	rev := ledger.Revision{RunID: "run_1", Target: "local", Service: "web", Revision: 1, Spec: "{}", Digest: ledger.RevisionDigest("{}", nil)}
	if err := l.(ledger.RevisionStore).PutRevision(ctx, rev); err != nil {
		t.Fatal(err)
	}
	db := sqlite.DB(l.(*sqlite.Ledger))
	for _, q := range []string{`UPDATE workload_revisions SET spec = '{"image":"evil"}'`, `DELETE FROM workload_revisions`} {
		if _, err := db.ExecContext(ctx, q); err == nil || !strings.Contains(err.Error(), "append-only") {
			t.Errorf("%s: got %v, want the append-only refusal", q, err)
		}
	}
}

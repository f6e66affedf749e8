package postgres

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/ledgertest"
)

func TestRevisions(t *testing.T) {
	ledgertest.RunRevisions(t,
		func(t *testing.T) ledger.Ledger {
			l, dsn := openLedger(t)
			dsns.Store(l, dsn)
			return l
		},
		func(t *testing.T, l ledger.Ledger) ledger.Ledger {
			dsn, _ := dsns.Load(l.(*Ledger))
			second, err := ledger.Open(context.Background(), dsn.(string))
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { second.Close() })
			return second
		})
}

// TestRevisionsRuntimeRole: the runtime role Migrate grants may store and
// read revisions, and may neither change nor remove them (the trigger of
// migration 0004 refuses even the owner).
func TestRevisionsRuntimeRole(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	su := sqlConn(t, dsn)
	n := roleN.Add(1)
	owner, app := fmt.Sprintf("rev_owner_%d_%d", n, len(dsn)), fmt.Sprintf("rev_app_%d_%d", n, len(dsn))
	for _, q := range []string{
		"CREATE ROLE " + owner + " LOGIN", "CREATE ROLE " + app + " LOGIN",
		"GRANT CREATE ON SCHEMA public TO " + owner,
	} {
		if _, err := su.Exec(ctx, q); err != nil {
			t.Fatalf("%s: %v", q, err)
		}
	}
	if err := Migrate(ctx, dsnAs(t, dsn, owner), app); err != nil {
		t.Fatal(err)
	}
	l := openDSN(t, dsnAs(t, dsn, app))
	rev := ledger.Revision{RunID: "run_1", Target: "local", Service: "web", Revision: 1, Spec: "{}", Digest: ledger.RevisionDigest("{}", nil)}
	if err := l.PutRevision(ctx, rev); err != nil {
		t.Fatalf("PutRevision as the runtime role: %v", err)
	}
	if got, err := l.Revisions(ctx, "local", "web"); err != nil || len(got) != 1 {
		t.Fatalf("Revisions as the runtime role: %v, %v", got, err)
	}
	for _, who := range []string{app, owner} {
		c := sqlConn(t, dsnAs(t, dsn, who))
		for _, q := range []string{
			`UPDATE workload_revisions SET spec = '{"image":"evil"}'`,
			"DELETE FROM workload_revisions",
			"TRUNCATE workload_revisions",
		} {
			_, err := c.Exec(ctx, q)
			if err == nil {
				t.Errorf("%s as %s: allowed", q, who)
				continue
			}
			if msg := err.Error(); !strings.Contains(msg, "permission denied") && !strings.Contains(msg, "append-only") {
				t.Errorf("%s as %s: %v, want a refusal", q, who, err)
			}
		}
	}
}

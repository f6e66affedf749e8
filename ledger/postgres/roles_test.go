package postgres

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alphaswarm/controller/ledger"
)

var roleN atomic.Int64

// dsnAs is dsn (a pgtest DSN for user postgres, trust auth) for role.
func dsnAs(t *testing.T, dsn, role string) string {
	t.Helper()
	out := strings.Replace(dsn, "postgres://postgres@", "postgres://"+role+"@", 1)
	if out == dsn {
		t.Fatalf("cannot change the user of %s", dsn)
	}
	return out
}

// TestRuntimeRoleCannotRewrite: the owner migrates and grants; the
// controller's runtime role appends and reads, and every way the review
// used to rewrite the ledger (DELETE, UPDATE, TRUNCATE, DISABLE TRIGGER)
// is refused by PostgreSQL itself.
func TestRuntimeRoleCannotRewrite(t *testing.T) {
	ctx := context.Background()
	dsn := newDB(t)
	su := sqlConn(t, dsn)
	n := roleN.Add(1)
	owner, app := fmt.Sprintf("ledger_owner_%d_%d", n, len(dsn)), fmt.Sprintf("ledger_app_%d_%d", n, len(dsn))
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
	for i := range 3 {
		if _, err := l.Append(ctx, ledger.Record{RunID: fmt.Sprint(i), Kind: ledger.KindIntent}); err != nil {
			t.Fatalf("append as the runtime role: %v", err)
		}
	}
	if res, err := l.Verify(ctx); err != nil || !res.OK || res.Count != 3 {
		t.Fatalf("verify as the runtime role: %+v %v", res, err)
	}
	if ex, err := l.ExcessPrivileges(ctx); err != nil || len(ex) != 0 {
		t.Fatalf("runtime role excess privileges = %q, %v; want none", ex, err)
	}
	c := sqlConn(t, dsnAs(t, dsn, app))
	for _, q := range []string{
		"DELETE FROM workload_runs WHERE seq = 3",
		"UPDATE workload_runs SET user_id = 'mallory' WHERE seq = 2",
		"TRUNCATE workload_runs",
		"ALTER TABLE workload_runs DISABLE TRIGGER USER",
		"DROP TRIGGER workload_runs_append_only ON workload_runs",
		"DROP TABLE workload_runs",
	} {
		_, err := c.Exec(ctx, q)
		if err == nil {
			t.Errorf("%s: allowed for the runtime role", q)
			continue
		}
		if !strings.Contains(err.Error(), "permission denied") && !strings.Contains(err.Error(), "must be owner") {
			t.Errorf("%s: %v, want a privilege error", q, err)
		}
	}
	dsnFor := func(t *testing.T, dsn, who string) string {
		if who == "postgres" {
			return dsn
		}
		return dsnAs(t, dsn, who)
	}
	for _, who := range []string{owner, "postgres"} {
		lo := openDSN(t, dsnFor(t, dsn, who))
		ex, err := lo.ExcessPrivileges(ctx)
		if err != nil || len(ex) == 0 {
			t.Errorf("%s: excess privileges = %q, %v; want a warning", who, ex, err)
		}
	}
}

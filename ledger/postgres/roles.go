package postgres

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// Migrate applies the schema as the role dsn connects with, which becomes
// the owner of workload_runs, and, when runtimeRole is not empty, grants
// that role what a controller needs and nothing more: SELECT and INSERT on
// workload_runs and workload_revisions, SELECT on schema_migrations, USAGE on the schema. The
// runtime role then cannot UPDATE, DELETE or TRUNCATE rows, nor ALTER the
// table (DISABLE TRIGGER), nor drop it: only the owner can, so whoever
// steals the controller's credentials cannot rewrite the ledger.
//
// Open applies missing migrations itself when its role may; a controller
// running as the runtime role finds them applied and only reads
// schema_migrations.
func Migrate(ctx context.Context, dsn, runtimeRole string) error {
	pool, err := pgxpool.New(ctx, dsn)
	if err != nil {
		return fmt.Errorf("ledger/postgres: %w", err)
	}
	defer pool.Close()
	if err := migrate(ctx, pool); err != nil {
		return err
	}
	if runtimeRole == "" {
		return nil
	}
	return grantRuntime(ctx, pool, runtimeRole)
}

// GrantRuntime grants runtimeRole SELECT and INSERT on the ledger (see
// Migrate); the connected role must own the table.
func (l *Ledger) GrantRuntime(ctx context.Context, runtimeRole string) error {
	return grantRuntime(ctx, l.pool, runtimeRole)
}

func grantRuntime(ctx context.Context, pool *pgxpool.Pool, runtimeRole string) error {
	if runtimeRole == "" {
		return fmt.Errorf("ledger/postgres: no runtime role to grant to")
	}
	role := pgx.Identifier{runtimeRole}.Sanitize()
	return pgx.BeginFunc(ctx, pool, func(tx pgx.Tx) error {
		var schema string
		if err := tx.QueryRow(ctx, `SELECT schemaname FROM pg_tables WHERE tablename = 'workload_runs'
			AND schemaname = ANY (current_schemas(false)) LIMIT 1`).Scan(&schema); err != nil {
			return fmt.Errorf("ledger/postgres: finding workload_runs: %w", err)
		}
		for _, q := range []string{
			"GRANT USAGE ON SCHEMA " + pgx.Identifier{schema}.Sanitize() + " TO " + role,
			"REVOKE ALL ON workload_runs FROM " + role,
			"GRANT SELECT, INSERT ON workload_runs TO " + role,
			"REVOKE ALL ON workload_revisions FROM " + role,
			"GRANT SELECT, INSERT ON workload_revisions TO " + role,
			"REVOKE ALL ON schema_migrations FROM " + role,
			"GRANT SELECT ON schema_migrations TO " + role,
		} {
			if _, err := tx.Exec(ctx, q); err != nil {
				return fmt.Errorf("ledger/postgres: %s: %w", q, err)
			}
		}
		return nil
	})
}

// ExcessPrivileges lists what the connected role can do to workload_runs
// beyond SELECT and INSERT (empty for a runtime role set up by Migrate):
// being a superuser or a member of the table's owner role (ALTER TABLE …
// DISABLE TRIGGER, DROP), or holding UPDATE, DELETE, TRUNCATE or TRIGGER.
func (l *Ledger) ExcessPrivileges(ctx context.Context) ([]string, error) {
	var super, owner, upd, del, trunc, trig bool
	var ownerName string
	err := l.pool.QueryRow(ctx, `SELECT r.rolsuper, t.tableowner,
		pg_has_role(current_user, t.tableowner, 'USAGE'),
		has_table_privilege(current_user, 'workload_runs', 'UPDATE'),
		has_table_privilege(current_user, 'workload_runs', 'DELETE'),
		has_table_privilege(current_user, 'workload_runs', 'TRUNCATE'),
		has_table_privilege(current_user, 'workload_runs', 'TRIGGER')
		FROM pg_roles r, pg_tables t
		WHERE r.rolname = current_user AND t.tablename = 'workload_runs' AND t.schemaname = ANY (current_schemas(false))
		LIMIT 1`).Scan(&super, &ownerName, &owner, &upd, &del, &trunc, &trig)
	if err != nil {
		return nil, fmt.Errorf("ledger/postgres: reading privileges: %w", err)
	}
	var out []string
	if super {
		out = append(out, "the role is a superuser")
	}
	if owner {
		out = append(out, fmt.Sprintf("the role is (a member of) %q, the owner of workload_runs: it can ALTER TABLE … DISABLE TRIGGER and drop the table", ownerName))
	}
	for _, p := range []struct {
		has  bool
		name string
	}{{upd, "UPDATE"}, {del, "DELETE"}, {trunc, "TRUNCATE"}, {trig, "TRIGGER"}} {
		if p.has && !owner && !super {
			out = append(out, "the role holds "+p.name+" on workload_runs")
		}
	}
	return out, nil
}

package main

import (
	"context"
	"fmt"
	"io"
	"slices"
	"strings"
	"time"

	"github.com/jackc/pgx/v5"
)

// pgStat (-pgstat): where the PostgreSQL server's time goes in the
// overhead tier's rounds, from pg_stat_statements (the cluster is started
// with it preloaded, planning time tracked): after each round the
// statements' counters are read and reset, and added up by kind of round
// (runtime or bound), so that the two can be compared statement by
// statement. It is how the guard read planned afresh for every append
// transaction was found (closing note of 2026-12-05, fifth session).
type pgStat struct {
	conn   *pgx.Conn
	rounds map[bool]int                    // by kind (true: bound)
	stmts  map[bool]map[string]*stmtTotals // by kind, then query text
}

// pgStatSettings are the server settings -pgstat needs.
var pgStatSettings = []string{"shared_preload_libraries=pg_stat_statements",
	"pg_stat_statements.track=all", "pg_stat_statements.track_planning=on"}

type stmtTotals struct {
	calls      int64
	exec, plan float64 // ms
}

func newPGStat(ctx context.Context, dsn string) (*pgStat, error) {
	c, err := pgx.Connect(ctx, dsn)
	if err != nil {
		return nil, err
	}
	if _, err := c.Exec(ctx, "CREATE EXTENSION IF NOT EXISTS pg_stat_statements"); err != nil {
		c.Close(ctx)
		return nil, fmt.Errorf("pg_stat_statements: %w", err)
	}
	s := &pgStat{conn: c}
	return s, s.reset(ctx)
}

func (s *pgStat) close() { s.conn.Close(context.Background()) }

// reset forgets what was counted so far (setup, warm-up).
func (s *pgStat) reset(ctx context.Context) error {
	s.rounds = map[bool]int{}
	s.stmts = map[bool]map[string]*stmtTotals{false: {}, true: {}}
	_, err := s.conn.Exec(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// collect adds the counters since the last collect to the round's kind.
func (s *pgStat) collect(ctx context.Context, bound bool) error {
	rows, err := s.conn.Query(ctx, `SELECT regexp_replace(query, '\s+', ' ', 'g'), calls, total_exec_time, total_plan_time
		FROM pg_stat_statements WHERE query NOT LIKE '%pg_stat_statements%'`)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var q string
		var t stmtTotals
		if err := rows.Scan(&q, &t.calls, &t.exec, &t.plan); err != nil {
			return err
		}
		m := s.stmts[bound]
		if m[q] == nil {
			m[q] = &stmtTotals{}
		}
		m[q].calls += t.calls
		m[q].exec += t.exec
		m[q].plan += t.plan
	}
	if err := rows.Err(); err != nil {
		return err
	}
	s.rounds[bound]++
	_, err = s.conn.Exec(ctx, "SELECT pg_stat_statements_reset()")
	return err
}

// print writes, for each kind of round, the top statements by server time
// per round.
func (s *pgStat) print(w io.Writer, title string, top int) {
	fmt.Fprintf(w, "\n%s: PostgreSQL server time by statement, per round (pg_stat_statements)\n", title)
	for _, bound := range []bool{false, true} {
		n := s.rounds[bound]
		if n == 0 {
			continue
		}
		kind := "runtime rounds"
		if bound {
			kind = "bound rounds (the ledger alone)"
		}
		type line struct {
			q string
			t *stmtTotals
		}
		var ls []line
		var exec, plan float64
		for q, t := range s.stmts[bound] {
			ls = append(ls, line{q, t})
			exec, plan = exec+t.exec, plan+t.plan
		}
		slices.SortFunc(ls, func(a, b line) int {
			switch x, y := a.t.exec+a.t.plan, b.t.exec+b.t.plan; {
			case x > y:
				return -1
			case x < y:
				return 1
			}
			return strings.Compare(a.q, b.q)
		})
		per := func(ms float64) time.Duration { return time.Duration(ms / float64(n) * float64(time.Millisecond)) }
		fmt.Fprintf(w, "  %s (%d): %v executing, %v planning per round\n", kind, n, per(exec).Round(time.Microsecond), per(plan).Round(time.Microsecond))
		fmt.Fprintf(w, "    %8s %12s %12s  %s\n", "calls", "exec", "plan", "statement")
		for _, l := range ls[:min(top, len(ls))] {
			q := l.q
			if len(q) > 110 {
				q = q[:110] + "…"
			}
			fmt.Fprintf(w, "    %8d %12v %12v  %s\n", l.t.calls/int64(n), per(l.t.exec).Round(time.Microsecond), per(l.t.plan).Round(time.Microsecond), q)
		}
	}
}

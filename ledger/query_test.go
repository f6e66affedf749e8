package ledger_test

import (
	"errors"
	"slices"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// TestSelectSQL pins the SQL both backends run for a filter (their results
// are checked by ledgertest on each backend).
func TestSelectSQL(t *testing.T) {
	since := time.Unix(0, 5)
	for _, tc := range []struct {
		name   string
		f      ledger.Filter
		prefix string
		want   string
		args   []any
		limit  int
	}{
		{"empty", ledger.Filter{}, "$", "SELECT c FROM workload_runs ORDER BY seq ASC LIMIT $1", []any{ledger.DefaultLimit + 1}, ledger.DefaultLimit},
		{"user bound once", ledger.Filter{Service: "web", UserID: "ann", Limit: 5}, "?",
			"SELECT c FROM workload_runs WHERE service = ?1 AND (user_id = ?2 OR user_name = ?2) ORDER BY seq ASC LIMIT ?3",
			[]any{"web", "ann", 6}, 5},
		{"cursor descending", ledger.Filter{Kind: ledger.KindResult, Since: since, Cursor: "s9", Descending: true, Limit: 5000}, "$",
			"SELECT c FROM workload_runs WHERE kind = $1 AND time_ns >= $2 AND seq < $3 ORDER BY seq DESC LIMIT $4",
			[]any{"result", int64(5), int64(9), ledger.MaxLimit + 1}, ledger.MaxLimit},
		{"idempotency key repeats the index condition", ledger.Filter{IdempotencyKey: "k1", Limit: ledger.MaxLimit}, "?",
			"SELECT c FROM workload_runs WHERE idempotency_key = ?1 AND idempotency_key <> '' ORDER BY seq ASC LIMIT ?2",
			[]any{"k1", ledger.MaxLimit + 1}, ledger.MaxLimit},
		{"idempotency key on PostgreSQL", ledger.Filter{IdempotencyKey: "k1", Limit: ledger.MaxLimit}, "$",
			"SELECT c FROM workload_runs WHERE idempotency_key = $1 ORDER BY seq ASC LIMIT $2",
			[]any{"k1", ledger.MaxLimit + 1}, ledger.MaxLimit},
		{"rejected repeats the index condition", ledger.Filter{Kind: ledger.KindRejected, Descending: true}, "?",
			"SELECT c FROM workload_runs WHERE kind = ?1 AND (kind = 'rejected' OR outcome NOT IN ('', 'ok')) ORDER BY seq DESC LIMIT ?2",
			[]any{"rejected", ledger.DefaultLimit + 1}, ledger.DefaultLimit},
		{"rejected on PostgreSQL", ledger.Filter{Kind: ledger.KindRejected, Descending: true}, "$",
			"SELECT c FROM workload_runs WHERE kind = $1 ORDER BY seq DESC LIMIT $2",
			[]any{"rejected", ledger.DefaultLimit + 1}, ledger.DefaultLimit},
		{"failed outcome repeats the index condition", ledger.Filter{Service: "web", Outcome: ledger.OutcomeInterrupted}, "?",
			"SELECT c FROM workload_runs WHERE service = ?1 AND outcome = ?2 AND (kind = 'rejected' OR outcome NOT IN ('', 'ok')) ORDER BY seq ASC LIMIT ?3",
			[]any{"web", "interrupted", ledger.DefaultLimit + 1}, ledger.DefaultLimit},
		{"ok outcome is not rare", ledger.Filter{Kind: ledger.KindResult, Outcome: ledger.OutcomeOK}, "?",
			"SELECT c FROM workload_runs WHERE kind = ?1 AND outcome = ?2 ORDER BY seq ASC LIMIT ?3",
			[]any{"result", "ok", ledger.DefaultLimit + 1}, ledger.DefaultLimit},
		{"targets of a scoped principal on PostgreSQL: one OR", ledger.Filter{Targets: []string{"staging", "dev"}, Cursor: "s7", Descending: true, Limit: 50}, "$",
			"SELECT c FROM workload_runs WHERE (target IN ($1, $2) OR (target = '*' AND action = 'halt' AND kind <> 'rejected')) AND seq < $3 ORDER BY seq DESC LIMIT $4",
			[]any{"staging", "dev", int64(7), 51}, 50},
		{"targets on SQLite: one branch each (a target twice is one) and the global halt's", ledger.Filter{Targets: []string{"staging", "dev", "staging"}, Cursor: "s7", Descending: true, Limit: 50}, "?",
			"SELECT c FROM workload_runs WHERE target = ?3 AND seq < ?1" +
				" UNION ALL SELECT c FROM workload_runs WHERE target = ?4 AND seq < ?1" +
				" UNION ALL SELECT c FROM workload_runs WHERE (target = '*' AND action = 'halt' AND kind <> 'rejected') AND seq < ?1" +
				" ORDER BY seq DESC LIMIT ?2",
			[]any{int64(7), 51, "dev", "staging"}, 50},
		{"targets with a target and a run", ledger.Filter{Target: "staging", Targets: []string{"staging"}, RunID: "r1"}, "?",
			"SELECT c FROM workload_runs WHERE target = ?4 AND target = ?1 AND run_id = ?2" +
				" UNION ALL SELECT c FROM workload_runs WHERE (target = '*' AND action = 'halt' AND kind <> 'rejected') AND target = ?1 AND run_id = ?2" +
				" ORDER BY seq ASC LIMIT ?3",
			[]any{"staging", "r1", ledger.DefaultLimit + 1, "staging"}, ledger.DefaultLimit},
		{"rejected of a target on SQLite: each branch repeats the index condition", ledger.Filter{Targets: []string{"prod"}, Kind: ledger.KindRejected}, "?",
			"SELECT c FROM workload_runs WHERE target = ?3 AND kind = ?1 AND (kind = 'rejected' OR outcome NOT IN ('', 'ok'))" +
				" UNION ALL SELECT c FROM workload_runs WHERE (target = '*' AND action = 'halt' AND kind <> 'rejected') AND kind = ?1 AND (kind = 'rejected' OR outcome NOT IN ('', 'ok'))" +
				" ORDER BY seq ASC LIMIT ?2",
			[]any{"rejected", ledger.DefaultLimit + 1, "prod"}, ledger.DefaultLimit},
		{"the global scope among the targets: its branch holds the global halt's rows", ledger.Filter{Targets: []string{"*", "dev"}}, "?",
			"SELECT c FROM workload_runs WHERE target = ?2 UNION ALL SELECT c FROM workload_runs WHERE target = ?3 ORDER BY seq ASC LIMIT ?1",
			[]any{ledger.DefaultLimit + 1, "*", "dev"}, ledger.DefaultLimit},
		{"no targets: the global halt's rows only", ledger.Filter{Targets: []string{}}, "?",
			"SELECT c FROM workload_runs WHERE (target = '*' AND action = 'halt' AND kind <> 'rejected') ORDER BY seq ASC LIMIT ?1",
			[]any{ledger.DefaultLimit + 1}, ledger.DefaultLimit},
		{"no targets on PostgreSQL", ledger.Filter{Targets: []string{}}, "$",
			"SELECT c FROM workload_runs WHERE ((target = '*' AND action = 'halt' AND kind <> 'rejected')) ORDER BY seq ASC LIMIT $1",
			[]any{ledger.DefaultLimit + 1}, ledger.DefaultLimit},
	} {
		t.Run(tc.name, func(t *testing.T) {
			q, args, limit, err := tc.f.SelectSQL("c", tc.prefix)
			if err != nil {
				t.Fatal(err)
			}
			if q != tc.want || !slices.Equal(args, tc.args) || limit != tc.limit {
				t.Errorf("SelectSQL = %q %v %d\nwant       %q %v %d", q, args, limit, tc.want, tc.args, tc.limit)
			}
		})
	}
	if _, _, _, err := (ledger.Filter{Cursor: "x"}).SelectSQL("c", "$"); !errors.Is(err, ledger.ErrInvalidFilter) {
		t.Errorf("bad cursor: err = %v, want ErrInvalidFilter", err)
	}
}

func TestPageOf(t *testing.T) {
	recs := []ledger.Record{{Seq: 1}, {Seq: 2}, {Seq: 3}}
	if p := ledger.PageOf(recs, 2); len(p.Records) != 2 || p.Next != ledger.NextCursor(recs[1]) {
		t.Errorf("PageOf(3 records, 2) = %+v", p)
	}
	if p := ledger.PageOf(recs, 3); len(p.Records) != 3 || p.Next != "" {
		t.Errorf("PageOf(3 records, 3) = %+v", p)
	}
	if p := ledger.PageOf(nil, 3); p.Records == nil {
		t.Error("PageOf(nil) has nil Records (encodes as null)")
	}
}

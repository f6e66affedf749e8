package ledgertest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
)

// Synthetic returns a sealed chain of about 2*runs rows shaped like a
// controller's ledger after a long life, for benchmarks that time the
// ledger's reads on a large ledger (backends insert the rows in bulk, not
// through Append):
//   - runs over 3 targets and 150 services (svc-0 … svc-49 on each), 10
//     users, the actions a controller writes; a third carry an
//     idempotency key (key-<i>);
//   - each run an intent and, a few rows later, its result (runs close out
//     of order): 5 % error, the rest ok; one run in 500 is refused (a
//     single rejected row);
//   - a halt on and off of target "edge" every 10 000 runs;
//   - OpenRuns of them without a result: one near the start (a run a
//     controller left long ago), the rest among the last rows.
//
// Row times start at base and advance 1 ms a row.
func Synthetic(runs int, base time.Time) []ledger.Record {
	out := make([]ledger.Record, 0, 2*runs+8)
	var prev *ledger.Record
	add := func(r ledger.Record) {
		r.Time = base.Add(time.Duration(len(out)) * time.Millisecond)
		s := ledger.Seal(r, prev)
		out = append(out, s)
		prev = &out[len(out)-1]
	}
	targets := []string{"local", "prod", "edge"}
	actions := []string{"start", "scale", "restart", "apply_config", "stop", "exec"}
	open := map[int]bool{runs / 10: true}
	for i := range OpenRuns - 1 {
		open[runs-2-17*i] = true
	}
	var pending []ledger.Record // intents waiting for their result
	for i := range runs {
		r := ledger.Record{
			RunID:         fmt.Sprintf("run_%08d", i),
			Kind:          ledger.KindIntent,
			UserID:        fmt.Sprintf("user-%d", i%10),
			Auth:          fmt.Sprintf("token:tok%d", i%10),
			UserName:      fmt.Sprintf("user-%d@example.com", i%10),
			Action:        actions[i%len(actions)],
			Target:        targets[i%len(targets)],
			Service:       fmt.Sprintf("svc-%d", i%50),
			Provider:      "docker",
			RequestDigest: fmt.Sprintf("%064x", i),
			Detail:        `{"replicas":2}`,
		}
		if i%3 == 0 {
			r.IdempotencyKey = fmt.Sprintf("key-%d", i)
		}
		if i%500 == 499 && !open[i] {
			r.Kind, r.Outcome, r.ErrorCode, r.Message = ledger.KindRejected, ledger.OutcomeDenied, "permission_denied", "denied by policy"
			add(r)
			continue
		}
		if i%10000 == 5000 {
			for _, on := range []bool{true, false} {
				h := ledger.Record{RunID: fmt.Sprintf("run_halt_%d_%v", i, on), UserID: "admin", Action: "halt", Target: "edge",
					RequestDigest: r.RequestDigest, Detail: fmt.Sprintf(`{"on":%v}`, on)}
				h.Kind = ledger.KindIntent
				add(h)
				h.Kind, h.Outcome = ledger.KindResult, ledger.OutcomeOK
				add(h)
			}
		}
		add(r)
		if !open[i] {
			pending = append(pending, r)
		}
		// Close the oldest pending run once three wait, the newest first
		// every other time: results come in another order than intents.
		for len(pending) >= 3 {
			k := 0
			if i%2 == 1 {
				k = len(pending) - 1
			}
			res := pending[k]
			pending = append(pending[:k], pending[k+1:]...)
			res.Kind, res.Outcome, res.Detail, res.Duration = ledger.KindResult, ledger.OutcomeOK, `{"status":{"phase":"Running"}}`, 40*time.Millisecond
			if i%20 == 0 {
				res.Outcome, res.ErrorCode, res.Message = ledger.OutcomeError, "unavailable", "backend down"
			}
			res.Seq, res.PrevHash, res.Hash, res.Version = 0, "", "", 0
			add(res)
		}
	}
	for _, res := range pending {
		res.Kind, res.Outcome, res.Detail = ledger.KindResult, ledger.OutcomeOK, "{}"
		res.Seq, res.PrevHash, res.Hash, res.Version = 0, "", "", 0
		add(res)
	}
	return out
}

// OpenRuns is how many runs of Synthetic have no result.
const OpenRuns = 4

// ReadCase is one read a controller does routinely, for benchmarks that
// time it on a Synthetic ledger the old way and the new way in one run.
type ReadCase struct {
	Name string
	// Old is the statement as the ledger ran it before schema 0005 and
	// ledger.UnfinishedScanner (for the runs-targets-* cases: before
	// schema 0007), for the backend's placeholder prefix ("?" or "$") and
	// column list; run on a copy of the ledger at the schema before.
	Old func(columns, prefix string) (string, []any)
	// Now is the statement the new way runs (its main one), for its plan.
	Now func(columns, prefix string) (string, []any)
	// New is the read as the controller does it now.
	New func(ctx context.Context, l ledger.Ledger) error
}

// ReadCases are the reads of a controller's hot and periodic paths on a
// Synthetic(runs, base) ledger whose last row is head: a recovery pass (the
// rows since a minute ago at ~30 rows/s, then the pass at start), the
// idempotency look-up (a key used, a new key), the halt switch, the
// history's result scan, recovery's look-ups, the checkpoint follower's
// read, and the runs listings. haltsBefore is the backend's halt query
// before schema 0005.
func ReadCases(runs int, head int64, base time.Time, haltsBefore string) []ReadCase {
	unchanged := func(f ledger.Filter) func(columns, prefix string) (string, []any) {
		return func(columns, prefix string) (string, []any) {
			q, args, _, err := f.SelectSQL(columns, prefix)
			if err != nil {
				panic(err)
			}
			return q, args
		}
	}
	query := func(f ledger.Filter) func(ctx context.Context, l ledger.Ledger) error {
		return func(ctx context.Context, l ledger.Ledger) error {
			_, err := l.Query(ctx, f)
			return err
		}
	}
	// before is f's statement before 0005: without the repeated condition
	// of the partial indexes of rare rows.
	before := func(f ledger.Filter) func(columns, prefix string) (string, []any) {
		return func(columns, prefix string) (string, []any) {
			q, args := unchanged(f)(columns, prefix)
			return strings.Replace(q, " AND (kind = 'rejected' OR outcome NOT IN ('', 'ok'))", "", 1), args
		}
	}
	c := func(name string, f ledger.Filter) ReadCase {
		return ReadCase{Name: name, Old: before(f), Now: unchanged(f), New: query(f)}
	}
	// changed is a query whose statement changed: old is its text before.
	changed := func(name string, old func(columns, prefix string) (string, []any), f ledger.Filter) ReadCase {
		return ReadCase{Name: name, Old: old, Now: unchanged(f), New: query(f)}
	}
	oldUnfinished := func(columns, _ string) (string, []any) {
		return "SELECT " + columns + ` FROM workload_runs i WHERE kind = 'intent'
	AND NOT EXISTS (SELECT 1 FROM workload_runs r WHERE r.run_id = i.run_id AND r.kind = 'result') ORDER BY seq`, nil
	}
	unfinishedAfter := func(after int64) func(columns, prefix string) (string, []any) {
		return func(columns, p string) (string, []any) {
			q, _ := oldUnfinished(columns, p)
			return strings.Replace(q, " ORDER BY seq", " AND seq > "+p+"1 AND seq <= "+p+"2 ORDER BY seq", 1), []any{after, head}
		}
	}
	oldIdem := func(key string) func(columns, prefix string) (string, []any) {
		return func(columns, p string) (string, []any) {
			return "SELECT " + columns + " FROM workload_runs WHERE idempotency_key = " + p + "1 ORDER BY seq ASC LIMIT " + p + "2",
				[]any{key, ledger.MaxLimit + 1}
		}
	}
	oldUser := func(user string) func(columns, prefix string) (string, []any) {
		return func(columns, p string) (string, []any) {
			return "SELECT " + columns + " FROM workload_runs WHERE (user_id = " + p + "1 OR user_name = " + p + "1) ORDER BY seq DESC LIMIT " + p + "2",
				[]any{user, ledger.DefaultLimit + 1}
		}
	}
	// orTargets is f's statement before schema 0007: its Targets one OR
	// condition, as PostgreSQL still runs it (on SQLite with the repeated
	// condition of the partial indexes of rare rows).
	orTargets := func(f ledger.Filter) func(columns, prefix string) (string, []any) {
		return func(columns, prefix string) (string, []any) {
			q, args := unchanged(f)(columns, "$")
			if prefix == "?" && f.Kind == ledger.KindRejected {
				q = strings.Replace(q, " ORDER BY", " AND (kind = 'rejected' OR outcome NOT IN ('', 'ok')) ORDER BY", 1)
			}
			return strings.ReplaceAll(q, "$", prefix), args
		}
	}
	targets := func(name string, f ledger.Filter) ReadCase {
		return ReadCase{Name: name, Old: orTargets(f), Now: unchanged(f), New: query(f)}
	}
	halts := func(_, _ string) (string, []any) { return haltsBefore, nil }
	revHead := func(_, prefix string) (string, []any) { return ledger.RevisionHeadSQL(prefix), []any{"svc-7", "prod"} }
	used, fresh := fmt.Sprintf("key-%d", runs/2/3*3), "key-never-used"
	svc := ledger.Filter{Target: "prod", Service: "svc-7", Kind: ledger.KindResult, Outcome: ledger.OutcomeOK}
	page, scan := svc, svc
	page.Limit, page.Descending = 50, true
	scan.Limit = ledger.MaxLimit
	return []ReadCase{
		{Name: "recovery-pass", Old: oldUnfinished, Now: unfinishedAfter(max(head-2000, 0)), New: func(ctx context.Context, l ledger.Ledger) error {
			_, _, err := ledger.UnfinishedAfter(ctx, l, max(head-2000, 0))
			return err
		}},
		{Name: "recovery-pass-at-start", Old: oldUnfinished, Now: unfinishedAfter(0), New: func(ctx context.Context, l ledger.Ledger) error {
			_, _, err := ledger.UnfinishedAfter(ctx, l, 0)
			return err
		}},
		changed("idempotency-key-used", oldIdem(used), ledger.Filter{IdempotencyKey: used, Limit: ledger.MaxLimit}),
		changed("idempotency-key-new", oldIdem(fresh), ledger.Filter{IdempotencyKey: fresh, Limit: ledger.MaxLimit}),
		{Name: "halts", Old: halts, Now: halts, New: func(ctx context.Context, l ledger.Ledger) error {
			_, err := l.Halts(ctx)
			return err
		}},
		{Name: "history-revision-head", Old: revHead, Now: revHead, New: func(ctx context.Context, l ledger.Ledger) error {
			_, err := ledger.RevisionHead(ctx, l, "prod", "svc-7")
			return err
		}},
		c("history-page", page),
		c("history-scan-one-page", scan),
		c("recovery-result-of-run", ledger.Filter{RunID: fmt.Sprintf("run_%08d", runs/2), Kind: ledger.KindResult}),
		c("recovery-later-run", ledger.Filter{Target: "prod", Service: "svc-7", Kind: ledger.KindIntent, Descending: true, Limit: 20}),
		c("checkpoint-rows-after", ledger.Filter{Cursor: fmt.Sprintf("s%d", max(head-1000, 0)), Limit: ledger.MaxLimit}),
		c("runs-dashboard-results", ledger.Filter{Kind: ledger.KindResult, Descending: true, Limit: 20}),
		c("runs-service", ledger.Filter{Service: "svc-7", Descending: true}),
		c("runs-target", ledger.Filter{Target: "edge", Descending: true}),
		c("runs-action", ledger.Filter{Action: "scale", Descending: true}),
		changed("runs-user-name", oldUser("user-3@example.com"), ledger.Filter{UserID: "user-3@example.com", Descending: true}),
		changed("runs-user-id", oldUser("user-3"), ledger.Filter{UserID: "user-3", Descending: true}),
		c("runs-rejected", ledger.Filter{Kind: ledger.KindRejected, Descending: true}),
		c("runs-outcome-error", ledger.Filter{Outcome: ledger.OutcomeError, Descending: true}),
		c("runs-outcome-interrupted", ledger.Filter{Outcome: ledger.OutcomeInterrupted, Descending: true}),
		c("runs-since", ledger.Filter{Since: base.Add(time.Duration(max(head-1000, 0)) * time.Millisecond)}),
		c("runs-until", ledger.Filter{Until: base.Add(1000 * time.Millisecond), Descending: true}),
		// The runs listing of a principal with roles on some targets only
		// (Filter.Targets), a page as the API asks it: a target of a third
		// of the rows, one with none, two, its refused requests, and the
		// dashboard's services view (its last results).
		targets("runs-targets-large", ledger.Filter{Targets: []string{"prod"}, Descending: true}),
		targets("runs-targets-empty", ledger.Filter{Targets: []string{"staging"}, Descending: true}),
		targets("runs-targets-two", ledger.Filter{Targets: []string{"local", "prod"}, Descending: true}),
		targets("runs-targets-rejected", ledger.Filter{Targets: []string{"prod"}, Kind: ledger.KindRejected, Descending: true}),
		targets("runs-targets-results", ledger.Filter{Targets: []string{"prod"}, Kind: ledger.KindResult, Descending: true, Limit: ledger.MaxLimit}),
		c("runs-target-rejected", ledger.Filter{Target: "prod", Kind: ledger.KindRejected, Descending: true}),
	}
}

// TargetCases are the cases of cs about Filter.Targets (runs-targets-*),
// each timed as a statement, as Old is: New reads Now's rows from db
// through the driver (without the ledger's decoding of the records), so
// that the two differ only in schema and statement.
func TargetCases(cs []ReadCase, db ReadDB, columns, prefix string) []ReadCase {
	var out []ReadCase
	for _, c := range cs {
		if strings.HasPrefix(c.Name, "runs-targets-") {
			c.New = func(ctx context.Context, _ ledger.Ledger) error {
				q, args := c.Now(columns, prefix)
				return db.ReadAll(ctx, q, args...)
			}
			out = append(out, c)
		}
	}
	return out
}

// CheckUpgraded checks a ledger that holds recs (a Synthetic chain written
// at an older schema) and was opened, so migrated, by its backend: it
// verifies, UnfinishedAfter finds the OpenRuns, the halt switches read
// off, and the filters the indexes of migrations 0005, 0006 and 0007
// serve answer what recs say, page by page.
func CheckUpgraded(t *testing.T, l ledger.Ledger, recs []ledger.Record) {
	t.Helper()
	if res := mustVerify(t, l); !res.OK || res.Count != int64(len(recs)) {
		t.Fatalf("after the migration: Verify = %+v, want %d rows OK", res, len(recs))
	}
	open, head, err := ledger.UnfinishedAfter(ctx(t), l, 0)
	if err != nil || len(open) != OpenRuns || head != recs[len(recs)-1].Seq {
		t.Fatalf("after the migration: UnfinishedAfter(0) = %d intents, head %d, %v; want %d, head %d", len(open), head, err, OpenRuns, recs[len(recs)-1].Seq)
	}
	if h, err := l.Halts(ctx(t)); err != nil || len(h) != 0 {
		t.Fatalf("after the migration: Halts = %v, %v; want none on (Synthetic turns edge's off again)", h, err)
	}
	keyed := recs[len(recs)/2]
	for keyed.IdempotencyKey == "" {
		keyed = recs[keyed.Seq]
	}
	for _, f := range []ledger.Filter{
		{Kind: ledger.KindRejected},
		{Kind: ledger.KindRejected, Descending: true, Limit: 7},
		{Outcome: ledger.OutcomeError, Limit: ledger.MaxLimit},
		{Outcome: ledger.OutcomeDenied, Target: "prod"},
		{Outcome: ledger.OutcomeInterrupted},
		{Service: "svc-7", Outcome: ledger.OutcomeError, Descending: true},
		{Kind: ledger.KindResult, Outcome: ledger.OutcomeOK, Service: "svc-3", Target: "edge", Limit: ledger.MaxLimit},
		{IdempotencyKey: keyed.IdempotencyKey, Limit: ledger.MaxLimit},
		{IdempotencyKey: "key-never-used"},
		{Action: "scale", Descending: true},
		{Action: "halt", Kind: ledger.KindResult, Outcome: ledger.OutcomeOK, Target: "edge", Descending: true, Limit: 1},
		{Since: recs[len(recs)-300].Time, Until: recs[len(recs)-100].Time, Limit: 90},
		{Target: "edge", Descending: true, Limit: ledger.MaxLimit},
		{Targets: []string{"prod"}, Descending: true, Limit: 200},
		{Targets: []string{"staging"}},
		{Targets: []string{"prod", "local", "prod"}, Limit: ledger.MaxLimit},
		{Targets: []string{"edge"}, Kind: ledger.KindRejected, Descending: true, Limit: 3},
		{Targets: []string{"edge"}, Kind: ledger.KindResult, Descending: true, Limit: ledger.MaxLimit},
	} {
		t.Run(fmt.Sprintf("%+v", f), func(t *testing.T) {
			got := collect(t, l, f)
			var want []ledger.Record
			for _, r := range recs {
				if matches(f, r) {
					want = append(want, r)
				}
			}
			if f.Descending {
				slices.Reverse(want)
			}
			if len(got) != len(want) {
				t.Fatalf("%d rows, want %d", len(got), len(want))
			}
			for i := range got {
				if got[i].Seq != want[i].Seq || got[i].Hash != want[i].Hash {
					t.Fatalf("row %d: seq %d, want %d", i, got[i].Seq, want[i].Seq)
				}
			}
		})
	}
}

// matches is Filter's meaning, for checking a backend's answer.
func matches(f ledger.Filter, r ledger.Record) bool {
	eq := func(want, got string) bool { return want == "" || want == got }
	return eq(f.Service, r.Service) && eq(f.Target, r.Target) && eq(f.Action, r.Action) &&
		eq(string(f.Kind), string(r.Kind)) && eq(string(f.Outcome), string(r.Outcome)) && eq(f.RunID, r.RunID) &&
		eq(f.IdempotencyKey, r.IdempotencyKey) && (f.UserID == "" || f.UserID == r.UserID || f.UserID == r.UserName) &&
		(f.Since.IsZero() || !r.Time.Before(f.Since)) && (f.Until.IsZero() || r.Time.Before(f.Until)) &&
		(f.Targets == nil || slices.Contains(f.Targets, r.Target) ||
			r.Target == ledger.GlobalScope && r.Action == "halt" && r.Kind != ledger.KindRejected)
}

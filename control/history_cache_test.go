package control_test

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// sharedLedgers open two ledgers on one storage, as two controller
// processes would: two SQLite ledgers on one file (each its own writer),
// two PostgreSQL pools on one database (replicas).
var sharedLedgers = []struct {
	name string
	open func(t *testing.T) (ledger.Ledger, ledger.Ledger)
}{
	{"sqlite", func(t *testing.T) (ledger.Ledger, ledger.Ledger) {
		path := filepath.Join(t.TempDir(), "ledger.db")
		var out [2]ledger.Ledger
		for i := range out {
			l, err := sqlite.Open(context.Background(), path)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			out[i] = l
		}
		return out[0], out[1]
	}},
	{"postgres", func(t *testing.T) (ledger.Ledger, ledger.Ledger) {
		dsn := pgtest.CreateDB(t)
		var out [2]ledger.Ledger
		for i := range out {
			l, err := postgres.Open(context.Background(), dsn)
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			out[i] = l
		}
		return out[0], out[1]
	}},
}

// wantRev is what a revision must hold.
type wantRev struct {
	image    string
	replicas int
	config   map[string]string
}

// checkRevisions: the service's history is revisions 1..len(want), each
// with want's spec (values restored), and no number twice.
func checkRevisions(t *testing.T, e *env, want []wantRev) {
	t.Helper()
	ctx := context.Background()
	hist, err := e.rt.History(ctx, "local", "web")
	if err != nil {
		t.Fatal(err)
	}
	if len(hist) != len(want) {
		t.Fatalf("history has %d revisions, want %d", len(hist), len(want))
	}
	for i, h := range hist {
		if n := len(want) - i; h.Revision != n || h.Problem != "" || h.Partial {
			t.Errorf("history[%d]: revision %d problem %q partial %v; want revision %d, whole", i, h.Revision, h.Problem, h.Partial, n)
		}
	}
	for i, w := range want {
		s, err := e.rt.RevisionSpec(ctx, "local", "web", i+1)
		if err != nil {
			t.Errorf("revision %d: %v", i+1, err)
			continue
		}
		if s.Image != w.image || s.Replicas != w.replicas || !maps.Equal(s.Config, w.config) || s.Env["MODE"] != plantEnv {
			t.Errorf("revision %d: image %s replicas %d config keys %d; want image %s replicas %d and its config",
				i+1, s.Image, s.Replicas, len(s.Config), w.image, w.replicas)
		}
	}
}

// TestRevisionCacheAcrossRuntimes: two runtimes (two processes' worth of
// ledger connections) take turns on one service. Each one's cached
// revision is stale whenever the other wrote last: the numbers must still
// run 1, 2, 3… and every scale or apply_config must build on the revision
// the other one recorded, rollbacks included.
func TestRevisionCacheAcrossRuntimes(t *testing.T) {
	for _, sl := range sharedLedgers {
		t.Run(sl.name, func(t *testing.T) {
			l1, l2 := sl.open(t)
			key, mem := newKey(t), providertest.NewMemory("local")
			envs := []*env{historyEnv(t, l1, key, mem), historyEnv(t, l2, key, mem)}
			cfg2 := map[string]string{"K": plantCfg2}
			steps := []struct {
				who  int
				req  control.Request
				want wantRev
			}{
				{0, control.Request{Action: workload.ActionStart, Service: "web", Spec: v1spec()}, wantRev{"example/app:1", 1, map[string]string{"K": plantCfg1}}},
				{1, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 3}, wantRev{"example/app:1", 3, map[string]string{"K": plantCfg1}}},
				{0, control.Request{Action: workload.ActionApplyConfig, Service: "web", Config: cfg2}, wantRev{"example/app:1", 3, cfg2}},
				{0, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 4}, wantRev{"example/app:1", 4, cfg2}},
				{1, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 5}, wantRev{"example/app:1", 5, cfg2}},
				{0, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 2}, wantRev{"example/app:1", 3, map[string]string{"K": plantCfg1}}},
				{1, control.Request{Action: workload.ActionApplyConfig, Service: "web", Config: cfg2}, wantRev{"example/app:1", 3, cfg2}},
				{1, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 5}, wantRev{"example/app:1", 5, cfg2}},
				{1, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 2}, wantRev{"example/app:1", 2, cfg2}},
				{0, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 6}, wantRev{"example/app:1", 6, cfg2}},
			}
			var want []wantRev
			for i, s := range steps {
				res, err := envs[s.who].do(t, s.req)
				if err != nil {
					t.Fatalf("step %d (%s by runtime %d): %v", i, s.req.Action, s.who, err)
				}
				want = append(want, s.want)
				if res.Revision != len(want) {
					t.Fatalf("step %d (%s by runtime %d): revision %d, want %d", i, s.req.Action, s.who, res.Revision, len(want))
				}
			}
			checkRevisions(t, envs[0], want)
			checkRevisions(t, envs[1], want)
			for _, e := range envs {
				assertNoPlant(t, "logs", e.logs.String())
			}
		})
	}
}

// TestRevisionCacheConcurrentReplicas: two runtimes on one PostgreSQL
// database, four callers each, scaling one service at once (the advisory
// lock serialises them across the two pools). Every successful scale
// records a number no other took, the numbers have no gap, and each
// revision's spec is its own request's replicas on the first start's spec.
func TestRevisionCacheConcurrentReplicas(t *testing.T) {
	l1, l2 := sharedLedgers[1].open(t)
	key, mem := newKey(t), providertest.NewMemory("local")
	envs := []*env{historyEnv(t, l1, key, mem), historyEnv(t, l2, key, mem)}
	envs[0].mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: v1spec()})
	const callers, each = 3, 3 // replicas 2..19: the default policy admits up to 20
	var mu sync.Mutex
	replicasOf := map[int]int{} // revision → the replicas its scale asked for
	var wg sync.WaitGroup
	for c := range 2 * callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			e := envs[c%2]
			for i := range each {
				n := 2 + c*each + i
				res, err := e.do(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: n})
				if err != nil {
					t.Errorf("scale to %d: %v", n, err)
					return
				}
				mu.Lock()
				if prev, dup := replicasOf[res.Revision]; dup {
					t.Errorf("revision %d recorded twice (scales to %d and %d)", res.Revision, prev, n)
				}
				replicasOf[res.Revision] = n
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	want := []wantRev{{"example/app:1", 1, map[string]string{"K": plantCfg1}}}
	for n := 2; n <= 1+2*callers*each; n++ {
		r, ok := replicasOf[n]
		if !ok {
			t.Fatalf("no scale recorded revision %d (%d recorded)", n, len(replicasOf))
		}
		want = append(want, wantRev{"example/app:1", r, map[string]string{"K": plantCfg1}})
	}
	checkRevisions(t, envs[1], want)
}

// faultLedger is a SQLite ledger whose AppendWithRevision (and
// AppendGuarded with a revision) fails as told,
// once: "refuse" (ledger.ErrRevisionNotStored, nothing written), "fail"
// (nothing written, the ledger unavailable) or "lost" (both rows
// committed, the answer lost: the caller sees an error).
type faultLedger struct {
	*sqlite.Ledger
	mu    sync.Mutex
	fault string
}

func (f *faultLedger) AppendWithRevision(ctx context.Context, r ledger.Record, rev ledger.Revision) (ledger.Record, error) {
	return f.appendWith(ctx, r, rev, f.Ledger.AppendWithRevision)
}

// AppendGuarded is the runtime's append of a result with its revision
// (the cache's plan checked in the append), failing as AppendWithRevision
// does when there is a revision.
func (f *faultLedger) AppendGuarded(ctx context.Context, r ledger.Record, rev *ledger.Revision, g ledger.Guard) (ledger.Record, error) {
	if rev == nil {
		return f.Ledger.AppendGuarded(ctx, r, nil, g)
	}
	return f.appendWith(ctx, r, *rev, func(ctx context.Context, r ledger.Record, rev ledger.Revision) (ledger.Record, error) {
		return f.Ledger.AppendGuarded(ctx, r, &rev, g)
	})
}

func (f *faultLedger) appendWith(ctx context.Context, r ledger.Record, rev ledger.Revision,
	appendFn func(context.Context, ledger.Record, ledger.Revision) (ledger.Record, error)) (ledger.Record, error) {
	f.mu.Lock()
	fault := f.fault
	f.fault = ""
	f.mu.Unlock()
	switch fault {
	case "refuse":
		return ledger.Record{}, fmt.Errorf("%w: injected", ledger.ErrRevisionNotStored)
	case "fail":
		return ledger.Record{}, errors.New("injected: ledger unavailable")
	case "lost":
		if _, err := appendFn(ctx, r, rev); err != nil {
			return ledger.Record{}, err
		}
		return ledger.Record{}, errors.New("injected: the commit's answer was lost")
	}
	return appendFn(ctx, r, rev)
}

func (f *faultLedger) inject(fault string) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.fault = fault
}

// TestRevisionCacheAfterFailures: when the result row's write fails, or
// its revision is refused, or it commits but the answer is lost, the
// next operation still takes the next free number and the right base;
// and a revision row no result row names (what a crash between the two
// writes of a ledger without RevisionAppender leaves) is ignored.
func TestRevisionCacheAfterFailures(t *testing.T) {
	l, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	fl := &faultLedger{Ledger: l}
	e := historyEnv(t, fl, newKey(t), nil)
	ctx := context.Background()
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: v1spec()}) // 1
	scale := func(n, wantRevision int) {
		t.Helper()
		res := e.mustDo(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: n})
		if res.Revision != wantRevision {
			t.Fatalf("scale to %d: revision %d, want %d", n, res.Revision, wantRevision)
		}
	}

	// Refused: the operation stands, its result row names no revision.
	fl.inject("refuse")
	scale(2, 0)
	if !strings.Contains(e.logs.String(), "its revision is not recorded") {
		t.Error("a refused revision was not logged")
	}
	// The newest change was not recorded: the next scale's revision is
	// partial (as without the cache), numbered after the last recorded.
	scale(3, 2)
	hist, err := e.rt.History(ctx, "local", "web")
	if err != nil || len(hist) != 2 || !hist[0].Partial || hist[0].Spec.Replicas != 3 {
		t.Fatalf("after a refused revision: %+v, %v; want revision 2 partial", hist, err)
	}
	// A start records a whole revision again.
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: v1spec()}) // 3

	// Failed: the result row is not written; the run stays open until
	// recovery closes it as interrupted; nothing took number 4.
	fl.inject("fail")
	scale(4, 0)
	if n, err := e.rt.Recover(ctx); err != nil || n != 1 {
		t.Fatalf("Recover: %d, %v; want the one open run closed", n, err)
	}
	scale(5, 4)

	// Lost: both rows are committed (revision 5) but the runtime saw an
	// error; the next scale must not take 5 again.
	fl.inject("lost")
	scale(6, 0)
	scale(7, 6)

	// An orphan revision row for number 7 (no result row names it) is
	// ignored: the next scale is 7, and history shows the real one.
	orphan := ledger.Revision{RunID: "run_orphan", Target: "local", Service: "web", Revision: 7, Spec: `{"v":1,"spec":{"name":"web","image":"evil/app:6"}}`}
	orphan.Digest = ledger.RevisionDigest(orphan.Spec, nil)
	if err := l.PutRevision(ctx, orphan); err != nil {
		t.Fatal(err)
	}
	scale(8, 7)

	hist, err = e.rt.History(ctx, "local", "web")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, h := range hist {
		got = append(got, fmt.Sprintf("%d:%s:%d:%v", h.Revision, h.Action, h.Spec.Replicas, h.Partial))
	}
	if w := "7:scale:8:false 6:scale:7:false 5:scale:6:false 4:scale:5:false 3:start:1:false 2:scale:3:true 1:start:1:false"; strings.Join(got, " ") != w {
		t.Errorf("history %q\n    want %q", strings.Join(got, " "), w)
	}
	for _, n := range []int{4, 5, 6, 7} {
		s, err := e.rt.RevisionSpec(ctx, "local", "web", n)
		if err != nil || s.Image != "example/app:1" || s.Config["K"] != plantCfg1 || s.Env["MODE"] != plantEnv {
			t.Errorf("revision %d is not built on revision 3: %+v, %v", n, s.Image, err)
		}
	}
	assertNoPlant(t, "logs", e.logs.String())
}

package control_test

import (
	"context"
	"fmt"
	"log/slog"
	"path/filepath"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/checkpoint"
	"github.com/alphaswarm/controller/ledger/postgres"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/policy/opa"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// BenchmarkRuntimeOverhead measures audited operations through the whole
// pipeline (validate, halt check, lock, intent fsync, no-op provider,
// result fsync) on the SQLite ledger, with 1 and 64 concurrent callers,
// each on its own service. It reports durable operations per second and
// the p50/p99 latency the runtime adds (the provider does nothing).
func BenchmarkRuntimeOverhead(b *testing.B) {
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("sqlite/callers=%d", callers), func(b *testing.B) {
			benchOverhead(b, newEnv(b, nil, nil), callers)
		})
	}
	// The same pipeline with signed checkpoints (defaults: every 1000 rows
	// or 10s) and one export sink (a JSON-lines file, fsynced per batch)
	// on, as serve runs by default plus a sink: compare with sqlite/ above.
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("sqlite+checkpoints+sink/callers=%d", callers), func(b *testing.B) {
			_, cp := checkpointed(b)
			benchOverhead(b, newEnvOn(b, cp, nil, nil), callers)
		})
	}
	// Paired: rounds of the same operations through a runtime on a bare
	// SQLite ledger and through one on a ledger wrapped with checkpoints
	// and a sink, alternating (and alternating which goes first), so load
	// drift weighs on both alike. Reports the median time ratio on/off
	// (bar: <= 1.05); aa/ is the same with two bare ledgers: the noise
	// floor of this machine in the same run.
	//
	// policy-vs-off: the example policies of deploy/policies loaded (issue
	// 20: bar <= 1.05), against the same runtime without; it also reports
	// policy-share, the part of the operations' time spent deciding
	// (policy.Evaluator.Evaluate, timed), which the load of the machine
	// distorts far less than a ratio of two wall times.
	// policy-trivial-vs-off: a bundle with one rule that never matches,
	// to tell the fixed cost of a policy from the examples'.
	for _, variant := range []string{"checkpoints+sink-vs-off", "policy-vs-off", "policy-trivial-vs-off", "aa"} {
		for _, callers := range []int{1, 64} {
			b.Run(fmt.Sprintf("sqlite/%s/callers=%d", variant, callers), func(b *testing.B) {
				off := newEnv(b, nil, nil)
				var on *env
				var timed *timedEvaluator
				switch variant {
				case "policy-vs-off", "policy-trivial-vs-off":
					dir := "../deploy/policies"
					if variant == "policy-trivial-vs-off" {
						dir = "../policy/opa/testdata/trivial"
					}
					engine, err := opa.Open(context.Background(), opa.Options{Paths: []string{dir}, Logger: slog.New(slog.DiscardHandler)})
					if err != nil {
						b.Fatal(err)
					}
					timed = &timedEvaluator{Engine: engine}
					off = newEvaluatorEnv(b, nil).env
					on = newEvaluatorEnv(b, timed).env
				case "aa":
					on = newEnv(b, nil, nil)
				default:
					_, cp := checkpointed(b)
					on = newEnvOn(b, cp, nil, nil)
				}
				onTime := pairedRounds(b, off, on, callers)
				if timed != nil {
					b.ReportMetric(float64(timed.total.Load())/float64(onTime*time.Duration(callers)), "policy-share")
				}
			})
		}
	}
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("postgres/callers=%d", callers), func(b *testing.B) {
			led, err := postgres.Open(context.Background(), pgtest.CreateDB(b))
			if err != nil {
				b.Fatal(err)
			}
			defer led.Close()
			benchOverhead(b, newEnvOn(b, led, nil, nil), callers)
		})
	}
	// nohistory: the same operations on ledgers that keep no revisions
	// (the runtime then records none), to tell the pipeline's own cost
	// from history's. Not the goal's figure: the goal is measured with
	// history on (sqlite/ and postgres/ above).
	for _, callers := range []int{1, 64} {
		b.Run(fmt.Sprintf("sqlite-nohistory/callers=%d", callers), func(b *testing.B) {
			led, err := sqlite.Open(context.Background(), filepath.Join(b.TempDir(), "ledger.db"))
			if err != nil {
				b.Fatal(err)
			}
			defer led.Close()
			benchOverhead(b, newEnvOn(b, noHistorySQLite{led}, nil, nil), callers)
		})
		b.Run(fmt.Sprintf("postgres-nohistory/callers=%d", callers), func(b *testing.B) {
			led, err := postgres.Open(context.Background(), pgtest.CreateDB(b))
			if err != nil {
				b.Fatal(err)
			}
			defer led.Close()
			benchOverhead(b, newEnvOn(b, noHistoryPostgres{led}, nil, nil), callers)
		})
	}
}

// noHistorySQLite and noHistoryPostgres are their ledgers, every
// capability kept (locks, head guard), but keeping no revisions.
type noHistorySQLite struct{ *sqlite.Ledger }

func (noHistorySQLite) KeepsRevisions() bool { return false }

type noHistoryPostgres struct{ *postgres.Ledger }

func (noHistoryPostgres) KeepsRevisions() bool { return false }

func benchOverhead(b *testing.B, e *env, callers int) {
	// Warm-up, every caller at once, as the timed loop runs: the services
	// exist, and the sessions the ledger opens for concurrent callers
	// (PostgreSQL's lock sessions) are open before the timer starts.
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := fmt.Sprintf("svc-%d", i)
			e.mustDo(b, control.Request{Action: workload.ActionStart, Service: svc, Spec: spec(svc, 1)})
			e.mustDo(b, control.Request{Action: workload.ActionScale, Service: svc, Replicas: 2})
		}()
	}
	wg.Wait()
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	per := max(b.N/callers, 1)
	b.ResetTimer()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			local := make([]time.Duration, 0, per)
			svc := fmt.Sprintf("svc-%d", c)
			for i := range per {
				t0 := time.Now()
				if _, err := e.rt.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionScale,
					Target: "local", Service: svc, Replicas: 1 + i%2}); err != nil {
					b.Error(err)
					return
				}
				local = append(local, time.Since(t0))
			}
			mu.Lock()
			lat = append(lat, local...)
			mu.Unlock()
		}()
	}
	wg.Wait()
	elapsed := b.Elapsed()
	b.StopTimer()
	slices.Sort(lat)
	if len(lat) == 0 {
		return
	}
	ops := float64(len(lat)) / elapsed.Seconds()
	b.ReportMetric(ops, "ops/s")
	b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
	b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	// The bound, right after in the same run: the same ledger appending the
	// last operation's two rows (intent, result) per operation, one after
	// the other, from as many callers, with nothing else around them
	// (appendRows).
	page, err := e.ledger.Query(context.Background(), ledger.Filter{Descending: true, Limit: 2})
	if err != nil || len(page.Records) != 2 {
		b.Fatalf("reading the rows of one operation back: %v", err)
	}
	rows := [2]ledger.Record{page.Records[1], page.Records[0]}
	for i, r := range rows {
		rows[i] = ledger.Record{RunID: r.RunID, Kind: r.Kind, UserID: r.UserID, Auth: r.Auth, UserName: r.UserName, Action: r.Action,
			Target: r.Target, Service: r.Service, Provider: r.Provider, RequestDigest: r.RequestDigest, Outcome: r.Outcome,
			Detail: r.Detail, Duration: r.Duration, PolicyDigest: r.PolicyDigest}
	}
	// And the revision row the result carried, in the result's append as
	// the runtime writes it (history on): the bound is the ledger writing
	// what the operation wrote.
	var rev *ledger.Revision
	if rs, ok := e.ledger.(ledger.RevisionStore); ok {
		if r, err := rs.Revision(context.Background(), rows[1].RunID); err == nil {
			rev = &r
		}
	}
	bound := boundOps(b, e.ledger, rows, rev, callers, per)
	b.ReportMetric(bound, "bound-ops/s")
	b.ReportMetric(100*ops/bound, "%-of-bound")
	if rev != nil {
		// The bound without the revision row, for comparison with the
		// runs of ledgers that keep no revisions.
		bound2 := boundOps(b, e.ledger, rows, nil, callers, per)
		b.ReportMetric(100*ops/bound2, "%-of-2-row-bound")
	}
}

// boundOps is the throughput of callers×per operations' rows appended
// with nothing around them (appendRows), each caller on its service.
func boundOps(b *testing.B, l ledger.Ledger, rows [2]ledger.Record, rev *ledger.Revision, callers, per int) float64 {
	var wg sync.WaitGroup
	t0 := time.Now()
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for range per {
				if err := appendRows(context.Background(), l, rows, rev, fmt.Sprintf("svc-%d", c)); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return float64(per*callers) / time.Since(t0).Seconds()
}

// appendRows appends one operation's rows again (intent, then result with
// rev when not nil), as service svc under a run id of their own, as the
// runtime's: one id for all (as the bound had until 2026-12-05) put every
// insert into the run-id indexes on one leaf page, a bound no real
// operation can meet.
func appendRows(ctx context.Context, l ledger.Ledger, rows [2]ledger.Record, rev *ledger.Revision, svc string) error {
	id := ledger.NewRunID()
	for i, r := range rows {
		r.RunID, r.Service = id, svc
		var err error
		if i == 1 && rev != nil {
			rv := *rev
			rv.RunID, rv.Service = id, svc
			_, err = ledger.AppendWithRevision(ctx, l, r, rv)
		} else {
			_, err = l.Append(ctx, r)
		}
		if err != nil {
			return err
		}
	}
	return nil
}

// BenchmarkConcurrentServices runs 50 operations on 50 services against a
// provider that takes 200ms, and reports the wall time against one such
// operation alone (goal: < 2x).
func BenchmarkConcurrentServices(b *testing.B) {
	const n = 50
	mem := providertest.NewMemory("local")
	e := newEnv(b, mem, nil)
	for i := range n {
		e.mustDo(b, control.Request{Action: workload.ActionStart, Service: fmt.Sprintf("svc-%d", i), Spec: spec(fmt.Sprintf("svc-%d", i), 1)})
	}
	mem.Delay = 200 * time.Millisecond
	var ratios []float64
	for b.Loop() {
		t0 := time.Now()
		e.mustDo(b, control.Request{Action: workload.ActionRestart, Service: "svc-0"})
		one := time.Since(t0)
		t0 = time.Now()
		var wg sync.WaitGroup
		for i := range n {
			wg.Add(1)
			go func() {
				defer wg.Done()
				e.mustDo(b, control.Request{Action: workload.ActionRestart, Service: fmt.Sprintf("svc-%d", i)})
			}()
		}
		wg.Wait()
		ratios = append(ratios, float64(time.Since(t0))/float64(one))
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "x-one-op")
}

// checkpointed is a SQLite ledger wrapped as serve wraps it, with one jsonl
// export sink; closed by b.Cleanup.
func checkpointed(b *testing.B) (*sqlite.Ledger, *checkpoint.Ledger) {
	dir := b.TempDir()
	led, err := sqlite.Open(context.Background(), filepath.Join(dir, "ledger.db"))
	if err != nil {
		b.Fatal(err)
	}
	key, _, err := checkpoint.LoadOrCreateKey(filepath.Join(dir, "checkpoint.key"))
	if err != nil {
		b.Fatal(err)
	}
	sink, err := checkpoint.OpenSink(checkpoint.SinkConfig{Name: "siem", Type: "jsonl", Path: filepath.Join(dir, "export", "rows.jsonl")})
	if err != nil {
		b.Fatal(err)
	}
	cp, _, err := checkpoint.Open(context.Background(), led, checkpoint.Options{Key: key, File: filepath.Join(dir, "cp", "checkpoints.jsonl"),
		Sinks: []checkpoint.Sink{sink}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() {
		cp.Close()
		if st := cp.Stats(); st.Checkpoints == 0 || st.Sinks[0].Cursor == 0 {
			b.Errorf("checkpoints and export did not run: %+v", st)
		}
	})
	return led, cp
}

// pairedRounds reports the median ratio on/off and returns the time of
// on's rounds.
func pairedRounds(b *testing.B, off, on *env, callers int) time.Duration {
	var ratios []float64
	var onTime time.Duration
	for i := 0; b.Loop(); i++ {
		var tOff, tOn time.Duration
		if i%2 == 0 { // alternate which goes first
			tOff, tOn = roundTime(b, off, callers, 50), roundTime(b, on, callers, 50)
		} else {
			tOn, tOff = roundTime(b, on, callers, 50), roundTime(b, off, callers, 50)
		}
		ratios = append(ratios, float64(tOn)/float64(tOff))
		onTime += tOn
	}
	slices.Sort(ratios)
	b.ReportMetric(ratios[len(ratios)/2], "x-off")
	return onTime
}

// timedEvaluator is an opa.Engine that adds up the time spent in Evaluate.
type timedEvaluator struct {
	*opa.Engine
	total atomic.Int64 // ns
}

func (t *timedEvaluator) Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error) {
	t0 := time.Now()
	defer func() { t.total.Add(int64(time.Since(t0))) }()
	return t.Engine.Evaluate(ctx, in)
}

// roundTime runs callers×perCaller scale operations (each caller on its
// own service, started on first use) and returns the wall time.
func roundTime(b *testing.B, e *env, callers, perCaller int) time.Duration {
	for i := range callers {
		svc := fmt.Sprintf("svc-%d", i)
		if _, err := e.rt.Status(context.Background(), "local", svc); err != nil {
			e.mustDo(b, control.Request{Action: workload.ActionStart, Service: svc, Spec: spec(svc, 1)})
		}
	}
	t0 := time.Now()
	var wg sync.WaitGroup
	for c := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			svc := fmt.Sprintf("svc-%d", c)
			for i := range perCaller {
				if _, err := e.rt.Do(context.Background(), control.Request{Principal: alice, Action: workload.ActionScale,
					Target: "local", Service: svc, Replicas: 1 + i%2}); err != nil {
					b.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	return time.Since(t0)
}

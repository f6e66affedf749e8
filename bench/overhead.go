package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"runtime/pprof"
	"slices"
	"sync"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// The runtime's own cost: audited scale operations through control.Runtime
// (validate, halt switch, admission, lock, durable intent, a provider that
// does nothing, durable result, log line) against the bound, the same
// ledger appending the same two rows per operation with nothing else
// around it (appendRows: each operation's rows under a run id of its own,
// as the runtime's, and with history on the result's revision row in its
// append, as the runtime writes it). Rounds of each alternate (and alternate which goes first), so
// that the load of the machine weighs on both alike; the ratio is the
// median of the per-pair ratios.

var benchUser = control.Principal{User: "bench", Name: "bench", Auth: "token:bench", Role: "admin"}

type overhead struct {
	rt   *control.Runtime
	led  ledger.Ledger
	stat *pgStat          // -pgstat; nil: not asked for, or not PostgreSQL
	rows [2]ledger.Record // an intent and a result the runtime wrote, replayed by the bound
	rev  *ledger.Revision // the result's revision row (history on), replayed with it
}

func newOverhead(ctx context.Context, led ledger.Ledger, callers int) (*overhead, error) {
	creds := credentials.FromMap(nil)
	// As serve logs: a text line per operation through the redacting
	// handler (to nowhere).
	log := slog.New(credentials.NewHandler(slog.NewTextHandler(io.Discard, nil), creds))
	rt, err := control.New(ctx, control.Options{Ledger: led, Credentials: creds, Logger: log,
		Targets: []control.Target{{Name: "local", Provider: providertest.NewMemory("local")}}})
	if err != nil {
		return nil, err
	}
	o := &overhead{rt: rt, led: led}
	for i := range callers {
		svc := fmt.Sprintf("svc-%d", i)
		if _, err := rt.Do(ctx, control.Request{Principal: benchUser, Action: workload.ActionStart, Target: "local", Service: svc,
			Spec: &workload.DeploymentSpec{Name: svc, Image: "example/app:1", Replicas: 1}}); err != nil {
			rt.Close()
			return nil, err
		}
	}
	if _, err := o.op(ctx, "svc-0", 2); err != nil {
		rt.Close()
		return nil, err
	}
	page, err := led.Query(ctx, ledger.Filter{Descending: true, Limit: 2})
	if err != nil || len(page.Records) != 2 {
		rt.Close()
		return nil, fmt.Errorf("reading the rows of one operation back: %v", err)
	}
	for i, r := range []ledger.Record{page.Records[1], page.Records[0]} {
		o.rows[i] = ledger.Record{RunID: r.RunID, Kind: r.Kind, UserID: r.UserID, Auth: r.Auth, UserName: r.UserName, Action: r.Action,
			Target: r.Target, Service: r.Service, Provider: r.Provider, RequestDigest: r.RequestDigest, IdempotencyKey: r.IdempotencyKey,
			Outcome: r.Outcome, ErrorCode: r.ErrorCode, Message: r.Message, Detail: r.Detail, Duration: r.Duration}
	}
	if rs, ok := led.(ledger.RevisionStore); ok {
		if rev, err := rs.Revision(ctx, o.rows[1].RunID); err == nil {
			o.rev = &rev
		}
	}
	return o, nil
}

func (o *overhead) close() { o.rt.Close() }

func (o *overhead) op(ctx context.Context, svc string, replicas int) (control.Result, error) {
	return o.rt.Do(ctx, control.Request{Principal: benchUser, Action: workload.ActionScale, Target: "local", Service: svc, Replicas: replicas})
}

// round runs callers × per units of work at once, each caller on its own
// service, and returns the wall time and every unit's latency. A unit is
// one operation through the runtime, or (bound) the same operation's two
// rows appended one after the other.
func (o *overhead) round(ctx context.Context, callers, per int, bound bool) (time.Duration, []time.Duration, error) {
	var mu sync.Mutex
	var lat []time.Duration
	var firstErr error
	var wg sync.WaitGroup
	t0 := time.Now()
	for c := range callers {
		wg.Add(1)
		go pprof.Do(ctx, pprof.Labels("round", roundKind(bound)), func(ctx context.Context) {
			defer wg.Done()
			local := make([]time.Duration, 0, per)
			svc := fmt.Sprintf("svc-%d", c)
			if bound {
				// The bound's rows go to services of their own (names
				// of the same length): appended under the runtime's
				// services, each bound round moved their revision heads
				// as another writer would, and every runtime round began
				// by re-reading each service's history — a cost of
				// sharing a ledger with another writer, not of the
				// runtime.
				svc = fmt.Sprintf("svb-%d", c)
			}
			var err error
			for i := 0; i < per && err == nil; i++ {
				s := time.Now()
				if bound {
					err = o.appendRows(ctx, svc)
				} else {
					_, err = o.op(ctx, svc, 1+i%2)
				}
				local = append(local, time.Since(s))
			}
			mu.Lock()
			lat = append(lat, local...)
			if err != nil && firstErr == nil {
				firstErr = err
			}
			mu.Unlock()
		})
	}
	wg.Wait()
	elapsed := time.Since(t0)
	if o.stat != nil && firstErr == nil {
		firstErr = o.stat.collect(ctx, bound)
	}
	return elapsed, lat, firstErr
}

// roundKind is the CPU profile label of a round's callers (-cpuprofile).
func roundKind(bound bool) string {
	if bound {
		return "bound"
	}
	return "runtime"
}

// appendRows appends the rows of one operation again, as service svc,
// under a run id of their own as the runtime's (one id for all, as the
// bound had until 2026-12-05, put every run-id index insert on one page):
// the intent, then the result with its revision row when there is one.
func (o *overhead) appendRows(ctx context.Context, svc string) error {
	id := ledger.NewRunID()
	in, res := o.rows[0], o.rows[1]
	in.RunID, in.Service, res.RunID, res.Service = id, svc, id, svc
	if _, err := o.led.Append(ctx, in); err != nil || o.rev == nil {
		if err == nil {
			_, err = o.led.Append(ctx, res)
		}
		return err
	}
	rev := *o.rev
	rev.RunID, rev.Service = id, svc
	_, err := ledger.AppendWithRevision(ctx, o.led, res, rev)
	return err
}

type overheadResult struct {
	callers             int
	opsPerSec, boundOps float64       // medians over the rounds
	ratio               float64       // median of runtime/bound throughput per pair
	p50, p99            time.Duration // runtime operation latency, all rounds
	boundP50, boundP99  time.Duration // two appends alone
	revisionRow         bool          // the bound's result carried a revision row
}

// measureOverhead alternates rounds of runtime operations and of the bound.
func measureOverhead(ctx context.Context, led ledger.Ledger, stat *pgStat, callers, pairs, per int) (overheadResult, error) {
	o, err := newOverhead(ctx, led, callers)
	if err != nil {
		return overheadResult{}, err
	}
	defer o.close()
	o.stat = stat
	res := overheadResult{callers: callers, revisionRow: o.rev != nil}
	var ops, bops, ratios []float64
	var lat, blat []time.Duration
	// One warm-up round of each (connections, page cache, statements).
	for _, b := range []bool{false, true} {
		if _, _, err := o.round(ctx, callers, max(per/4, 1), b); err != nil {
			return res, err
		}
	}
	if o.stat != nil {
		if err := o.stat.reset(ctx); err != nil { // setup and warm-up
			return res, err
		}
	}
	for i := range pairs {
		var rt, bt time.Duration
		var rl, bl []time.Duration
		var err1, err2 error
		if i%2 == 0 {
			rt, rl, err1 = o.round(ctx, callers, per, false)
			bt, bl, err2 = o.round(ctx, callers, per, true)
		} else {
			bt, bl, err2 = o.round(ctx, callers, per, true)
			rt, rl, err1 = o.round(ctx, callers, per, false)
		}
		if err1 != nil {
			return res, err1
		}
		if err2 != nil {
			return res, err2
		}
		n := float64(callers * per)
		ops, bops = append(ops, n/rt.Seconds()), append(bops, n/bt.Seconds())
		ratios = append(ratios, bt.Seconds()/rt.Seconds())
		lat, blat = append(lat, rl...), append(blat, bl...)
	}
	res.opsPerSec, res.boundOps, res.ratio = medianF(ops), medianF(bops), medianF(ratios)
	res.p50, res.p99 = quantile(lat, 0.50), quantile(lat, 0.99)
	res.boundP50, res.boundP99 = quantile(blat, 0.50), quantile(blat, 0.99)
	return res, nil
}

func medianF(xs []float64) float64 {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func quantile(ds []time.Duration, q float64) time.Duration {
	if len(ds) == 0 {
		return 0
	}
	s := slices.Clone(ds)
	slices.Sort(s)
	return s[min(int(float64(len(s))*q), len(s)-1)]
}

// fsyncLatency is the median time to write and fsync 4 KiB in dir: the
// floor under one durable append on this disk.
func fsyncLatency(dir string, n int) (time.Duration, error) {
	f, err := os.CreateTemp(dir, "fsync-")
	if err != nil {
		return 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	var ds []time.Duration
	for i := range n {
		t0 := time.Now()
		if _, err := f.WriteAt(buf, int64(i%16)*4096); err != nil {
			return 0, err
		}
		if err := f.Sync(); err != nil {
			return 0, err
		}
		ds = append(ds, time.Since(t0))
	}
	return quantile(ds, 0.5), nil
}

package control_test

import (
	"context"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/ledger/postgres"
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
}

func benchOverhead(b *testing.B, e *env, callers int) {
	for i := range callers {
		e.mustDo(b, control.Request{Action: workload.ActionStart, Service: fmt.Sprintf("svc-%d", i), Spec: spec(fmt.Sprintf("svc-%d", i), 1)})
	}
	var mu sync.Mutex
	lat := make([]time.Duration, 0, b.N)
	per := max(b.N/callers, 1)
	b.ResetTimer()
	var wg sync.WaitGroup
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
	if len(lat) > 0 {
		b.ReportMetric(float64(len(lat))/elapsed.Seconds(), "ops/s")
		b.ReportMetric(float64(lat[len(lat)/2].Microseconds()), "p50-µs")
		b.ReportMetric(float64(lat[len(lat)*99/100].Microseconds()), "p99-µs")
	}
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

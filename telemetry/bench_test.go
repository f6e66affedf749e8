package telemetry

import (
	"context"
	"fmt"
	"iter"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// BenchmarkFanOut500 has 500 subscribers on one key and an upstream that
// yields b.N samples as fast as the hub takes them. values/s is samples
// delivered to subscribers per second, summed over all of them; dropped/op
// is how many of the 500·b.N copies slow subscribers lost (delivered plus
// dropped is checked to be exactly 500·b.N).
func BenchmarkFanOut500(b *testing.B) {
	for _, buffer := range []int{DefaultBuffer, 1024} {
		b.Run(fmt.Sprintf("buffer=%d", buffer), func(b *testing.B) {
			benchFanOut(b, 500, buffer)
		})
	}
}

func benchFanOut(b *testing.B, subs, buffer int) {
	const key = "svc"
	start := make(chan struct{})
	n := b.N
	open := func(ctx context.Context, key string) iter.Seq2[workload.MetricSample, error] {
		return func(yield func(workload.MetricSample, error) bool) {
			select {
			case <-start:
			case <-ctx.Done():
				return
			}
			for i := range n {
				if !yield(workload.MetricSample{Service: key, Instances: i, CPUPercent: 12.5}, nil) {
					return
				}
			}
		}
	}
	h := NewMetricsHub(open, WithBuffer[workload.MetricSample](buffer))
	defer h.Close()

	var delivered, dropped atomic.Int64
	var wg sync.WaitGroup
	for range subs {
		wg.Go(func() {
			var got, lost int64
			for v, err := range h.Subscribe(context.Background(), key) {
				if err != nil {
					b.Error(err)
					return
				}
				got++
				lost += int64(v.Dropped)
			}
			delivered.Add(got)
			dropped.Add(lost)
		})
	}
	deadline := time.Now().Add(time.Minute)
	for h.Subscribers(key) < subs {
		if time.Now().After(deadline) {
			b.Fatal("subscribers never joined")
		}
		time.Sleep(100 * time.Microsecond)
	}

	b.ResetTimer()
	close(start)
	wg.Wait() // the upstream ends after n samples; every subscriber drains
	b.StopTimer()

	if total := delivered.Load() + dropped.Load(); total != int64(subs)*int64(n) {
		b.Fatalf("delivered %d + dropped %d = %d, want %d", delivered.Load(), dropped.Load(), total, subs*n)
	}
	secs := b.Elapsed().Seconds()
	b.ReportMetric(float64(delivered.Load())/secs, "values/s")
	b.ReportMetric(float64(n)/secs, "upstream-values/s")
	b.ReportMetric(float64(dropped.Load())/float64(n), "dropped/op")
}

package docker

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// TestMetricsFanOut: two callers watching the same service share one
// Engine stats stream per container; burning CPU shows in the samples;
// the upstreams close when the callers leave.
func TestMetricsFanOut(t *testing.T) {
	t.Parallel()
	p, name, ctx, _ := startService(t, "metrics", 2)
	ids, _ := runningIDs(ctx, name)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var maxCPU [2]float64
	var samples [2][]string
	var streamErr [2]error
	const busy = 25.0 // percent of a core; an idle replica shows ~0
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s, err := range p.StreamMetrics(mctx, name) {
				mu.Lock()
				if err != nil {
					streamErr[i] = err
					mu.Unlock()
					return
				}
				samples[i] = append(samples[i], fmt.Sprintf("%d:%.0f%%", s.Instances, s.CPUPercent))
				bad := s.Instances != 2 || s.MemoryBytes == 0 || s.Service != workload.ServiceID(testTarget, name)
				if bad {
					streamErr[i] = fmt.Errorf("sample %+v", s)
				}
				maxCPU[i] = max(maxCPU[i], s.CPUPercent)
				done := bad || maxCPU[i] > busy
				mu.Unlock()
				if done {
					return
				}
			}
		}()
	}
	// Two callers, two containers: two upstreams, each with two
	// subscribers.
	waitFor(t, 10*time.Second, "both callers on each container's one upstream", func() (bool, string) {
		var counts []int
		ok := true
		for _, in := range p.mustSnapshot(t, name) {
			n := p.stats.Subscribers(in.id)
			counts = append(counts, n)
			ok = ok && n == 2
		}
		return ok && p.stats.Upstreams() == 2, fmt.Sprintf("subscribers %v, %d upstreams", counts, p.stats.Upstreams())
	})
	// Burn a core in one replica, again and again, until both callers saw it.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	burnErrs := make(chan string, 16)
	go func() {
		for mctx.Err() == nil {
			out, code, err := dockerExec(mctx, ids[0], "/workload", "get", "http://127.0.0.1:8080/burn?ms=2500")
			if (err != nil || code != 0) && mctx.Err() == nil {
				select {
				case burnErrs <- fmt.Sprintf("exit %d %v %s", code, err, out):
				default:
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		t.Errorf("no sample showed the CPU burn: samples %v", samples)
		mu.Unlock()
		select {
		case e := <-burnErrs:
			t.Errorf("burn: %s", e)
		default:
		}
	}
	cancel()
	wg.Wait()
	for i := range 2 {
		if streamErr[i] != nil || maxCPU[i] <= busy {
			t.Errorf("caller %d: samples %v, max CPU %.1f%%, err %v", i, samples[i], maxCPU[i], streamErr[i])
		}
	}
	waitFor(t, 5*time.Second, "the upstreams to close", func() (bool, string) {
		return p.stats.Upstreams() == 0, fmt.Sprintf("%d upstreams", p.stats.Upstreams())
	})
}

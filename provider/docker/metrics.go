package docker

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"iter"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// metricsInterval is how often StreamMetrics yields a sample; the Engine
// samples each container once a second.
const metricsInterval = time.Second

// containerSample is one Engine stats reading of one container.
type containerSample struct {
	got        time.Time // when the provider received it
	cpuPercent float64   // 100 = one core
	mem        uint64
	memLimit   uint64
	rx, tx     uint64
	pids       uint64
}

// openStats is the telemetry hub's upstream: one Engine stats stream for
// one container, however many StreamMetrics callers watch it.
func (p *Provider) openStats(ctx context.Context, id string) iter.Seq2[containerSample, error] {
	return func(yield func(containerSample, error) bool) {
		res, err := p.eng.ContainerStats(ctx, id, client.ContainerStatsOptions{Stream: true})
		if err != nil {
			if ctx.Err() == nil {
				yield(containerSample{}, provider.Wrap(Name, p.classifier, err, "stats of container "+shortID(id)))
			}
			return
		}
		defer res.Body.Close()
		dec := json.NewDecoder(res.Body)
		for {
			var s container.StatsResponse
			if err := dec.Decode(&s); err != nil {
				if ctx.Err() == nil && !errors.Is(err, io.EOF) && !errors.Is(err, io.ErrUnexpectedEOF) {
					yield(containerSample{}, provider.Wrap(Name, p.classifier, err, "stats of container "+shortID(id)))
				}
				return
			}
			if s.Read.IsZero() || s.Read.Year() < 2000 {
				continue // the container is not running
			}
			if !yield(sampleOf(&s), nil) {
				return
			}
		}
	}
}

// sampleOf computes what the docker CLI shows from one stats reading:
// CPU % from the deltas against the previous reading the Engine includes,
// memory without the page cache, network summed over interfaces.
func sampleOf(s *container.StatsResponse) containerSample {
	out := containerSample{got: time.Now(), memLimit: s.MemoryStats.Limit, pids: s.PidsStats.Current}
	cpuDelta := float64(s.CPUStats.CPUUsage.TotalUsage) - float64(s.PreCPUStats.CPUUsage.TotalUsage)
	sysDelta := float64(s.CPUStats.SystemUsage) - float64(s.PreCPUStats.SystemUsage)
	online := float64(s.CPUStats.OnlineCPUs)
	if online == 0 {
		online = float64(len(s.CPUStats.CPUUsage.PercpuUsage))
	}
	if s.PreCPUStats.SystemUsage != 0 && cpuDelta > 0 && sysDelta > 0 {
		out.cpuPercent = cpuDelta / sysDelta * online * 100
	}
	mem := s.MemoryStats.Usage
	cache := s.MemoryStats.Stats["total_inactive_file"] // cgroup v1
	if v, ok := s.MemoryStats.Stats["inactive_file"]; ok && cache == 0 {
		cache = v // cgroup v2
	}
	if cache < mem {
		mem -= cache
	}
	out.mem = mem
	for _, n := range s.Networks {
		out.rx += n.RxBytes
		out.tx += n.TxBytes
	}
	return out
}

// StreamMetrics implements provider.Provider: every second, the latest
// Engine stats of each running replica summed into one sample. Each
// container's stats stream is opened once, through the provider's
// telemetry hub, however many callers watch the service. The stream
// follows replicas as they come and go, yields an Unavailable error if the
// Engine goes away, a NotFound error if the service is stopped, and ends
// when ctx ends or the caller stops.
func (p *Provider) StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error] {
	return func(yield func(workload.MetricSample, error) bool) {
		if err := workload.CheckName("name", name); err != nil {
			yield(workload.MetricSample{}, err)
			return
		}
		if err := p.cache.waitReady(ctx); err != nil {
			yield(workload.MetricSample{}, err)
			return
		}
		if _, _, ok := p.cache.snapshot(name); !ok {
			yield(workload.MetricSample{}, provider.NotFound(Name, "service %s not found on docker target %s", name, p.target))
			return
		}
		ctx, cancel := context.WithCancel(ctx)
		var wg sync.WaitGroup
		defer func() {
			cancel()
			wg.Wait()
		}()

		var mu sync.Mutex
		latest := map[string]containerSample{}
		ended := map[string]bool{}
		errs := make(chan error, 1)
		subs := map[string]context.CancelFunc{}

		subscribedAt := map[string]time.Time{}
		subscribe := func(id string) {
			sctx, scancel := context.WithCancel(ctx)
			subs[id] = scancel
			if _, ok := subscribedAt[id]; !ok {
				subscribedAt[id] = time.Now()
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				for v, err := range p.stats.Subscribe(sctx, id) {
					if err != nil {
						// A replica removed mid-stream just stops
						// reporting; an Engine gone away ends the stream.
						if c := classify(err); c == workload.Unavailable || c == workload.Timeout {
							select {
							case errs <- err:
							default:
							}
						}
						break
					}
					mu.Lock()
					latest[id] = v
					mu.Unlock()
				}
				mu.Lock()
				ended[id] = true
				mu.Unlock()
			}()
		}
		reconcile := func() bool {
			_, insts, ok := p.cache.snapshot(name)
			if !ok {
				return false
			}
			want := map[string]bool{}
			for _, in := range insts {
				if in.state == container.StateRunning && !in.terminating {
					want[in.id] = true
				}
			}
			mu.Lock()
			for id := range ended {
				if c := subs[id]; c != nil {
					c()
					delete(subs, id)
				}
			}
			clear(ended)
			for id := range latest {
				if !want[id] {
					delete(latest, id)
				}
			}
			mu.Unlock()
			for id, c := range subs {
				if !want[id] {
					c()
					delete(subs, id)
					delete(subscribedAt, id)
				}
			}
			for id := range want {
				if subs[id] == nil {
					subscribe(id)
				}
			}
			return true
		}
		if !reconcile() {
			yield(workload.MetricSample{}, provider.NotFound(Name, "service %s not found on docker target %s", name, p.target))
			return
		}
		ticker := time.NewTicker(metricsInterval)
		defer ticker.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case err := <-errs:
				yield(workload.MetricSample{}, provider.Wrap(Name, p.classifier, err, "metrics of "+name))
				return
			case <-ticker.C:
			}
			if !reconcile() {
				yield(workload.MetricSample{}, provider.NotFound(Name, "service %s was stopped", name))
				return
			}
			sample := workload.MetricSample{
				Service:    p.serviceID(name),
				Time:       time.Now().UTC(),
				Resolution: workload.Duration(metricsInterval),
			}
			mu.Lock()
			// A replica's first reading takes up to two Engine sampling
			// periods; hold the sample back until every replica has
			// reported, for a while, so that it counts them all.
			waiting := false
			for id := range subs {
				if _, ok := latest[id]; !ok && time.Since(subscribedAt[id]) < 3*metricsInterval {
					waiting = true
				}
			}
			if waiting {
				mu.Unlock()
				continue
			}
			for _, s := range latest {
				if time.Since(s.got) > 5*metricsInterval {
					continue
				}
				sample.Instances++
				sample.CPUPercent += s.cpuPercent
				sample.MemoryBytes += s.mem
				sample.MemoryLimitBytes += s.memLimit
				sample.NetRxBytes += s.rx
				sample.NetTxBytes += s.tx
			}
			mu.Unlock()
			if sample.Instances == 0 && len(subs) > 0 {
				continue // the replicas' first readings are on their way
			}
			if !yield(sample, nil) {
				return
			}
		}
	}
}

// StatsStreams is the number of Engine stats streams open: one per watched
// container, however many callers watch it.
func (p *Provider) StatsStreams() int { return p.stats.Upstreams() }

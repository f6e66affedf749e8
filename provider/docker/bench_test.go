package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	cerrdefs "github.com/containerd/errdefs"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider/docker/dockertest"
	"github.com/alphaswarm/controller/workload"
)

// The benchmarks compare the provider with the docker CLI doing the same
// on the same service, in one run:
//
//	go test ./provider/docker -run '^$' -bench . -benchtime 5x
//
// Each reports provider-ms/op, cli-ms/op and provider/cli (the ratio).

func reportVsCLI(b *testing.B, prov, cli time.Duration) {
	n := float64(b.N)
	pm := float64(prov.Microseconds()) / 1000 / n
	cm := float64(cli.Microseconds()) / 1000 / n
	b.ReportMetric(pm, "provider-ms/op")
	b.ReportMetric(cm, "cli-ms/op")
	b.ReportMetric(pm/cm, "provider/cli")
	b.Logf("provider %.1f ms/op, docker CLI %.1f ms/op, ratio %.2f (n=%d)", pm, cm, pm/cm, b.N)
}

// BenchmarkRestart: provider Restart of a one-replica service (a new
// container replaces the old one, start waited for) against `docker
// restart` of the same service's container.
func BenchmarkRestart(b *testing.B) {
	requireDocker(b)
	p := openProvider(b, nil)
	name := uniqueName("bench-restart")
	cleanupService(b, p, name)
	ctx := context.Background()
	if _, err := p.Start(ctx, testSpec(name, 1, false)); err != nil {
		b.Fatal(err)
	}
	var prov, drained, cli time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		st, err := p.Restart(ctx, name)
		prov += time.Since(t0)
		if err != nil || st.Phase != workload.Running {
			b.Fatalf("Restart: %+v %v", st, err)
		}
		p.drains.Wait() // the replaced container, stopping in the background
		drained += time.Since(t0)
		ids, err := runningIDs(ctx, name)
		if err != nil || len(ids) != 1 {
			b.Fatalf("docker ps: %v %v", ids, err)
		}
		t1 := time.Now()
		if _, err := dockerCLI(ctx, "restart", ids[0]); err != nil {
			b.Fatal(err)
		}
		cli += time.Since(t1)
	}
	b.StopTimer()
	reportVsCLI(b, prov, cli)
	reportDrained(b, drained, cli)
}

// reportDrained adds the provider's time including the background drain of
// the containers it replaced or removed.
func reportDrained(b *testing.B, drained, cli time.Duration) {
	dm := float64(drained.Microseconds()) / 1000 / float64(b.N)
	cm := float64(cli.Microseconds()) / 1000 / float64(b.N)
	b.ReportMetric(dm, "provider+drain-ms/op")
	b.Logf("provider including the background drain: %.1f ms/op, ratio %.2f", dm, dm/cm)
}

// BenchmarkScale: provider Scale 1->2->1 (one replica added, started and
// waited for; then the highest stopped and removed) against `docker run
// -d` + `docker rm -f` of one container on the same network.
func BenchmarkScale(b *testing.B) {
	requireDocker(b)
	p := openProvider(b, nil)
	name := uniqueName("bench-scale")
	cleanupService(b, p, name)
	b.Cleanup(func() { sweep(context.Background(), name+"-cli") })
	ctx := context.Background()
	if _, err := p.Start(ctx, testSpec(name, 1, false)); err != nil {
		b.Fatal(err)
	}
	var prov, drained, cli time.Duration
	b.ResetTimer()
	for range b.N {
		t0 := time.Now()
		if st, err := p.Scale(ctx, name, 2); err != nil || st.Phase != workload.Running {
			b.Fatalf("Scale(2): %+v %v", st, err)
		}
		if st, err := p.Scale(ctx, name, 1); err != nil || st.Phase != workload.Running {
			b.Fatalf("Scale(1): %+v %v", st, err)
		}
		prov += time.Since(t0)
		p.drains.Wait() // the removed replica, stopping in the background
		drained += time.Since(t0)
		t1 := time.Now()
		out, err := dockerCLI(ctx, "run", "-d", "--network", p.networkName(name),
			"--label", labelTarget+"="+testTarget, "--label", labelService+"="+name+"-cli", testImage)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dockerCLI(ctx, "rm", "-f", strings.TrimSpace(out)); err != nil {
			b.Fatal(err)
		}
		cli += time.Since(t1)
	}
	b.StopTimer()
	reportVsCLI(b, prov, cli)
	reportDrained(b, drained, cli)
}

// BenchmarkStatus200 measures Status over 200 services of two replicas
// each, answered from the event-fed cache. 200 real services would mean
// 600 containers on a 2-core machine, so the Engine is a fake (benchEngine)
// that lists and inspects 600 synthetic containers and streams synthetic
// events: everything else is the real path, the cache's session, its
// rebuild from labels, the event handling and the inspections the events
// trigger. A writer feeds ~2000 container events/s (start, die, health)
// meanwhile. Reports p50/p99 in µs.
func BenchmarkStatus200(b *testing.B) {
	eng := newBenchEngine(200, 2)
	opts := Options{}
	if err := opts.defaults(testTarget); err != nil {
		b.Fatal(err)
	}
	p := newProvider(testTarget, opts, credentials.FromMap(nil), eng, "bench", nil)
	defer p.Close()
	ctx := context.Background()
	if err := p.cache.waitReady(ctx); err != nil {
		b.Fatal(err)
	}
	churnCtx, stop := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(500 * time.Microsecond)
		defer tick.Stop()
		actions := []events.Action{events.ActionStart, events.ActionHealthStatusHealthy, events.ActionStart}
		for i := 0; ; i++ {
			select {
			case <-churnCtx.Done():
				return
			case <-tick.C:
			}
			n := eng.names[i%len(eng.names)]
			m := events.Message{Type: events.ContainerEventType, Action: actions[i%len(actions)], TimeNano: time.Now().UnixNano(),
				Actor: events.Actor{ID: fakeID(n, i%2), Attributes: eng.labels[fakeID(n, i%2)]}}
			select {
			case eng.events <- m:
			case <-churnCtx.Done():
				return
			}
		}
	}()
	lat := make([]time.Duration, 0, b.N)
	b.ResetTimer()
	for i := range b.N {
		n := eng.names[i%len(eng.names)]
		t0 := time.Now()
		st, err := p.Status(ctx, n)
		lat = append(lat, time.Since(t0))
		if err != nil || len(st.Instances) != 2 || st.Phase != workload.Running {
			b.Fatalf("Status(%s): %+v %v", n, st, err)
		}
	}
	b.StopTimer()
	stop()
	wg.Wait()
	slices.Sort(lat)
	p50, p99 := lat[len(lat)/2], lat[len(lat)*99/100]
	b.ReportMetric(float64(p50.Nanoseconds())/1000, "p50-µs")
	b.ReportMetric(float64(p99.Nanoseconds())/1000, "p99-µs")
	b.Logf("status of 200 services from the cache: p50 %v, p99 %v, max %v (n=%d, %d inspections)", p50, p99, lat[len(lat)-1], b.N, eng.inspections.Load())
}

func fakeID(service string, i int) string {
	id := fmt.Sprintf("%x", service+"/"+strconv.Itoa(i))
	for len(id) < 64 {
		id += "0"
	}
	return id[:64]
}

// benchEngine is an Engine of synthetic containers: n services of r
// running replicas each, plus their anchors.
type benchEngine struct {
	engine      // not implemented: the benchmark uses none of the rest
	names       []string
	labels      map[string]map[string]string
	inspect     map[string]*container.InspectResponse
	events      chan events.Message
	inspections atomic.Int64
}

func newBenchEngine(n, r int) *benchEngine {
	e := &benchEngine{labels: map[string]map[string]string{}, inspect: map[string]*container.InspectResponse{}, events: make(chan events.Message)}
	p := &Provider{target: testTarget}
	now := time.Now().UTC().Format(time.RFC3339Nano)
	for i := range n {
		name := fmt.Sprintf("bench200-%03d", i)
		e.names = append(e.names, name)
		rec := &record{Spec: workload.DeploymentSpec{Name: name, Target: testTarget, Image: testImage, Replicas: r}}
		labels := p.baseLabels(name)
		labels[labelRole] = roleAnchor
		labels[labelGeneration] = "1"
		labels[labelSpec] = mustJSON(rec)
		id := fakeID(name, -1)
		e.labels[id] = labels
		e.inspect[id] = &container.InspectResponse{ID: id, Name: "/" + name + "-anchor-1", Created: now,
			State: &container.State{Status: container.StateCreated}, Config: &container.Config{Labels: labels}}
		for j := range r {
			id := fakeID(name, j)
			l := p.replicaLabels(rec, j)
			e.labels[id] = l
			e.inspect[id] = &container.InspectResponse{ID: id, Name: fmt.Sprintf("/%s-%d", name, j), Created: now,
				State: &container.State{Status: container.StateRunning, Running: true, StartedAt: now}, Config: &container.Config{Labels: l}}
		}
	}
	return e
}

func (e *benchEngine) Close() error       { return nil }
func (e *benchEngine) DaemonHost() string { return "bench" }

func (e *benchEngine) Events(ctx context.Context, _ client.EventsListOptions) client.EventsResult {
	errs := make(chan error, 1)
	go func() { <-ctx.Done(); errs <- ctx.Err() }()
	return client.EventsResult{Messages: e.events, Err: errs}
}

func (e *benchEngine) ContainerList(context.Context, client.ContainerListOptions) (client.ContainerListResult, error) {
	var out client.ContainerListResult
	for id, l := range e.labels {
		out.Items = append(out.Items, container.Summary{ID: id, Labels: l})
	}
	return out, nil
}

func (e *benchEngine) ContainerInspect(_ context.Context, id string, _ client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	e.inspections.Add(1)
	r, ok := e.inspect[id]
	if !ok {
		return client.ContainerInspectResult{}, cerrdefs.ErrNotFound.WithMessage("No such container: " + id)
	}
	return client.ContainerInspectResult{Container: *r}, nil
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// BenchmarkRestartFloor (issue 18, goal 3): provider Restart of a
// one-replica service with one published port (replace-then-retire: the
// new container is started and running before the old one is retired)
// against the floor a docker CLI user has for the same replacement, `docker
// run -d` of the new container + `docker rm -f` of the old one, measured in
// the same run on the same network with the same image, port and --init.
// It also measures the time with no ready replica during each restart from
// the Engine's events (dockertest.Downtime): the provider's Restart against
// `docker restart` of the peer container. And it profiles the provider's
// restart: Engine time by call (the cache's own inspections included) and
// the calls of the last restart on a timeline.
//
//	go test ./provider/docker -run '^$' -bench RestartFloor -benchtime 10x
func BenchmarkRestartFloor(b *testing.B) {
	requireDocker(b)
	p := openProvider(b, nil)
	rec := &engineRecorder{engine: p.eng}
	p.eng = rec
	name := uniqueName("bench-floor")
	cleanupService(b, p, name)
	peerLabel := labelService + "=" + name + "-peer"
	b.Cleanup(func() { sweep(context.Background(), name+"-peer") })
	ctx := context.Background()
	spec := testSpec(name, 1, false)
	spec.Ports = []workload.Port{{Container: 8080}}
	if _, err := p.Start(ctx, spec); err != nil {
		b.Fatal(err)
	}
	runArgs := []string{"--init", "--network", p.networkName(name), "-p", "127.0.0.1::8080",
		"--label", labelTarget + "=" + testTarget, "--label", peerLabel, testImage}
	peer, _, err := dockertest.Replace(ctx, "", runArgs...)
	if err != nil {
		b.Fatal(err)
	}
	var prov, floor, provDown, restartDown time.Duration
	var provGaps, restartGaps int
	b.ResetTimer()
	for i := range b.N {
		dt, err := dockertest.WatchDowntime(ctx, rawCli, labelService+"="+name)
		if err != nil {
			b.Fatal(err)
		}
		rec.start(i == b.N-1)
		t0 := time.Now()
		st, err := p.Restart(ctx, name)
		prov += time.Since(t0)
		rec.stop()
		if err != nil || st.Phase != workload.Running {
			b.Fatalf("Restart: %+v %v", st, err)
		}
		p.drains.Wait() // the old replica, stopping in the background
		down, gaps, err := dt.Stop()
		if err != nil {
			b.Fatal(err)
		}
		provDown, provGaps = provDown+down, provGaps+gaps

		var d time.Duration
		peer, d, err = dockertest.Replace(ctx, peer, runArgs...)
		if err != nil {
			b.Fatal(err)
		}
		floor += d

		dt, err = dockertest.WatchDowntime(ctx, rawCli, peerLabel)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := dockertest.CLI(ctx, "restart", peer); err != nil {
			b.Fatal(err)
		}
		down, gaps, err = dt.Stop()
		if err != nil {
			b.Fatal(err)
		}
		restartDown, restartGaps = restartDown+down, restartGaps+gaps
	}
	b.StopTimer()
	n := float64(b.N)
	ms := func(d time.Duration) float64 { return float64(d.Microseconds()) / 1000 / n }
	b.ReportMetric(ms(prov), "provider-ms/op")
	b.ReportMetric(ms(floor), "run+rm-ms/op")
	b.ReportMetric(ms(prov)/ms(floor), "provider/run+rm")
	b.ReportMetric(ms(provDown), "provider-down-ms/op")
	b.ReportMetric(ms(restartDown), "docker-restart-down-ms/op")
	b.Logf("restart: provider %.1f ms/op, docker run -d + docker rm -f %.1f ms/op, ratio %.3f (n=%d)", ms(prov), ms(floor), ms(prov)/ms(floor), b.N)
	b.Logf("no ready replica: provider %.1f ms/op in %d gaps, docker restart %.1f ms/op in %d gaps", ms(provDown), provGaps, ms(restartDown), restartGaps)
	if b.N > 1 { // the profile is too long for the benchmark's log (10 lines)
		fmt.Printf("BenchmarkRestartFloor n=%d: Engine calls during the provider's restarts (ms and calls per restart; the cache's inspections included):\n%s\ntimeline of the last restart:\n%s\n",
			b.N, rec.report(b.N), rec.timeline())
	}
}

// BenchmarkRestartHealth: provider Restart of a one-replica service with a
// health check (exec, every 300ms). It reports the restart's time and how
// long after the Engine reported the new replica healthy (its
// health_status event) the Restart answered: the latency of the readiness
// wait itself, as a share of the restart.
//
//	go test ./provider/docker -run '^$' -bench RestartHealth -benchtime 10x
func BenchmarkRestartHealth(b *testing.B) {
	requireDocker(b)
	p := openProvider(b, nil)
	name := uniqueName("bench-health")
	cleanupService(b, p, name)
	ctx := context.Background()
	if st, err := p.Start(ctx, testSpec(name, 1, true)); err != nil || st.Phase != workload.Running {
		b.Fatalf("Start: %+v %v", st, err)
	}
	var total, lag time.Duration
	b.ResetTimer()
	for range b.N {
		dt, err := dockertest.WatchDowntime(ctx, rawCli, labelService+"="+name)
		if err != nil {
			b.Fatal(err)
		}
		t0 := time.Now()
		st, err := p.Restart(ctx, name)
		t1 := time.Now()
		if err != nil || st.Phase != workload.Running {
			b.Fatalf("Restart: %+v %v", st, err)
		}
		ready := dt.ReadyAt()
		if _, _, err := dt.Stop(); err != nil || ready.IsZero() {
			b.Fatalf("no healthy event seen: %v", err)
		}
		total += t1.Sub(t0)
		lag += t1.Sub(ready)
		p.drains.Wait()
	}
	b.StopTimer()
	n := float64(b.N)
	b.ReportMetric(float64(total.Microseconds())/1000/n, "restart-ms/op")
	b.ReportMetric(float64(lag.Microseconds())/1000/n, "healthy-to-answer-ms/op")
	b.ReportMetric(float64(lag)/float64(total), "wait-latency/restart")
	b.Logf("restart with a health check: %.1f ms/op, answered %.1f ms/op after the Engine reported it healthy (%.1f%% of the restart; n=%d)",
		float64(total.Microseconds())/1000/n, float64(lag.Microseconds())/1000/n, 100*float64(lag)/float64(total), b.N)
}

// engineRecorder times the Engine calls made while it is started: per
// method totals, and for one chosen run the calls on a timeline.
type engineRecorder struct {
	engine
	mu     sync.Mutex
	on     bool
	keep   bool
	t0     time.Time
	total  map[string]time.Duration
	count  map[string]int
	events []string
}

func (r *engineRecorder) start(keep bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.total == nil {
		r.total, r.count = map[string]time.Duration{}, map[string]int{}
	}
	r.on, r.keep, r.t0 = true, keep, time.Now()
	if keep {
		r.events = nil
	}
}

func (r *engineRecorder) stop() {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.keep {
		r.events = append(r.events, fmt.Sprintf("%7.1f ms  Restart returns", float64(time.Since(r.t0).Microseconds())/1000))
	}
	r.on = false
}

func (r *engineRecorder) record(method string, t0 time.Time) {
	d := time.Since(t0)
	r.mu.Lock()
	defer r.mu.Unlock()
	if !r.on {
		return
	}
	r.total[method] += d
	r.count[method]++
	if r.keep {
		r.events = append(r.events, fmt.Sprintf("%7.1f ms  %-18s %6.1f ms", float64(t0.Sub(r.t0).Microseconds())/1000, method, float64(d.Microseconds())/1000))
	}
}

func (r *engineRecorder) report(n int) string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var lines []string
	for m, d := range r.total {
		lines = append(lines, fmt.Sprintf("  %-18s %7.1f ms  %4.1f calls", m, float64(d.Microseconds())/1000/float64(n), float64(r.count[m])/float64(n)))
	}
	slices.Sort(lines)
	return strings.Join(lines, "\n")
}

func (r *engineRecorder) timeline() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return "  " + strings.Join(r.events, "\n  ")
}

func (r *engineRecorder) ImageInspect(ctx context.Context, image string, opts ...client.ImageInspectOption) (client.ImageInspectResult, error) {
	defer r.record("ImageInspect", time.Now())
	return r.engine.ImageInspect(ctx, image, opts...)
}

func (r *engineRecorder) NetworkList(ctx context.Context, opts client.NetworkListOptions) (client.NetworkListResult, error) {
	defer r.record("NetworkList", time.Now())
	return r.engine.NetworkList(ctx, opts)
}

func (r *engineRecorder) ContainerCreate(ctx context.Context, opts client.ContainerCreateOptions) (client.ContainerCreateResult, error) {
	defer r.record("ContainerCreate", time.Now())
	return r.engine.ContainerCreate(ctx, opts)
}

func (r *engineRecorder) ContainerStart(ctx context.Context, id string, opts client.ContainerStartOptions) (client.ContainerStartResult, error) {
	defer r.record("ContainerStart", time.Now())
	return r.engine.ContainerStart(ctx, id, opts)
}

func (r *engineRecorder) ContainerInspect(ctx context.Context, id string, opts client.ContainerInspectOptions) (client.ContainerInspectResult, error) {
	defer r.record("ContainerInspect", time.Now())
	return r.engine.ContainerInspect(ctx, id, opts)
}

func (r *engineRecorder) ContainerList(ctx context.Context, opts client.ContainerListOptions) (client.ContainerListResult, error) {
	defer r.record("ContainerList", time.Now())
	return r.engine.ContainerList(ctx, opts)
}

func (r *engineRecorder) ContainerStop(ctx context.Context, id string, opts client.ContainerStopOptions) (client.ContainerStopResult, error) {
	defer r.record("ContainerStop", time.Now())
	return r.engine.ContainerStop(ctx, id, opts)
}

func (r *engineRecorder) ContainerRemove(ctx context.Context, id string, opts client.ContainerRemoveOptions) (client.ContainerRemoveResult, error) {
	defer r.record("ContainerRemove", time.Now())
	return r.engine.ContainerRemove(ctx, id, opts)
}

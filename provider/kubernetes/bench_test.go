package kubernetes

import (
	"fmt"
	"slices"
	"strconv"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// The benchmarks run against the same real control plane as the tests
// (go test -run '^$' -bench . ./provider/kubernetes/). Latency
// distributions are reported as extra metrics: p50-ms, p99-ms, max-ms.

func reportLatencies(b *testing.B, d []time.Duration) {
	b.Helper()
	if len(d) == 0 {
		return
	}
	slices.Sort(d)
	q := func(p float64) float64 {
		i := int(float64(len(d)-1) * p)
		return float64(d[i].Microseconds()) / 1000
	}
	b.ReportMetric(q(0.5), "p50-ms")
	b.ReportMetric(q(0.99), "p99-ms")
	b.ReportMetric(float64(d[len(d)-1].Microseconds())/1000, "max-ms")
}

// BenchmarkScale scales one Deployment between 2 and 3 replicas: through
// the provider (the scale subresource, then waiting until the cache shows
// every replica ready), with `kubectl scale` (a process; it returns once
// the API server has the new count), and with `kubectl scale` followed by
// `kubectl rollout status` (the same wait as the provider).
func BenchmarkScale(b *testing.B) {
	e := newEnv(b, nil)
	ctx := e.ctx(b)
	if _, err := e.p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 2}); err != nil {
		b.Fatal(err)
	}
	n := 2
	next := func() int { n = 5 - n; return n }
	b.Run("provider", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			began := time.Now()
			st, err := e.p.Scale(ctx, "web", next())
			if err != nil || st.Phase != workload.Running {
				b.Fatalf("Scale: %+v %v", st, err)
			}
			lat = append(lat, time.Since(began))
		}
		reportLatencies(b, lat)
	})
	b.Run("kubectl-scale", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			began := time.Now()
			e.c.Kubectl(b, "-n", e.ns, "scale", "deployment", "web", "--replicas="+strconv.Itoa(next()))
			lat = append(lat, time.Since(began))
		}
		reportLatencies(b, lat)
	})
	b.Run("kubectl-scale+rollout-status", func(b *testing.B) {
		var lat []time.Duration
		for b.Loop() {
			began := time.Now()
			e.c.Kubectl(b, "-n", e.ns, "scale", "deployment", "web", "--replicas="+strconv.Itoa(next()))
			e.c.Kubectl(b, "-n", e.ns, "rollout", "status", "deployment/web", "--timeout=60s")
			lat = append(lat, time.Since(began))
		}
		reportLatencies(b, lat)
	})
}

// BenchmarkStatus200 asks the status of 200 Deployments (one pod each):
// from the provider's informer cache, and with one `kubectl get
// deployment` per status.
func BenchmarkStatus200(b *testing.B) {
	e := newEnv(b, nil)
	ctx := e.ctx(b)
	const services = 200
	names := make([]string, services)
	began := time.Now()
	for i := range names {
		names[i] = fmt.Sprintf("svc-%03d", i)
		if _, err := e.p.Start(ctx, workload.DeploymentSpec{Name: names[i], Image: testImage, Replicas: 1}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("started %d services in %v", services, time.Since(began))
	list, err := e.p.List(ctx)
	if err != nil || len(list) != services {
		b.Fatalf("List: %d services, %v", len(list), err)
	}
	b.Run("informer", func(b *testing.B) {
		var lat []time.Duration
		i := 0
		for b.Loop() {
			began := time.Now()
			st, err := e.p.Status(ctx, names[i%services])
			if err != nil || st.Phase != workload.Running {
				b.Fatalf("Status: %+v %v", st, err)
			}
			lat = append(lat, time.Since(began))
			i++
		}
		reportLatencies(b, lat)
	})
	b.Run("list-all-200", func(b *testing.B) {
		for b.Loop() {
			if list, err := e.p.List(ctx); err != nil || len(list) != services {
				b.Fatalf("List: %d, %v", len(list), err)
			}
		}
	})
	b.Run("kubectl-get", func(b *testing.B) {
		var lat []time.Duration
		i := 0
		for b.Loop() {
			began := time.Now()
			e.c.Kubectl(b, "-n", e.ns, "get", "deployment", names[i%services], "-o", "json")
			lat = append(lat, time.Since(began))
			i++
		}
		reportLatencies(b, lat)
	})
}

// BenchmarkOutsideScaleToStatus measures how long after `kubectl scale`
// (run outside the controller) returns the provider's Status shows the new
// desired count (reported as the latency metrics), and, as ready-ms, when
// it shows the pods ready.
func BenchmarkOutsideScaleToStatus(b *testing.B) {
	e := newEnv(b, nil)
	ctx := e.ctx(b)
	if _, err := e.p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 2}); err != nil {
		b.Fatal(err)
	}
	n := 2
	var lat, ready []time.Duration
	for b.Loop() {
		n = 5 - n
		e.c.Kubectl(b, "-n", e.ns, "scale", "deployment", "web", "--replicas="+strconv.Itoa(n))
		done := time.Now()
		seen := false
		for {
			st, err := e.p.Status(ctx, "web")
			if err != nil {
				b.Fatal(err)
			}
			if !seen && st.Replicas.Desired == n {
				seen = true
				lat = append(lat, time.Since(done))
			}
			if seen && st.Phase == workload.Running && st.Replicas.Ready == n {
				ready = append(ready, time.Since(done))
				break
			}
			if time.Since(done) > time.Minute {
				b.Fatalf("Status still %+v a minute after kubectl scale --replicas=%d", st.Replicas, n)
			}
			time.Sleep(100 * time.Microsecond)
		}
	}
	reportLatencies(b, lat)
	slices.Sort(ready)
	b.ReportMetric(float64(ready[len(ready)/2].Microseconds())/1000, "ready-p50-ms")
}

// BenchmarkDiff previews an image change of a running service: through
// the provider (three reads, three server-side dry-run applies, the
// comparison and the redacted unified diff of the Deployment, ConfigMap
// and Service) and with `kubectl diff --server-side` of the Deployment
// alone (a process: discovery, one read, one dry run, diff(1)). Each
// iteration runs both, alternately, so load hits both alike; the metric
// provider/kubectl is the ratio of their medians.
func BenchmarkDiff(b *testing.B) {
	e := newEnv(b, nil)
	ctx := e.ctx(b)
	spec := workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 2, Ports: []workload.Port{{Container: 8080}},
		Config: map[string]string{"LOG_LEVEL": "debug"}}
	if _, err := e.p.Start(ctx, spec); err != nil {
		b.Fatal(err)
	}
	spec.Image = "registry.k8s.io/pause:3.9"
	var ours, theirs []time.Duration
	for b.Loop() {
		began := time.Now()
		d, err := e.p.Diff(ctx, spec)
		if err != nil || d.Action != workload.DiffReplace {
			b.Fatalf("Diff: %+v %v", d, err)
		}
		ours = append(ours, time.Since(began))
		began = time.Now()
		if lines := e.kubectlDiff(b, ctx, spec); len(lines) != 2 {
			b.Fatalf("kubectl diff: %q", lines)
		}
		theirs = append(theirs, time.Since(began))
	}
	reportLatencies(b, ours)
	slices.Sort(theirs)
	b.ReportMetric(float64(theirs[len(theirs)/2].Microseconds())/1000, "kubectl-p50-ms")
	b.ReportMetric(float64(ours[len(ours)/2])/float64(theirs[len(theirs)/2]), "provider/kubectl")
}

package kubetest

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/workload"
)

// CompareScale benchmarks p, a provider delegating to the kubernetes
// provider (EKS, AKS or GKE mode) on cluster c, against the kubernetes
// provider talking to the same cluster directly with the administrator's
// static token, in the same run and namespace: each scales a Deployment
// 2 <-> 3 and waits for the rollout, then reads its status. It logs the
// ratio of the median scale latencies (use -v to see it).
func CompareScale(b *testing.B, c *k8stest.Cluster, ns string, p provider.Provider) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	direct, err := kubernetes.New(ctx, "direct", c.RESTConfig, kubernetes.Options{Namespace: ns})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close() })
	mode := provider.NameOf(p) + "-mode"
	medians := map[string]time.Duration{}
	for _, run := range []struct {
		name string
		p    provider.Provider
	}{{mode, p}, {"kubernetes", direct}} {
		svc := "bench-" + run.name
		if _, err := run.p.Start(ctx, workload.DeploymentSpec{Name: svc, Image: Image, Replicas: 2}); err != nil {
			b.Fatal(err)
		}
		n := 2
		b.Run("scale-"+run.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				n = 5 - n
				began := time.Now()
				st, err := run.p.Scale(ctx, svc, n)
				if err != nil || st.Phase != workload.Running {
					b.Fatalf("Scale: %+v %v", st, err)
				}
				lat = append(lat, time.Since(began))
			}
			slices.Sort(lat)
			medians[run.name] = lat[len(lat)/2]
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
		b.Run("status-"+run.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := run.p.Status(ctx, svc); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if k, m := medians["kubernetes"], medians[mode]; k > 0 && m > 0 {
		b.Logf("scale p50: %s %v, kubernetes provider %v: %.2fx", mode, m, k, float64(m)/float64(k))
	}
}

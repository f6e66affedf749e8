package aws

import (
	"context"
	"slices"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/workload"
)

// BenchmarkEKSScale scales a Deployment 2 <-> 3 and waits for the
// rollout, through the aws provider in mode eks (DescribeCluster once,
// then a presigned-STS token per request, checked by the API server's
// webhook) and, in the same run on the same control plane, through the
// kubernetes provider with a static token: the ratio is what EKS mode
// costs over talking to the cluster directly.
func BenchmarkEKSScale(b *testing.B) {
	e := newEKSEnv(b, "alpha-eks", "alpha-eks")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	b.Cleanup(cancel)
	direct, err := kubernetes.New(ctx, "direct", e.c.RESTConfig, kubernetes.Options{Namespace: e.ns})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { direct.Close() })
	type scaler interface {
		Start(context.Context, workload.DeploymentSpec) (workload.DeploymentStatus, error)
		Scale(context.Context, string, int) (workload.DeploymentStatus, error)
		Status(context.Context, string) (workload.DeploymentStatus, error)
	}
	medians := map[string]time.Duration{}
	for _, c := range []struct {
		name string
		p    scaler
	}{{"eks", e.p}, {"kubernetes", direct}} {
		name := "web-" + c.name
		if _, err := c.p.Start(ctx, workload.DeploymentSpec{Name: name, Image: kubetest.Image, Replicas: 2}); err != nil {
			b.Fatal(err)
		}
		n := 2
		b.Run("scale-"+c.name, func(b *testing.B) {
			var lat []time.Duration
			for b.Loop() {
				n = 5 - n
				began := time.Now()
				st, err := c.p.Scale(ctx, name, n)
				if err != nil || st.Phase != workload.Running {
					b.Fatalf("Scale: %+v %v", st, err)
				}
				lat = append(lat, time.Since(began))
			}
			slices.Sort(lat)
			medians[c.name] = lat[len(lat)/2]
			b.ReportMetric(float64(lat[len(lat)/2].Microseconds())/1000, "p50-ms")
		})
		b.Run("status-"+c.name, func(b *testing.B) {
			for b.Loop() {
				if _, err := c.p.Status(ctx, name); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
	if k := medians["kubernetes"]; k > 0 && medians["eks"] > 0 {
		b.Logf("scale p50: eks mode %v, kubernetes provider %v: %.2fx", medians["eks"], k, float64(medians["eks"])/float64(k))
	}
}

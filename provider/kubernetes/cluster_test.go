package kubernetes_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"k8s.io/client-go/rest"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// The tests in this package (and in package kubernetes' env_test.go) run
// against a real control plane (etcd, kube-apiserver,
// kube-controller-manager, kube-scheduler and kwok's fake nodes) that
// internal/k8stest starts once per test binary. They skip when its
// binaries are missing, and fail instead under CI. The conformance runs
// use kubetest.Harness, the harness the EKS, AKS and GKE modes use too.

func TestMain(m *testing.M) { k8stest.Main(m) }

// openTarget opens a provider for a fresh namespace through the registry,
// the way the controller does: provider.Open with KUBECONFIG handed out by
// the resolver.
func openTarget(t *testing.T) (*k8stest.Cluster, string, *kubernetes.Provider) {
	t.Helper()
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	nsJSON, _ := json.Marshal(ns)
	pr, err := provider.Open(context.Background(),
		provider.TargetConfig{Name: "kt", Provider: kubernetes.Name, Options: map[string]json.RawMessage{"namespace": nsJSON}},
		credentials.FromMap(map[string]string{"KUBECONFIG": c.Kubeconfig}))
	if err != nil {
		t.Fatalf("open the kubernetes provider: %v", err)
	}
	p := pr.(*kubernetes.Provider)
	t.Cleanup(func() { p.Close() })
	return c, ns, p
}

// openWith opens a provider over rc for ns and waits for its access check.
func openWith(t *testing.T, rc *rest.Config, ns string, opts kubernetes.Options) *kubernetes.Provider {
	t.Helper()
	opts.Namespace = ns
	p, err := kubernetes.New(context.Background(), "kt", rc, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	deadline := time.Now().Add(time.Minute)
	for !p.AccessChecked() {
		if time.Now().After(deadline) {
			t.Fatal("the access check never finished")
		}
		time.Sleep(50 * time.Millisecond)
	}
	return p
}

// TestConformance runs the providertest suite on the real control plane.
func TestConformance(t *testing.T) {
	c, ns, p := openTarget(t)
	// Settle the metrics.k8s.io check before the suite reads the
	// capabilities: this cluster has no Metrics Server.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	p.CheckMetricsAPI(ctx)
	providertest.Run(t, kubetest.Harness(c, ns, "kt", p))
}

// TestMetricsUnavailableWithoutMetricsServer: the control plane has no
// Metrics Server, so the stream ends at once with unavailable saying so,
// and the capability matrix declines stream_metrics with the reason.
func TestMetricsUnavailableWithoutMetricsServer(t *testing.T) {
	_, _, p := openTarget(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	if _, err := p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: kubetest.Image, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for s, err := range p.StreamMetrics(ctx, "web") {
		n++
		if err == nil {
			t.Fatalf("a sample without Metrics Server: %+v", s)
		}
		if workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), "does not serve metrics.k8s.io/v1beta1") ||
			!strings.Contains(err.Error(), "Metrics Server is not installed") {
			t.Fatalf("error %v", err)
		}
		t.Logf("stream ended with: %v", err)
	}
	if n != 1 {
		t.Fatalf("the stream yielded %d items, want one error", n)
	}
	for _, c := range provider.Capabilities(p) {
		if c.Op == provider.OpStreamMetrics && (c.Supported || !strings.Contains(c.Reason, "Metrics Server")) {
			t.Fatalf("capability %+v", c)
		}
		if c.Op != provider.OpStreamMetrics && !c.Supported {
			t.Fatalf("capability %+v", c)
		}
	}
}

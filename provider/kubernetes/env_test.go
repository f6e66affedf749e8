package kubernetes

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/client-go/kubernetes"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
)

// The env of the tests that need the provider's insides on the real
// control plane (etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and kwok's fake nodes) that internal/k8stest starts once
// per test binary; TestMain is in cluster_test.go. They skip when its
// binaries are missing, and fail instead under CI. The tests that need only
// the provider's exported API are in package kubernetes_test.

// testImage runs on kwok's nodes (no image is ever pulled).
const testImage = "registry.k8s.io/pause:3.10"

// env is one provider on the shared control plane, in a fresh namespace.
type env struct {
	c      *k8stest.Cluster
	p      *Provider
	ns     string
	raw    kubernetes.Interface // the tests' own view of the cluster
	target string
}

// newEnv opens a provider through the registry, the way the controller
// does: provider.Open with KUBECONFIG handed out by the resolver.
func newEnv(t testing.TB, opts map[string]any) *env {
	t.Helper()
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	raw := map[string]json.RawMessage{"namespace": mustJSON(ns)}
	for k, v := range opts {
		raw[k] = mustJSON(v)
	}
	target := "kt"
	pr, err := provider.Open(context.Background(), provider.TargetConfig{Name: target, Provider: Name, Options: raw},
		credentials.FromMap(map[string]string{"KUBECONFIG": c.Kubeconfig}))
	if err != nil {
		t.Fatalf("open the kubernetes provider: %v", err)
	}
	p := pr.(*Provider)
	t.Cleanup(func() { p.Close() })
	return &env{c: c, p: p, ns: ns, raw: c.Client(), target: target}
}

func mustJSON(v any) json.RawMessage {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return b
}

func (e *env) ctx(t testing.TB) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	t.Cleanup(cancel)
	return ctx
}

func (e *env) selector(name string) string {
	return labels.Set(selector(e.target, name)).String()
}

// pods lists a service's pods through the tests' own client.
func (e *env) pods(ctx context.Context, name string) ([]corev1.Pod, error) {
	list, err := e.raw.CoreV1().Pods(e.ns).List(ctx, metav1.ListOptions{LabelSelector: e.selector(name)})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}

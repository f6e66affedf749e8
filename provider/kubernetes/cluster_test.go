package kubernetes

import (
	"context"
	"encoding/json"
	"fmt"
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
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// The tests in this file run against a real control plane (etcd,
// kube-apiserver, kube-controller-manager, kube-scheduler and kwok's fake
// nodes) that internal/k8stest starts once per test binary. They skip when
// its binaries are missing, and fail instead under CI.

func TestMain(m *testing.M) { k8stest.Main(m) }

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

// runningPods are the pods the cluster runs: phase Running, not deleted.
func runningPods(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

func (e *env) harness() providertest.Harness {
	return providertest.Harness{
		Provider: e.p,
		Target:   e.target,
		Spec: func(name string, replicas int) workload.DeploymentSpec {
			return workload.DeploymentSpec{Name: name, Image: testImage, Replicas: replicas,
				Ports:  []workload.Port{{Container: 8080}},
				Config: map[string]string{"mode": "green"}}
		},
		Observe: func(ctx context.Context, name string) (providertest.Observation, error) {
			pods, err := e.pods(ctx, name)
			if err != nil {
				return providertest.Observation{}, err
			}
			var o providertest.Observation
			for _, p := range runningPods(pods) {
				o.Running++
				o.InstanceIDs = append(o.InstanceIDs, p.Name)
			}
			return o, nil
		},
		ReadConfig: e.readConfig,
		EmitLog: func(ctx context.Context, name, text string) error {
			// kwok serves one log file as every container's log.
			return e.c.AppendLog(text)
		},
		StartupLine:  k8stest.StartupLine,
		ExecCommand:  []string{"echo", "hello from exec"},
		ExecOutput:   "hello from exec",
		ExecFail:     []string{"sh", "-c", "exit 3"},
		ExecFailCode: 3,
		// kwok's fake kubelet runs commands on the host and reports a
		// non-zero exit as an internal error instead of the exit code a
		// kubelet sends; TestExecOnKwok pins that, and the pass-through of
		// a real kubelet's code is unit-tested with a fake executor.
		ExecFailUnobservable: "kwok reports a failing command as an internal error, not an exit code",
		Timeout:              2 * time.Minute,
		Cleanup: func(ctx context.Context, name string) {
			bg := metav1.DeletePropagationBackground
			_ = e.raw.AppsV1().Deployments(e.ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
			_ = e.raw.CoreV1().Services(e.ns).Delete(ctx, name, metav1.DeleteOptions{})
			_ = e.raw.CoreV1().ConfigMaps(e.ns).Delete(ctx, configMapName(name), metav1.DeleteOptions{})
		},
	}
}

// readConfig reads a config key as the workload sees it. No container runs
// on kwok's nodes, so "as the workload sees it" is what the kubelet would
// mount: the ConfigMap the running pods' config volume names, provided
// every running pod was made from that ConfigMap's current content (its
// config checksum matches) — a pod from before the change would still see
// the old files.
func (e *env) readConfig(ctx context.Context, name, key string) (string, bool, error) {
	pods, err := e.pods(ctx, name)
	if err != nil {
		return "", false, err
	}
	running := runningPods(pods)
	if len(running) == 0 {
		return "", false, fmt.Errorf("no running pod of %s", name)
	}
	value, found := "", false
	for i, pod := range running {
		var cmName string
		for _, v := range pod.Spec.Volumes {
			if v.Name == configVolume && v.ConfigMap != nil {
				cmName = v.ConfigMap.Name
			}
		}
		if cmName == "" {
			return "", false, fmt.Errorf("pod %s mounts no config volume", pod.Name)
		}
		cm, err := e.raw.CoreV1().ConfigMaps(e.ns).Get(ctx, cmName, metav1.GetOptions{})
		if err != nil {
			return "", false, err
		}
		if got, want := pod.Annotations[AnnotationConfigChecksum], configChecksum(cm.Data); got != want {
			return "", false, fmt.Errorf("pod %s was made from another config (checksum %.12s, configmap has %.12s)", pod.Name, got, want)
		}
		v, ok := cm.Data[key]
		if i == 0 {
			value, found = v, ok
		}
	}
	return value, found, nil
}

// TestConformance runs the providertest suite on the real control plane.
func TestConformance(t *testing.T) {
	e := newEnv(t, nil)
	// Settle the metrics.k8s.io check before the suite reads the
	// capabilities: this cluster has no Metrics Server.
	e.p.checkMetricsAPI(e.ctx(t))
	providertest.Run(t, e.harness())
}

// TestMetricsUnavailableWithoutMetricsServer: the control plane has no
// Metrics Server, so the stream ends at once with unavailable saying so,
// and the capability matrix declines stream_metrics with the reason.
func TestMetricsUnavailableWithoutMetricsServer(t *testing.T) {
	e := newEnv(t, nil)
	ctx := e.ctx(t)
	if _, err := e.p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	n := 0
	for s, err := range e.p.StreamMetrics(ctx, "web") {
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
	for _, c := range provider.Capabilities(e.p) {
		if c.Op == provider.OpStreamMetrics && (c.Supported || !strings.Contains(c.Reason, "Metrics Server")) {
			t.Fatalf("capability %+v", c)
		}
		if c.Op != provider.OpStreamMetrics && !c.Supported {
			t.Fatalf("capability %+v", c)
		}
	}
}

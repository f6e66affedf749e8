// Package kubetest runs the providertest scenarios of the kubernetes
// provider through a provider that delegates to it (aws in eks mode, azure
// in aks mode, gcp in gke mode), on the real control plane internal/k8stest
// starts. Harness observes the cluster with the administrator's own client,
// never through the provider under test.
package kubetest

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"

	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// Image runs on kwok's nodes (no image is ever pulled).
const Image = "registry.k8s.io/pause:3.10"

// Harness is the providertest harness for p, a provider opened for target
// whose services live in namespace ns of cluster c.
func Harness(c *k8stest.Cluster, ns, target string, p provider.Provider) providertest.Harness {
	o := observer{c: c, ns: ns, target: target}
	return providertest.Harness{
		Provider: p,
		Target:   target,
		Spec: func(name string, replicas int) workload.DeploymentSpec {
			return workload.DeploymentSpec{Name: name, Image: Image, Replicas: replicas,
				Ports:  []workload.Port{{Container: 8080}},
				Config: map[string]string{"mode": "green"}}
		},
		Observe: func(ctx context.Context, name string) (providertest.Observation, error) {
			pods, err := o.pods(ctx, name)
			if err != nil {
				return providertest.Observation{}, err
			}
			var obs providertest.Observation
			for _, p := range running(pods) {
				obs.Running++
				obs.InstanceIDs = append(obs.InstanceIDs, p.Name)
			}
			return obs, nil
		},
		ReadConfig: o.readConfig,
		EmitLog: func(ctx context.Context, name, text string) error {
			// kwok serves one log file as every container's log.
			return c.AppendLog(text)
		},
		StartupLine:  k8stest.StartupLine,
		ExecCommand:  []string{"echo", "hello from exec"},
		ExecOutput:   "hello from exec",
		ExecFail:     []string{"sh", "-c", "exit 3"},
		ExecFailCode: 3,
		// kwok's fake kubelet reports a failing command as an internal
		// error instead of the exit code a kubelet sends; the kubernetes
		// provider's own tests pin both paths.
		ExecFailUnobservable: "kwok reports a failing command as an internal error, not an exit code",
		Timeout:              2 * time.Minute,
		Cleanup: func(ctx context.Context, name string) {
			cs := c.Client()
			bg := metav1.DeletePropagationBackground
			_ = cs.AppsV1().Deployments(ns).Delete(ctx, name, metav1.DeleteOptions{PropagationPolicy: &bg})
			_ = cs.CoreV1().Services(ns).Delete(ctx, name, metav1.DeleteOptions{})
			_ = cs.CoreV1().ConfigMaps(ns).Delete(ctx, kubernetes.ConfigMapName(name), metav1.DeleteOptions{})
		},
	}
}

type observer struct {
	c      *k8stest.Cluster
	ns     string
	target string
}

// pods lists a service's pods with the administrator's client.
func (o observer) pods(ctx context.Context, name string) ([]corev1.Pod, error) {
	sel := labels.Set{kubernetes.LabelService: name, kubernetes.LabelTarget: o.target}.String()
	list, err := o.c.Client().CoreV1().Pods(o.ns).List(ctx, metav1.ListOptions{LabelSelector: sel})
	if err != nil {
		return nil, err
	}
	slices.SortFunc(list.Items, func(a, b corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return list.Items, nil
}

// running are the pods the cluster runs: phase Running, not deleted.
func running(pods []corev1.Pod) []corev1.Pod {
	var out []corev1.Pod
	for _, p := range pods {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil {
			out = append(out, p)
		}
	}
	return out
}

// readConfig reads a config key as the workload would see it: no container
// runs on kwok's nodes, so it is what the kubelet would mount, the
// ConfigMap the running pods' config volume names, provided every running
// pod was made from its current content (the checksum annotation matches).
func (o observer) readConfig(ctx context.Context, name, key string) (string, bool, error) {
	pods, err := o.pods(ctx, name)
	if err != nil {
		return "", false, err
	}
	run := running(pods)
	if len(run) == 0 {
		return "", false, fmt.Errorf("no running pod of %s", name)
	}
	value, found := "", false
	for i, pod := range run {
		var cmName string
		for _, v := range pod.Spec.Volumes {
			if v.Name == kubernetes.ConfigVolume && v.ConfigMap != nil {
				cmName = v.ConfigMap.Name
			}
		}
		if cmName == "" {
			return "", false, fmt.Errorf("pod %s mounts no config volume", pod.Name)
		}
		cm, err := o.c.Client().CoreV1().ConfigMaps(o.ns).Get(ctx, cmName, metav1.GetOptions{})
		if err != nil {
			return "", false, err
		}
		if got, want := pod.Annotations[kubernetes.AnnotationConfigChecksum], kubernetes.ConfigChecksum(cm.Data); got != want {
			return "", false, fmt.Errorf("pod %s was made from another config (checksum %.12s, configmap has %.12s)", pod.Name, got, want)
		}
		v, ok := cm.Data[key]
		if i == 0 {
			value, found = v, ok
		}
	}
	return value, found, nil
}

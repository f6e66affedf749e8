package k8stest_test

import (
	"bytes"
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv1 "k8s.io/api/autoscaling/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/cache"

	"github.com/alphaswarm/controller/internal/k8stest"
)

func TestMain(m *testing.M) { k8stest.Main(m) }

func deployment(name, image string, replicas int32) *appsv1.Deployment {
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: labels},
		Spec: appsv1.DeploymentSpec{
			Replicas: &replicas,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{Name: "app", Image: image}},
				},
			},
		},
	}
}

// waitPods waits until the deployment's pods satisfy ok, and returns them.
func waitPods(t *testing.T, cs kubernetes.Interface, ns, app string, what string, ok func([]corev1.Pod) bool) []corev1.Pod {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), time.Minute)
	defer cancel()
	var pods []corev1.Pod
	for {
		list, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app=" + app})
		if err == nil {
			pods = list.Items
			if ok(pods) {
				return pods
			}
		}
		select {
		case <-ctx.Done():
			var b strings.Builder
			for _, p := range pods {
				fmt.Fprintf(&b, "\n  %s node=%q phase=%s conditions=%v", p.Name, p.Spec.NodeName, p.Status.Phase, p.Status.Conditions)
			}
			t.Fatalf("pods of %s: not %s after a minute (err %v); pods:%s", app, what, err, b.String())
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func runningReady(n int) func([]corev1.Pod) bool {
	return func(pods []corev1.Pod) bool {
		ready := 0
		for _, p := range pods {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
				continue
			}
			for _, c := range p.Status.Conditions {
				if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
					ready++
				}
			}
		}
		return ready == n && len(pods) == n
	}
}

func TestDeploymentRunsAndScalesToZero(t *testing.T) {
	c := k8stest.Start(t)
	t.Logf("control plane started in %v", c.StartupTime)
	ns := c.Namespace(t)
	cs := c.Client()
	ctx := t.Context()

	began := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment("web", "registry.example/web:1", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pods := waitPods(t, cs, ns, "web", "2 Running and Ready", runningReady(2))
	t.Logf("2 pods Running and Ready %v after creating the Deployment", time.Since(began).Round(time.Millisecond))
	for _, p := range pods {
		if !strings.HasPrefix(p.Spec.NodeName, "kwok-node-") {
			t.Errorf("pod %s on node %q, want a kwok node", p.Name, p.Spec.NodeName)
		}
		if p.Status.PodIP == "" {
			t.Errorf("pod %s has no IP", p.Name)
		}
	}

	// The Deployment's own status catches up, and kubectl sees it.
	waitDeploy(t, c, ns, "web", "2/2")
	t.Logf("kubectl shows 2/2 %v after creating the Deployment", time.Since(began).Round(time.Millisecond))

	// Scale to zero through the scale subresource.
	scale, err := cs.AppsV1().Deployments(ns).GetScale(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	scale.Spec.Replicas = 0
	if _, err := cs.AppsV1().Deployments(ns).UpdateScale(ctx, "web", &autoscalingv1.Scale{ObjectMeta: scale.ObjectMeta, Spec: scale.Spec}, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}
	began = time.Now()
	waitPods(t, cs, ns, "web", "all gone", func(p []corev1.Pod) bool { return len(p) == 0 })
	t.Logf("scaled to 0: pods gone after %v", time.Since(began).Round(time.Millisecond))
	waitDeploy(t, c, ns, "web", "0/0")
	t.Logf("kubectl shows 0/0 after %v", time.Since(began).Round(time.Millisecond))

	// And back, with kubectl.
	began = time.Now()
	c.Kubectl(t, "-n", ns, "scale", "deployment/web", "--replicas=3")
	t.Logf("kubectl scale took %v", time.Since(began).Round(time.Millisecond))
	waitPods(t, cs, ns, "web", "3 Running and Ready", runningReady(3))
	t.Logf("3 pods Running and Ready %v after kubectl scale began", time.Since(began).Round(time.Millisecond))
	waitDeploy(t, c, ns, "web", "3/3")
	t.Logf("kubectl shows 3/3 %v after kubectl scale began", time.Since(began).Round(time.Millisecond))
}

// waitDeploy waits until "kubectl get deploy" shows ready (READY column).
func waitDeploy(t *testing.T, c *k8stest.Cluster, ns, name, ready string) {
	t.Helper()
	deadline := time.Now().Add(time.Minute)
	for {
		out := c.Kubectl(t, "-n", ns, "get", "deploy", name, "--no-headers")
		f := strings.Fields(out)
		if len(f) >= 2 && f[1] == ready {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("kubectl get deploy %s: %q, want READY %s", name, out, ready)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func TestFailingImages(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	cs := c.Client()
	ctx := t.Context()
	for _, tc := range []struct {
		image, reason string
		phase         corev1.PodPhase
	}{
		{k8stest.ImagePullFailImage, "ImagePullBackOff", corev1.PodPending},
		{k8stest.CrashLoopImage, "CrashLoopBackOff", corev1.PodRunning},
	} {
		name := strings.ToLower(tc.reason)
		d := deployment(name, tc.image, 1)
		d.Spec.ProgressDeadlineSeconds = new(int32(1))
		if _, err := cs.AppsV1().Deployments(ns).Create(ctx, d, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
		waitPods(t, cs, ns, name, tc.reason, func(pods []corev1.Pod) bool {
			if len(pods) != 1 || pods[0].Status.Phase != tc.phase || len(pods[0].Status.ContainerStatuses) != 1 {
				return false
			}
			st := pods[0].Status.ContainerStatuses[0]
			return !st.Ready && st.State.Waiting != nil && st.State.Waiting.Reason == tc.reason
		})
		// The deployment controller gives up on the rollout.
		deadline := time.Now().Add(time.Minute)
		for {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if hasCondition(d, appsv1.DeploymentProgressing, "ProgressDeadlineExceeded") {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("deployment %s: no ProgressDeadlineExceeded after a minute: %+v", name, d.Status.Conditions)
			}
			time.Sleep(100 * time.Millisecond)
		}
	}
}

func hasCondition(d *appsv1.Deployment, typ appsv1.DeploymentConditionType, reason string) bool {
	for _, c := range d.Status.Conditions {
		if c.Type == typ && c.Reason == reason {
			return true
		}
	}
	return false
}

func TestLogsAndExec(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	cs := c.Client()
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), deployment("logs", "registry.example/logs:1", 1), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := waitPods(t, cs, ns, "logs", "Running and Ready", runningReady(1))[0].Name

	if out := c.Kubectl(t, "-n", ns, "logs", pod); !strings.Contains(out, k8stest.StartupLine) {
		t.Fatalf("kubectl logs = %q, want the startup line", out)
	}

	// A follower sees what AppendLog adds.
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	stream, err := cs.CoreV1().Pods(ns).GetLogs(pod, &corev1.PodLogOptions{Follow: true}).Stream(ctx)
	if err != nil {
		t.Fatal(err)
	}
	defer stream.Close()
	marker := fmt.Sprintf("marker-%d", time.Now().UnixNano())
	if err := c.AppendLog(marker); err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	buf := make([]byte, 4096)
	for !strings.Contains(got.String(), marker) {
		n, err := stream.Read(buf)
		got.Write(buf[:n])
		if err != nil {
			t.Fatalf("following the log: %v; got %q", err, got.String())
		}
	}

	if out := c.Kubectl(t, "-n", ns, "exec", pod, "--", "echo", "hello"); strings.TrimSpace(out) != "hello" {
		t.Fatalf("kubectl exec echo hello = %q", out)
	}
	out, err := c.TryKubectl("-n", ns, "exec", pod, "--", "sh", "-c", "exit 3")
	t.Logf("kubectl exec sh -c 'exit 3': output %q, error: %v", out, err)
	if err == nil {
		t.Fatal("kubectl exec of a failing command succeeded")
	}
}

func TestImpersonationIsSubjectToRBAC(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	cs, err := kubernetes.NewForConfig(c.ImpersonatedConfig("someone"))
	if err != nil {
		t.Fatal(err)
	}
	_, err = cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
	if !apierrors.IsForbidden(err) {
		t.Fatalf("listing pods as an unprivileged user: %v, want Forbidden", err)
	}
}

// The provider reads status from shared informers: they must see changes at
// once, not on a relist.
func TestInformerSeesChangesPromptly(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	cs := c.Client()
	factory := informers.NewSharedInformerFactoryWithOptions(cs, 0, informers.WithNamespace(ns))
	seen := make(chan int32, 100)
	inf := factory.Apps().V1().Deployments().Informer()
	if _, err := inf.AddEventHandler(cache.ResourceEventHandlerFuncs{
		UpdateFunc: func(_, obj any) { seen <- obj.(*appsv1.Deployment).Status.ReadyReplicas },
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	defer factory.Shutdown()
	defer cancel() // before Shutdown, which waits for the informers to stop
	factory.Start(ctx.Done())
	if !cache.WaitForCacheSync(ctx.Done(), inf.HasSynced) {
		t.Fatal("informer did not sync")
	}
	began := time.Now()
	if _, err := cs.AppsV1().Deployments(ns).Create(t.Context(), deployment("inf", "registry.example/inf:1", 2), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	timeout := time.After(10 * time.Second)
	for {
		select {
		case n := <-seen:
			if n == 2 {
				t.Logf("informer saw 2 ready replicas %v after the create", time.Since(began).Round(time.Millisecond))
				return
			}
		case <-timeout:
			t.Fatal("informer did not see 2 ready replicas within 10s")
		}
	}
}

// TestTokenWebhook: a token the API server does not know is decided by the
// registered authenticators, and refused once the authenticator is gone.
func TestTokenWebhook(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	var asked atomic.Int64
	sub := t.Run("registered", func(t *testing.T) {
		c.AddTokenAuthenticator(t, func(_ context.Context, token string) (string, []string, bool) {
			asked.Add(1)
			if !strings.HasPrefix(token, "webhook-test-") {
				return "", nil, false
			}
			return "webhook-user", []string{"system:masters"}, true
		})
		for _, tc := range []struct {
			token string
			ok    bool
		}{{"webhook-test-a", true}, {"some-other-token", false}, {"webhook-test-b", true}} {
			cfg := rest.AnonymousClientConfig(c.RESTConfig)
			cfg.BearerToken = tc.token
			cs, err := kubernetes.NewForConfig(cfg)
			if err != nil {
				t.Fatal(err)
			}
			_, err = cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{})
			if tc.ok && err != nil {
				t.Fatalf("token %q: %v, want it accepted", tc.token, err)
			}
			if !tc.ok && !apierrors.IsUnauthorized(err) {
				t.Fatalf("token %q: %v, want Unauthorized", tc.token, err)
			}
		}
		if n := asked.Load(); n != 3 {
			t.Fatalf("the authenticator was asked %d times, want 3", n)
		}
	})
	if !sub {
		return
	}
	cfg := rest.AnonymousClientConfig(c.RESTConfig)
	cfg.BearerToken = "webhook-test-c"
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods(ns).List(t.Context(), metav1.ListOptions{}); !apierrors.IsUnauthorized(err) {
		t.Fatalf("after the authenticator's test ended: %v, want Unauthorized", err)
	}
}

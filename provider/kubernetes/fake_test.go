package kubernetes

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"
	metricsv1beta1 "k8s.io/metrics/pkg/apis/metrics/v1beta1"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// The tests in this file run the provider over client-go's fake clientsets:
// no API server, no Deployment controller. simulateRollout plays the
// controller where a test needs one.

func fakeProvider(t *testing.T, objs ...runtime.Object) (*Provider, *fake.Clientset, *metricsfake.Clientset) {
	t.Helper()
	return fakeProviderWith(t, nil, objs...)
}

// fakeProviderWith lets setup add reactors before the provider starts (the
// fakes' reactor chains must not change while in use).
func fakeProviderWith(t *testing.T, setup func(*fake.Clientset, *metricsfake.Clientset), objs ...runtime.Object) (*Provider, *fake.Clientset, *metricsfake.Clientset) {
	t.Helper()
	cs := fake.NewClientset(objs...)
	mc := metricsfake.NewSimpleClientset()
	if setup != nil {
		setup(cs, mc)
	}
	opts := testOptions(t)
	opts.RolloutTimeout = workload.Duration(5 * time.Second)
	opts.MetricsInterval = workload.Duration(100 * time.Millisecond)
	p := newProvider("prod", opts, cs, mc, "https://k8s.test:6443")
	p.start()
	t.Cleanup(func() { p.Close() })
	return p, cs, mc
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// readyPod is a running, ready pod of a service.
func readyPod(ns, service, name string, owner metav1.OwnerReference) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: ownLabels("prod", service),
			OwnerReferences: []metav1.OwnerReference{owner}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: service, Image: "nginx",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceMemory: resource.MustParse("64Mi")}}}}},
		Status: corev1.PodStatus{Phase: corev1.PodRunning, StartTime: &started,
			Conditions: []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}},
	}
}

// simulateRollout waits for the Deployment name, then does what the
// Deployment controller and the kubelet would: a ReplicaSet of revision 1,
// n ready pods, and the status counting them.
func simulateRollout(t *testing.T, cs *fake.Clientset, ns, name string) {
	t.Helper()
	ctx := ctxT(t, 5*time.Second)
	var dep *appsv1.Deployment
	for {
		d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
		if err == nil {
			dep = d
			break
		}
		select {
		case <-ctx.Done():
			t.Errorf("simulateRollout: deployment %s never appeared", name)
			return
		case <-time.After(10 * time.Millisecond):
		}
	}
	n := *dep.Spec.Replicas
	dep.UID = "uid-" + typesUID(name)
	dep.Annotations = map[string]string{revisionAnnotaton: "1"}
	dep.Status = appsv1.DeploymentStatus{ObservedGeneration: dep.Generation, Replicas: n, UpdatedReplicas: n, ReadyReplicas: n, AvailableReplicas: n}
	rs := &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: name + "-1", Namespace: ns, UID: "rs-" + typesUID(name),
		Labels: ownLabels("prod", name), Annotations: map[string]string{revisionAnnotaton: "1"},
		OwnerReferences: []metav1.OwnerReference{{UID: dep.UID, Kind: "Deployment", Name: name}}}}
	if _, err := cs.AppsV1().ReplicaSets(ns).Create(ctx, rs, metav1.CreateOptions{}); err != nil {
		t.Errorf("create replicaset: %v", err)
	}
	for i := range int(n) {
		pod := readyPod(ns, name, fmt.Sprintf("%s-1-%d", name, i), metav1.OwnerReference{UID: rs.UID, Kind: "ReplicaSet", Name: rs.Name})
		if _, err := cs.CoreV1().Pods(ns).Create(ctx, pod, metav1.CreateOptions{}); err != nil {
			t.Errorf("create pod: %v", err)
		}
	}
	if _, err := cs.AppsV1().Deployments(ns).Update(ctx, dep, metav1.UpdateOptions{}); err != nil {
		t.Errorf("update deployment: %v", err)
	}
}

func TestFakeStartStatusListWatch(t *testing.T) {
	p, cs, _ := fakeProvider(t)
	ctx := ctxT(t, 10*time.Second)
	if _, err := p.Status(ctx, "web"); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Status of an unknown service: %v", err)
	}
	if _, err := p.Scale(ctx, "web", 2); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Scale of an unknown service: %v", err)
	}
	if st, err := p.Stop(ctx, "web"); err != nil || st.Phase != workload.Stopped {
		t.Fatalf("Stop of an unknown service: %+v %v", st, err)
	}

	wctx, cancelWatch := context.WithCancel(ctx)
	defer cancelWatch()
	watched := make(chan workload.DeploymentStatus, 100)
	go func() {
		for st, err := range p.Watch(wctx) {
			if err != nil {
				return
			}
			watched <- st
		}
	}()

	go simulateRollout(t, cs, "apps", "web")
	spec := fullSpec()
	spec.Replicas = 2
	st, err := p.Start(ctx, spec)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st.Phase != workload.Running || st.Replicas.Ready != 2 || len(st.Instances) != 2 || st.ID != "prod/web" ||
		st.Provider != Name || st.Target != "prod" || st.ObservedAt.IsZero() {
		t.Fatalf("Start status %+v", st)
	}

	// What Start wrote: the Deployment, the ConfigMap, the Service.
	dep, err := cs.AppsV1().Deployments("apps").Get(ctx, "web", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if dep.Labels[LabelTarget] != "prod" || dep.Spec.Template.Annotations[AnnotationConfigChecksum] == "" {
		t.Fatalf("deployment %+v", dep.ObjectMeta)
	}
	cm, err := cs.CoreV1().ConfigMaps("apps").Get(ctx, "web-config", metav1.GetOptions{})
	if err != nil || cm.Data["greeting"] != "hello" {
		t.Fatalf("configmap %+v %v", cm, err)
	}
	if _, err := cs.CoreV1().Services("apps").Get(ctx, "web", metav1.GetOptions{}); err != nil {
		t.Fatalf("service: %v", err)
	}
	var fieldManagers []string
	for _, a := range cs.Actions() {
		if pa, ok := a.(k8stesting.PatchActionImpl); ok && pa.GetPatchType() == "application/apply-patch+yaml" {
			fieldManagers = append(fieldManagers, pa.GetResource().Resource)
		}
	}
	if len(fieldManagers) < 6 { // three dry runs, three applies
		t.Fatalf("server-side applies: %v", fieldManagers)
	}

	st2, err := p.Status(ctx, "web")
	if err != nil || st2.Phase != workload.Running || st2.Replicas != st.Replicas {
		t.Fatalf("Status %+v %v", st2, err)
	}
	list, err := p.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "web" {
		t.Fatalf("List %+v %v", list, err)
	}
	deadline := time.After(5 * time.Second)
	for {
		select {
		case w := <-watched:
			if w.Name == "web" && w.Phase == workload.Running {
				return
			}
		case <-deadline:
			t.Fatal("Watch never yielded web Running")
		}
	}
}

func TestFakeStartRefusesForeignObjects(t *testing.T) {
	foreign := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: map[string]string{"app": "web"}}}
	p, cs, _ := fakeProvider(t, foreign)
	ctx := ctxT(t, 5*time.Second)
	_, err := p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: "nginx", Replicas: 1})
	if workload.CodeOf(err) != workload.AlreadyExists || !provider.NothingChanged(err) {
		t.Fatalf("Start over a foreign Deployment: %v", err)
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "get" && a.GetVerb() != "list" && a.GetVerb() != "watch" {
			t.Fatalf("Start refused but made a %s of %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
	// Scale, Stop and Status do not see it either.
	if _, err := p.Scale(ctx, "web", 0); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Scale of a foreign Deployment: %v", err)
	}
	if st, err := p.Stop(ctx, "web"); err != nil || st.Phase != workload.Stopped {
		t.Fatalf("Stop of a foreign Deployment: %+v %v", st, err)
	}
	d, _ := cs.AppsV1().Deployments("apps").Get(ctx, "web", metav1.GetOptions{})
	if d.Spec.Replicas != nil {
		t.Fatal("Stop touched a foreign Deployment")
	}
}

func TestFakeDryRunRefusalChangesNothing(t *testing.T) {
	p, cs, _ := fakeProviderWith(t, func(cs *fake.Clientset, _ *metricsfake.Clientset) {
		cs.PrependReactor("patch", "deployments", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "deployments"}, "web", errors.New(`User "bob" cannot patch resource "deployments"`))
		})
	})
	_, err := p.Start(ctxT(t, 5*time.Second), workload.DeploymentSpec{Name: "web", Image: "nginx", Replicas: 1})
	if workload.CodeOf(err) != workload.PermissionDenied || !provider.NothingChanged(err) || !strings.Contains(err.Error(), "dry run") {
		t.Fatalf("Start refused by RBAC: %v", err)
	}
	// (The fake ignores dry runs, so look at what was asked, not at what
	// it stored.)
	for _, a := range cs.Actions() {
		if pa, ok := a.(k8stesting.PatchActionImpl); ok && len(pa.PatchOptions.DryRun) == 0 {
			t.Fatalf("a real write (%s %s) before the refusal", pa.GetResource().Resource, pa.Name)
		}
	}
}

func TestFakeStartTimesOutProgressing(t *testing.T) {
	p, _, _ := fakeProvider(t)
	p.opts.RolloutTimeout = workload.Duration(300 * time.Millisecond)
	st, err := p.Start(ctxT(t, 5*time.Second), workload.DeploymentSpec{Name: "web", Image: "nginx", Replicas: 2})
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != workload.Progressing || !strings.Contains(st.Message, "did not finish before the operation's deadline") {
		t.Fatalf("status %+v", st)
	}
}

func TestFakeInvalidInput(t *testing.T) {
	p, cs, _ := fakeProvider(t)
	ctx := ctxT(t, 5*time.Second)
	for _, err := range []error{
		func() error { _, err := p.Status(ctx, "Bad_Name"); return err }(),
		func() error { _, err := p.Scale(ctx, "web", -1); return err }(),
		func() error { return p.ApplyConfig(ctx, "web", map[string]string{"bad key": "x"}) }(),
		func() error {
			_, err := p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: "nginx", Target: "other"})
			return err
		}(),
		func() error { _, err := p.Exec(ctx, "web", provider.ExecRequest{}); return err }(),
	} {
		if workload.CodeOf(err) != workload.InvalidArgument {
			t.Errorf("error %v, want invalid_argument", err)
		}
	}
	for _, a := range cs.Actions() {
		if a.GetVerb() != "list" && a.GetVerb() != "watch" && a.GetResource().Resource != "resource" { // (discovery)
			t.Fatalf("invalid input reached the API server: %s %s", a.GetVerb(), a.GetResource().Resource)
		}
	}
}

func TestFakeMetrics(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: ownLabels("prod", "web")}}
	owner := metav1.OwnerReference{UID: "rs"}
	p, _, mc := fakeProvider(t, dep, readyPod("apps", "web", "web-a", owner), readyPod("apps", "web", "web-b", owner))
	ts := time.Now().Truncate(time.Second)
	for i, name := range []string{"web-a", "web-b"} {
		pm := &metricsv1beta1.PodMetrics{
			ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "apps", Labels: ownLabels("prod", "web")},
			Timestamp:  metav1.NewTime(ts.Add(time.Duration(i) * time.Second)),
			Window:     metav1.Duration{Duration: 15 * time.Second},
			Containers: []metricsv1beta1.ContainerMetrics{{Name: "web", Usage: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("250m"),
				corev1.ResourceMemory: resource.MustParse("100Mi"),
			}}},
		}
		if err := mc.Tracker().Create(podMetricsGVR, pm, "apps"); err != nil {
			t.Fatal(err)
		}
	}
	// Someone else's pod in the namespace is not counted.
	other := &metricsv1beta1.PodMetrics{ObjectMeta: metav1.ObjectMeta{Name: "x", Namespace: "apps", Labels: ownLabels("prod", "other")},
		Timestamp: metav1.NewTime(ts), Containers: []metricsv1beta1.ContainerMetrics{{Usage: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("8")}}}}
	if err := mc.Tracker().Create(podMetricsGVR, other, "apps"); err != nil {
		t.Fatal(err)
	}
	ctx := ctxT(t, 5*time.Second)
	for s, err := range p.StreamMetrics(ctx, "web") {
		if err != nil {
			t.Fatal(err)
		}
		want := workload.MetricSample{Service: "web", Time: ts.Add(time.Second).UTC(), Instances: 2, CPUPercent: 50,
			MemoryBytes: 200 << 20, MemoryLimitBytes: 128 << 20, Resolution: workload.Duration(15 * time.Second)}
		if fmt.Sprint(s) != fmt.Sprint(want) {
			t.Fatalf("sample\n %+v\nwant\n %+v", s, want)
		}
		break
	}
	for _, err := range p.StreamMetrics(ctx, "nope") {
		if workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("metrics of an unknown service: %v", err)
		}
	}
}

func TestFakeMetricsWithoutMetricsServer(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: ownLabels("prod", "web")}}
	p, _, _ := fakeProviderWith(t, func(_ *fake.Clientset, mc *metricsfake.Clientset) {
		mc.PrependReactor("list", "pods", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewNotFound(schema.GroupResource{Group: "metrics.k8s.io", Resource: "pods"}, "")
		})
	}, dep)
	n := 0
	for s, err := range p.StreamMetrics(ctxT(t, 5*time.Second), "web") {
		n++
		if err == nil {
			t.Fatalf("sample %+v without a metrics API", s)
		}
		if workload.CodeOf(err) != workload.Unavailable || !strings.Contains(err.Error(), "Metrics Server is not installed") ||
			!errors.Is(err, errNoMetricsAPI) {
			t.Fatalf("error %v", err)
		}
	}
	if n != 1 {
		t.Fatalf("%d items, want exactly one error", n)
	}
	if r := p.UnsupportedReason(provider.OpStreamMetrics); !strings.Contains(r, "metrics.k8s.io") {
		t.Fatalf("UnsupportedReason(stream_metrics) = %q", r)
	}
	if r := p.UnsupportedReason(provider.OpExec); r != "" {
		t.Fatalf("UnsupportedReason(exec) = %q", r)
	}
}

// fakeExecutor records what Exec asked for and answers as told. Like a
// container with /bin/sh, it prints the exec wrapper's line first when
// the command is wrapped (unless noShell: then it fails as a runtime does
// when the executable is missing, printing nothing).
type fakeExecutor struct {
	url     *url.URL
	opts    remotecommand.StreamOptions
	out     string
	err     error
	size    *remotecommand.TerminalSize
	noShell bool
	calls   [][]string // the commands, in order
	stdin   string     // what the last call read from stdin
}

func (f *fakeExecutor) Stream(o remotecommand.StreamOptions) error {
	return f.StreamWithContext(context.Background(), o)
}

func (f *fakeExecutor) StreamWithContext(ctx context.Context, o remotecommand.StreamOptions) error {
	f.opts = o
	cmd := f.url.Query()["command"]
	f.calls = append(f.calls, cmd)
	wrapped := len(cmd) > 4 && cmd[0] == "/bin/sh" && cmd[3] == "alphaswarm-exec"
	if wrapped && f.noShell {
		return errors.New(`Internal error occurred: error executing command in container: failed to exec in container: ` +
			`OCI runtime exec failed: exec failed: unable to start container process: exec: "/bin/sh": stat /bin/sh: no such file or directory: unknown`)
	}
	if wrapped && o.Stdout != nil {
		io.WriteString(o.Stdout, "@alphaswarm-exec 4242 987654\n")
	}
	if o.TerminalSizeQueue != nil {
		f.size = o.TerminalSizeQueue.Next()
	}
	if o.Stdin != nil {
		b, _ := io.ReadAll(o.Stdin)
		f.stdin = string(b)
	}
	if o.Stdout != nil {
		io.WriteString(o.Stdout, f.out)
	}
	return f.err
}

func TestFakeExec(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: ownLabels("prod", "web")}}
	owner := metav1.OwnerReference{UID: "rs"}
	notReady := readyPod("apps", "web", "web-a", owner)
	notReady.Status.Conditions = nil
	p, _, _ := fakeProvider(t, dep, notReady, readyPod("apps", "web", "web-b", owner))
	fe := &fakeExecutor{out: "hello\n", err: utilexec.CodeExitError{Err: errors.New("command terminated with exit code 3"), Code: 3}}
	p.newExecutor = func(u *url.URL) (remotecommand.Executor, error) { fe.url = u; return fe, nil }
	ctx := ctxT(t, 5*time.Second)
	var out strings.Builder
	resize := make(chan provider.TermSize, 1)
	resize <- provider.TermSize{Cols: 120, Rows: 40}
	res, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"sh", "-c", "echo hello; exit 3"}, TTY: true,
		Stdin: strings.NewReader(""), Stdout: &out, Stderr: io.Discard, Resize: resize})
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance != "web-b" || res.ExitCode != 3 || out.String() != "hello\n" {
		t.Fatalf("result %+v, output %q", res, out.String())
	}
	q := fe.url.Query()
	if fe.url.Path != "/api/v1/namespaces/apps/pods/web-b/exec" || q.Get("container") != "web" || q.Get("tty") != "true" ||
		q.Get("stderr") != "" || fe.url.Host != "k8s.test:6443" ||
		!slices.Equal(q["command"], wrapCommand([]string{"sh", "-c", "echo hello; exit 3"})) ||
		!slices.Equal(q["command"][:4], []string{"/bin/sh", "-c", wrapScript, "alphaswarm-exec"}) {
		t.Fatalf("exec URL %s", fe.url)
	}
	if fe.opts.Stderr != nil || fe.size == nil || fe.size.Width != 120 || fe.size.Height != 40 {
		t.Fatalf("stream options %+v, size %+v", fe.opts, fe.size)
	}

	fe.err = errors.New("error dialing backend: connection refused")
	if _, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"true"}}); workload.CodeOf(err) != workload.ProviderError {
		t.Fatalf("exec transport failure: %v", err)
	}
	if _, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"true"}, Instance: "web-zzz"}); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("exec in an unknown pod: %v", err)
	}
	if _, err := p.Exec(ctx, "nope", provider.ExecRequest{Command: []string{"true"}}); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("exec in an unknown service: %v", err)
	}
}

func TestFakeLogsTagsPods(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: ownLabels("prod", "web")}}
	owner := metav1.OwnerReference{UID: "rs"}
	p, _, _ := fakeProvider(t, dep, readyPod("apps", "web", "web-a", owner), readyPod("apps", "web", "web-b", owner))
	seen := map[string]string{}
	for l, err := range p.Logs(ctxT(t, 5*time.Second), "web", provider.LogOptions{Tail: 10}) {
		if err != nil {
			t.Fatal(err)
		}
		seen[l.Instance] = l.Text
	}
	// The fake answers every log request with "fake logs".
	if len(seen) != 2 || seen["web-a"] != "fake logs" || seen["web-b"] != "fake logs" {
		t.Fatalf("lines %v", seen)
	}
}

func TestParseLogLine(t *testing.T) {
	l := parseLogLine("web-a", "2026-01-02T03:04:05.123456789Z hello world")
	if l.Text != "hello world" || l.Instance != "web-a" || l.Stream != "stdout" ||
		!l.Time.Equal(time.Date(2026, 1, 2, 3, 4, 5, 123456789, time.UTC)) {
		t.Fatalf("%+v", l)
	}
	if l := parseLogLine("p", "no timestamp here"); l.Text != "no timestamp here" || l.Time.IsZero() {
		t.Fatalf("%+v", l)
	}
	var got []string
	after := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	in := "2026-01-02T03:04:05Z old\n2026-01-02T03:04:06Z new\n2026-01-02T03:04:07Z " + strings.Repeat("x", maxLogLine+10) + "\nlast-no-newline"
	if err := scanLog(strings.NewReader(in), "p", after, func(l workload.LogLine) bool { got = append(got, l.Text); return true }); err != nil {
		t.Fatal(err)
	}
	if len(got) != 3 || got[0] != "new" || len(got[1]) != maxLogLine-len("2026-01-02T03:04:07Z ") || got[2] != "last-no-newline" {
		t.Fatalf("lines %d: %q", len(got), got[0])
	}
}

func TestOpen(t *testing.T) {
	dir := t.TempDir()
	kc := filepath.Join(dir, "config")
	if err := os.WriteFile(kc, []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster: {server: "https://127.0.0.1:1"}
users:
- name: u
  user: {token: "abcdef"}
contexts:
- name: one
  context: {cluster: c, user: u, namespace: team-a}
- name: two
  context: {cluster: c, user: u}
current-context: one
`), 0o600); err != nil {
		t.Fatal(err)
	}
	open := func(opts string, env map[string]string) (*Provider, error) {
		cfg := provider.TargetConfig{Name: "prod", Provider: Name}
		if opts != "" {
			cfg.Options = map[string]jsonRaw{}
			for _, kv := range strings.Split(opts, ",") {
				k, v, _ := strings.Cut(kv, "=")
				cfg.Options[k] = jsonRaw(v)
			}
		}
		pr, err := provider.Open(context.Background(), cfg, credentials.FromMap(env))
		if err != nil {
			return nil, err
		}
		p := pr.(*Provider)
		t.Cleanup(func() { p.Close() })
		return p, nil
	}
	p, err := open("", map[string]string{"KUBECONFIG": filepath.Join(dir, "missing") + string(filepath.ListSeparator) + kc})
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace() != "team-a" || p.host != "https://127.0.0.1:1" {
		t.Fatalf("namespace %q host %q", p.Namespace(), p.host)
	}
	p, err = open(`kubeconfig="`+kc+`",context="two",deleteOnStop=true`, nil)
	if err != nil {
		t.Fatal(err)
	}
	if p.Namespace() != "default" || !p.opts.DeleteOnStop {
		t.Fatalf("namespace %q, options %+v", p.Namespace(), p.opts)
	}
	p, err = open(`kubeconfig="`+kc+`",namespace="explicit"`, nil)
	if err != nil || p.Namespace() != "explicit" {
		t.Fatalf("explicit namespace: %v", err)
	}
	// The API server does not answer: the provider is built anyway and
	// reports Unavailable.
	if _, err := p.Status(ctxT(t, 10*time.Second), "web"); workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("Status against a dead API server: %v", err)
	}
	if err := p.Ping(ctxT(t, 10*time.Second)); workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("Ping against a dead API server: %v", err)
	}

	for _, tc := range []struct {
		opts string
		env  map[string]string
		msg  string
	}{
		{"", nil, "no kubeconfig"},
		{`kubeconfig="` + filepath.Join(dir, "missing") + `"`, nil, "missing"},
		{`kubeconfig="` + kc + `",context="three"`, nil, "three"},
		{`kubeconfig="` + kc + `",bogus=1`, nil, "bogus"},
		{"", map[string]string{"KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443"}, "service-account token"},
	} {
		_, err := open(tc.opts, tc.env)
		if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), tc.msg) {
			t.Errorf("options %s env %v: error %v, want invalid_argument mentioning %q", tc.opts, tc.env, err, tc.msg)
		}
	}
}

func TestNewValidates(t *testing.T) {
	if _, err := New(context.Background(), "Bad", nil, Options{}); workload.CodeOf(err) != workload.InvalidArgument {
		t.Fatal(err)
	}
	if _, err := New(context.Background(), "prod", nil, Options{}); workload.CodeOf(err) != workload.InvalidArgument {
		t.Fatal(err)
	}
}

func TestFakePing(t *testing.T) {
	p, _, _ := fakeProvider(t)
	if err := p.Ping(ctxT(t, time.Second)); err != nil {
		t.Fatal(err)
	}
	p.Close()
	if err := p.Ping(ctxT(t, time.Second)); workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("Ping after Close: %v", err)
	}
	if _, err := p.Status(ctxT(t, time.Second), "web"); workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("Status after Close: %v", err)
	}
}

type jsonRaw = json.RawMessage

var podMetricsGVR = schema.GroupVersionResource{Group: "metrics.k8s.io", Version: "v1beta1", Resource: "pods"}

// TestCloseLeavesNothingRunning: Watch, followed logs and metrics streams
// end with their callers, and Close stops the informers and the metrics
// check.
func TestCloseLeavesNothingRunning(t *testing.T) {
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: ownLabels("prod", "web")}}
	p, _, _ := fakeProvider(t, dep, readyPod("apps", "web", "web-a", metav1.OwnerReference{UID: "rs"}))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	for range p.Logs(ctx, "web", provider.LogOptions{Follow: true, Tail: -1}) {
		break
	}
	for range p.StreamMetrics(ctx, "web") {
		break
	}
	wctx, wcancel := context.WithTimeout(ctx, 100*time.Millisecond)
	for range p.Watch(wctx) {
	}
	wcancel()
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
}

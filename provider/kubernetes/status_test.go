package kubernetes

import (
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"

	"github.com/alphaswarm/controller/workload"
)

// fixture builds a Deployment with its current ReplicaSet (revision 2) and
// an old one (revision 1), and pods of either.
type fixture struct {
	dep      *appsv1.Deployment
	cur, old *appsv1.ReplicaSet
	pods     []*corev1.Pod
}

func newFixture(desired, ready, updated, replicas int32) *fixture {
	dep := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", UID: "dep-uid", Generation: 3,
			Labels:      ownLabels("prod", "web"),
			Annotations: map[string]string{revisionAnnotaton: "2"}},
		Spec: appsv1.DeploymentSpec{Replicas: &desired, Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "web", Image: "nginx:1.27"}}}}},
		Status: appsv1.DeploymentStatus{ObservedGeneration: 3, ReadyReplicas: ready, AvailableReplicas: ready,
			UpdatedReplicas: updated, Replicas: replicas},
	}
	rs := func(uid, rev string) *appsv1.ReplicaSet {
		return &appsv1.ReplicaSet{ObjectMeta: metav1.ObjectMeta{Name: "web-" + uid, UID: types.UID(uid),
			Labels:          ownLabels("prod", "web"),
			Annotations:     map[string]string{revisionAnnotaton: rev},
			OwnerReferences: []metav1.OwnerReference{{UID: "dep-uid", Kind: "Deployment", Name: "web"}}}}
	}
	return &fixture{dep: dep, cur: rs("rs2", "2"), old: rs("rs1", "1")}
}

// pod adds a pod of the current (or old) ReplicaSet, shaped by fns.
func (f *fixture) pod(name string, current bool, fns ...func(*corev1.Pod)) *fixture {
	owner := f.cur
	if !current {
		owner = f.old
	}
	p := &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Labels: ownLabels("prod", "web"),
			OwnerReferences: []metav1.OwnerReference{{UID: owner.UID, Kind: "ReplicaSet", Name: owner.Name}}},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web"}}},
	}
	for _, fn := range fns {
		fn(p)
	}
	f.pods = append(f.pods, p)
	return f
}

func (f *fixture) cond(t appsv1.DeploymentConditionType, status corev1.ConditionStatus, reason, msg string) *fixture {
	f.dep.Status.Conditions = append(f.dep.Status.Conditions, appsv1.DeploymentCondition{Type: t, Status: status, Reason: reason, Message: msg})
	return f
}

func (f *fixture) derive() derived {
	return derive(f.dep, []*appsv1.ReplicaSet{f.cur, f.old}, f.pods)
}

var started = metav1.NewTime(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC))

func running(p *corev1.Pod) {
	p.Status.Phase = corev1.PodRunning
	p.Status.StartTime = &started
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionTrue}}
	p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web", Ready: true,
		State: corev1.ContainerState{Running: &corev1.ContainerStateRunning{}}}}
}

func pending(p *corev1.Pod) { p.Status.Phase = corev1.PodPending }

func waiting(reason, msg string) func(*corev1.Pod) {
	return func(p *corev1.Pod) {
		if len(p.Status.ContainerStatuses) == 0 {
			p.Status.ContainerStatuses = []corev1.ContainerStatus{{Name: "web"}}
		}
		p.Status.ContainerStatuses[0].Ready = false
		p.Status.ContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: reason, Message: msg}}
	}
}

func notReady(p *corev1.Pod) {
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodReady, Status: corev1.ConditionFalse}}
	p.Status.ContainerStatuses[0].Ready = false
}

func restarted(n int32) func(*corev1.Pod) {
	return func(p *corev1.Pod) { p.Status.ContainerStatuses[0].RestartCount = n }
}

func terminating(p *corev1.Pod) {
	now := metav1.Now()
	p.DeletionTimestamp = &now
}

func unschedulable(p *corev1.Pod) {
	p.Status.Phase = corev1.PodPending
	p.Status.Conditions = []corev1.PodCondition{{Type: corev1.PodScheduled, Status: corev1.ConditionFalse,
		Reason: "Unschedulable", Message: "0/2 nodes are available: 2 node(s) didn't match Pod's node affinity/selector."}}
}

// TestPhaseTable tests derive row by row, in the order of the package
// documentation's phase table.
func TestPhaseTable(t *testing.T) {
	tests := []struct {
		name    string
		f       *fixture
		phase   workload.Phase
		stuck   bool
		message string // a substring of the message
	}{
		{"being deleted", func() *fixture {
			f := newFixture(2, 2, 2, 2).pod("a", true, running).pod("b", true, running)
			now := metav1.Now()
			f.dep.DeletionTimestamp = &now
			return f
		}(), workload.Progressing, false, "being deleted"},
		{"scaled to 0, nothing left", newFixture(0, 0, 0, 0), workload.Stopped, false, ""},
		{"scaled to 0, pods terminating", newFixture(0, 0, 0, 0).pod("a", true, running, terminating),
			workload.Progressing, false, "1 pods still terminating"},
		{"generation not observed, none ready", func() *fixture {
			f := newFixture(2, 0, 0, 0)
			f.dep.Generation = 4
			return f
		}(), workload.Pending, false, "not yet seen"},
		{"generation not observed, some ready", func() *fixture {
			f := newFixture(2, 2, 2, 2).pod("a", true, running).pod("b", true, running)
			f.dep.Generation = 4
			return f
		}(), workload.Progressing, false, "not yet seen"},
		{"progress deadline exceeded, none ready", newFixture(1, 0, 1, 1).
			cond(appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded", `ReplicaSet "web-rs2" has timed out progressing.`).
			pod("a", true, unschedulable),
			workload.Failed, true, "ProgressDeadlineExceeded: ReplicaSet \"web-rs2\" has timed out progressing.; pod a: Unschedulable: 0/2 nodes"},
		{"progress deadline exceeded, old pods serve", newFixture(2, 2, 1, 3).
			cond(appsv1.DeploymentProgressing, corev1.ConditionFalse, "ProgressDeadlineExceeded", "timed out").
			pod("a", false, running).pod("b", false, running).pod("c", true, pending),
			workload.Degraded, true, "ProgressDeadlineExceeded"},
		{"replica failure", newFixture(2, 0, 0, 0).
			cond(appsv1.DeploymentReplicaFailure, corev1.ConditionTrue, "FailedCreate", `pods "web-x" is forbidden: exceeded quota`),
			workload.Failed, true, "FailedCreate: pods \"web-x\" is forbidden: exceeded quota"},
		{"image pull back-off", newFixture(1, 0, 1, 1).pod("a", true, pending, waiting("ImagePullBackOff", `Back-off pulling image "nope:1"`)),
			workload.Failed, true, `pod a: container web: ImagePullBackOff: Back-off pulling image "nope:1"`},
		{"crash loop among ready pods", newFixture(3, 2, 3, 3).pod("a", true, running).pod("b", true, running).
			pod("c", true, running, notReady, restarted(4), waiting("CrashLoopBackOff", "back-off 40s")),
			workload.Degraded, true, "pod c: container web: CrashLoopBackOff: back-off 40s"},
		{"missing secret key", newFixture(1, 0, 1, 1).pod("a", true, pending, waiting("CreateContainerConfigError", `secret "db" not found`)),
			workload.Failed, true, `CreateContainerConfigError: secret "db" not found`},
		{"pod failed (evicted)", newFixture(1, 0, 1, 1).pod("a", true, func(p *corev1.Pod) {
			p.Status.Phase = corev1.PodFailed
			p.Status.Reason = "Evicted"
			p.Status.Message = "The node was low on resource: memory."
		}), workload.Failed, true, "Evicted: The node was low on resource: memory."},
		{"failing old pods do not fail a new rollout", newFixture(1, 0, 1, 2).
			pod("old", false, pending, waiting("ImagePullBackOff", "")).pod("new", true, pending, waiting("ContainerCreating", "")),
			workload.Pending, false, "pod new: container web: ContainerCreating"},
		{"paused mid-rollout", func() *fixture {
			f := newFixture(2, 2, 1, 3).pod("a", false, running).pod("b", false, running).pod("c", true, running)
			f.dep.Spec.Paused = true
			return f
		}(), workload.Degraded, true, "kubectl rollout resume deployment/web"},
		{"all updated and ready", newFixture(2, 2, 2, 2).pod("a", true, running).pod("b", true, running),
			workload.Running, false, ""},
		{"running with terminating leftovers", newFixture(2, 2, 2, 2).pod("a", true, running).pod("b", true, running).
			pod("old", false, running, terminating), workload.Running, false, ""},
		{"status says ready, pod cache lags", newFixture(2, 2, 2, 2).pod("a", true, running).pod("b", true, pending),
			workload.Progressing, false, "2 of 2 ready"},
		{"none ready yet: scheduling", newFixture(2, 0, 2, 2).pod("a", true, unschedulable).pod("b", true, pending),
			workload.Pending, false, "pod a: Unschedulable"},
		{"none ready: transient ErrImagePull", newFixture(1, 0, 1, 1).pod("a", true, pending, waiting("ErrImagePull", "rpc error")),
			workload.Pending, false, "ErrImagePull"},
		{"rolling out", newFixture(2, 2, 1, 3).pod("a", false, running).pod("b", false, running).pod("c", true, pending),
			workload.Progressing, false, "1 of 2 updated"},
		{"old pods left over", newFixture(2, 2, 2, 3).pod("a", true, running).pod("b", true, running).pod("c", false, running),
			workload.Progressing, false, "rolling out"},
		{"scaling up", newFixture(3, 1, 3, 3).pod("a", true, running).pod("b", true, pending).pod("c", true, pending),
			workload.Progressing, false, "1 of 3 ready"},
		{"pods still to be created (a scale-up: S2)", newFixture(3, 1, 1, 1).pod("a", true, running),
			workload.Progressing, false, "scaling up to 3: 1 ready"},
		{"deployment status lags the pods", newFixture(3, 1, 3, 3).pod("a", true, running).pod("b", true, running).pod("c", true, running),
			workload.Progressing, false, "1 of 3 ready"},
		{"a ready pod went unready", newFixture(2, 1, 2, 2).pod("a", true, running).pod("b", true, running, notReady, restarted(1)),
			workload.Degraded, false, "1 of 2 ready"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			d := tt.f.derive()
			if d.status.Phase != tt.phase || d.stuck != tt.stuck {
				t.Fatalf("phase %s stuck %v (message %q), want %s stuck %v", d.status.Phase, d.stuck, d.status.Message, tt.phase, tt.stuck)
			}
			if !strings.Contains(d.status.Message, tt.message) {
				t.Fatalf("message %q does not contain %q", d.status.Message, tt.message)
			}
			if tt.message == "" && d.status.Message != "" {
				t.Fatalf("message %q, want none", d.status.Message)
			}
		})
	}
}

// TestDeriveReplicasAndInstances checks the counts kubectl shows and the
// instances' fields.
func TestDeriveReplicasAndInstances(t *testing.T) {
	f := newFixture(2, 1, 2, 2).
		pod("web-b", true, running).
		pod("web-a", true, running, notReady, restarted(2), waiting("CrashLoopBackOff", "back-off")).
		pod("web-old", false, running, terminating)
	d := f.derive()
	st := d.status
	if st.Replicas != (workload.Replicas{Desired: 2, Ready: 1, Updated: 2}) {
		t.Errorf("replicas %+v", st.Replicas)
	}
	if st.Revision != "2" || st.Image != "nginx:1.27" || st.Name != "web" {
		t.Errorf("revision %q image %q name %q", st.Revision, st.Image, st.Name)
	}
	if len(st.Instances) != 3 {
		t.Fatalf("instances %+v", st.Instances)
	}
	a, b, old := st.Instances[0], st.Instances[1], st.Instances[2]
	if a.ID != "web-a" || a.State != "CrashLoopBackOff" || a.Healthy == nil || *a.Healthy || a.Restarts != 2 ||
		!strings.Contains(a.Message, "CrashLoopBackOff") {
		t.Errorf("crash-looping instance %+v", a)
	}
	if b.ID != "web-b" || b.State != "Running" || b.Healthy == nil || !*b.Healthy || !b.Started.Equal(started.Time) || b.Message != "" {
		t.Errorf("running instance %+v", b)
	}
	if old.ID != "web-old" || old.State != "Terminating" || old.Healthy != nil {
		t.Errorf("terminating instance %+v", old)
	}
	if d.readyPods != 1 || d.livePods != 2 || d.allPods != 3 {
		t.Errorf("counts ready %d live %d all %d", d.readyPods, d.livePods, d.allPods)
	}
}

// D1: a Deployment scaled to 0 with no pod left is Stopped 0/0, whatever
// its (lagging) status still counts; S2: a plain scale-up is not called a
// rollout.
func TestDeriveStoppedAndScaleUp(t *testing.T) {
	d := newFixture(0, 3, 3, 0).derive()
	if d.status.Phase != workload.Stopped || d.status.Replicas != (workload.Replicas{}) {
		t.Fatalf("stopped with stale status: %s %+v", d.status.Phase, d.status.Replicas)
	}
	d = newFixture(4, 2, 2, 2).pod("a", true, running).pod("b", true, running).derive()
	if d.status.Phase != workload.Progressing || strings.Contains(d.status.Message, "rolling out") ||
		!strings.Contains(d.status.Message, "scaling up to 4: 2 ready") {
		t.Fatalf("scale-up: %s %q", d.status.Phase, d.status.Message)
	}
	// With pods of the old revision it is a rollout.
	d = newFixture(2, 2, 1, 3).pod("a", true, running).pod("b", false, running).pod("c", false, running).derive()
	if !strings.Contains(d.status.Message, "rolling out") {
		t.Fatalf("rollout: %s %q", d.status.Phase, d.status.Message)
	}
}

func TestDeriveIgnoresPodsOfOtherOwners(t *testing.T) {
	f := newFixture(1, 1, 1, 1).pod("a", true, running)
	stray := &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "stray",
		OwnerReferences: []metav1.OwnerReference{{UID: "someone-else"}}}}
	f.pods = append(f.pods, stray)
	if d := f.derive(); len(d.status.Instances) != 1 || d.status.Phase != workload.Running {
		t.Fatalf("status %+v", d.status)
	}
}

func TestViewPodInitContainers(t *testing.T) {
	p := &corev1.Pod{Status: corev1.PodStatus{Phase: corev1.PodPending,
		InitContainerStatuses: []corev1.ContainerStatus{{Name: "init", State: corev1.ContainerState{
			Terminated: &corev1.ContainerStateTerminated{ExitCode: 0, Reason: "Completed"}}}},
		ContainerStatuses: []corev1.ContainerStatus{{Name: "web", State: corev1.ContainerState{
			Waiting: &corev1.ContainerStateWaiting{Reason: "ContainerCreating"}}}}}}
	if v := viewPod(p); v.state != "ContainerCreating" || v.failing {
		t.Fatalf("view %+v", v)
	}
	p.Status.InitContainerStatuses[0].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "CrashLoopBackOff"}}
	if v := viewPod(p); v.state != "CrashLoopBackOff" || !v.failing {
		t.Fatalf("view %+v", v)
	}
}

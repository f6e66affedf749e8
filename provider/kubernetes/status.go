package kubernetes

import (
	"fmt"
	"slices"
	"strings"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alphaswarm/controller/workload"
)

// failureReasons are the container waiting reasons that say a pod will not
// become ready without a change (a fixed image, a fixed command, a Secret
// that exists). ErrImagePull is not among them: it is the first, possibly
// transient, failure, and ImagePullBackOff follows it within seconds.
var failureReasons = map[string]bool{
	"CrashLoopBackOff":           true,
	"ImagePullBackOff":           true,
	"InvalidImageName":           true,
	"ErrImageNeverPull":          true,
	"CreateContainerConfigError": true,
	"CreateContainerError":       true,
	"RunContainerError":          true,
	"PreCreateHookError":         true,
	"PostStartHookError":         true,
}

// podView is what the phase derivation needs to know about one pod.
type podView struct {
	name        string
	ready       bool
	terminating bool
	failing     bool   // will not become ready without a change
	state       string // kubectl's STATUS column
	reason      string // why it is not ready, for messages
	restarts    int
}

// viewPod classifies a pod.
func viewPod(pod *corev1.Pod) podView {
	v := podView{name: pod.Name, state: string(pod.Status.Phase)}
	if v.state == "" {
		v.state = string(corev1.PodPending)
	}
	for _, c := range pod.Status.Conditions {
		if c.Type == corev1.PodReady && c.Status == corev1.ConditionTrue {
			v.ready = true
		}
		if c.Type == corev1.PodScheduled && c.Status == corev1.ConditionFalse {
			v.reason = joinReason(c.Reason, c.Message)
		}
	}
	statuses := slices.Concat(pod.Status.InitContainerStatuses, pod.Status.ContainerStatuses)
	for _, cs := range statuses {
		v.restarts += int(cs.RestartCount)
	}
	for i, cs := range statuses {
		initDone := i < len(pod.Status.InitContainerStatuses) && cs.State.Terminated != nil && cs.State.Terminated.ExitCode == 0
		switch {
		case initDone:
			continue
		case cs.State.Waiting != nil && cs.State.Waiting.Reason != "":
			w := cs.State.Waiting
			v.state = w.Reason
			v.reason = fmt.Sprintf("container %s: %s", cs.Name, joinReason(w.Reason, w.Message))
			if failureReasons[w.Reason] {
				v.failing = true
			}
		case cs.State.Terminated != nil && pod.Status.Phase != corev1.PodSucceeded && !v.ready:
			t := cs.State.Terminated
			reason := t.Reason
			if reason == "" {
				reason = fmt.Sprintf("exit code %d", t.ExitCode)
			}
			v.state = reason
			v.reason = fmt.Sprintf("container %s terminated: %s", cs.Name, joinReason(reason, t.Message))
		default:
			continue
		}
		if v.failing {
			break
		}
	}
	switch pod.Status.Phase {
	case corev1.PodFailed:
		v.failing = true
		v.state = "Failed"
		if pod.Status.Reason != "" {
			v.state = pod.Status.Reason
		}
		if r := joinReason(pod.Status.Reason, pod.Status.Message); r != "" && v.reason == "" {
			v.reason = r
		}
		if v.reason == "" {
			v.reason = "pod failed"
		}
	case corev1.PodSucceeded:
		v.state = "Completed"
		v.reason = "the container exited with code 0; a service's container must keep running"
	}
	if pod.DeletionTimestamp != nil {
		v.terminating = true
		v.ready = false
		v.failing = false
		v.state = "Terminating"
	}
	return v
}

func joinReason(reason, message string) string {
	message = strings.TrimSpace(message)
	switch {
	case reason == "":
		return message
	case message == "":
		return reason
	}
	return reason + ": " + message
}

// derived is a service's status as derived from the cache.
type derived struct {
	status workload.DeploymentStatus
	// stuck says the rollout cannot finish without a change (the phase is
	// Failed or Degraded because of it); operations stop waiting.
	stuck bool
	// settled says the Deployment controller has seen the latest spec.
	settled bool
	// readyPods counts ready, non-terminating pods in the cache; livePods
	// the non-terminating ones; allPods every one.
	readyPods, livePods, allPods int
}

// derive computes a service's normalised status from its Deployment, the
// Deployment's ReplicaSets and their pods. It is the phase table of the
// package documentation; status_test.go tests it row by row.
func derive(dep *appsv1.Deployment, rss []*appsv1.ReplicaSet, pods []*corev1.Pod) derived {
	var d derived
	st := &d.status
	st.Name = dep.Name
	desired := 1
	if dep.Spec.Replicas != nil {
		desired = int(*dep.Spec.Replicas)
	}
	st.Replicas = workload.Replicas{
		Desired: desired,
		Ready:   int(dep.Status.ReadyReplicas),
		Updated: int(dep.Status.UpdatedReplicas),
	}
	st.Revision = dep.Annotations[revisionAnnotaton]
	for _, c := range dep.Spec.Template.Spec.Containers {
		if c.Name == dep.Name || st.Image == "" {
			st.Image = c.Image
		}
	}
	d.settled = dep.Status.ObservedGeneration >= dep.Generation

	// The current ReplicaSet is the one of the Deployment's revision; its
	// pods are the ones a failure of the rollout shows in.
	var current *appsv1.ReplicaSet
	owned := map[string]bool{}
	for _, rs := range rss {
		if !ownedBy(rs.OwnerReferences, string(dep.UID)) {
			continue
		}
		owned[string(rs.UID)] = true
		if st.Revision != "" && rs.Annotations[revisionAnnotaton] == st.Revision {
			current = rs
		}
	}
	var views, currentViews []podView
	slices.SortFunc(pods, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	st.Instances = []workload.Instance{}
	for _, pod := range pods {
		if len(pod.OwnerReferences) > 0 && !ownedByAny(pod.OwnerReferences, owned) {
			continue
		}
		v := viewPod(pod)
		views = append(views, v)
		if current == nil || ownedBy(pod.OwnerReferences, string(current.UID)) {
			currentViews = append(currentViews, v)
		}
		d.allPods++
		if !v.terminating {
			d.livePods++
			if v.ready {
				d.readyPods++
			}
		}
		in := workload.Instance{ID: pod.Name, State: v.state, Restarts: v.restarts}
		if !v.terminating && pod.Status.Phase == corev1.PodRunning {
			h := v.ready
			in.Healthy = &h
		}
		if pod.Status.StartTime != nil {
			in.Started = pod.Status.StartTime.UTC()
		}
		if !v.ready && !v.terminating {
			in.Message = v.reason
		}
		st.Instances = append(st.Instances, in)
	}

	var progressing, replicaFailure *appsv1.DeploymentCondition
	for i := range dep.Status.Conditions {
		c := &dep.Status.Conditions[i]
		switch c.Type {
		case appsv1.DeploymentProgressing:
			progressing = c
		case appsv1.DeploymentReplicaFailure:
			if c.Status == corev1.ConditionTrue {
				replicaFailure = c
			}
		}
	}
	deadlineExceeded := progressing != nil && progressing.Status == corev1.ConditionFalse &&
		progressing.Reason == "ProgressDeadlineExceeded"

	var failing []podView
	for _, v := range currentViews {
		if v.failing {
			failing = append(failing, v)
		}
	}
	firstPending := func() string {
		for _, v := range currentViews {
			if !v.ready && !v.terminating && v.reason != "" {
				return "pod " + v.name + ": " + v.reason
			}
		}
		return ""
	}
	stuck := func(why string) {
		d.stuck = true
		if st.Replicas.Ready > 0 {
			st.Phase = workload.Degraded
		} else {
			st.Phase = workload.Failed
		}
		st.Message = why
	}

	switch {
	case dep.DeletionTimestamp != nil:
		st.Phase = workload.Progressing
		st.Message = "the Deployment is being deleted"
	case desired == 0 && d.allPods == 0:
		st.Phase = workload.Stopped
		// No pod is left: the Deployment's status counts can lag behind
		// (a stale readyReplicas showed "Stopped 3/0").
		st.Replicas.Ready, st.Replicas.Updated = 0, 0
	case desired == 0:
		st.Phase = workload.Progressing
		st.Message = fmt.Sprintf("scaled to 0; %d pods still terminating", d.allPods)
	case !d.settled:
		st.Phase = workload.Progressing
		st.Message = "the Deployment controller has not yet seen the latest spec"
		if st.Replicas.Ready == 0 {
			st.Phase = workload.Pending
		}
	case deadlineExceeded:
		why := joinReason(progressing.Reason, progressing.Message)
		if p := firstPending(); p != "" {
			why += "; " + p
		}
		stuck(why)
	case replicaFailure != nil:
		stuck(joinReason(replicaFailure.Reason, replicaFailure.Message))
	case len(failing) > 0:
		msgs := make([]string, 0, len(failing))
		for _, v := range failing {
			msgs = append(msgs, "pod "+v.name+": "+v.reason)
		}
		stuck(strings.Join(msgs, "; "))
	case dep.Spec.Paused && (st.Replicas.Updated < desired || st.Replicas.Ready < desired):
		stuck("the rollout is paused (kubectl rollout resume deployment/" + dep.Name + ")")
	case st.Replicas.Updated >= desired && st.Replicas.Ready >= desired &&
		int(dep.Status.Replicas) == desired && d.readyPods >= desired:
		st.Phase = workload.Running
	case st.Replicas.Ready == 0:
		st.Phase = workload.Pending
		st.Message = firstPending()
	case current != nil && len(views) == len(currentViews) && int(dep.Status.Replicas) <= desired && st.Replicas.Updated < desired:
		// Every pod is of the current revision: a scale-up, not a rollout.
		st.Phase = workload.Progressing
		st.Message = fmt.Sprintf("scaling up to %d: %d ready", desired, st.Replicas.Ready)
	case st.Replicas.Updated < desired || int(dep.Status.Replicas) > desired:
		st.Phase = workload.Progressing
		st.Message = fmt.Sprintf("rolling out: %d of %d updated, %d ready", st.Replicas.Updated, desired, st.Replicas.Ready)
	case startingPods(currentViews) > 0 || int(dep.Status.Replicas) < desired || d.livePods < desired ||
		d.readyPods != st.Replicas.Ready:
		// Pods on their way, pods still to be created, or the
		// Deployment's status lagging behind its pods.
		st.Phase = workload.Progressing
		st.Message = fmt.Sprintf("%d of %d ready", st.Replicas.Ready, desired)
		if p := firstPending(); p != "" {
			st.Message += "; " + p
		}
	default:
		st.Phase = workload.Degraded
		st.Message = fmt.Sprintf("%d of %d ready", st.Replicas.Ready, desired)
		if p := firstPending(); p != "" {
			st.Message += "; " + p
		}
	}
	return d
}

// startingPods counts pods on their way to ready: not ready, not failing,
// never restarted.
func startingPods(views []podView) int {
	n := 0
	for _, v := range views {
		if !v.ready && !v.terminating && !v.failing && v.restarts == 0 {
			n++
		}
	}
	return n
}

func ownedBy(refs []metav1.OwnerReference, uid string) bool {
	for _, r := range refs {
		if string(r.UID) == uid {
			return true
		}
	}
	return false
}

func ownedByAny(refs []metav1.OwnerReference, uids map[string]bool) bool {
	for _, r := range refs {
		if uids[string(r.UID)] {
			return true
		}
	}
	return false
}

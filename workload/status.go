package workload

import (
	"strings"
	"time"
)

// Phase is the normalised lifecycle state of a service. Each provider
// documents how its native states map onto these.
type Phase string

// The phases.
const (
	// Pending: accepted, nothing running yet (pulling, scheduling).
	Pending Phase = "Pending"
	// Progressing: a rollout, scale or restart is under way.
	Progressing Phase = "Progressing"
	// Running: desired replicas are all ready.
	Running Phase = "Running"
	// Degraded: some but not all desired replicas are ready, outside a rollout.
	Degraded Phase = "Degraded"
	// Stopped: desired replicas are zero and none run.
	Stopped Phase = "Stopped"
	// Failed: the service cannot reach its desired state without a change.
	Failed Phase = "Failed"
	// Unknown: the backend could not be asked or its answer not understood.
	Unknown Phase = "Unknown"
)

// Replicas counts a service's instances.
type Replicas struct {
	Desired int `json:"desired"`
	Ready   int `json:"ready"`
	Updated int `json:"updated"`
}

// Instance is one running unit: a container, a pod, a task, a container
// group, a Cloud Run instance.
type Instance struct {
	ID       string    `json:"id"`
	State    string    `json:"state"`
	Healthy  *bool     `json:"healthy,omitempty"`
	Started  time.Time `json:"started,omitzero"`
	Restarts int       `json:"restarts"`
	Message  string    `json:"message,omitempty"`
}

// DeploymentStatus is the normalised status of one service, rebuilt from the
// backend (never from the controller's memory alone).
type DeploymentStatus struct {
	// ID is "<target>/<name>".
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Target     string     `json:"target"`
	Provider   string     `json:"provider"`
	Phase      Phase      `json:"phase"`
	Replicas   Replicas   `json:"replicas"`
	Image      string     `json:"image,omitempty"`
	Revision   string     `json:"revision,omitempty"`
	Instances  []Instance `json:"instances"`
	Message    string     `json:"message,omitempty"`
	ObservedAt time.Time  `json:"observedAt"`
}

// ServiceID joins a target and a name into a service id.
func ServiceID(target, name string) string { return target + "/" + name }

// SplitServiceID splits "<target>/<name>"; ok is false if s has no '/'.
func SplitServiceID(s string) (target, name string, ok bool) {
	return strings.Cut(s, "/")
}

// PhaseFromReplicas is the common derivation used by providers whose
// backend has no richer signal: Stopped at desired 0 with nothing left,
// Running when all desired are ready and updated, Progressing while updated
// lags desired, Degraded when some are ready, Pending when none are.
func PhaseFromReplicas(r Replicas, running int) Phase {
	switch {
	case r.Desired == 0 && running == 0:
		return Stopped
	case r.Desired == 0:
		return Progressing
	case r.Ready >= r.Desired && r.Updated >= r.Desired:
		return Running
	case r.Updated < r.Desired && r.Ready > 0:
		return Progressing
	case r.Ready > 0:
		return Degraded
	}
	return Pending
}

package docker

import (
	"context"
	"fmt"
	"iter"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// statusOf derives the status of s (see the phase table in doc.go). The
// cache lock is held.
func (p *Provider) statusOf(s *serviceEntry) workload.DeploymentStatus {
	st := workload.DeploymentStatus{
		ID:         p.serviceID(s.name),
		Name:       s.name,
		Target:     p.target,
		Provider:   Name,
		ObservedAt: time.Now().UTC(),
		Instances:  []workload.Instance{},
	}
	var rec *record
	if a := s.anchor(); a != nil {
		rec = a.rec
	}
	hash := ""
	if rec != nil {
		st.Replicas.Desired = rec.desiredContainers()
		st.Image = rec.Spec.Image
		hash = rec.hash()
		st.Revision = hash
	}
	insts := make([]*instance, 0, len(s.replicas))
	for _, in := range s.replicas {
		insts = append(insts, in)
	}
	slices.SortFunc(insts, func(a, b *instance) int {
		if c := strings.Compare(a.composeSvc, b.composeSvc); c != 0 {
			return c
		}
		if a.index != b.index {
			return a.index - b.index
		}
		return a.created.Compare(b.created)
	})
	running, pending := 0, 0
	var reasons []string
	indices := map[string]bool{}
	for _, in := range insts {
		wi := workload.Instance{ID: shortID(in.id), State: string(in.state), Started: in.started, Restarts: in.restarts}
		if p.cache.terminating[in.id] {
			// Replaced or scaled away, stopping in the background.
			wi.State = "terminating"
			st.Instances = append(st.Instances, wi)
			continue
		}
		indices[in.composeSvc+"/"+strconv.Itoa(in.index)] = true
		if in.hasHealth && in.health != "" {
			h := in.health == container.Healthy
			wi.Healthy = &h
			if in.state == container.StateRunning {
				wi.State += " (" + string(in.health) + ")"
			}
		}
		switch {
		case in.state == container.StateExited || in.state == container.StateDead:
			wi.Message = fmt.Sprintf("exited with code %d", in.exitCode)
			if in.oomKilled {
				wi.Message += " (out of memory)"
			}
			if in.errMsg != "" {
				wi.Message += ": " + in.errMsg
			}
			reasons = append(reasons, fmt.Sprintf("%s %s", in.name, wi.Message))
		case in.state == container.StateRunning && in.health == container.Unhealthy:
			wi.Message = "health check failing"
			reasons = append(reasons, in.name+" is unhealthy")
		}
		st.Instances = append(st.Instances, wi)
		if in.running() {
			running++
		}
		if in.pending() {
			pending++
		}
		if in.ready() {
			st.Replicas.Ready++
			if hash == "" || in.hash == hash {
				st.Replicas.Updated++
			}
		}
	}
	if rec == nil {
		st.Replicas.Desired = len(indices)
		st.Message = "the service's spec anchor is missing; Start it again to manage it"
	}
	d, r := st.Replicas.Desired, st.Replicas.Ready
	switch {
	case s.busy > 0:
		st.Phase = workload.Progressing
		st.Message = s.busyOp + " in progress"
	case d == 0 && running == 0:
		st.Phase = workload.Stopped
	case d == 0:
		st.Phase = workload.Progressing
		st.Message = fmt.Sprintf("%d replicas still running", running)
	case r >= d && st.Replicas.Updated >= d:
		st.Phase = workload.Running
	case r >= d:
		st.Phase = workload.Degraded
		st.Message = fmt.Sprintf("%d of %d replicas run an older spec (rollout incomplete)", d-st.Replicas.Updated, d)
	case r > 0:
		st.Phase = workload.Degraded
		st.Message = fmt.Sprintf("%d of %d replicas ready", r, d)
	case pending > 0:
		st.Phase = workload.Pending
		st.Message = fmt.Sprintf("0 of %d replicas ready; %d starting", d, pending)
	default:
		st.Phase = workload.Failed
		st.Message = fmt.Sprintf("0 of %d replicas ready", d)
	}
	if len(reasons) > 0 && st.Phase != workload.Running {
		st.Message += ": " + strings.Join(reasons, "; ")
	}
	if s.note != "" && s.busy == 0 && st.Phase != workload.Running {
		st.Message += " (the last background rollout stopped: " + s.note + ")"
	}
	return st
}

func shortID(id string) string {
	if len(id) > 12 {
		return id[:12]
	}
	return id
}

// Status implements provider.Provider: the service's status from the
// event-fed cache.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.cache.waitReady(ctx); err != nil {
		return workload.DeploymentStatus{}, err
	}
	st, ok := p.cache.status(name)
	if !ok {
		return workload.DeploymentStatus{}, provider.NotFound(Name, "service %s not found on docker target %s", name, p.target)
	}
	return st, nil
}

// List implements provider.Lister.
func (p *Provider) List(ctx context.Context) ([]workload.DeploymentStatus, error) {
	if err := p.cache.waitReady(ctx); err != nil {
		return nil, err
	}
	var out []workload.DeploymentStatus
	for _, n := range p.cache.names() {
		if st, ok := p.cache.status(n); ok {
			out = append(out, st)
		}
	}
	return out, nil
}

// Watch implements provider.Watcher: a status every time a service of the
// target changes (a removed service yields a Stopped status with no
// instances). Changes that arrive while the caller is busy are coalesced.
// If the Engine connection drops, Watch yields the Unavailable error and
// ends.
func (p *Provider) Watch(ctx context.Context) iter.Seq2[workload.DeploymentStatus, error] {
	return func(yield func(workload.DeploymentStatus, error) bool) {
		sub, cancel := p.cache.subs.Subscribe("")
		defer cancel()
		if err := p.cache.waitReady(ctx); err != nil {
			yield(workload.DeploymentStatus{}, err)
			return
		}
		p.cache.mu.RLock()
		connCh := p.cache.changed
		p.cache.mu.RUnlock()
		for {
			select {
			case <-ctx.Done():
				return
			case <-connCh:
				p.cache.mu.RLock()
				connected, err := p.cache.connected, p.cache.lastErr
				connCh = p.cache.changed
				p.cache.mu.RUnlock()
				if !connected {
					if err == nil {
						err = errClosed
					}
					yield(workload.DeploymentStatus{}, p.syncError(err))
					return
				}
			case <-sub.Wake():
				for _, n := range sub.Take() {
					st, ok := p.cache.status(n)
					if !ok {
						st = workload.DeploymentStatus{ID: p.serviceID(n), Name: n, Target: p.target, Provider: Name,
							Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: time.Now().UTC()}
					}
					if !yield(st, nil) {
						return
					}
				}
			}
		}
	}
}

// syncError reports why the cache is not in sync with the Engine. Whatever
// the Engine said, the service's state could not be read: Unavailable,
// unless credentials were refused.
func (p *Provider) syncError(err error) error {
	switch classify(err) {
	case workload.Unavailable, workload.Timeout, workload.Unauthenticated, workload.PermissionDenied:
		return provider.Wrap(Name, p.classifier, err, "watch docker events")
	}
	return provider.Errorf(Name, workload.Unavailable, "docker engine at %s: cannot follow its events: %w", p.host, err)
}

func (p *Provider) stoppedStatus(name string) workload.DeploymentStatus {
	return workload.DeploymentStatus{
		ID: p.serviceID(name), Name: name, Target: p.target, Provider: Name,
		Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: time.Now().UTC(),
	}
}

// status returns the service's status from the cache.
func (c *cache) status(name string) (workload.DeploymentStatus, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := c.svcs[name]
	if s == nil || (len(s.anchors) == 0 && len(s.replicas) == 0) {
		return workload.DeploymentStatus{}, false
	}
	return c.p.statusOf(s), true
}

// snapshot returns copies of the service's record and replicas.
func (c *cache) snapshot(name string) (*record, []instance, bool) {
	c.mu.RLock()
	defer c.mu.RUnlock()
	s := c.svcs[name]
	if s == nil || (len(s.anchors) == 0 && len(s.replicas) == 0) {
		return nil, nil, false
	}
	var rec *record
	if a := s.anchor(); a != nil {
		rec = a.rec
	}
	out := make([]instance, 0, len(s.replicas))
	for _, in := range s.replicas {
		cp := *in
		cp.terminating = c.terminating[in.id]
		out = append(out, cp)
	}
	sortInstances(out)
	return rec, out, true
}

func sortInstances(in []instance) {
	slices.SortFunc(in, func(a, b instance) int {
		if c := strings.Compare(a.composeSvc, b.composeSvc); c != 0 {
			return c
		}
		if a.index != b.index {
			return a.index - b.index
		}
		return a.created.Compare(b.created)
	})
}

func (c *cache) names() []string {
	c.mu.RLock()
	defer c.mu.RUnlock()
	out := make([]string, 0, len(c.svcs))
	for n, s := range c.svcs {
		if len(s.anchors) > 0 || len(s.replicas) > 0 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

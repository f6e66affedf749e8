package docker

import (
	"strings"
	"testing"

	"github.com/moby/moby/api/types/container"

	"github.com/alphaswarm/controller/workload"
)

// TestPhaseTable checks the native-state -> phase table of the package
// documentation.
func TestPhaseTable(t *testing.T) {
	p := &Provider{target: "local"}
	p.cache = newCache(p)
	spec := workload.DeploymentSpec{Name: "web", Target: "local", Image: "img", Replicas: 2}
	rec := &record{Spec: spec}
	hash := rec.hash()
	run := func(idx int) *instance {
		return &instance{id: "run" + string(rune('a'+idx)) + strings.Repeat("0", 20), index: idx, hash: hash, state: container.StateRunning, inspected: true}
	}
	healthy := func(h container.HealthStatus) func(*instance) {
		return func(i *instance) { i.hasHealth, i.health = true, h }
	}
	with := func(in *instance, f func(*instance)) *instance { f(in); return in }
	cases := []struct {
		name    string
		desired int
		busy    bool
		noAnch  bool
		insts   []*instance
		want    workload.Phase
		ready   int
		updated int
	}{
		{name: "all running", desired: 2, insts: []*instance{run(0), run(1)}, want: workload.Running, ready: 2, updated: 2},
		{name: "all healthy", desired: 2, insts: []*instance{
			with(run(0), healthy(container.Healthy)),
			with(run(1), healthy(container.Healthy))}, want: workload.Running, ready: 2, updated: 2},
		{name: "one killed", desired: 2, insts: []*instance{run(0), with(run(1), func(i *instance) { i.state, i.exitCode = container.StateExited, 137 })}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "one removed", desired: 2, insts: []*instance{run(0)}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "one unhealthy", desired: 2, insts: []*instance{run(0), with(run(1), healthy(container.Unhealthy))}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "one paused", desired: 2, insts: []*instance{run(0), with(run(1), func(i *instance) { i.state = container.StatePaused })}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "old spec", desired: 2, insts: []*instance{run(0), with(run(1), func(i *instance) { i.hash = "old" })}, want: workload.Degraded, ready: 2, updated: 1},
		{name: "starting", desired: 2, insts: []*instance{
			with(run(0), healthy(container.Starting)),
			with(run(1), func(i *instance) { i.state = container.StateCreated })}, want: workload.Pending},
		{name: "restarting", desired: 1, insts: []*instance{with(run(0), func(i *instance) { i.state = container.StateRestarting })}, want: workload.Pending},
		{name: "all exited", desired: 2, insts: []*instance{
			with(run(0), func(i *instance) { i.state, i.exitCode = container.StateExited, 1 }),
			with(run(1), func(i *instance) { i.state, i.exitCode = container.StateExited, 1 })}, want: workload.Failed},
		{name: "all gone", desired: 2, want: workload.Failed},
		{name: "dead", desired: 1, insts: []*instance{with(run(0), func(i *instance) { i.state = container.StateDead })}, want: workload.Failed},
		{name: "unhealthy only", desired: 1, insts: []*instance{with(run(0), healthy(container.Unhealthy))}, want: workload.Failed},
		{name: "seen by an event, not yet inspected", desired: 1, insts: []*instance{with(run(0), func(i *instance) { i.inspected = false })}, want: workload.Pending},
		{name: "health check not run yet", desired: 1, insts: []*instance{with(run(0), healthy(""))}, want: workload.Pending},
		{name: "scaled to zero", desired: 0, want: workload.Stopped},
		{name: "scaled to zero, exited left", desired: 0, insts: []*instance{with(run(0), func(i *instance) { i.state = container.StateExited })}, want: workload.Stopped},
		{name: "scaled to zero, still running", desired: 0, insts: []*instance{run(0)}, want: workload.Progressing, ready: 1, updated: 1},
		{name: "operation in flight", desired: 2, busy: true, insts: []*instance{run(0), run(1)}, want: workload.Progressing, ready: 2, updated: 2},
		{name: "anchor gone", desired: -1, noAnch: true, insts: []*instance{run(0), run(1)}, want: workload.Running, ready: 2, updated: 2},
		{name: "replaced one draining", desired: 2, insts: []*instance{run(0), run(1), with(run(2), func(i *instance) { i.id, i.index = "draining", 1 })}, want: workload.Running, ready: 2, updated: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &serviceEntry{name: "web", anchors: map[string]*anchorEntry{}, replicas: map[string]*instance{}}
			if !tc.noAnch {
				r := *rec
				r.Spec.Replicas = tc.desired
				s.anchors["anchor"] = &anchorEntry{id: "anchor", gen: 1, rec: &r}
			}
			for _, in := range tc.insts {
				s.replicas[in.id] = in
			}
			p.cache.terminating = map[string]bool{"draining": true}
			if tc.busy {
				s.busy, s.busyOp = 1, "restart"
			}
			st := p.statusOf(s)
			if st.Phase != tc.want || st.Replicas.Ready != tc.ready || st.Replicas.Updated != tc.updated {
				t.Fatalf("phase %s ready %d updated %d (%s), want %s ready %d updated %d", st.Phase, st.Replicas.Ready, st.Replicas.Updated, st.Message, tc.want, tc.ready, tc.updated)
			}
			if st.ID != "local/web" || st.Provider != Name || st.ObservedAt.IsZero() || st.Instances == nil {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

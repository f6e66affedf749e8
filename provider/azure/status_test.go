package azure

import (
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"

	"github.com/alphaswarm/controller/workload"
)

func TestStatusPhases(t *testing.T) {
	p := &Provider{target: "edge", now: time.Now}
	started := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	mk := func(name, prov, state, cstate string, rev string) group {
		cg := mkGroup(name, prov, state, cstate, started)
		cg.Tags = map[string]*string{tagSpec: to.Ptr(rev), tagConfig: to.Ptr("c")}
		return group{name: name, cg: cg}
	}
	// crashed: the container Waiting or Terminated after restarts, or
	// with ACI's CrashLoopBackOff detail.
	crashed := func(name, cstate, detail string, restarts int32) group {
		g := mk(name, "Succeeded", "Running", cstate, "a")
		iv := g.cg.Properties.Containers[0].Properties.InstanceView
		iv.RestartCount = to.Ptr(restarts)
		iv.CurrentState.DetailStatus = to.Ptr(detail)
		return g
	}
	cases := []struct {
		name   string
		groups []group
		phase  workload.Phase
		r      workload.Replicas
	}{
		{"all running", []group{mk("w-0", "Succeeded", "Running", "Running", "a"), mk("w-1", "Succeeded", "Running", "Running", "a")}, workload.Running, workload.Replicas{Desired: 2, Ready: 2, Updated: 2}},
		{"creating", []group{mk("w-0", "Creating", "Pending", "Waiting", "a")}, workload.Pending, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"one of two", []group{mk("w-0", "Succeeded", "Running", "Running", "a"), mk("w-1", "Creating", "Pending", "Waiting", "a")}, workload.Degraded, workload.Replicas{Desired: 2, Ready: 1, Updated: 2}},
		{"rolling", []group{mk("w-0", "Succeeded", "Running", "Running", "b"), mk("w-1", "Succeeded", "Running", "Running", "a")}, workload.Progressing, workload.Replicas{Desired: 2, Ready: 2, Updated: 1}},
		{"stopped", []group{mk("w-0", "Succeeded", "Stopped", "Terminated", "a")}, workload.Stopped, workload.Replicas{}},
		{"failed", []group{mk("w-0", "Failed", "Failed", "Waiting", "a"), mk("w-1", "Succeeded", "Running", "Running", "a")}, workload.Failed, workload.Replicas{Desired: 2, Ready: 1, Updated: 2}},
		{"container terminated, no restart yet", []group{mk("w-0", "Succeeded", "Running", "Terminated", "a")}, workload.Pending, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"container crashed and restarted", []group{crashed("w-0", "Terminated", "Error", 3)}, workload.Failed, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"container waiting after restarts", []group{crashed("w-0", "Waiting", "", 1)}, workload.Failed, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"crash loop back-off", []group{crashed("w-0", "Waiting", "CrashLoopBackOff", 0)}, workload.Failed, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"one of two crash-looping", []group{mk("w-0", "Succeeded", "Running", "Running", "a"), crashed("w-1", "Waiting", "CrashLoopBackOff", 4)}, workload.Degraded, workload.Replicas{Desired: 2, Ready: 1, Updated: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := p.statusOf("w", c.groups)
			if st.Phase != c.phase || st.Replicas != c.r {
				t.Fatalf("status = %s %+v (%s), want %s %+v", st.Phase, st.Replicas, st.Message, c.phase, c.r)
			}
			if st.Replicas.Desired != len(st.Instances) {
				t.Errorf("%d instances for %d desired", len(st.Instances), st.Replicas.Desired)
			}
		})
	}
	if id := mk("w-0", "Succeeded", "Running", "Running", "a").instanceID(); id != "w-0@20261127T020000.000000000Z" || groupName(id) != "w-0" {
		t.Errorf("instance id %q", id)
	}
	if id := mk("w-0", "Creating", "Pending", "Waiting", "a").instanceID(); id != "w-0" {
		t.Errorf("instance id before start %q", id)
	}
}

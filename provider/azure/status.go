package azure

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Status implements provider.Provider.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.permitted(provider.OpStatus); err != nil {
		return workload.DeploymentStatus{}, err
	}
	groups, err := p.existing(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	return p.statusOf(name, groups), nil
}

// List implements provider.Lister.
func (p *Provider) List(ctx context.Context) ([]workload.DeploymentStatus, error) {
	if err := p.permitted(provider.OpStatus); err != nil {
		return nil, err
	}
	all, err := p.listTagged(ctx, "")
	if err != nil {
		return nil, err
	}
	out := []workload.DeploymentStatus{}
	for _, svc := range slices.Sorted(maps.Keys(all)) {
		groups, err := p.withViews(ctx, all[svc])
		if err != nil {
			return nil, err
		}
		if len(groups) > 0 {
			out = append(out, p.statusOf(svc, groups))
		}
	}
	return out, nil
}

func (p *Provider) stoppedStatus(name string) workload.DeploymentStatus {
	return workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
		Provider: Name, Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: p.now().UTC()}
}

// statusOf derives the normalised status (the phase table is in the
// package doc). groups is not empty.
func (p *Provider) statusOf(name string, groups []group) workload.DeploymentStatus {
	st := workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
		Provider: Name, Instances: []workload.Instance{}, ObservedAt: p.now().UTC()}
	ref := groups[0]
	st.Revision = tag(ref.cg, tagSpec) + "." + tag(ref.cg, tagConfig)
	if c := ref.container(); c != nil {
		st.Image = str(c.Image)
	}
	var failed, crashing, msgs []string
	running := 0
	for _, g := range groups {
		if g.stopped() {
			continue
		}
		st.Replicas.Desired++
		ok := g.ready()
		if ok {
			st.Replicas.Ready++
			running++
		}
		if tag(g.cg, tagSpec) == tag(ref.cg, tagSpec) && tag(g.cg, tagConfig) == tag(ref.cg, tagConfig) {
			st.Replicas.Updated++
		}
		in := workload.Instance{ID: g.instanceID(), State: strings.ToLower(g.instanceState()), Healthy: to.Ptr(ok)}
		if in.State == "" {
			in.State = strings.ToLower(g.provisioningState())
		}
		if c := g.container(); c != nil && c.InstanceView != nil {
			in.Restarts = int(deref(c.InstanceView.RestartCount))
			if cs := c.InstanceView.CurrentState; cs != nil && cs.StartTime != nil {
				in.Started = cs.StartTime.UTC()
			}
		}
		if !ok {
			in.Message = g.message()
			msgs = append(msgs, g.name+": "+in.Message)
		}
		switch {
		case g.failed():
			failed = append(failed, g.name+": "+g.message())
		case !ok && g.crashing():
			crashing = append(crashing, g.name+": "+g.message())
		}
		st.Instances = append(st.Instances, in)
	}
	switch {
	case len(failed) > 0 && st.Replicas.Ready < st.Replicas.Desired:
		st.Phase = workload.Failed
		st.Message = strings.Join(failed, "; ")
	case len(crashing) > 0 && st.Replicas.Ready == 0:
		st.Phase = workload.Failed
		st.Message = strings.Join(crashing, "; ")
	case len(crashing) > 0:
		st.Phase = workload.Degraded
		st.Message = strings.Join(msgs, "; ")
	default:
		st.Phase = workload.PhaseFromReplicas(st.Replicas, running)
		st.Message = strings.Join(msgs, "; ")
	}
	return st
}

// wait polls Status until the service is Running, Stopped or Failed, or
// ctx ends (then it returns the last status and no error).
func (p *Provider) wait(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	return provider.WaitSettled(ctx, p.opts.PollInterval.D(), func(ctx context.Context) (workload.DeploymentStatus, error) {
		return p.Status(ctx, name)
	})
}

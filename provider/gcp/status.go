package gcp

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"cloud.google.com/go/run/apiv2/runpb"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// wait polls the service until its newest revision is ready and serving
// all traffic, it failed, or ctx ends (then it returns the last status).
func (p *Provider) wait(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	return provider.WaitSettled(ctx, p.opts.PollInterval.D(), func(ctx context.Context) (workload.DeploymentStatus, error) {
		return p.Status(ctx, name)
	})
}

// Status implements provider.Provider.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	svc, err := p.existing(ctx, provider.OpStatus, name, nil)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	return p.statusOf(name, svc), nil
}

// desiredOf reads the desired instance count from the service's scaling.
func desiredOf(svc *runpb.Service) int {
	sc := svc.GetScaling()
	if sc.GetScalingMode() == runpb.ServiceScaling_MANUAL && sc.ManualInstanceCount != nil {
		return int(sc.GetManualInstanceCount())
	}
	// Automatic scaling: min instances is the floor that always runs.
	return int(sc.GetMinInstanceCount())
}

// statusOf derives the normalised status (see the phase table in the
// package doc).
func (p *Provider) statusOf(name string, svc *runpb.Service) workload.DeploymentStatus {
	st := workload.DeploymentStatus{
		ID: workload.ServiceID(p.target, name), Name: name, Target: p.target, Provider: Name,
		Revision: shortRevision(svc.LatestReadyRevision), Instances: []workload.Instance{}, ObservedAt: p.now(),
	}
	if cs := svc.GetTemplate().GetContainers(); len(cs) > 0 {
		st.Image = cs[0].Image
	}
	desired := desiredOf(svc)
	st.Replicas.Desired = desired
	tc := svc.GetTerminalCondition()
	latestServing := svc.LatestCreatedRevision != "" && svc.LatestReadyRevision == svc.LatestCreatedRevision && servesAll(svc, svc.LatestReadyRevision)
	switch {
	case tc.GetState() == runpb.Condition_CONDITION_FAILED:
		st.Phase = workload.Failed
		st.Message = conditionMessage(tc)
	case svc.Reconciling || tc.GetState() == runpb.Condition_CONDITION_RECONCILING || tc.GetState() == runpb.Condition_CONDITION_PENDING || svc.ObservedGeneration < svc.Generation:
		st.Phase = workload.Progressing
		st.Message = "reconciling: " + conditionMessage(tc)
		if svc.LatestReadyRevision != "" && servesAll(svc, svc.LatestReadyRevision) {
			// The previous revision keeps serving meanwhile.
			st.Replicas.Ready = desired
		}
	case tc.GetState() == runpb.Condition_CONDITION_SUCCEEDED && latestServing:
		st.Replicas.Ready, st.Replicas.Updated = desired, desired
		if desired == 0 {
			st.Phase = workload.Stopped
		} else {
			st.Phase = workload.Running
		}
	case tc.GetState() == runpb.Condition_CONDITION_SUCCEEDED:
		st.Phase = workload.Degraded
		st.Message = fmt.Sprintf("latest created revision %s is not the one serving all traffic (latest ready %s)", shortRevision(svc.LatestCreatedRevision), shortRevision(svc.LatestReadyRevision))
		st.Replicas.Ready = desired
	default:
		st.Phase = workload.Unknown
		st.Message = "terminal condition not reported"
	}
	// Cloud Run's Admin API lists no instances of a service: these
	// entries are placeholders for the ready count, named after the
	// serving revision ("<revision>/<n>"), not real instance ids.
	for i := range st.Replicas.Ready {
		healthy := true
		st.Instances = append(st.Instances, workload.Instance{
			ID: shortRevision(svc.LatestReadyRevision) + "/" + strconv.Itoa(i), State: "serving", Healthy: &healthy,
			Message: "Cloud Run does not list instances; count from manual scaling of the serving revision",
		})
	}
	return st
}

func servesAll(svc *runpb.Service, rev string) bool {
	var pct int32
	for _, t := range svc.TrafficStatuses {
		if t.Type == runpb.TrafficTargetAllocationType_TRAFFIC_TARGET_ALLOCATION_TYPE_LATEST || shortRevision(t.Revision) == shortRevision(rev) {
			pct += t.Percent
		}
	}
	return pct >= 100
}

func conditionMessage(c *runpb.Condition) string {
	if c == nil {
		return ""
	}
	var reason string
	switch r := c.Reasons.(type) {
	case *runpb.Condition_Reason:
		reason = r.Reason.String()
	case *runpb.Condition_RevisionReason_:
		reason = r.RevisionReason.String()
	}
	switch {
	case reason != "" && c.Message != "":
		return reason + ": " + c.Message
	case reason != "":
		return reason
	}
	return c.Message
}

func shortRevision(full string) string {
	if i := strings.LastIndex(full, "/"); i >= 0 {
		return full[i+1:]
	}
	return full
}

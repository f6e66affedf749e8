package aws

import (
	"context"
	"sort"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// settled reports whether the service's rollout is over: one deployment,
// COMPLETED (or FAILED), running = desired.
func settled(s *ecstypes.Service) (done, failed bool) {
	if len(s.Deployments) == 0 || (s.DesiredCount == 0 && s.RunningCount == 0 && s.PendingCount == 0) {
		return s.RunningCount == s.DesiredCount && s.PendingCount == 0, false
	}
	prim := primary(s)
	if prim != nil && prim.RolloutState == ecstypes.DeploymentRolloutStateFailed {
		return true, true
	}
	return len(s.Deployments) == 1 && prim != nil &&
		prim.RolloutState == ecstypes.DeploymentRolloutStateCompleted &&
		s.RunningCount == s.DesiredCount && s.PendingCount == 0, false
}

func primary(s *ecstypes.Service) *ecstypes.Deployment {
	for i := range s.Deployments {
		if sdkaws.ToString(s.Deployments[i].Status) == "PRIMARY" {
			return &s.Deployments[i]
		}
	}
	return nil
}

// Status implements provider.Provider.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	s, err := p.existing(ctx, provider.OpStatus, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	tasks, err := p.tasks(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	return p.toStatus(s, tasks), nil
}

// tasks describes the service's tasks whose desired status is RUNNING.
func (p *Provider) tasks(ctx context.Context, name string) ([]ecstypes.Task, error) {
	// ListTasks answers 100 tasks a page.
	var arns []string
	pages := ecs.NewListTasksPaginator(p.ecs, &ecs.ListTasksInput{Cluster: sdkaws.String(p.opts.Cluster),
		ServiceName: sdkaws.String(name), DesiredStatus: ecstypes.DesiredStatusRunning})
	for pages.HasMorePages() {
		page, err := pages.NextPage(ctx)
		if err != nil {
			return nil, mapErr("ListTasks "+name, err)
		}
		arns = append(arns, page.TaskArns...)
	}
	var tasks []ecstypes.Task
	for i := 0; i < len(arns); i += 100 {
		out, err := p.ecs.DescribeTasks(ctx, &ecs.DescribeTasksInput{Cluster: sdkaws.String(p.opts.Cluster),
			Tasks: arns[i:min(i+100, len(arns))]})
		if err != nil {
			return nil, mapErr("DescribeTasks "+name, err)
		}
		tasks = append(tasks, out.Tasks...)
	}
	return tasks, nil
}

// toStatus maps a service and its tasks (see the phase table in doc.go).
func (p *Provider) toStatus(s *ecstypes.Service, tasks []ecstypes.Task) workload.DeploymentStatus {
	name := sdkaws.ToString(s.ServiceName)
	st := workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
		Provider: Name, Instances: []workload.Instance{}, ObservedAt: p.now(), Revision: revision(sdkaws.ToString(s.TaskDefinition))}
	prim := primary(s)
	ready, updated, pending := 0, 0, 0
	sort.Slice(tasks, func(i, j int) bool { return sdkaws.ToString(tasks[i].TaskArn) < sdkaws.ToString(tasks[j].TaskArn) })
	for _, t := range tasks {
		in := workload.Instance{ID: taskID(sdkaws.ToString(t.TaskArn)), State: sdkaws.ToString(t.LastStatus)}
		if t.StartedAt != nil {
			in.Started = *t.StartedAt
		}
		switch t.HealthStatus {
		case ecstypes.HealthStatusHealthy:
			in.Healthy = sdkaws.Bool(true)
		case ecstypes.HealthStatusUnhealthy:
			in.Healthy = sdkaws.Bool(false)
		}
		if t.StoppedReason != nil {
			in.Message = *t.StoppedReason
		}
		if in.State == "RUNNING" && t.HealthStatus != ecstypes.HealthStatusUnhealthy {
			ready++
			if prim != nil && sdkaws.ToString(t.TaskDefinitionArn) == sdkaws.ToString(prim.TaskDefinition) {
				updated++
			}
		} else if in.State != "RUNNING" {
			pending++
		}
		st.Instances = append(st.Instances, in)
	}
	st.Replicas = workload.Replicas{Desired: int(s.DesiredCount), Ready: ready, Updated: updated}
	rolling := len(s.Deployments) > 1 || (prim != nil && prim.RolloutState == ecstypes.DeploymentRolloutStateInProgress)
	switch {
	case s.DesiredCount == 0 && len(tasks) == 0:
		st.Phase = workload.Stopped
	case prim != nil && prim.RolloutState == ecstypes.DeploymentRolloutStateFailed:
		st.Phase = workload.Failed
		st.Message = strings.TrimSpace(sdkaws.ToString(prim.RolloutStateReason) + " " + failureEvent(s))
	case s.DesiredCount == 0:
		st.Phase = workload.Progressing
	case rolling:
		st.Phase = workload.Progressing
		if prim != nil {
			st.Message = sdkaws.ToString(prim.RolloutStateReason)
		}
	case ready >= int(s.DesiredCount) && len(tasks) == int(s.DesiredCount):
		st.Phase = workload.Running
	case pending > 0 || len(tasks) > int(s.DesiredCount):
		st.Phase = workload.Progressing
	case ready > 0:
		st.Phase = workload.Degraded
	default:
		st.Phase = workload.Pending
	}
	if st.Message == "" && st.Phase != workload.Running && st.Phase != workload.Stopped && len(s.Events) > 0 {
		st.Message = sdkaws.ToString(s.Events[0].Message)
	}
	// Image stays empty: it lives in the task definition, which would cost
	// a DescribeTaskDefinition per Status; Revision names it.
	return st
}

// failureEvent picks the newest service event that explains a failure.
func failureEvent(s *ecstypes.Service) string {
	for _, e := range s.Events {
		m := sdkaws.ToString(e.Message)
		if strings.Contains(m, "unable") || strings.Contains(m, "failed") || strings.Contains(m, "Error") {
			return m
		}
	}
	return ""
}

func taskID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

func revision(tdArn string) string {
	if i := strings.LastIndex(tdArn, "/"); i >= 0 {
		return tdArn[i+1:]
	}
	return tdArn
}

func (p *Provider) stoppedStatus(name, msg string) workload.DeploymentStatus {
	return workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
		Provider: Name, Phase: workload.Stopped, Instances: []workload.Instance{}, Message: msg, ObservedAt: p.now()}
}

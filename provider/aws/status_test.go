package aws

import (
	"testing"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/alphaswarm/controller/workload"
)

// TestPhaseTable pins the phase table of the package doc.
func TestPhaseTable(t *testing.T) {
	p := &Provider{target: "prod", now: time.Now}
	td := "arn:aws:ecs:us-east-1:1:task-definition/as-prod-web:2"
	dep := func(status string, state ecstypes.DeploymentRolloutState) ecstypes.Deployment {
		return ecstypes.Deployment{Status: sdkaws.String(status), RolloutState: state, TaskDefinition: sdkaws.String(td),
			RolloutStateReason: sdkaws.String("reason")}
	}
	task := func(last string, h ecstypes.HealthStatus) ecstypes.Task {
		return ecstypes.Task{TaskArn: sdkaws.String("arn:aws:ecs:us-east-1:1:task/default/" + last + string(h)),
			LastStatus: sdkaws.String(last), HealthStatus: h, TaskDefinitionArn: sdkaws.String(td)}
	}
	completed := []ecstypes.Deployment{dep("PRIMARY", ecstypes.DeploymentRolloutStateCompleted)}
	cases := []struct {
		name    string
		desired int32
		deps    []ecstypes.Deployment
		tasks   []ecstypes.Task
		want    workload.Phase
		ready   int
	}{
		{"stopped", 0, completed, nil, workload.Stopped, 0},
		{"failed", 1, []ecstypes.Deployment{dep("PRIMARY", ecstypes.DeploymentRolloutStateFailed)}, nil, workload.Failed, 0},
		{"draining to zero", 0, completed, []ecstypes.Task{task("RUNNING", "")}, workload.Progressing, 1},
		{"rolling", 1, []ecstypes.Deployment{dep("PRIMARY", ecstypes.DeploymentRolloutStateInProgress), dep("ACTIVE", ecstypes.DeploymentRolloutStateCompleted)},
			[]ecstypes.Task{task("RUNNING", "")}, workload.Progressing, 1},
		{"running", 2, completed, []ecstypes.Task{task("RUNNING", ecstypes.HealthStatusHealthy), task("RUNNING", ecstypes.HealthStatusUnknown)}, workload.Running, 2},
		{"scaling up", 2, completed, []ecstypes.Task{task("RUNNING", ""), task("PENDING", "")}, workload.Progressing, 1},
		{"unhealthy", 2, completed, []ecstypes.Task{task("RUNNING", ecstypes.HealthStatusHealthy), task("RUNNING", ecstypes.HealthStatusUnhealthy)}, workload.Degraded, 1},
		{"pending", 1, completed, nil, workload.Pending, 0},
	}
	for _, c := range cases {
		s := &ecstypes.Service{ServiceName: sdkaws.String("web"), DesiredCount: c.desired, Deployments: c.deps,
			TaskDefinition: sdkaws.String(td), Events: []ecstypes.ServiceEvent{{Message: sdkaws.String("(service web) failed to launch a task: CannotPullContainerError")}}}
		st := p.toStatus(s, c.tasks)
		if st.Phase != c.want || st.Replicas.Ready != c.ready || st.Replicas.Desired != int(c.desired) || len(st.Instances) != len(c.tasks) {
			t.Errorf("%s: phase %s ready %d instances %d, want %s ready %d", c.name, st.Phase, st.Replicas.Ready, len(st.Instances), c.want, c.ready)
		}
		if c.want == workload.Failed && st.Message != "reason (service web) failed to launch a task: CannotPullContainerError" {
			t.Errorf("failed message = %q", st.Message)
		}
		if st.ID != "prod/web" || st.Revision != "as-prod-web:2" {
			t.Errorf("%s: id %q revision %q", c.name, st.ID, st.Revision)
		}
	}
}

package aws

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	ssmtypes "github.com/aws/aws-sdk-go-v2/service/ssm/types"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func (p *Provider) region() string { return p.ecs.Options().Region }

func (p *Provider) pollInterval() time.Duration {
	if p.opts.PollInterval > 0 {
		return p.opts.PollInterval.D()
	}
	return 5 * time.Second
}

func (p *Provider) validName(name string) error {
	if m := workload.ValidateName(name); m != "" {
		return workload.Invalid(workload.FieldError{Path: "name", Message: m})
	}
	return nil
}

// describe returns the ACTIVE service or nil.
func (p *Provider) describe(ctx context.Context, name string) (*ecstypes.Service, error) {
	out, err := p.ecs.DescribeServices(ctx, &ecs.DescribeServicesInput{
		Cluster: sdkaws.String(p.opts.Cluster), Services: []string{name},
		Include: []ecstypes.ServiceField{ecstypes.ServiceFieldTags},
	})
	if err != nil {
		return nil, mapErr("DescribeServices "+name, err)
	}
	for i := range out.Services {
		s := &out.Services[i]
		if sdkaws.ToString(s.ServiceName) == name && sdkaws.ToString(s.Status) == "ACTIVE" {
			return s, nil
		}
	}
	return nil, nil
}

// Start implements provider.Provider.
func (p *Provider) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	if err := validateSpec(&spec); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if _, _, err := taskSize(spec.Resources, p.opts.LaunchType == "FARGATE"); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.checkExecOptions(); err != nil { // exec.go
		return workload.DeploymentStatus{}, err
	}
	// What can be refused is refused before the first write: the config
	// values and the task definition (built again with the config's
	// references once they are written).
	if spec.Config != nil {
		if err := checkConfig(spec.Config); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	if _, err := p.taskDefinitionInput(spec, map[string]string{}); err != nil {
		return workload.DeploymentStatus{}, err
	}
	svc, err := p.describe(ctx, spec.Name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	hash := specHash(spec)
	var current *ecstypes.TaskDefinition
	if svc != nil {
		td, err := p.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: svc.TaskDefinition})
		if err != nil {
			return workload.DeploymentStatus{}, mapErr("DescribeTaskDefinition", err)
		}
		current = td.TaskDefinition
	}
	unchanged := current != nil && len(current.ContainerDefinitions) > 0 &&
		current.ContainerDefinitions[0].DockerLabels[labelSpecHash] == hash &&
		svc.EnableExecuteCommand == p.opts.EnableExecuteCommand && p.matchesExecOptions(current)
	if unchanged {
		if int(svc.DesiredCount) != spec.Replicas {
			if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
				Service: sdkaws.String(spec.Name), DesiredCount: sdkaws.Int32(int32(spec.Replicas))}); err != nil {
				return workload.DeploymentStatus{}, mapErr("UpdateService "+spec.Name, err)
			}
		}
		return p.wait(ctx, spec.Name)
	}
	// Config: the spec's, written to SSM, or the current task definition's
	// references carried over.
	configSecrets := map[string]string{}
	if spec.Config != nil {
		if configSecrets, err = p.writeConfig(ctx, spec.Name, spec.Config); err != nil {
			return workload.DeploymentStatus{}, err
		}
	} else if current != nil && len(current.ContainerDefinitions) > 0 {
		for _, s := range current.ContainerDefinitions[0].Secrets {
			if p.isConfigParam(spec.Name, sdkaws.ToString(s.ValueFrom)) {
				configSecrets[sdkaws.ToString(s.Name)] = sdkaws.ToString(s.ValueFrom)
			}
		}
	}
	in, err := p.taskDefinitionInput(spec, configSecrets)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	reg, err := p.ecs.RegisterTaskDefinition(ctx, in)
	if err != nil {
		err = mapErr("RegisterTaskDefinition "+spec.Name, err)
		if len(spec.Config) > 0 {
			err = afterChange(err)
		}
		return workload.DeploymentStatus{}, err
	}
	tdArn := reg.TaskDefinition.TaskDefinitionArn
	if svc == nil {
		_, err = p.ecs.CreateService(ctx, &ecs.CreateServiceInput{
			Cluster:              sdkaws.String(p.opts.Cluster),
			ServiceName:          sdkaws.String(spec.Name),
			TaskDefinition:       tdArn,
			DesiredCount:         sdkaws.Int32(int32(spec.Replicas)),
			LaunchType:           ecstypes.LaunchType(p.opts.LaunchType),
			NetworkConfiguration: p.network(),
			PropagateTags:        ecstypes.PropagateTagsService,
			EnableECSManagedTags: true,
			EnableExecuteCommand: p.opts.EnableExecuteCommand,
			Tags: []ecstypes.Tag{
				{Key: sdkaws.String(labelService), Value: sdkaws.String(spec.Name)},
				{Key: sdkaws.String(labelTarget), Value: sdkaws.String(p.target)},
			},
			DeploymentConfiguration: &ecstypes.DeploymentConfiguration{
				DeploymentCircuitBreaker: &ecstypes.DeploymentCircuitBreaker{Enable: true, Rollback: false},
			},
		})
		if err != nil {
			return workload.DeploymentStatus{}, afterChange(mapErr("CreateService "+spec.Name, err))
		}
	} else {
		_, err = p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{
			Cluster: sdkaws.String(p.opts.Cluster), Service: sdkaws.String(spec.Name),
			TaskDefinition: tdArn, DesiredCount: sdkaws.Int32(int32(spec.Replicas)),
			NetworkConfiguration: p.network(), EnableExecuteCommand: sdkaws.Bool(p.opts.EnableExecuteCommand),
		})
		if err != nil {
			return workload.DeploymentStatus{}, afterChange(mapErr("UpdateService "+spec.Name, err))
		}
	}
	return p.wait(ctx, spec.Name)
}

func (p *Provider) network() *ecstypes.NetworkConfiguration {
	if len(p.opts.Subnets) == 0 {
		return nil
	}
	ip := ecstypes.AssignPublicIpDisabled
	if p.opts.AssignPublicIP {
		ip = ecstypes.AssignPublicIpEnabled
	}
	return &ecstypes.NetworkConfiguration{AwsvpcConfiguration: &ecstypes.AwsVpcConfiguration{
		Subnets: p.opts.Subnets, SecurityGroups: p.opts.SecurityGroups, AssignPublicIp: ip,
	}}
}

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

// wait polls until the service settles or ctx ends, then reports Status.
// When ctx ends first the status (Progressing) is read with a short
// context of its own.
func (p *Provider) wait(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if !provider.Waits(ctx) {
		return p.Status(ctx, name)
	}
	for {
		s, err := p.describe(ctx, name)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			return workload.DeploymentStatus{}, err
		}
		if s == nil {
			return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
		}
		if done, _ := settled(s); done {
			return p.Status(ctx, name)
		}
		select {
		case <-ctx.Done():
		case <-time.After(p.pollInterval()):
			continue
		}
		break
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancel()
	return p.Status(sctx, name)
}

// Stop implements provider.Provider: desired count 0, service kept.
func (p *Provider) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := p.validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	s, err := p.describe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if s == nil {
		return p.stoppedStatus(name, "no such ECS service"), nil
	}
	if s.DesiredCount != 0 {
		if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
			Service: sdkaws.String(name), DesiredCount: sdkaws.Int32(0)}); err != nil {
			return workload.DeploymentStatus{}, mapErr("UpdateService "+name, err)
		}
	}
	return p.wait(ctx, name)
}

func (p *Provider) stoppedStatus(name, msg string) workload.DeploymentStatus {
	return workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
		Provider: Name, Phase: workload.Stopped, Instances: []workload.Instance{}, Message: msg, ObservedAt: p.now()}
}

// Scale implements provider.Provider.
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	if err := p.validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if m := workload.ValidateReplicas(replicas); m != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: m})
	}
	s, err := p.describe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if s == nil {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
	}
	if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
		Service: sdkaws.String(name), DesiredCount: sdkaws.Int32(int32(replicas))}); err != nil {
		return workload.DeploymentStatus{}, mapErr("UpdateService "+name, err)
	}
	return p.wait(ctx, name)
}

// Restart implements provider.Restarter: a forced new deployment, which
// ECS rolls with the service's deployment configuration.
func (p *Provider) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := p.validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	s, err := p.describe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if s == nil {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
	}
	if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
		Service: sdkaws.String(name), ForceNewDeployment: true}); err != nil {
		return workload.DeploymentStatus{}, mapErr("UpdateService "+name, err)
	}
	return p.wait(ctx, name)
}

// Status implements provider.Provider.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := p.validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	s, err := p.describe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if s == nil {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
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

// maxParamValue is the value limit of a Standard-tier SSM parameter, the
// tier PutParameter uses when none is given: "Standard parameters have a
// value limit of 4 KB. Advanced parameters have a value limit of 8 KB"
// (PutParameterInput.Value, AWS Systems Manager API reference).
const maxParamValue = 4096

// checkConfig refuses, before anything is written, what SSM would refuse
// halfway through the keys.
func checkConfig(config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	var errs []workload.FieldError
	for _, k := range sortedKeys(config) {
		switch {
		case configEnvName(k) == "":
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "names no variable after the secret. prefix"})
		case config[k] == "":
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: "SSM parameters cannot be empty"})
		case len(config[k]) > maxParamValue:
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("value is %d bytes; a Standard-tier SSM parameter holds at most 4 KB (%d bytes)", len(config[k]), maxParamValue)})
		}
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// writeConfig stores config under the service's SSM path, deletes keys no
// longer present, and returns the secrets to reference (env -> name).
func (p *Provider) writeConfig(ctx context.Context, service string, config map[string]string) (map[string]string, error) {
	if err := checkConfig(config); err != nil {
		return nil, err
	}
	path := p.paramPath(service)
	refs := map[string]string{}
	for _, k := range sortedKeys(config) {
		typ := ssmtypes.ParameterTypeString
		if strings.HasPrefix(k, SecretConfigPrefix) {
			typ = ssmtypes.ParameterTypeSecureString
		}
		name := path + k
		if _, err := p.ssm.PutParameter(ctx, &ssm.PutParameterInput{Name: sdkaws.String(name),
			Value: sdkaws.String(config[k]), Type: typ, Overwrite: sdkaws.Bool(true)}); err != nil {
			if len(refs) > 0 {
				return nil, afterChange(mapErr("PutParameter "+name, err))
			}
			return nil, mapErr("PutParameter "+name, err)
		}
		refs[configEnvName(k)] = name
	}
	var stale []string
	pg := ssm.NewGetParametersByPathPaginator(p.ssm, &ssm.GetParametersByPathInput{Path: sdkaws.String(strings.TrimSuffix(path, "/")), Recursive: sdkaws.Bool(false)})
	for pg.HasMorePages() {
		out, err := pg.NextPage(ctx)
		if err != nil {
			return nil, afterChange(mapErr("GetParametersByPath "+path, err))
		}
		for _, prm := range out.Parameters {
			if _, keep := config[strings.TrimPrefix(sdkaws.ToString(prm.Name), path)]; !keep {
				stale = append(stale, sdkaws.ToString(prm.Name))
			}
		}
	}
	for i := 0; i < len(stale); i += 10 {
		if _, err := p.ssm.DeleteParameters(ctx, &ssm.DeleteParametersInput{Names: stale[i:min(i+10, len(stale))]}); err != nil {
			return nil, afterChange(mapErr("DeleteParameters", err))
		}
	}
	return refs, nil
}

// ApplyConfig implements provider.Provider: parameters, a task-definition
// revision referencing them, a forced deployment. It returns once the
// rollout has completed (the tasks that read the new values run), failed
// (ProviderError with the service events' reason), or ctx ended (nil: the
// rollout goes on; Status follows it).
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := p.validName(name); err != nil {
		return err
	}
	if err := checkConfig(config); err != nil {
		return err
	}
	s, err := p.describe(ctx, name)
	if err != nil {
		return err
	}
	if s == nil {
		return notFound(workload.ServiceID(p.target, name))
	}
	td, err := p.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: s.TaskDefinition})
	if err != nil {
		return mapErr("DescribeTaskDefinition", err)
	}
	refs, err := p.writeConfig(ctx, name, config)
	if err != nil {
		return err
	}
	reg, err := p.ecs.RegisterTaskDefinition(ctx, p.reviseTaskDefinition(td.TaskDefinition, name, refs))
	if err != nil {
		return afterChange(mapErr("RegisterTaskDefinition "+name, err))
	}
	if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
		Service: sdkaws.String(name), TaskDefinition: reg.TaskDefinition.TaskDefinitionArn, ForceNewDeployment: true}); err != nil {
		return afterChange(mapErr("UpdateService "+name, err))
	}
	st, err := p.wait(ctx, name)
	if err != nil {
		return err
	}
	if st.Phase == workload.Failed {
		e := workload.Errorf(workload.RolloutFailed, "apply_config %s: the deployment failed: %s", name, st.Message)
		e.Provider, e.Status = Name, &st
		return e
	}
	return nil
}

package aws

import (
	"context"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// existing checks the name and op's permissions, and returns the ACTIVE
// service, or NotFound.
func (p *Provider) existing(ctx context.Context, op provider.Operation, name string) (*ecstypes.Service, error) {
	if err := workload.CheckName("name", name); err != nil {
		return nil, err
	}
	if err := p.permitted(op, false); err != nil {
		return nil, err
	}
	s, err := p.describe(ctx, name)
	if err == nil && s == nil {
		err = provider.NotFound(Name, "ECS service %q not found", workload.ServiceID(p.target, name))
	}
	return s, err
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
	if err := p.checkSpec(&spec); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.permitted(provider.OpStart, spec.Config != nil); err != nil { // access.go
		return workload.DeploymentStatus{}, err
	}
	svc, err := p.describe(ctx, spec.Name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	current, err := p.taskDefinitionOf(ctx, svc)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if p.unchanged(spec, svc, current) {
		if int(svc.DesiredCount) != spec.Replicas {
			if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
				Service: sdkaws.String(spec.Name), DesiredCount: sdkaws.Int32(int32(spec.Replicas))}); err != nil {
				return workload.DeploymentStatus{}, mapErr("UpdateService "+spec.Name, err)
			}
		}
		return p.wait(ctx, spec.Name)
	}
	// Config: the spec's, written to SSM, or the current task definition's
	// references carried over (render).
	if spec.Config != nil {
		if _, err = p.writeConfig(ctx, spec.Name, spec.Config); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	in, err := p.render(spec, current)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	reg, err := p.ecs.RegisterTaskDefinition(ctx, in)
	if err != nil {
		err = mapErr("RegisterTaskDefinition "+spec.Name, err)
		if len(spec.Config) > 0 {
			err = provider.AfterChange(Name, err, changesApplied)
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
			return workload.DeploymentStatus{}, provider.AfterChange(Name, mapErr("CreateService "+spec.Name, err), changesApplied)
		}
	} else {
		_, err = p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{
			Cluster: sdkaws.String(p.opts.Cluster), Service: sdkaws.String(spec.Name),
			TaskDefinition: tdArn, DesiredCount: sdkaws.Int32(int32(spec.Replicas)),
			NetworkConfiguration: p.network(), EnableExecuteCommand: sdkaws.Bool(p.opts.EnableExecuteCommand),
		})
		if err != nil {
			return workload.DeploymentStatus{}, provider.AfterChange(Name, mapErr("UpdateService "+spec.Name, err), changesApplied)
		}
	}
	return p.wait(ctx, spec.Name)
}

// taskDefinitionOf returns the task definition svc runs (nil for no
// service).
func (p *Provider) taskDefinitionOf(ctx context.Context, svc *ecstypes.Service) (*ecstypes.TaskDefinition, error) {
	if svc == nil {
		return nil, nil
	}
	td, err := p.ecs.DescribeTaskDefinition(ctx, &ecs.DescribeTaskDefinitionInput{TaskDefinition: svc.TaskDefinition})
	if err != nil {
		return nil, mapErr("DescribeTaskDefinition", err)
	}
	return td.TaskDefinition, nil
}

// checkSpec refuses, before any call, what Start would refuse: the spec,
// its task size, the exec options, the config values and the task
// definition (rendered again with the config's references once they are
// written). Diff checks the same.
func (p *Provider) checkSpec(spec *workload.DeploymentSpec) error {
	if err := validateSpec(spec); err != nil {
		return err
	}
	if _, _, err := taskSize(spec.Resources, p.opts.LaunchType == "FARGATE"); err != nil {
		return err
	}
	if err := p.checkExecOptions(); err != nil { // exec.go
		return err
	}
	if spec.Config != nil {
		if err := checkConfig(spec.Config); err != nil {
			return err
		}
	}
	_, err := p.taskDefinitionInput(*spec, map[string]string{})
	return err
}

// unchanged reports whether the service runs spec already, so that Start
// registers nothing and at most updates the desired count: its task
// definition carries the spec's hash and the target's exec options.
func (p *Provider) unchanged(spec workload.DeploymentSpec, svc *ecstypes.Service, current *ecstypes.TaskDefinition) bool {
	return svc != nil && current != nil && len(current.ContainerDefinitions) > 0 &&
		current.ContainerDefinitions[0].DockerLabels[labelSpecHash] == specHash(spec) &&
		svc.EnableExecuteCommand == p.opts.EnableExecuteCommand && p.matchesExecOptions(current)
}

// render is the task definition Start registers for spec on a service
// whose current task definition is current (nil: a new service): the
// spec's config referenced by the parameters writeConfig writes, or, for
// a spec without config, the current task definition's config references
// carried over. Diff compares the same rendering with current, so the two
// cannot disagree.
func (p *Provider) render(spec workload.DeploymentSpec, current *ecstypes.TaskDefinition) (*ecs.RegisterTaskDefinitionInput, error) {
	refs := map[string]string{}
	if spec.Config != nil {
		refs = p.configRefs(spec.Name, spec.Config)
	} else if current != nil && len(current.ContainerDefinitions) > 0 {
		for _, s := range current.ContainerDefinitions[0].Secrets {
			if p.isConfigParam(spec.Name, sdkaws.ToString(s.ValueFrom)) {
				refs[sdkaws.ToString(s.Name)] = sdkaws.ToString(s.ValueFrom)
			}
		}
	}
	return p.taskDefinitionInput(spec, refs)
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
			return workload.DeploymentStatus{}, provider.NotFound(Name, "ECS service %q not found", workload.ServiceID(p.target, name))
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
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.permitted(provider.OpStop, false); err != nil {
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

// Scale implements provider.Provider.
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if m := workload.ValidateReplicas(replicas); m != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: m})
	}
	if err := p.permitted(provider.OpScale, false); err != nil {
		return workload.DeploymentStatus{}, err
	}
	s, err := p.describe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if s == nil {
		return workload.DeploymentStatus{}, provider.NotFound(Name, "ECS service %q not found", workload.ServiceID(p.target, name))
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
	if _, err := p.existing(ctx, provider.OpRestart, name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
		Service: sdkaws.String(name), ForceNewDeployment: true}); err != nil {
		return workload.DeploymentStatus{}, mapErr("UpdateService "+name, err)
	}
	return p.wait(ctx, name)
}

// ApplyConfig implements provider.Provider: parameters, a task-definition
// revision referencing them, a forced deployment. It returns once the
// rollout has completed (the tasks that read the new values run), failed
// (ProviderError with the service events' reason), or ctx ended (nil: the
// rollout goes on; Status follows it).
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := workload.CheckName("name", name); err != nil {
		return err
	}
	if err := checkConfig(config); err != nil {
		return err
	}
	if err := p.permitted(provider.OpApplyConfig, true); err != nil {
		return err
	}
	s, err := p.describe(ctx, name)
	if err != nil {
		return err
	}
	if s == nil {
		return provider.NotFound(Name, "ECS service %q not found", workload.ServiceID(p.target, name))
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
		return provider.AfterChange(Name, mapErr("RegisterTaskDefinition "+name, err), changesApplied)
	}
	if _, err := p.ecs.UpdateService(ctx, &ecs.UpdateServiceInput{Cluster: sdkaws.String(p.opts.Cluster),
		Service: sdkaws.String(name), TaskDefinition: reg.TaskDefinition.TaskDefinitionArn, ForceNewDeployment: true}); err != nil {
		return provider.AfterChange(Name, mapErr("UpdateService "+name, err), changesApplied)
	}
	st, err := p.wait(ctx, name)
	if err != nil {
		return err
	}
	if st.Phase == workload.Failed {
		e := provider.Errorf(Name, workload.RolloutFailed, "apply_config %s: the deployment failed: %s", name, st.Message)
		e.Status = &st
		return e
	}
	return nil
}

package gcp

import (
	"context"
	"maps"
	"slices"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// get returns the service, or nil when Cloud Run has no such service.
func (p *Provider) get(ctx context.Context, name string) (*runpb.Service, error) {
	svc, err := p.services.GetService(ctx, &runpb.GetServiceRequest{Name: p.serviceName(name)})
	if status.Code(err) == codes.NotFound {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr("GetService "+name, err)
	}
	return svc, nil
}

// existing checks op's permissions on the service (see permitted) and
// reads it: NotFound when Cloud Run has no such service.
func (p *Provider) existing(ctx context.Context, op provider.Operation, name string, configKeys []string) (*runpb.Service, error) {
	if err := p.permitted(ctx, op, name, configKeys); err != nil {
		return nil, err
	}
	svc, err := p.get(ctx, name)
	if err == nil && svc == nil {
		err = provider.NotFound(Name, "Cloud Run service %q not found", workload.ServiceID(p.target, name))
	}
	return svc, err
}

// Start implements provider.Provider.
func (p *Provider) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	if err := spec.Validate(); err != nil {
		return workload.DeploymentStatus{}, err
	}
	tmpl, err := p.template(spec)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if spec.Config != nil {
		if err := p.checkConfig(spec.Name, spec.Config); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	if err := p.permitted(ctx, provider.OpStart, spec.Name, slices.Sorted(maps.Keys(spec.Config))); err != nil {
		return workload.DeploymentStatus{}, err
	}
	cur, err := p.get(ctx, spec.Name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	// Config given with the spec is written first, through the same
	// per-key path as ApplyConfig; without it the current config env is
	// kept.
	want, changed, err := p.build(ctx, spec, tmpl, cur, false)
	if err != nil {
		return workload.DeploymentStatus{}, afterIf(changed, err)
	}
	if cur == nil {
		op, err := p.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: p.parent, ServiceId: spec.Name, Service: want})
		if err != nil {
			return workload.DeploymentStatus{}, afterIf(changed, mapErr("CreateService "+spec.Name, err))
		}
		if !provider.Waits(ctx) {
			return p.wait(ctx, spec.Name) // the status now; Cloud Run rolls the first revision on
		}
		if _, err := op.Wait(ctx); err != nil {
			return p.opFailed(ctx, spec.Name, provider.AfterChange(Name, mapErr("CreateService "+spec.Name+" (operation)", err), earlierChanges))
		}
		return p.wait(ctx, spec.Name)
	}
	if !p.rolls(spec.Name, cur, want) && !p.serviceChanges(cur, want) {
		return p.wait(ctx, spec.Name)
	}
	if st, err := p.update(ctx, want, spec.Name); err != nil || st.Phase == workload.Failed {
		return st, afterIf(changed, err)
	}
	return p.wait(ctx, spec.Name)
}

// build is the service Start sends for spec (tmpl is its translated
// template) over the live service cur (nil when there is none): labels,
// the template with its spec hash, manual scaling, the config env vars,
// and what alphaswarm keeps from the live template (carryOver). With
// spec.Config set, the config is written (writeConfigs; changed reports
// a write) or, with dry, only planned (plannedConfigs: nothing is
// written). Start and Diff both build through it.
func (p *Provider) build(ctx context.Context, spec workload.DeploymentSpec, tmpl *runpb.RevisionTemplate, cur *runpb.Service, dry bool) (want *runpb.Service, changed bool, err error) {
	tmpl.Annotations = map[string]string{AnnotationSpecHash: specHash(tmpl)}
	want = &runpb.Service{
		Labels:   p.labels(spec),
		Template: tmpl,
		Scaling:  manualScaling(spec.Replicas),
	}
	if spec.Config != nil {
		var refs map[string]*runpb.SecretKeySelector
		if dry {
			refs = p.plannedConfigs(ctx, spec.Name, cur, spec.Config)
		} else if refs, changed, err = p.writeConfigs(ctx, spec.Name, cur, spec.Config); err != nil {
			return nil, changed, err
		}
		setConfigEnv(p, spec.Name, tmpl, tmpl.Containers[0].Env, refs)
	}
	if cur != nil {
		// Keep the restart annotation and, without spec.Config, the
		// config env, so that starting the same spec twice does not roll
		// a revision.
		carryOver(p, spec.Name, cur.GetTemplate(), want.Template, spec.Config == nil)
		want.Name = cur.Name
		want.Etag = cur.Etag
	}
	return want, changed, nil
}

// rolls reports whether sending want over cur changes the revision
// template as Start sees it (its spec hash or its config env vars): Cloud
// Run then creates a new revision ("Revisions are immutable ... If you
// then deploy a different container image to that same service, a second
// revision is created. If you subsequently set an environment variable, a
// third revision is created", cloud.google.com/run/docs/resource-model).
// The live template itself is not compared: Cloud Run fills it with
// defaults the translated one does not carry.
func (p *Provider) rolls(name string, cur, want *runpb.Service) bool {
	return cur.GetTemplate().GetAnnotations()[AnnotationSpecHash] != want.GetTemplate().GetAnnotations()[AnnotationSpecHash] ||
		!sameConfigEnv(p, name, cur.GetTemplate(), want.Template)
}

// serviceChanges reports a change of the service-level fields Start sets
// (labels, scaling), which roll no revision (manual scaling changes need
// no redeployment: cloud.google.com/run/docs/configuring/services/manual-scaling;
// the fake rolls no revision when the template is unchanged).
func (p *Provider) serviceChanges(cur, want *runpb.Service) bool {
	return !maps.Equal(cur.Labels, want.Labels) || !sameScaling(cur.GetScaling(), want.Scaling)
}

// afterIf is afterChange when changed, else err as it is.
func afterIf(changed bool, err error) error {
	if changed {
		return provider.AfterChange(Name, err, earlierChanges)
	}
	return err
}

func sameScaling(cur, want *runpb.ServiceScaling) bool {
	return cur.GetScalingMode() == want.GetScalingMode() && cur.GetManualInstanceCount() == want.GetManualInstanceCount()
}

// update sends svc and waits for the operation. When the operation fails
// and the service's newest revision failed, it returns that Failed status
// and no error.
func (p *Provider) update(ctx context.Context, svc *runpb.Service, name string) (workload.DeploymentStatus, error) {
	svc = proto.Clone(svc).(*runpb.Service)
	clearOutputOnly(svc.ProtoReflect())
	op, err := p.services.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: svc})
	if err != nil {
		return workload.DeploymentStatus{}, mapErr("UpdateService "+name, err)
	}
	if !provider.Waits(ctx) {
		return workload.DeploymentStatus{}, nil // Cloud Run rolls the revision on; the caller did not wait
	}
	if _, err := op.Wait(ctx); err != nil {
		return p.opFailed(ctx, name, provider.AfterChange(Name, mapErr("UpdateService "+name+" (operation)", err), earlierChanges))
	}
	return workload.DeploymentStatus{}, nil
}

// opFailed handles a failed long-running operation: Cloud Run fails the
// operation when the new revision cannot become ready, and the service
// then reports the revision's condition. If the service's status is
// Failed, that status is returned with no error; otherwise err.
func (p *Provider) opFailed(ctx context.Context, name string, err error) (workload.DeploymentStatus, error) {
	st, serr := p.Status(ctx, name)
	if serr == nil && st.Phase == workload.Failed {
		return st, nil
	}
	return workload.DeploymentStatus{}, err
}

// carryOver copies into want what alphaswarm itself added to the live
// template outside the spec: the restart annotation and, when config is
// set, the config env vars and their key list.
func carryOver(p *Provider, service string, cur, want *runpb.RevisionTemplate, config bool) {
	if cur == nil || len(cur.Containers) == 0 || len(want.Containers) == 0 {
		return
	}
	if want.Annotations == nil {
		want.Annotations = map[string]string{}
	}
	if v, ok := cur.Annotations[AnnotationRestart]; ok {
		want.Annotations[AnnotationRestart] = v
	}
	if !config {
		return
	}
	if v, ok := cur.Annotations[AnnotationConfigKeys]; ok {
		want.Annotations[AnnotationConfigKeys] = v
	}
	have := map[string]bool{}
	for _, e := range want.Containers[0].Env {
		have[e.Name] = true
	}
	for _, e := range cur.Containers[0].Env {
		if p.isConfigEnv(service, e) && !have[e.Name] {
			want.Containers[0].Env = append(want.Containers[0].Env, e)
		}
	}
}

// Scale implements provider.Provider: manual scaling with
// manualInstanceCount = replicas (see docs/providers/gcp.md).
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	return p.scale(ctx, provider.OpScale, name, replicas)
}

// scale is Scale for op (scale, or stop as scale to zero).
func (p *Provider) scale(ctx context.Context, op provider.Operation, name string, replicas int) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if msg := workload.ValidateReplicas(replicas); msg != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: msg})
	}
	svc, err := p.existing(ctx, op, name, nil)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if desiredOf(svc) != replicas || svc.GetScaling().GetScalingMode() != runpb.ServiceScaling_MANUAL {
		svc.Scaling = manualScaling(replicas)
		if st, err := p.update(ctx, svc, name); err != nil || st.Phase == workload.Failed {
			return st, err
		}
	}
	return p.wait(ctx, name)
}

// Stop implements provider.Provider: scale to zero, keeping the service.
func (p *Provider) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	st, err := p.scale(ctx, provider.OpStop, name, 0)
	if workload.CodeOf(err) == workload.NotFound {
		return workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
			Provider: Name, Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: p.now()}, nil
	}
	return st, err
}

// Restart implements provider.Restarter: a new revision with the same
// spec, forced by bumping the AnnotationRestart annotation.
func (p *Provider) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	svc, err := p.existing(ctx, provider.OpRestart, name, nil)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	bump(svc)
	st, err := p.update(ctx, svc, name)
	if err != nil {
		return st, err
	}
	if st.Phase == workload.Failed {
		return st, nil // Failed: the runtime reports it as rollout_failed with this status
	}
	return p.wait(ctx, name)
}

func bump(svc *runpb.Service) {
	if svc.Template == nil {
		svc.Template = &runpb.RevisionTemplate{}
	}
	if svc.Template.Annotations == nil {
		svc.Template.Annotations = map[string]string{}
	}
	// Fresh every call, even within one clock tick.
	prev := svc.Template.Annotations[AnnotationRestart]
	stamp := time.Now().UTC().Format(time.RFC3339Nano)
	if stamp == prev {
		stamp += "+"
	}
	svc.Template.Annotations[AnnotationRestart] = stamp
	svc.Template.Revision = "" // let Cloud Run name the new revision
}

package gcp

import (
	"context"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alphaswarm/controller/workload"
)

// Labels and annotations alphaswarm sets.
const (
	LabelService = "alphaswarm-service"
	LabelTarget  = "alphaswarm-target"
	// AnnotationRestart on the revision template forces a new revision
	// with an otherwise identical spec (Restart, ApplyConfig).
	AnnotationRestart = "alphaswarm.io/restarted-at"
	containerName     = "app"
)

func (p *Provider) validName(name string) error {
	if msg := workload.ValidateName(name); msg != "" {
		return workload.Invalid(workload.FieldError{Path: "name", Message: msg})
	}
	return nil
}

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

// Start implements provider.Provider.
func (p *Provider) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	if err := spec.Validate(); err != nil {
		return workload.DeploymentStatus{}, err
	}
	tmpl, err := p.template(spec)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	cur, err := p.get(ctx, spec.Name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	want := &runpb.Service{
		Labels:   p.labels(spec),
		Template: tmpl,
		Scaling:  manualScaling(spec.Replicas),
	}
	if cur == nil {
		op, err := p.services.CreateService(ctx, &runpb.CreateServiceRequest{Parent: p.parent, ServiceId: spec.Name, Service: want})
		if err != nil {
			return workload.DeploymentStatus{}, mapErr("CreateService "+spec.Name, err)
		}
		if _, err := op.Wait(ctx); err != nil {
			return workload.DeploymentStatus{}, afterChange(mapErr("CreateService "+spec.Name+" (operation)", err))
		}
	} else {
		// Keep config env (ApplyConfig's secret refs) and the restart
		// annotation when the rest of the spec is unchanged, so that
		// starting the same spec twice does not roll a revision.
		carryOver(cur.GetTemplate(), want.Template)
		want.Name = cur.Name
		want.Etag = cur.Etag
		if proto.Equal(cur.GetTemplate(), want.Template) && maps.Equal(cur.Labels, want.Labels) &&
			proto.Equal(cur.GetScaling(), want.Scaling) {
			return p.wait(ctx, spec.Name)
		}
		if err := p.update(ctx, want, spec.Name); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	return p.wait(ctx, spec.Name)
}

func (p *Provider) update(ctx context.Context, svc *runpb.Service, name string) error {
	op, err := p.services.UpdateService(ctx, &runpb.UpdateServiceRequest{Service: svc})
	if err != nil {
		return mapErr("UpdateService "+name, err)
	}
	if _, err := op.Wait(ctx); err != nil {
		return afterChange(mapErr("UpdateService "+name+" (operation)", err))
	}
	return nil
}

// carryOver copies into want what alphaswarm itself added to the live
// template outside the spec: config env vars and the restart annotation.
func carryOver(cur, want *runpb.RevisionTemplate) {
	if cur == nil || len(cur.Containers) == 0 || len(want.Containers) == 0 {
		return
	}
	if v, ok := cur.Annotations[AnnotationRestart]; ok {
		if want.Annotations == nil {
			want.Annotations = map[string]string{}
		}
		want.Annotations[AnnotationRestart] = v
	}
	have := map[string]bool{}
	for _, e := range want.Containers[0].Env {
		have[e.Name] = true
	}
	for _, e := range cur.Containers[0].Env {
		if isConfigEnv(e) && !have[e.Name] {
			want.Containers[0].Env = append(want.Containers[0].Env, e)
		}
	}
}

func isConfigEnv(e *runpb.EnvVar) bool {
	ref := e.GetValueSource().GetSecretKeyRef()
	return ref != nil && strings.Contains(ref.Secret, "/secrets/"+configSecretPrefix)
}

func (p *Provider) labels(spec workload.DeploymentSpec) map[string]string {
	l := map[string]string{}
	for k, v := range spec.Labels {
		l[k] = v
	}
	l[LabelService] = spec.Name
	l[LabelTarget] = labelValue(p.target)
	return l
}

var labelBad = regexp.MustCompile(`[^a-z0-9_-]`)

// labelValue makes s a valid GCP label value (lowercase letters, digits,
// '_' and '-', at most 63 characters).
func labelValue(s string) string {
	s = labelBad.ReplaceAllString(strings.ToLower(s), "-")
	if len(s) > 63 {
		s = s[:63]
	}
	return s
}

// manualScaling maps desired replicas onto Cloud Run: manual scaling
// mode with manualInstanceCount = replicas, and min/max instance counts
// pinned to the same number so that the service never autoscales away
// from it.
func manualScaling(n int) *runpb.ServiceScaling {
	c := int32(n)
	return &runpb.ServiceScaling{ScalingMode: runpb.ServiceScaling_MANUAL, ManualInstanceCount: &c}
}

// template translates a spec into a revision template.
func (p *Provider) template(spec workload.DeploymentSpec) (*runpb.RevisionTemplate, error) {
	if spec.Compose != nil {
		return nil, invalid("compose: Cloud Run services are single images; compose is not supported by the gcp provider")
	}
	c := &runpb.Container{Name: containerName, Image: spec.Image, Command: spec.Command, Args: spec.Args}
	for _, k := range slices.Sorted(maps.Keys(spec.Env)) {
		c.Env = append(c.Env, &runpb.EnvVar{Name: k, Values: &runpb.EnvVar_Value{Value: spec.Env[k]}})
	}
	var errs []workload.FieldError
	for i, s := range spec.Secrets {
		ref, msg := p.secretRef(s.From)
		if msg != "" {
			errs = append(errs, workload.FieldError{Path: fmt.Sprintf("secrets[%d].from", i), Message: msg})
			continue
		}
		c.Env = append(c.Env, &runpb.EnvVar{Name: s.Env, Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{SecretKeyRef: ref}}})
	}
	// Cloud Run accepts one ingress port per container.
	if len(spec.Ports) > 1 {
		errs = append(errs, workload.FieldError{Path: "ports", Message: "Cloud Run serves one container port per service"})
	}
	for _, pt := range spec.Ports {
		if pt.Protocol != "" && pt.Protocol != "tcp" {
			errs = append(errs, workload.FieldError{Path: "ports", Message: "Cloud Run serves tcp (HTTP/gRPC) only"})
			continue
		}
		c.Ports = append(c.Ports, &runpb.ContainerPort{Name: pt.Name, ContainerPort: int32(pt.Container)})
	}
	limits := map[string]string{}
	if spec.Resources.CPU != "" {
		limits["cpu"] = spec.Resources.CPU
	}
	if spec.Resources.Memory != "" {
		limits["memory"] = spec.Resources.Memory
	}
	if len(limits) > 0 {
		c.Resources = &runpb.ResourceRequirements{Limits: limits}
	}
	if hc := spec.HealthCheck; hc != nil {
		if len(hc.Exec) > 0 {
			errs = append(errs, workload.FieldError{Path: "healthCheck.exec", Message: "Cloud Run probes are HTTP, TCP or gRPC; exec checks are not supported"})
		} else {
			c.StartupProbe = probe(hc)
			c.LivenessProbe = probe(hc)
			if hc.StartPeriod > 0 {
				c.StartupProbe.InitialDelaySeconds = int32(hc.StartPeriod.D() / time.Second)
			}
		}
	}
	if len(errs) > 0 {
		return nil, workload.Invalid(errs...)
	}
	return &runpb.RevisionTemplate{
		Labels:     map[string]string{LabelService: spec.Name, LabelTarget: labelValue(p.target)},
		Containers: []*runpb.Container{c},
	}, nil
}

func probe(hc *workload.HealthCheck) *runpb.Probe {
	pr := &runpb.Probe{
		PeriodSeconds:    int32(hc.Interval.D() / time.Second),
		TimeoutSeconds:   int32(hc.Timeout.D() / time.Second),
		FailureThreshold: int32(hc.Retries),
	}
	switch {
	case hc.HTTP != nil:
		pr.ProbeType = &runpb.Probe_HttpGet{HttpGet: &runpb.HTTPGetAction{Path: hc.HTTP.Path, Port: int32(hc.HTTP.Port)}}
	case hc.TCP != nil:
		pr.ProbeType = &runpb.Probe_TcpSocket{TcpSocket: &runpb.TCPSocketAction{Port: int32(hc.TCP.Port)}}
	}
	return pr
}

var secretVersionPath = regexp.MustCompile(`^projects/([^/]+)/secrets/([^/]+)/versions/([^/]+)$`)

// secretRef translates a SecretRef.From: "projects/p/secrets/s/versions/v"
// or "secret:name[:version]" (version defaults to "latest").
func (p *Provider) secretRef(from string) (*runpb.SecretKeySelector, string) {
	if m := secretVersionPath.FindStringSubmatch(from); m != nil {
		return &runpb.SecretKeySelector{Secret: "projects/" + m[1] + "/secrets/" + m[2], Version: m[3]}, ""
	}
	if rest, ok := strings.CutPrefix(from, "secret:"); ok {
		name, version, _ := strings.Cut(rest, ":")
		if version == "" {
			version = "latest"
		}
		if name == "" || strings.Contains(name, "/") || strings.Contains(version, ":") {
			return nil, "want secret:<name>[:<version>]"
		}
		return &runpb.SecretKeySelector{Secret: name, Version: version}, ""
	}
	if strings.HasPrefix(from, "env:") {
		return nil, "Cloud Run reads secrets from Secret Manager, not from the controller's environment: store the value in Secret Manager and refer to it as \"projects/<p>/secrets/<s>/versions/<v>\" or \"secret:<name>:<version>\""
	}
	return nil, "want a Secret Manager reference: \"projects/<p>/secrets/<s>/versions/<v>\" or \"secret:<name>:<version>\""
}

// wait polls the service until its newest revision is ready and serving
// all traffic, it failed, or ctx ends (then it returns the last status).
func (p *Provider) wait(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	for {
		st, err := p.Status(ctx, name)
		if err != nil {
			return st, err
		}
		switch st.Phase {
		case workload.Running, workload.Stopped, workload.Failed:
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, nil
		case <-time.After(p.opts.PollInterval.D()):
		}
	}
}

// Status implements provider.Provider.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := p.validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	svc, err := p.get(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if svc == nil {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
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

// Scale implements provider.Provider: manual scaling with
// manualInstanceCount = replicas (see the package doc).
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	if err := p.validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if msg := workload.ValidateReplicas(replicas); msg != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: msg})
	}
	svc, err := p.get(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if svc == nil {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
	}
	if desiredOf(svc) != replicas || svc.GetScaling().GetScalingMode() != runpb.ServiceScaling_MANUAL {
		svc.Scaling = manualScaling(replicas)
		if err := p.update(ctx, svc, name); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	return p.wait(ctx, name)
}

// Stop implements provider.Provider: scale to zero, keeping the service.
func (p *Provider) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	st, err := p.Scale(ctx, name, 0)
	if workload.CodeOf(err) == workload.NotFound {
		return workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
			Provider: Name, Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: p.now()}, nil
	}
	return st, err
}

// Restart implements provider.Restarter: a new revision with the same
// spec, forced by bumping the AnnotationRestart annotation.
func (p *Provider) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := p.validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	svc, err := p.get(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if svc == nil {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
	}
	bump(svc)
	if err := p.update(ctx, svc, name); err != nil {
		return workload.DeploymentStatus{}, err
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

// configSecretPrefix starts the Secret Manager secret id of every config
// key: "alphaswarm-<service>-<key>".
const configSecretPrefix = "alphaswarm-"

var secretIDBad = regexp.MustCompile(`[^A-Za-z0-9_-]`)

func configSecretID(service, key string) string {
	return configSecretPrefix + service + "-" + secretIDBad.ReplaceAllString(key, "_")
}

// ApplyConfig implements provider.Provider: each key becomes a Secret
// Manager secret "alphaswarm-<service>-<key>" with a new version per
// change; the container's env var <key> refers to that version; a new
// revision rolls.
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := p.validName(name); err != nil {
		return err
	}
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	svc, err := p.get(ctx, name)
	if err != nil {
		return err
	}
	if svc == nil {
		return notFound(workload.ServiceID(p.target, name))
	}
	if len(svc.GetTemplate().GetContainers()) == 0 {
		return wrap(workload.ProviderError, "ApplyConfig "+name, "service has no container", nil)
	}
	c := svc.Template.Containers[0]
	refs := map[string]*runpb.SecretKeySelector{}
	changed := false
	for _, key := range slices.Sorted(maps.Keys(config)) {
		ref, err := p.writeConfig(ctx, name, key, config[key])
		if err != nil {
			if changed {
				return afterChange(err)
			}
			return err
		}
		changed = true
		refs[key] = ref
	}
	// Drop config env vars for keys no longer present, replace the rest.
	var env []*runpb.EnvVar
	for _, e := range c.Env {
		if isConfigEnv(e) || refs[e.Name] != nil {
			continue
		}
		env = append(env, e)
	}
	for _, key := range slices.Sorted(maps.Keys(refs)) {
		env = append(env, &runpb.EnvVar{Name: key, Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{SecretKeyRef: refs[key]}}})
	}
	c.Env = env
	bump(svc)
	if err := p.update(ctx, svc, name); err != nil {
		return afterChange(err)
	}
	st, err := p.wait(ctx, name)
	if err != nil {
		return afterChange(err)
	}
	if st.Phase == workload.Failed {
		return wrap(workload.ProviderError, "ApplyConfig "+name, "new revision failed: "+st.Message, nil)
	}
	return nil
}

// writeConfig ensures the key's secret exists and adds a version with
// value, returning a reference to that exact version.
func (p *Provider) writeConfig(ctx context.Context, service, key, value string) (*runpb.SecretKeySelector, error) {
	parent := "projects/" + p.project
	id := configSecretID(service, key)
	_, err := p.secrets.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: parent, SecretId: id,
		Secret: &secretmanagerpb.Secret{
			Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}},
			Labels:      map[string]string{LabelService: service, LabelTarget: labelValue(p.target)},
		},
	})
	if err != nil && status.Code(err) != codes.AlreadyExists {
		return nil, mapErr("CreateSecret "+id, err)
	}
	v, err := p.secrets.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: parent + "/secrets/" + id, Payload: &secretmanagerpb.SecretPayload{Data: []byte(value)},
	})
	if err != nil {
		return nil, mapErr("AddSecretVersion "+id, err)
	}
	m := secretVersionPath.FindStringSubmatch(v.Name)
	if m == nil {
		return nil, wrap(workload.ProviderError, "AddSecretVersion "+id, "unexpected version name "+v.Name, nil)
	}
	return &runpb.SecretKeySelector{Secret: "projects/" + m[1] + "/secrets/" + m[2], Version: m[3]}, nil
}

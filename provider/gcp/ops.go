package gcp

import (
	"context"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"cloud.google.com/go/iam/apiv1/iampb"
	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Labels and annotations alphaswarm sets.
const (
	LabelService = "alphaswarm-service"
	LabelTarget  = "alphaswarm-target"
	// AnnotationRestart on the revision template forces a new revision
	// with an otherwise identical spec (Restart, ApplyConfig).
	AnnotationRestart = "alphaswarm.io/restarted-at"
	// AnnotationSpecHash on the revision template holds a hash of the
	// template alphaswarm translated from the spec: Start compares it,
	// not the live template, which Cloud Run fills with defaults.
	AnnotationSpecHash = "alphaswarm.io/spec-hash"
	// AnnotationConfigKeys on the revision template lists the config
	// keys (comma-separated, sorted) whose env vars ApplyConfig or Start
	// manage.
	AnnotationConfigKeys = "alphaswarm.io/config-keys"
	containerName        = "app"
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
	if spec.Config != nil {
		if err := p.checkConfig(spec.Name, spec.Config); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	cur, err := p.get(ctx, spec.Name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	hash := specHash(tmpl)
	tmpl.Annotations = map[string]string{AnnotationSpecHash: hash}
	want := &runpb.Service{
		Labels:   p.labels(spec),
		Template: tmpl,
		Scaling:  manualScaling(spec.Replicas),
	}
	// Config given with the spec is written first, through the same
	// per-key path as ApplyConfig; without it the current config env is
	// kept.
	changed := false
	if spec.Config != nil {
		refs, wrote, err := p.writeConfigs(ctx, spec.Name, cur, spec.Config)
		changed = wrote
		if err != nil {
			return workload.DeploymentStatus{}, afterIf(changed, err)
		}
		setConfigEnv(p, spec.Name, tmpl, tmpl.Containers[0].Env, refs)
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
			return p.opFailed(ctx, spec.Name, afterChange(mapErr("CreateService "+spec.Name+" (operation)", err)))
		}
		return p.wait(ctx, spec.Name)
	}
	// Keep the restart annotation and, without spec.Config, the config
	// env, so that starting the same spec twice does not roll a revision.
	carryOver(p, spec.Name, cur.GetTemplate(), want.Template, spec.Config == nil)
	want.Name = cur.Name
	want.Etag = cur.Etag
	if cur.GetTemplate().GetAnnotations()[AnnotationSpecHash] == hash &&
		sameConfigEnv(p, spec.Name, cur.GetTemplate(), want.Template) &&
		maps.Equal(cur.Labels, want.Labels) && sameScaling(cur.GetScaling(), want.Scaling) {
		return p.wait(ctx, spec.Name)
	}
	if st, err := p.update(ctx, want, spec.Name); err != nil || st.Phase == workload.Failed {
		return st, afterIf(changed, err)
	}
	return p.wait(ctx, spec.Name)
}

// afterIf is afterChange when changed, else err as it is.
func afterIf(changed bool, err error) error {
	if changed {
		return afterChange(err)
	}
	return err
}

// specHash identifies the template translated from a spec (before config
// env and annotations are added).
func specHash(t *runpb.RevisionTemplate) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
}

func sameScaling(cur, want *runpb.ServiceScaling) bool {
	return cur.GetScalingMode() == want.GetScalingMode() && cur.GetManualInstanceCount() == want.GetManualInstanceCount()
}

// sameConfigEnv reports whether both templates refer to the same config
// secret versions under the same names.
func sameConfigEnv(p *Provider, service string, cur, want *runpb.RevisionTemplate) bool {
	pick := func(t *runpb.RevisionTemplate) map[string]string {
		m := map[string]string{}
		if cs := t.GetContainers(); len(cs) > 0 {
			for _, e := range cs[0].Env {
				if p.isConfigEnv(service, e) {
					r := e.GetValueSource().GetSecretKeyRef()
					m[e.Name] = r.Secret + "@" + r.Version
				}
			}
		}
		return m
	}
	return maps.Equal(pick(cur), pick(want))
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
		return p.opFailed(ctx, name, afterChange(mapErr("UpdateService "+name+" (operation)", err)))
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

// isConfigEnv reports whether e is a config env var of service: a
// reference to exactly the secret configSecretID(service, e.Name) of this
// project (or the id used before that mapping, alphaswarm-<service>-<key>).
func (p *Provider) isConfigEnv(service string, e *runpb.EnvVar) bool {
	ref := e.GetValueSource().GetSecretKeyRef()
	if ref == nil {
		return false
	}
	// Secret Manager names versions by project number, so any project
	// prefix is accepted; the id itself must match exactly.
	m := secretName.FindStringSubmatch(ref.Secret)
	if m == nil {
		return false
	}
	id := m[1]
	return id == p.configSecretID(service, e.Name) || id == legacyConfigSecretID(service, e.Name)
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
	for i, pt := range spec.Ports {
		if pt.Protocol != "" && pt.Protocol != "tcp" {
			errs = append(errs, workload.FieldError{Path: "ports", Message: "Cloud Run serves tcp (HTTP/gRPC) only"})
			continue
		}
		name, ok := portNames[pt.Name]
		if !ok {
			errs = append(errs, workload.FieldError{Path: fmt.Sprintf("ports[%d].name", i), Message: "Cloud Run port names are http1 (HTTP/1) or h2c (end-to-end HTTP/2, gRPC); http, http2 and grpc are accepted as aliases"})
			continue
		}
		c.Ports = append(c.Ports, &runpb.ContainerPort{Name: name, ContainerPort: int32(pt.Container)})
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
		} else if perrs := checkProbe(hc); len(perrs) > 0 {
			errs = append(errs, perrs...)
		} else {
			c.StartupProbe = probe(hc)
			if hc.StartPeriod > 0 {
				c.StartupProbe.InitialDelaySeconds = int32(hc.StartPeriod.D() / time.Second)
			}
			// "You can configure HTTP, TCP, and gRPC startup probes,
			// along with HTTP and gRPC liveness probes"
			// (cloud.google.com/run/docs/configuring/healthchecks): a TCP
			// check is a startup probe only.
			if hc.TCP == nil {
				c.LivenessProbe = probe(hc)
			}
		}
	}
	errs = append(errs, checkLabels(spec.Labels)...)
	if len(errs) > 0 {
		return nil, workload.Invalid(errs...)
	}
	tmpl := &runpb.RevisionTemplate{
		Labels:     map[string]string{LabelService: spec.Name, LabelTarget: labelValue(p.target)},
		Containers: []*runpb.Container{c},
	}
	if p.opts.ServiceAccount != "" {
		tmpl.ServiceAccount = p.opts.ServiceAccount
	}
	return tmpl, nil
}

// Probe limits of Cloud Run Admin v2 (google/cloud/run/v2/k8s.min.proto,
// message Probe): period_seconds and initial_delay_seconds are at most
// 240 for a startup probe and 3600 for a liveness probe; timeout_seconds
// is 1..3600 and may not exceed period_seconds ("Must be greater or equal
// than timeout_seconds"; the healthchecks page: timeout "can't exceed
// periodSeconds"); failure_threshold is at least 1. Zero means the
// service default (period 10 s, timeout 1 s, threshold 3).
const (
	maxStartupProbeSeconds = 240
	maxProbeSeconds        = 3600
)

// checkProbe refuses a health check Cloud Run would refuse, before
// anything is written: durations that are not whole seconds (the probe
// fields are int32 seconds), and the limits above. The startup probe
// carries the check's interval and start period, so the startup maxima
// apply to both.
func checkProbe(hc *workload.HealthCheck) []workload.FieldError {
	var errs []workload.FieldError
	secs := func(path string, d workload.Duration, lo, hi int) int {
		if d == 0 {
			return 0
		}
		v := time.Duration(d)
		if v%time.Second != 0 || v < time.Duration(lo)*time.Second || v > time.Duration(hi)*time.Second {
			errs = append(errs, workload.FieldError{Path: path, Message: fmt.Sprintf("Cloud Run probes take whole seconds from %d to %d here (the startup probe allows at most %d s)", lo, hi, maxStartupProbeSeconds)})
			return 0
		}
		return int(v / time.Second)
	}
	period := secs("healthCheck.interval", hc.Interval, 1, maxStartupProbeSeconds)
	timeout := secs("healthCheck.timeout", hc.Timeout, 1, maxProbeSeconds)
	secs("healthCheck.startPeriod", hc.StartPeriod, 0, maxStartupProbeSeconds)
	if period == 0 && hc.Interval == 0 {
		period = 10
	}
	if timeout == 0 && hc.Timeout == 0 {
		timeout = 1
	}
	if period > 0 && timeout > period {
		errs = append(errs, workload.FieldError{Path: "healthCheck.timeout", Message: fmt.Sprintf("Cloud Run refuses a probe timeout (%d s) longer than its period (%d s)", timeout, period)})
	}
	if hc.Retries < 0 {
		errs = append(errs, workload.FieldError{Path: "healthCheck.retries", Message: "must be at least 1 (0 means Cloud Run's default, 3)"})
	}
	return errs
}

// Google Cloud label rules, which Cloud Run applies to service labels
// ("Only valid Google Cloud labels can be used on Cloud Run",
// cloud.google.com/run/docs/configuring/labels; the rules on
// cloud.google.com/resource-manager/docs/labels-overview: keys start with
// a lowercase letter, keys and values use lowercase letters, digits, '_'
// and '-', at most 63 characters each). The Run v2 Service.labels comment
// also reserves the run.googleapis.com, cloud.googleapis.com,
// serving.knative.dev and autoscaling.knative.dev namespaces, which these
// rules already exclude ('.' and '/' are not allowed).
var (
	gcpLabelKey   = regexp.MustCompile(`^[a-z][a-z0-9_-]{0,62}$`)
	gcpLabelValue = regexp.MustCompile(`^[a-z0-9_-]{0,63}$`)
)

// checkLabels refuses spec labels Cloud Run cannot hold. They are not
// rewritten: a silently changed key would no longer match what the user
// selects on.
func checkLabels(labels map[string]string) []workload.FieldError {
	var errs []workload.FieldError
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		switch {
		case !gcpLabelKey.MatchString(k):
			errs = append(errs, workload.FieldError{Path: "labels." + k, Message: "Cloud Run accepts only Google Cloud label keys: a lowercase letter, then lowercase letters, digits, '_' or '-', at most 63 characters (no '.' or '/')"})
		case !gcpLabelValue.MatchString(labels[k]):
			errs = append(errs, workload.FieldError{Path: "labels." + k, Message: "Cloud Run accepts only Google Cloud label values: lowercase letters, digits, '_' or '-', at most 63 characters"})
		case k == LabelService || k == LabelTarget:
			errs = append(errs, workload.FieldError{Path: "labels." + k, Message: "is set by alphaswarm"})
		}
	}
	return errs
}

// portNames maps spec port names onto the two Cloud Run accepts ("" lets
// Cloud Run choose http1).
var portNames = map[string]string{"": "", "http1": "http1", "http": "http1", "h2c": "h2c", "http2": "h2c", "grpc": "h2c"}

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

var secretName = regexp.MustCompile(`^projects/[^/]+/secrets/([^/]+)$`)

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
	return provider.WaitSettled(ctx, p.opts.PollInterval.D(), func(ctx context.Context) (workload.DeploymentStatus, error) {
		return p.Status(ctx, name)
	})
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
		if st, err := p.update(ctx, svc, name); err != nil || st.Phase == workload.Failed {
			return st, err
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

// Config secrets. Key k of service s on target t is the Secret Manager
// secret configSecretID(s, k):
//
//	alphaswarm-<t>--<s>--<k>
//
// when t, s and k contain no "--", k only letters, digits, '_' and '-',
// and the id fits Secret Manager's 255 characters; otherwise
//
//	alphaswarm-<t>--<s>--<k, '.' as '_', truncated>--<16 hex of sha256(t, s, k)>
//
// The first form splits into exactly three parts at "--", the second into
// at least four, so ids of different (target, service, key) never
// collide.
const (
	configSecretPrefix = "alphaswarm-"
	maxSecretID        = 255
	// maxSecretValue is Secret Manager's limit on a version's payload.
	maxSecretValue = 64 << 10
)

var (
	secretIDBad    = regexp.MustCompile(`[^A-Za-z0-9_-]`)
	secretIDSimple = regexp.MustCompile(`^[A-Za-z0-9_]+(-[A-Za-z0-9_]+)*$`)
)

func (p *Provider) configSecretID(service, key string) string {
	target := labelValue(p.target)
	plain := configSecretPrefix + target + "--" + service + "--" + key
	if len(plain) <= maxSecretID && !strings.Contains(target, "--") && !strings.Contains(service, "--") && secretIDSimple.MatchString(key) {
		return plain
	}
	sum := sha256.Sum256([]byte(p.target + "\x00" + service + "\x00" + key))
	tail := "--" + hex.EncodeToString(sum[:8])
	head := configSecretPrefix + target + "--" + service + "--" + secretIDBad.ReplaceAllString(key, "_")
	if len(head) > maxSecretID-len(tail) {
		head = head[:maxSecretID-len(tail)]
	}
	return head + tail
}

// legacyConfigSecretID is the id used before configSecretID: still
// recognised in a live template so that older config env vars are
// replaced, not kept.
func legacyConfigSecretID(service, key string) string {
	return configSecretPrefix + service + "-" + secretIDBad.ReplaceAllString(key, "_")
}

// checkConfig refuses, before anything changes, what Secret Manager would
// refuse halfway through: ids it cannot hold, values over 64 KiB.
func (p *Provider) checkConfig(service string, config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	var errs []workload.FieldError
	for _, k := range slices.Sorted(maps.Keys(config)) {
		if id := p.configSecretID(service, k); len(id) > maxSecretID || secretIDBad.MatchString(id) {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("Secret Manager secret id %q is not valid (letters, digits, '_' and '-', at most %d)", id, maxSecretID)})
		}
		if n := len(config[k]); n > maxSecretValue {
			errs = append(errs, workload.FieldError{Path: "config." + k, Message: fmt.Sprintf("value is %d bytes; Secret Manager holds at most 64 KiB per version", n)})
		}
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

// ApplyConfig implements provider.Provider: each key is a Secret Manager
// secret (see configSecretID) with a new version per changed value; the
// container's env var <key> refers to that exact version; when the env
// changed, a new revision rolls. Applying the same config again changes
// nothing.
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := p.validName(name); err != nil {
		return err
	}
	if err := p.checkConfig(name, config); err != nil {
		return err
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
	refs, changed, err := p.writeConfigs(ctx, name, svc, config)
	if err != nil {
		return afterIf(changed, err)
	}
	c := svc.Template.Containers[0]
	before := slices.Clone(c.Env)
	keysBefore := svc.Template.GetAnnotations()[AnnotationConfigKeys]
	setConfigEnv(p, name, svc.Template, c.Env, refs)
	if slices.EqualFunc(before, c.Env, func(a, b *runpb.EnvVar) bool { return proto.Equal(a, b) }) &&
		keysBefore == svc.Template.Annotations[AnnotationConfigKeys] {
		return nil // nothing to roll
	}
	bump(svc)
	st, err := p.update(ctx, svc, name)
	if err == nil && st.Phase != workload.Failed {
		st, err = p.wait(ctx, name)
	}
	if err != nil {
		return afterChange(err)
	}
	if st.Phase == workload.Failed {
		e := wrap(workload.RolloutFailed, "ApplyConfig "+name, "new revision failed: "+st.Message, nil)
		e.Status = &st
		return e
	}
	return nil
}

// setConfigEnv sets t's container env to the non-config vars of env
// followed by refs (sorted by key), and records the keys in
// AnnotationConfigKeys.
func setConfigEnv(p *Provider, service string, t *runpb.RevisionTemplate, env []*runpb.EnvVar, refs map[string]*runpb.SecretKeySelector) {
	var out []*runpb.EnvVar
	for _, e := range env {
		if p.isConfigEnv(service, e) || refs[e.Name] != nil {
			continue
		}
		out = append(out, e)
	}
	keys := slices.Sorted(maps.Keys(refs))
	for _, key := range keys {
		out = append(out, &runpb.EnvVar{Name: key, Values: &runpb.EnvVar_ValueSource{ValueSource: &runpb.EnvVarSource{SecretKeyRef: refs[key]}}})
	}
	t.Containers[0].Env = out
	if t.Annotations == nil {
		t.Annotations = map[string]string{}
	}
	if len(keys) > 0 {
		t.Annotations[AnnotationConfigKeys] = strings.Join(keys, ",")
	} else {
		delete(t.Annotations, AnnotationConfigKeys)
	}
}

// writeConfigs writes every key of config and returns the references to
// use, and whether anything was created or added (then a later error must
// go through afterChange). A key whose current version (the one the live
// template refers to, else the secret's latest) holds the same value is
// not written again.
func (p *Provider) writeConfigs(ctx context.Context, service string, svc *runpb.Service, config map[string]string) (map[string]*runpb.SecretKeySelector, bool, error) {
	current := map[string]*runpb.SecretKeySelector{}
	if cs := svc.GetTemplate().GetContainers(); len(cs) > 0 {
		for _, e := range cs[0].Env {
			if p.isConfigEnv(service, e) {
				current[e.Name] = e.GetValueSource().GetSecretKeyRef()
			}
		}
	}
	refs := map[string]*runpb.SecretKeySelector{}
	changed := false
	for _, key := range slices.Sorted(maps.Keys(config)) {
		ref := p.sameVersion(ctx, service, key, current[key], config[key])
		if ref == nil {
			var wrote bool
			var err error
			ref, wrote, err = p.writeConfig(ctx, service, key, config[key])
			changed = changed || wrote
			if err != nil {
				return nil, changed, err
			}
		}
		granted, err := p.grantAccess(ctx, ref.Secret)
		changed = changed || granted
		if err != nil {
			return nil, changed, err
		}
		refs[key] = ref
	}
	return refs, changed, nil
}

// sameVersion returns a reference to the current version of key's secret
// if it holds value, else nil. Values are compared, never logged.
func (p *Provider) sameVersion(ctx context.Context, service, key string, cur *runpb.SecretKeySelector, value string) *runpb.SecretKeySelector {
	name := "projects/" + p.project + "/secrets/" + p.configSecretID(service, key) + "/versions/latest"
	if cur != nil && cur.Version != "" && cur.Version != "latest" {
		name = cur.Secret + "/versions/" + cur.Version
	}
	v, err := p.secrets.AccessSecretVersion(ctx, &secretmanagerpb.AccessSecretVersionRequest{Name: name})
	if err != nil || subtle.ConstantTimeCompare(v.GetPayload().GetData(), []byte(value)) != 1 {
		return nil
	}
	m := secretVersionPath.FindStringSubmatch(v.Name)
	if m == nil {
		return nil
	}
	return &runpb.SecretKeySelector{Secret: "projects/" + m[1] + "/secrets/" + m[2], Version: m[3]}
}

// writeConfig ensures the key's secret exists and adds a version with
// value, returning a reference to that exact version, and whether
// anything was created or added.
func (p *Provider) writeConfig(ctx context.Context, service, key, value string) (*runpb.SecretKeySelector, bool, error) {
	parent := "projects/" + p.project
	id := p.configSecretID(service, key)
	wrote := false
	_, err := p.secrets.CreateSecret(ctx, &secretmanagerpb.CreateSecretRequest{
		Parent: parent, SecretId: id,
		Secret: &secretmanagerpb.Secret{
			Replication: &secretmanagerpb.Replication{Replication: &secretmanagerpb.Replication_Automatic_{Automatic: &secretmanagerpb.Replication_Automatic{}}},
			Labels:      map[string]string{LabelService: service, LabelTarget: labelValue(p.target)},
		},
	})
	switch {
	case err == nil:
		wrote = true
	case status.Code(err) != codes.AlreadyExists:
		return nil, false, mapErr("CreateSecret "+id, err)
	}
	v, err := p.secrets.AddSecretVersion(ctx, &secretmanagerpb.AddSecretVersionRequest{
		Parent: parent + "/secrets/" + id, Payload: &secretmanagerpb.SecretPayload{Data: []byte(value)},
	})
	if err != nil {
		return nil, wrote, mapErr("AddSecretVersion "+id, err)
	}
	m := secretVersionPath.FindStringSubmatch(v.Name)
	if m == nil {
		return nil, true, wrap(workload.ProviderError, "AddSecretVersion "+id, "unexpected version name "+v.Name, nil)
	}
	return &runpb.SecretKeySelector{Secret: "projects/" + m[1] + "/secrets/" + m[2], Version: m[3]}, true, nil
}

// serviceAccountEmail is the shape of a service account email.
var serviceAccountEmail = regexp.MustCompile(`^[a-z0-9][a-z0-9._-]*@[a-z0-9.-]+\.[a-z]+$`)

// secretAccessorRole lets a member read a secret's versions
// (cloud.google.com/secret-manager/docs/access-control).
const secretAccessorRole = "roles/secretmanager.secretAccessor"

// grantAccess gives the revisions' service account (Options.ServiceAccount)
// roles/secretmanager.secretAccessor on the secret, unless it already has
// it. Cloud Run resolves a secretKeyRef as the revision's service account;
// without access the revision fails ("Permission denied on secret ... for
// Revision service account ...", cloud.google.com/run/docs/configuring/
// services/secrets#access-secret). It reports whether the policy changed.
func (p *Provider) grantAccess(ctx context.Context, secret string) (bool, error) {
	if p.opts.ServiceAccount == "" {
		return false, nil
	}
	member := "serviceAccount:" + p.opts.ServiceAccount
	pol, err := p.secrets.GetIamPolicy(ctx, &iampb.GetIamPolicyRequest{Resource: secret})
	if err != nil {
		return false, mapErr("GetIamPolicy "+secret, err)
	}
	for _, b := range pol.Bindings {
		if b.Role == secretAccessorRole && b.Condition == nil && slices.Contains(b.Members, member) {
			return false, nil
		}
	}
	added := false
	for _, b := range pol.Bindings {
		if b.Role == secretAccessorRole && b.Condition == nil {
			b.Members = append(b.Members, member)
			added = true
			break
		}
	}
	if !added {
		pol.Bindings = append(pol.Bindings, &iampb.Binding{Role: secretAccessorRole, Members: []string{member}})
	}
	// The policy carries the etag read above: a concurrent change makes
	// SetIamPolicy fail with ABORTED rather than lose it
	// (google/iam/v1/policy.proto, Policy.etag).
	if _, err := p.secrets.SetIamPolicy(ctx, &iampb.SetIamPolicyRequest{Resource: secret, Policy: pol}); err != nil {
		return false, mapErr("SetIamPolicy "+secret, err)
	}
	return true, nil
}

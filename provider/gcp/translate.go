package gcp

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"maps"
	"regexp"
	"slices"
	"strings"
	"time"

	"cloud.google.com/go/run/apiv2/runpb"
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

// specHash identifies the template translated from a spec (before config
// env and annotations are added).
func specHash(t *runpb.RevisionTemplate) string {
	b, _ := proto.MarshalOptions{Deterministic: true}.Marshal(t)
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:16])
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
		return nil, provider.Errorf(Name, workload.InvalidArgument, "compose: Cloud Run services are single images; compose is not supported by the gcp provider")
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
	if !serviceID.MatchString(spec.Name) {
		errs = append(errs, workload.FieldError{Path: "name", Message: "Cloud Run service names start with a letter and have fewer than 50 characters (lower-case letters, digits and '-', not ending with '-')"})
	}
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

// serviceID is Cloud Run's rule for a service id, stricter than a
// workload name (a DNS-1123 label of up to 63 characters): "It must begin
// with letter, and cannot end with hyphen; must contain fewer than 50
// characters" (CreateServiceRequest.service_id,
// google/cloud/run/v2/service.proto).
var serviceID = regexp.MustCompile(`^[a-z]([-a-z0-9]{0,47}[a-z0-9])?$`)

// maxLabels is how many labels a Google Cloud resource holds ("Each
// resource can have multiple labels, up to a maximum of 64",
// cloud.google.com/resource-manager/docs/labels-overview); alphaswarm
// sets two of them (LabelService, LabelTarget).
const maxLabels = 64

// checkLabels refuses spec labels Cloud Run cannot hold. They are not
// rewritten: a silently changed key would no longer match what the user
// selects on.
func checkLabels(labels map[string]string) []workload.FieldError {
	var errs []workload.FieldError
	if n := len(labels); n > maxLabels-2 {
		errs = append(errs, workload.FieldError{Path: "labels", Message: fmt.Sprintf("%d labels; Cloud Run holds at most %d per service and alphaswarm sets 2, so at most %d here", n, maxLabels, maxLabels-2)})
	}
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

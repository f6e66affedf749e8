package gcp

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"cloud.google.com/go/run/apiv2/runpb"
	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

var (
	_ provider.Differ     = (*Provider)(nil)
	_ provider.RefChecker = (*Provider)(nil)
)

// Diff implements provider.Differ: the fields of the Cloud Run service
// that deploying spec would change, and whether a new revision rolls. It
// builds the service exactly as Start does (template, build, rolls,
// serviceChanges) from reads only. A change of the revision template
// (image, command, env, ports, resources, probes, service account,
// config references) rolls a new revision: DiffReplace. A change of the
// service's labels or manual scaling alone rolls none: DiffUpdate. Config
// env vars are shown only as "(set)", "(changed)" or "(removed)": for a
// spec carrying config, the current config versions are read to compare
// values (AccessSecretVersion, as Start does; values never leave the
// process); a value that cannot be read counts as changed.
func (p *Provider) Diff(ctx context.Context, spec workload.DeploymentSpec) (workload.Diff, error) {
	if err := spec.Validate(); err != nil {
		return workload.Diff{}, err
	}
	tmpl, err := p.template(spec)
	if err != nil {
		return workload.Diff{}, err
	}
	if spec.Config != nil {
		if err := p.checkConfig(spec.Name, spec.Config); err != nil {
			return workload.Diff{}, err
		}
	}
	if err := p.permitted(ctx, provider.OpStatus, spec.Name, nil); err != nil {
		return workload.Diff{}, err
	}
	cur, err := p.get(ctx, spec.Name)
	if err != nil {
		return workload.Diff{}, err
	}
	want, _, err := p.build(ctx, spec, tmpl, cur, true)
	if err != nil {
		return workload.Diff{}, err
	}
	d := workload.Diff{Service: spec.Name, Provider: Name, Action: workload.DiffNone, Changes: []workload.Change{}}
	before := p.fields(spec.Name, cur)
	after := p.fields(spec.Name, want)
	for _, k := range slices.Sorted(maps.Keys(union(before, after))) {
		from, had := before[k]
		to, has := after[k]
		if (had == has && from == to) || k == specHashKey {
			continue
		}
		if !has {
			to = ""
		}
		if strings.HasSuffix(k, configMark) {
			// A config env var: its reference says which version, the
			// value is not shown.
			k = strings.TrimSuffix(k, configMark)
			switch {
			case !had:
				to = "(set)"
			case !has:
				from, to = "(set)", "(removed)"
			default:
				from, to = "(set)", "(changed)"
			}
		}
		d.Changes = append(d.Changes, workload.Change{Path: k, From: from, To: to, Replaces: strings.HasPrefix(k, "template.")})
	}
	switch {
	case cur == nil:
		d.Action = workload.DiffCreate
		d.Reason = fmt.Sprintf("Cloud Run has no service %s: deploy creates it and its first revision", spec.Name)
	case p.rolls(spec.Name, cur, want):
		d.Action = workload.DiffReplace
		d.Reason = "the revision template changes: Cloud Run rolls a new revision (revisions are immutable)"
		if r := shortRevision(cur.GetLatestReadyRevision()); r != "" {
			d.Reason += " that replaces " + r
		}
		if !slices.ContainsFunc(d.Changes, func(c workload.Change) bool { return c.Replaces }) {
			// Same fields under another spec hash (a service made by an
			// older version of this provider): Start rolls all the same.
			d.Changes = append(d.Changes, workload.Change{Path: specHashKey, From: before[specHashKey], To: after[specHashKey], Replaces: true})
		}
	case p.serviceChanges(cur, want):
		d.Action = workload.DiffUpdate
		d.Reason = "service-level change (labels, scaling) only: no new revision; manual scaling changes need no redeployment"
	default:
		// The same template under other defaults shows no change.
		d.Changes = []workload.Change{}
	}
	return d, nil
}

// specHashKey is the field of the spec hash annotation.
const specHashKey = "template.annotations[" + AnnotationSpecHash + "]"

// configMark ends the field key of a config env var in fields.
const configMark = "\x00config"

// fields renders what Start sets on a service by the Cloud Run Admin v2
// paths of the fields (template.containers[0].image,
// template.containers[0].env[LOG_LEVEL], scaling.manualInstanceCount,
// labels.team). Values are normalised the way Cloud Run stores them
// (port name http1 by default, CPU in millicores, probe defaults) so that
// a live service and the one built from its spec agree. Secret env vars
// are their references; config env vars (key + configMark) their
// reference too, which Diff never shows. The spec hash annotation is
// rendered but Diff shows it only when nothing else differs.
func (p *Provider) fields(name string, svc *runpb.Service) map[string]string {
	out := map[string]string{}
	if svc == nil {
		return out
	}
	for k, v := range svc.Labels {
		out["labels."+k] = v
	}
	if sc := svc.GetScaling(); sc != nil {
		out["scaling.scalingMode"] = sc.GetScalingMode().String()
		if sc.ManualInstanceCount != nil {
			out["scaling.manualInstanceCount"] = strconv.Itoa(int(sc.GetManualInstanceCount()))
		}
	}
	t := svc.GetTemplate()
	if t == nil {
		return out
	}
	if t.ServiceAccount != "" {
		out["template.serviceAccount"] = t.ServiceAccount
	}
	for k, v := range t.Labels {
		out["template.labels."+k] = v
	}
	if h, ok := t.Annotations[AnnotationSpecHash]; ok {
		out[specHashKey] = h
	}
	if len(t.Containers) == 0 {
		return out
	}
	c := t.Containers[0]
	at := "template.containers[0]."
	out[at+"image"] = c.Image
	if len(c.Command) > 0 {
		out[at+"command"] = strconv.Quote(strings.Join(c.Command, " "))
	}
	if len(c.Args) > 0 {
		out[at+"args"] = strconv.Quote(strings.Join(c.Args, " "))
	}
	for _, e := range c.Env {
		k := at + "env[" + e.Name + "]"
		switch ref := e.GetValueSource().GetSecretKeyRef(); {
		case ref != nil && p.isConfigEnv(name, e):
			out[k+configMark] = ref.Secret + ":" + ref.Version
		case ref != nil:
			out[k] = "secretKeyRef " + ref.Secret + ":" + ref.Version
		default:
			out[k] = e.GetValue()
		}
	}
	for i, pt := range c.Ports {
		n := pt.Name
		if n == "" {
			n = "http1" // Cloud Run's default port name
		}
		out[fmt.Sprintf("%sports[%d]", at, i)] = fmt.Sprintf("%s:%d", n, pt.ContainerPort)
	}
	for k, v := range c.GetResources().GetLimits() {
		if k == "cpu" {
			v = milliCPU(v)
		}
		out[at+"resources.limits."+k] = v
	}
	if pr := c.StartupProbe; pr != nil {
		out[at+"startupProbe"] = probeString(pr)
	}
	if pr := c.LivenessProbe; pr != nil {
		out[at+"livenessProbe"] = probeString(pr)
	}
	return out
}

// milliCPU writes a CPU limit in millicores, as Cloud Run stores it
// ("1" is "1000m").
func milliCPU(v string) string {
	if strings.HasSuffix(v, "m") {
		return v
	}
	if f, err := strconv.ParseFloat(v, 64); err == nil {
		return strconv.Itoa(int(f*1000)) + "m"
	}
	return v
}

// probeString renders a probe with Cloud Run's defaults for zero fields
// (period 10 s, timeout 1 s, failure threshold 3; k8s.min.proto Probe).
func probeString(pr *runpb.Probe) string {
	def := func(v, d int32) int32 {
		if v == 0 {
			return d
		}
		return v
	}
	kind := "probe"
	switch {
	case pr.GetHttpGet() != nil:
		kind = fmt.Sprintf("httpGet %s:%d", pr.GetHttpGet().GetPath(), pr.GetHttpGet().GetPort())
	case pr.GetTcpSocket() != nil:
		kind = fmt.Sprintf("tcpSocket :%d", pr.GetTcpSocket().GetPort())
	case pr.GetGrpc() != nil:
		kind = fmt.Sprintf("grpc :%d", pr.GetGrpc().GetPort())
	}
	return fmt.Sprintf("%s period=%ds timeout=%ds failureThreshold=%d initialDelay=%ds", kind,
		def(pr.PeriodSeconds, 10), def(pr.TimeoutSeconds, 1), def(pr.FailureThreshold, 3), pr.InitialDelaySeconds)
}

func union(a, b map[string]string) map[string]string {
	out := maps.Clone(a)
	maps.Copy(out, b)
	return out
}

// CheckRefs implements provider.RefChecker for the spec's Secret Manager
// references, from metadata only: GetSecret (the secret exists) and
// GetSecretVersion (the version, or the alias "latest", exists and is
// ENABLED: Cloud Run cannot resolve a DISABLED or DESTROYED version).
// Secret values are never read (no AccessSecretVersion). A secret named
// without a project is looked for in the target's project, where Cloud
// Run resolves it. The image is not checked: the fake serves no Artifact
// Registry, and an image may live in any registry; Start reports an image
// that cannot be pulled (the revision fails).
func (p *Provider) CheckRefs(ctx context.Context, spec workload.DeploymentSpec) error {
	for i, s := range spec.Secrets {
		field := fmt.Sprintf("secrets[%d].from", i)
		ref, msg := p.secretRef(s.From)
		if msg != "" {
			return workload.Invalid(workload.FieldError{Path: field, Message: msg})
		}
		name := ref.Secret
		if !strings.HasPrefix(name, "projects/") {
			name = "projects/" + p.project + "/secrets/" + name
		}
		why, err := p.versionState(ctx, name, ref.Version)
		if err != nil {
			var e *workload.Error
			if errors.As(err, &e) && len(e.Fields) == 0 {
				e.Fields = []workload.FieldError{{Path: field, Message: e.Message}}
			}
			return err
		}
		if why != "" {
			e := provider.NotFound(Name, "secret reference %s does not resolve: %s", s.From, why)
			e.Fields = []workload.FieldError{{Path: field, Message: e.Message}}
			return e
		}
	}
	return nil
}

// versionState says why a secret version does not resolve ("" when it
// does): the secret or the version is missing, or the version is not
// ENABLED.
func (p *Provider) versionState(ctx context.Context, secret, version string) (string, error) {
	if _, err := p.secrets.GetSecret(ctx, &secretmanagerpb.GetSecretRequest{Name: secret}); err != nil {
		if status.Code(err) == codes.NotFound {
			return "Secret Manager has no secret " + secret, nil
		}
		return "", mapErr("GetSecret "+secret, err)
	}
	v, err := p.secrets.GetSecretVersion(ctx, &secretmanagerpb.GetSecretVersionRequest{Name: secret + "/versions/" + version})
	if status.Code(err) == codes.NotFound {
		return "the secret has no version " + version, nil
	}
	if err != nil {
		return "", mapErr("GetSecretVersion "+secret+"/versions/"+version, err)
	}
	if st := v.GetState(); st != secretmanagerpb.SecretVersion_ENABLED {
		return fmt.Sprintf("version %s is %s", version, st), nil
	}
	return "", nil
}

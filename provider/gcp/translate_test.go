package gcp_test

import (
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestPortNames: Cloud Run accepts http1 and h2c only.
func TestPortNames(t *testing.T) {
	cases := []struct{ name, want string }{
		{"", "http1"}, {"http", "http1"}, {"http1", "http1"}, {"h2c", "h2c"}, {"grpc", "h2c"}, {"web", ""},
	}
	for _, c := range cases {
		p, f := openFake(t, nil)
		sp := spec(providertest.Name("port"), 1)
		sp.Ports[0].Name = c.name
		_, err := p.Start(ctx(t), sp)
		if c.want == "" {
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "ports[0].name") || f.Calls("CreateService") != 0 {
				t.Errorf("port name %q: %v, want invalid_argument at ports[0].name before any call", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("port name %q: %v", c.name, err)
			continue
		}
		if got := f.Service(sp.Name).Template.Containers[0].Ports[0].Name; got != c.want {
			t.Errorf("port name %q → %q, want %q", c.name, got, c.want)
		}
	}
}

func TestServiceTranslation(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("tr"), 3)
	sp.Env = map[string]string{"MODE": "prod"}
	sp.Secrets = []workload.SecretRef{
		{Env: "DB_PASSWORD", From: "projects/demo-project/secrets/db-password/versions/4"},
		{Env: "API_KEY", From: "secret:api-key:latest"},
	}
	sp.Labels = map[string]string{"team": "core"}
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatalf("Start: %v", err)
	}
	svc := f.Service(sp.Name)
	if svc.Labels[gcp.LabelService] != sp.Name || svc.Labels[gcp.LabelTarget] != "prod" || svc.Labels["team"] != "core" {
		t.Errorf("labels = %v", svc.Labels)
	}
	if got := svc.GetScaling().GetManualInstanceCount(); got != 3 || svc.GetScaling().GetScalingMode().String() != "MANUAL" {
		t.Errorf("scaling = %v, want MANUAL 3", svc.GetScaling())
	}
	c := svc.Template.Containers[0]
	if c.Image != sp.Image || c.Ports[0].ContainerPort != 8080 || c.Resources.Limits["cpu"] != "1000m" || c.Resources.Limits["memory"] != "512Mi" {
		t.Errorf("container = %v", c)
	}
	if c.StartupProbe.GetHttpGet().GetPath() != "/healthz" || c.LivenessProbe.GetPeriodSeconds() != 10 {
		t.Errorf("probes = %v / %v", c.StartupProbe, c.LivenessProbe)
	}
	refs := map[string]string{}
	for _, e := range c.Env {
		if r := e.GetValueSource().GetSecretKeyRef(); r != nil {
			refs[e.Name] = r.Secret + "@" + r.Version
		}
	}
	if refs["DB_PASSWORD"] != "projects/demo-project/secrets/db-password@4" || refs["API_KEY"] != "api-key@latest" {
		t.Errorf("secret refs = %v", refs)
	}
}

func TestEnvSecretRefIsInvalid(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("envref"), 1)
	sp.Secrets = []workload.SecretRef{{Env: "TOKEN", From: "env:MY_TOKEN"}}
	_, err := p.Start(ctx(t), sp)
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "Secret Manager") {
		t.Fatalf("Start with env: ref = %v, want invalid_argument explaining Secret Manager", err)
	}
	if f.Calls("CreateService") != 0 {
		t.Fatal("CreateService called for an invalid spec")
	}
}

// TestTCPCheckIsStartupProbeOnly (G1): Cloud Run has TCP startup probes but
// no TCP liveness probe; a tcp health check becomes a startup probe only.
func TestTCPCheckIsStartupProbeOnly(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("tcp"), 1)
	sp.HealthCheck = &workload.HealthCheck{TCP: &workload.TCPCheck{Port: 8080}, Interval: workload.Duration(5 * time.Second), StartPeriod: workload.Duration(30 * time.Second)}
	mustStart(t, p, sp)
	c := f.Service(sp.Name).Template.Containers[0]
	if c.GetStartupProbe().GetTcpSocket().GetPort() != 8080 || c.GetStartupProbe().GetInitialDelaySeconds() != 30 {
		t.Errorf("startup probe = %v; want tcpSocket 8080, initial delay 30", c.GetStartupProbe())
	}
	if c.LivenessProbe != nil {
		t.Errorf("liveness probe = %v; Cloud Run has no TCP liveness probe", c.LivenessProbe)
	}
	// An HTTP check still gets both.
	sp.HealthCheck = &workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/healthz", Port: 8080}}
	mustStart(t, p, sp)
	if c := f.Service(sp.Name).Template.Containers[0]; c.GetLivenessProbe().GetHttpGet() == nil || c.GetStartupProbe().GetHttpGet() == nil {
		t.Errorf("http check: startup %v liveness %v", c.StartupProbe, c.LivenessProbe)
	}
}

// TestLabelsMustBeGoogleCloudLabels (G2): labels Cloud Run would refuse
// are invalid_argument naming the label, before anything is written.
func TestLabelsMustBeGoogleCloudLabels(t *testing.T) {
	for _, c := range []struct{ key, value string }{
		{"app.kubernetes.io/name", "web"},
		{"Team", "core"},
		{"team", "Core"},
		{"team", "a.b"},
		{"9team", "core"},
	} {
		t.Run(c.key+"="+c.value, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("lbl"), 1)
			sp.Labels = map[string]string{c.key: c.value}
			sp.Config = map[string]string{"K": "v"}
			_, err := p.Start(ctx(t), sp)
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "labels."+c.key) {
				t.Fatalf("Start = %v; want invalid_argument at labels.%s", err, c.key)
			}
			if n := f.Calls("CreateSecret") + f.Calls("CreateService"); n != 0 {
				t.Fatalf("%d writes before the refusal", n)
			}
		})
	}
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("lbl"), 1)
	sp.Labels = map[string]string{"team": "core-1", "cost_center": ""}
	mustStart(t, p, sp)
	if got := f.Service(sp.Name).Labels["team"]; got != "core-1" {
		t.Errorf("label team = %q", got)
	}
}

// TestProbeLimits (G5): probe settings outside Cloud Run's limits are
// refused up front (nothing written); limits themselves are accepted.
func TestProbeLimits(t *testing.T) {
	s := func(d time.Duration) workload.Duration { return workload.Duration(d) }
	http := &workload.HTTPCheck{Path: "/healthz", Port: 8080}
	for _, c := range []struct {
		name string
		hc   workload.HealthCheck
		path string // "" = accepted
	}{
		{"timeout above period", workload.HealthCheck{HTTP: http, Interval: s(5 * time.Second), Timeout: s(10 * time.Second)}, "healthCheck.timeout"},
		{"timeout above default period", workload.HealthCheck{HTTP: http, Timeout: s(20 * time.Second)}, "healthCheck.timeout"},
		{"start period above 240s", workload.HealthCheck{HTTP: http, StartPeriod: s(5 * time.Minute)}, "healthCheck.startPeriod"},
		{"interval above 240s", workload.HealthCheck{HTTP: http, Interval: s(300 * time.Second)}, "healthCheck.interval"},
		{"sub-second interval", workload.HealthCheck{HTTP: http, Interval: s(1500 * time.Millisecond)}, "healthCheck.interval"},
		{"timeout equal to period", workload.HealthCheck{HTTP: http, Interval: s(5 * time.Second), Timeout: s(5 * time.Second)}, ""},
		{"limits", workload.HealthCheck{TCP: &workload.TCPCheck{Port: 8080}, Interval: s(240 * time.Second), Timeout: s(240 * time.Second), StartPeriod: s(240 * time.Second)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("probe"), 1)
			hc := c.hc
			sp.HealthCheck = &hc
			sp.Config = map[string]string{"K": "v"}
			st, err := p.Start(ctx(t), sp)
			if c.path == "" {
				if err != nil || st.Phase != workload.Running {
					t.Fatalf("Start = %s, %v; want Running", st.Phase, err)
				}
				return
			}
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), c.path) {
				t.Fatalf("Start = %v; want invalid_argument at %s", err, c.path)
			}
			if n := f.Calls("CreateSecret") + f.Calls("CreateService"); n != 0 {
				t.Fatalf("%d writes before the refusal", n)
			}
		})
	}
}

// TestServiceNameAndLabelLimits (issue 15): Cloud Run's service id rule
// (a letter first, fewer than 50 characters) is stricter than a workload
// name, and a resource holds at most 64 labels; both are refused before
// anything is written, and fakegcp refuses them too.
func TestServiceNameAndLabelLimits(t *testing.T) {
	many := map[string]string{}
	for i := range 63 {
		many[fmt.Sprintf("k%02d", i)] = "v"
	}
	for _, c := range []struct {
		name, path string
		labels     map[string]string
	}{
		{name: "1web", path: "name"},
		{name: "w" + strings.Repeat("e", 48) + "b", path: "name"}, // 50 characters
		{name: "web", path: "labels", labels: many},
	} {
		t.Run(c.path+"/"+c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(c.name, 1)
			sp.Labels = c.labels
			sp.Config = map[string]string{"K": "v"}
			if err := sp.Validate(); err != nil {
				t.Fatalf("the spec is a valid workload spec, yet: %v", err)
			}
			_, err := p.Start(ctx(t), sp)
			var we *workload.Error
			if !errors.As(err, &we) || we.Code != workload.InvalidArgument || len(we.Fields) == 0 || we.Fields[0].Path != c.path {
				t.Fatalf("Start = %v; want invalid_argument at %s", err, c.path)
			}
			if n := f.Calls("CreateSecret") + f.Calls("CreateService"); n != 0 {
				t.Fatalf("%d writes before the refusal", n)
			}
		})
	}
	p, _ := openFake(t, nil)
	mustStart(t, p, spec("w"+strings.Repeat("e", 47)+"b", 1)) // 49 characters
	delete(many, "k00")
	sp := spec("web", 1)
	sp.Labels = many // 62 + the 2 alphaswarm sets
	mustStart(t, p, sp)
}

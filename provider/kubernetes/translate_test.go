package kubernetes

import (
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/yaml"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

func testOptions(t testing.TB) Options {
	t.Helper()
	o := Options{Namespace: "apps"}
	if err := o.defaults("prod"); err != nil {
		t.Fatal(err)
	}
	return o
}

func fullSpec() workload.DeploymentSpec {
	return workload.DeploymentSpec{
		Name:     "web",
		Image:    "ghcr.io/acme/web:1.4.2",
		Command:  []string{"/web"},
		Args:     []string{"--listen", ":8080"},
		Env:      map[string]string{"MODE": "production", "LOG_LEVEL": "info"},
		Secrets:  []workload.SecretRef{{Env: "DB_PASSWORD", From: "web-db/password"}, {Env: "API_TOKEN", From: "web-api/token"}},
		Replicas: 3,
		Ports:    []workload.Port{{Container: 8080, Host: 80}, {Name: "metrics", Container: 9090}, {Container: 5353, Protocol: "udp"}},
		Resources: workload.Resources{
			CPU: "500m", Memory: "256Mi",
		},
		HealthCheck: &workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/healthz", Port: 8080},
			Interval: workload.Duration(10 * time.Second), Timeout: workload.Duration(1500 * time.Millisecond),
			Retries: 5, StartPeriod: workload.Duration(20 * time.Second)},
		Config:     map[string]string{"greeting": "hello", "app.yaml": "a: 1\nb: 2\n"},
		Labels:     map[string]string{"team": "payments", "acme.io/tier": "frontend"},
		Extensions: map[string]json.RawMessage{"kubernetes": json.RawMessage(`{"nodeSelector":{"pool":"general"},"serviceAccountName":"web","imagePullPolicy":"IfNotPresent","imagePullSecrets":["ghcr"],"progressDeadline":"2m","serviceType":"LoadBalancer"}`)},
	}
}

// TestTranslateGolden compares what Start applies with testdata/*.golden.yaml
// (go test -run TestTranslateGolden -update rewrites them).
func TestTranslateGolden(t *testing.T) {
	tests := []struct {
		name  string
		spec  workload.DeploymentSpec
		owner string
	}{
		{"full", fullSpec(), ""},
		{"full-owned", fullSpec(), "2c1d3a9e-0000-4000-8000-000000000001"},
		{"minimal", workload.DeploymentSpec{Name: "worker", Image: "busybox:1.37", Replicas: 1}, ""},
		{"tcp-exec-checks", workload.DeploymentSpec{Name: "db", Image: "postgres:17", Replicas: 1,
			Ports:       []workload.Port{{Name: "pg", Container: 5432}},
			HealthCheck: &workload.HealthCheck{Exec: []string{"pg_isready", "-q"}}}, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			objs, err := translate("prod", testOptions(t), tt.spec, typesUID(tt.owner))
			if err != nil {
				t.Fatalf("translate: %v", err)
			}
			doc := map[string]any{"deployment": objs.deployment, "configMap": objs.configMap, "checksum": objs.checksum}
			if objs.service != nil {
				doc["service"] = objs.service
			}
			got, err := yaml.Marshal(doc)
			if err != nil {
				t.Fatal(err)
			}
			path := filepath.Join("testdata", tt.name+".golden.yaml")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update to create it)", err)
			}
			if string(got) != string(want) {
				t.Errorf("%s differs from what translate builds (run with -update if intended):\n--- got\n%s", path, got)
			}
		})
	}
}

func TestTranslateRefuses(t *testing.T) {
	tests := []struct {
		name   string
		mutate func(*workload.DeploymentSpec)
		path   string
		msg    string
	}{
		{"env secret reference", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "env:DB_PASSWORD"}}
		},
			"secrets[0].from", "create a Kubernetes Secret"},
		{"other scheme", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "arn:aws:ssm:eu-west-1:1:parameter/x"}}
		}, "secrets[0].from", `scheme "arn"`},
		{"no key", func(s *workload.DeploymentSpec) { s.Secrets = []workload.SecretRef{{Env: "X", From: "web-db"}} },
			"secrets[0].from", `"secret-name/key"`},
		{"bad secret name", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "Web_DB/password"}}
		},
			"secrets[0].from", "DNS-1123 subdomain"},
		{"bad key", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "web-db/pass word"}}
		},
			"secrets[0].from", "Secret key"},
		{"long port name", func(s *workload.DeploymentSpec) {
			s.Ports = []workload.Port{{Name: "a-very-long-port-name", Container: 80}}
		}, "ports[0].name", "at most 15"},
		{"compose", func(s *workload.DeploymentSpec) { s.Image = ""; s.Compose = &workload.ComposeProfile{File: "c.yaml"} },
			"compose", "does not run Compose"},
		{"unknown extension field", func(s *workload.DeploymentSpec) {
			s.Extensions = map[string]json.RawMessage{"kubernetes": json.RawMessage(`{"hostNetwork":true}`)}
		}, "extensions.kubernetes.hostNetwork", "unknown field"},
		{"extension key in the wrong case", func(s *workload.DeploymentSpec) {
			s.Extensions = map[string]json.RawMessage{"kubernetes": json.RawMessage(`{"ServiceType":"NodePort"}`)}
		}, "extensions.kubernetes.ServiceType", "case-sensitive"},
		{"extension key repeated", func(s *workload.DeploymentSpec) {
			s.Extensions = map[string]json.RawMessage{"kubernetes": json.RawMessage(`{"serviceType":"NodePort","serviceType":"ClusterIP"}`)}
		}, "extensions.kubernetes.serviceType", ""},
		{"bad pull policy", func(s *workload.DeploymentSpec) {
			s.Extensions = map[string]json.RawMessage{"kubernetes": json.RawMessage(`{"imagePullPolicy":"Sometimes"}`)}
		}, "extensions.kubernetes.imagePullPolicy", "Always"},
		{"bad service type", func(s *workload.DeploymentSpec) {
			s.Extensions = map[string]json.RawMessage{"kubernetes": json.RawMessage(`{"serviceType":"ExternalName"}`)}
		}, "extensions.kubernetes.serviceType", "ClusterIP"},
		{"spec validation first", func(s *workload.DeploymentSpec) { s.Replicas = -1 }, "replicas", ">= 0"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			spec := workload.DeploymentSpec{Name: "web", Image: "nginx", Replicas: 1}
			tt.mutate(&spec)
			_, err := translate("prod", testOptions(t), spec, "")
			we := workload.AsError(err)
			if we == nil || we.Code != workload.InvalidArgument || !provider.NothingChanged(err) {
				t.Fatalf("error %v, want invalid_argument", err)
			}
			found := false
			for _, f := range we.Fields {
				if f.Path == tt.path && strings.Contains(f.Message, tt.msg) {
					found = true
				}
			}
			if !found {
				t.Fatalf("fields %+v: none is %s containing %q", we.Fields, tt.path, tt.msg)
			}
		})
	}
}

func TestTranslateNeverHoldsSecretValues(t *testing.T) {
	objs, err := translate("prod", testOptions(t), fullSpec(), "")
	if err != nil {
		t.Fatal(err)
	}
	b, _ := json.Marshal(objs.deployment)
	s := string(b)
	for _, want := range []string{`"secretKeyRef":{"name":"web-db","key":"password"}`, `"name":"DB_PASSWORD"`} {
		if !strings.Contains(s, want) {
			t.Errorf("deployment lacks %s", want)
		}
	}
}

func TestConfigChecksum(t *testing.T) {
	a := configChecksum(map[string]string{"a": "1", "b": "2"})
	if a != configChecksum(map[string]string{"b": "2", "a": "1"}) {
		t.Fatal("checksum depends on map order")
	}
	for _, other := range []map[string]string{{"a": "12"}, {"a": "1", "b": "3"}, {"a=1\nb": "2"}, nil} {
		if configChecksum(other) == a {
			t.Fatalf("checksum collides for %v", other)
		}
	}
	if configChecksum(nil) != configChecksum(map[string]string{}) {
		t.Fatal("nil and empty configs differ")
	}
}

func TestOptionsDefaults(t *testing.T) {
	var o Options
	if err := o.defaults("prod"); err != nil {
		t.Fatal(err)
	}
	if o.Namespace != "default" || o.RolloutTimeout.D() != 5*time.Minute || o.ProgressDeadline.D() != 10*time.Minute ||
		o.ConfigDir != "/etc/alphaswarm/config" || o.MetricsInterval.D() != 5*time.Second || o.QPS != 50 || o.Burst != 100 || o.DeleteOnStop {
		t.Fatalf("defaults %+v", o)
	}
	bad := Options{Namespace: "Not_A_Namespace", ConfigDir: "relative", RolloutTimeout: -1, MetricsInterval: workload.Duration(time.Millisecond)}
	err := bad.defaults("prod")
	we := workload.AsError(err)
	if we == nil || len(we.Fields) != 4 {
		t.Fatalf("error %v, want 4 fields", err)
	}
	for _, f := range we.Fields {
		if !strings.HasPrefix(f.Path, "targets.prod.options.") {
			t.Errorf("field path %q", f.Path)
		}
	}
}

func typesUID(s string) types.UID { return types.UID(s) }

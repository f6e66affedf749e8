package control_test

import (
	"context"
	"encoding/json"
	"log/slog"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

func policyOf(pol []provider.Policy) provider.Policy {
	if len(pol) > 0 {
		return pol[0]
	}
	return provider.Policy{}
}

func openLedger(t testing.TB) ledger.Ledger {
	t.Helper()
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	return led
}

// hostPortMemory is the memory provider declaring that its ports are host
// ports, as the docker provider does.
type hostPortMemory struct{ *providertest.Memory }

func (hostPortMemory) PublishesHostPorts() bool { return true }

// newAdmissionEnv is newEnvOn over a provider that publishes host ports.
func newAdmissionEnv(t testing.TB, mem *providertest.Memory, pol provider.Policy) *env {
	t.Helper()
	led := openLedger(t)
	logs := &syncBuffer{}
	rt, err := control.New(context.Background(), control.Options{Ledger: led,
		Targets: []control.Target{{Name: "local", Provider: hostPortMemory{mem}, Policy: pol}},
		Logger:  slog.New(slog.NewJSONHandler(logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return &env{rt: rt, mem: mem, ledger: led, logs: logs}
}

// TestAdmission: a request outside the target's static policy is refused
// before the lock and the provider, with the rule it broke, and recorded
// as one rejected row; a request inside it runs.
func TestAdmission(t *testing.T) {
	strict := provider.Policy{
		Images:      []string{"registry.example.com/team/", "example/app:1"},
		MaxReplicas: 5,
		Ports:       provider.PortPolicy{HostPorts: []string{"8000-8999"}, BindAddresses: []string{"127.0.0.1", "0.0.0.0"}},
		Secrets: []provider.SecretGrant{
			{Secret: "ALPHASWARM_SECRET_DB", Services: []string{"web", "api-*"}},
			{Secret: "ALPHASWARM_SECRET_SHARED_*"},
		},
		Compose: provider.ComposePolicy{Dir: "/srv/compose"},
	}
	withSpec := func(name string, f func(*workload.DeploymentSpec)) control.Request {
		s := spec(name, 1)
		if f != nil {
			f(s)
		}
		return control.Request{Action: workload.ActionStart, Service: name, Spec: s}
	}
	secret := func(from string) func(*workload.DeploymentSpec) {
		return func(s *workload.DeploymentSpec) { s.Secrets = []workload.SecretRef{{Env: "S", From: from}} }
	}
	port := func(host int, ip string) func(*workload.DeploymentSpec) {
		return func(s *workload.DeploymentSpec) { s.Ports = []workload.Port{{Container: 8080, Host: host, HostIP: ip}} }
	}
	cases := []struct {
		name string
		pol  *provider.Policy // nil: the default policy
		req  control.Request
		code workload.Code // "" when admitted
		rule string        // in the message
	}{
		// The default policy: safe for a single-user laptop.
		{"default: any image", nil, withSpec("web", func(s *workload.DeploymentSpec) { s.Image = "anything/at:all" }), "", ""},
		{"default: 20 replicas", nil, withSpec("web", func(s *workload.DeploymentSpec) { s.Replicas = 20 }), "", ""},
		{"default: 21 replicas", nil, withSpec("web", func(s *workload.DeploymentSpec) { s.Replicas = 21 }), workload.PermissionDenied, "rule maxReplicas"},
		{"default: scale 21", nil, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 21}, workload.PermissionDenied, "rule maxReplicas"},
		{"default: port 80", nil, withSpec("web", port(80, "")), workload.PermissionDenied, "host port 80"},
		{"default: port 8080 loopback", nil, withSpec("web", port(8080, "")), "", ""},
		{"default: all interfaces", nil, withSpec("web", port(8080, "0.0.0.0")), workload.PermissionDenied, "host address 0.0.0.0"},
		{"default: no secret granted", nil, withSpec("web", secret("env:ALPHASWARM_SECRET_DB")), workload.PermissionDenied, "rule secrets"},
		{"default: compose off", nil, withSpec("web", func(s *workload.DeploymentSpec) {
			s.Image, s.Compose = "", &workload.ComposeProfile{File: "c.yml"}
		}), workload.PermissionDenied, "rule compose.dir"},
		{"default: foreign extension", nil, withSpec("web", func(s *workload.DeploymentSpec) {
			s.Extensions = map[string]json.RawMessage{"kubernetes": json.RawMessage(`{"hostNetwork":true}`)}
		}), workload.InvalidArgument, "extensions.kubernetes"},
		{"default: own extension", nil, withSpec("web", func(s *workload.DeploymentSpec) {
			s.Extensions = map[string]json.RawMessage{"memory": json.RawMessage(`{}`)}
		}), "", ""},

		// An admin's policy.
		{"image prefix", &strict, withSpec("web", func(s *workload.DeploymentSpec) { s.Image = "registry.example.com/team/web:2" }), "", ""},
		{"image exact", &strict, withSpec("web", nil), "", ""},
		{"image elsewhere", &strict, withSpec("web", func(s *workload.DeploymentSpec) { s.Image = "docker.io/evil:1" }), workload.PermissionDenied, "rule images"},
		{"image prefix boundary", &strict, withSpec("web", func(s *workload.DeploymentSpec) { s.Image = "registry.example.com/teamevil/x:1" }), workload.PermissionDenied, "rule images"},
		{"image tag boundary", &strict, withSpec("web", func(s *workload.DeploymentSpec) { s.Image = "example/app:10" }), workload.PermissionDenied, "rule images"},
		{"max replicas", &strict, withSpec("web", func(s *workload.DeploymentSpec) { s.Replicas = 6 }), workload.PermissionDenied, "6 is more than target local admits (5)"},
		{"scale within", &strict, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 5}, "", ""},
		{"scale beyond", &strict, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 6}, workload.PermissionDenied, "rule maxReplicas"},
		{"port in range", &strict, withSpec("web", port(8443, "0.0.0.0")), "", ""},
		{"port out of range", &strict, withSpec("web", port(9000, "")), workload.PermissionDenied, "host port 9000"},
		{"port other address", &strict, withSpec("web", port(8080, "10.1.2.3")), workload.PermissionDenied, "host address 10.1.2.3"},
		{"ephemeral port", &strict, withSpec("web", port(0, "")), "", ""},
		{"secret granted", &strict, withSpec("web", secret("env:ALPHASWARM_SECRET_DB")), "", ""},
		{"secret granted by pattern", &strict, withSpec("api-eu", secret("env:ALPHASWARM_SECRET_DB")), "", ""},
		{"secret other service", &strict, withSpec("batch", secret("env:ALPHASWARM_SECRET_DB")), workload.PermissionDenied, "grants service batch no secret env:ALPHASWARM_SECRET_DB"},
		{"secret other name", &strict, withSpec("web", secret("env:ALPHASWARM_SECRET_ROOT")), workload.PermissionDenied, "rule secrets"},
		{"secret prefix grant", &strict, withSpec("batch", secret("env:ALPHASWARM_SECRET_SHARED_KEY")), "", ""},
		{"compose on", &strict, withSpec("web", func(s *workload.DeploymentSpec) {
			s.Image, s.Compose = "", &workload.ComposeProfile{File: "c.yml"}
		}), "", ""},
		{"several rules", &strict, withSpec("web", func(s *workload.DeploymentSpec) {
			s.Image, s.Replicas = "evil:1", 9
		}), workload.PermissionDenied, "rule images"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			mem := providertest.NewMemory("local")
			var calls atomic.Int32
			mem.Enter = func(context.Context, provider.Operation, string) error { calls.Add(1); return nil }
			pol := provider.Policy{}
			if tc.pol != nil {
				pol = *tc.pol
			}
			e := newAdmissionEnv(t, mem, pol)
			if tc.req.Action == workload.ActionScale {
				e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
				calls.Store(0)
			}
			before := len(e.records(t, ledger.Filter{}))
			_, err := e.do(t, tc.req)
			if got := workload.CodeOf(err); got != tc.code {
				t.Fatalf("code %q, want %q: %v", got, tc.code, err)
			}
			recs := e.records(t, ledger.Filter{})[before:]
			if tc.code == "" {
				if calls.Load() == 0 || len(recs) != 2 {
					t.Fatalf("admitted request: %d provider calls, %d ledger rows", calls.Load(), len(recs))
				}
				return
			}
			if !strings.Contains(err.Error(), tc.rule) {
				t.Errorf("message %q lacks %q", err.Error(), tc.rule)
			}
			if calls.Load() != 0 {
				t.Errorf("the provider was called %d times for a refused request", calls.Load())
			}
			if len(recs) != 1 || recs[0].Kind != ledger.KindRejected || recs[0].ErrorCode != string(tc.code) ||
				!strings.Contains(recs[0].Message, tc.rule) || recs[0].RequestDigest == "" {
				t.Fatalf("ledger rows for a refused request: %+v", recs)
			}
			want := ledger.OutcomeDenied
			if tc.code == workload.InvalidArgument {
				want = ledger.OutcomeInvalid
			}
			if recs[0].Outcome != want {
				t.Errorf("outcome %q, want %q", recs[0].Outcome, want)
			}
		})
	}
}

// TestAdmissionServicePorts: on a provider whose ports are Service or
// load-balancer ports (kubernetes, the clouds), the host-port rules do not
// apply, and hostIP is refused rather than ignored.
func TestAdmissionServicePorts(t *testing.T) {
	e := newEnv(t, nil, nil) // the memory provider publishes no host ports
	s := spec("web", 1)
	s.Ports = []workload.Port{{Container: 8080, Host: 80}}
	if _, err := e.do(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: s}); err != nil {
		t.Fatalf("Service port 80 on a provider without host ports: %v", err)
	}
	s.Ports = []workload.Port{{Container: 8080, Host: 80, HostIP: "127.0.0.1"}}
	_, err := e.do(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: s})
	if e := workload.AsError(err); e == nil || e.Code != workload.InvalidArgument || len(e.Fields) != 1 || e.Fields[0].Path != "ports[0].hostIP" {
		t.Fatalf("hostIP on a provider without host ports: %v", err)
	}
}

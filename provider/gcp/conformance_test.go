package gcp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

const startupLine = "fake instance started"

// testServiceAccount is the revisions' service account in tests: the
// provider grants it access to the config secrets it writes.
const testServiceAccount = "run-app@demo-project.iam.gserviceaccount.com"

func openFake(t *testing.T, extra map[string]any) (*gcp.Provider, *fakegcp.Server) {
	t.Helper()
	f := fakegcp.New()
	f.StartupLine = startupLine
	t.Cleanup(f.Close)
	// The request contract (fakegcp/contract.go): every request the
	// provider sent passed the field behaviours of the API definitions.
	t.Cleanup(func() {
		if v := f.Violations(); len(v) > 0 {
			t.Errorf("requests refused by the API contract: %q", v)
		}
	})
	opts := map[string]any{"mode": "run", "region": "europe-west1", "pollInterval": "20ms", "metricsPeriod": "200ms",
		"serviceAccount": testServiceAccount}
	for k, v := range extra {
		if v == nil {
			delete(opts, k)
		} else {
			opts[k] = v
		}
	}
	raw := map[string]json.RawMessage{}
	for k, v := range opts {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	creds := credentials.FromMap(map[string]string{"GOOGLE_CLOUD_PROJECT": "demo-project"})
	p, err := gcp.OpenWithClientOptions(context.Background(), provider.TargetConfig{Name: "prod", Provider: "gcp", Options: raw}, creds,
		f.GRPCOptions(), f.RESTOptions())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { _ = p.Close() })
	return p, f
}

func spec(name string, replicas int) workload.DeploymentSpec {
	return workload.DeploymentSpec{Name: name, Target: "prod", Image: "europe-docker.pkg.dev/demo-project/app/web:1",
		Replicas: replicas, Ports: []workload.Port{{Container: 8080}},
		Resources:   workload.Resources{CPU: "1", Memory: "512Mi"},
		HealthCheck: &workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/healthz", Port: 8080}, Interval: workload.Duration(10 * time.Second)}}
}

// TestConformance runs the providertest suite against the real Cloud
// clients connected to the in-process fake with option.WithGRPCConn,
// observing the fake's own state.
//
// Cloud Run's Admin API lists no instances, so the provider reports
// placeholder instances "<revision>/<n>"; Observe therefore reports the
// serving revision once per running instance, and the suite's instance
// checks become "status reports the revision the backend runs" (start)
// and "a restart replaces the revision" (restart).
func TestConformance(t *testing.T) {
	p, f := openFake(t, nil)
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Target:   "prod",
		Spec:     spec,
		Observe: func(ctx context.Context, name string) (providertest.Observation, error) {
			o := f.Observe(name)
			ids := make([]string, o.Running)
			for i := range ids {
				ids[i] = o.Revision
			}
			return providertest.Observation{Running: o.Running, InstanceIDs: ids}, nil
		},
		ReadConfig: func(ctx context.Context, name, key string) (string, bool, error) {
			v, ok, err := f.ReadConfig(name, key)
			if err != nil && strings.Contains(err.Error(), "runs no revision") {
				return "", false, nil
			}
			return v, ok, err
		},
		EmitLog: func(ctx context.Context, name, text string) error {
			f.EmitLog(name, text)
			return nil
		},
		StartupLine: startupLine,
		Timeout:     20 * time.Second,
	})
}

func TestExecUnsupportedWithReason(t *testing.T) {
	p, _ := openFake(t, nil)
	for _, c := range provider.Capabilities(p) {
		if c.Op == provider.OpExec {
			if c.Supported || !strings.Contains(c.Reason, "Cloud Run has no exec") {
				t.Fatalf("exec capability = %+v, want unsupported with reason \"Cloud Run has no exec\"", c)
			}
			// The Provider has no Exec: the runtime's call says why.
			if _, ok := provider.Provider(p).(provider.Execer); ok {
				t.Error("the Cloud Run provider implements Execer")
			}
			_, err := provider.Exec(context.Background(), p, "web", provider.ExecRequest{Command: []string{"/bin/true"}})
			if workload.CodeOf(err) != workload.Unsupported || !strings.Contains(err.Error(), "Cloud Run has no exec") {
				t.Fatalf("provider.Exec = %v, want unsupported naming the reason", err)
			}
			return
		}
	}
	t.Fatal("no exec capability")
}

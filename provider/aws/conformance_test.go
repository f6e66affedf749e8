package aws_test

import (
	"context"
	"encoding/json"
	"io"
	"testing"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	_ "github.com/alphaswarm/controller/provider/aws"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

const startupLine = "fake task started"

func testCreds() *credentials.Resolver {
	return credentials.FromMap(map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY",
		"AWS_REGION": "us-east-1",
	})
}

func openFake(t *testing.T, fopts fakeaws.Options, extra map[string]any) (provider.Provider, *fakeaws.Fake) {
	t.Helper()
	if fopts.StartupLine == "" {
		fopts.StartupLine = startupLine
	}
	f := fakeaws.New(fopts)
	t.Cleanup(f.Close)
	// The request contract (fakeaws/contract.go): every request the
	// provider sent passed the SDK's own validation.
	t.Cleanup(func() {
		if v := f.Violations(); len(v) > 0 {
			t.Errorf("requests refused by the SDK's validation: %q", v)
		}
	})
	return openOn(t, f, extra), f
}

// openOn opens target prod of the aws provider on fake f.
func openOn(t *testing.T, f *fakeaws.Fake, extra map[string]any) provider.Provider {
	t.Helper()
	opts := map[string]any{
		"mode": "ecs", "cluster": "default", "subnets": []string{"subnet-0abc"}, "securityGroups": []string{"sg-0abc"},
		"executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
		"baseEndpoint":     f.URL(), "pollInterval": "20ms", "metricsPeriod": "1s", "maxAttempts": 2,
	}
	for k, v := range extra {
		opts[k] = v
	}
	raw := map[string]json.RawMessage{}
	for k, v := range opts {
		b, _ := json.Marshal(v)
		raw[k] = b
	}
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "prod", Provider: "aws", Options: raw}, testCreds())
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	if c, ok := p.(io.Closer); ok {
		t.Cleanup(func() { c.Close() })
	}
	return p
}

func spec(name string, replicas int) workload.DeploymentSpec {
	return workload.DeploymentSpec{Name: name, Target: "prod", Image: "public.ecr.aws/docker/library/nginx:1.27",
		Replicas: replicas, Ports: []workload.Port{{Container: 80}},
		Resources: workload.Resources{CPU: "250m", Memory: "512Mi"}}
}

// TestConformance runs the providertest suite against the real SDK clients
// pointed at the fake, observing the fake's own state. The target turns
// ECS Exec on, so the exec scenario runs through ExecuteCommand and the
// fake's Session Manager agent.
func TestConformance(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, map[string]any{
		"enableExecuteCommand": true, "taskRoleArn": "arn:aws:iam::123456789012:role/alphaswarmTaskRole"})
	providertest.Run(t, providertest.Harness{
		Provider: p,
		Target:   "prod",
		Spec:     spec,
		Observe: func(ctx context.Context, name string) (providertest.Observation, error) {
			st := f.Service("default", name)
			return providertest.Observation{Running: len(st.RunningTasks), InstanceIDs: st.RunningTasks}, nil
		},
		ReadConfig: func(ctx context.Context, name, key string) (string, bool, error) {
			envs := f.TaskEnv("default", name)
			if len(envs) == 0 {
				return "", false, nil
			}
			v, ok := envs[len(envs)-1][key]
			return v, ok, nil
		},
		EmitLog: func(ctx context.Context, name, text string) error {
			f.EmitLog("default", name, text)
			return nil
		},
		StartupLine: startupLine,
		ExecCommand: []string{"echo", "hello from exec"},
		ExecOutput:  "hello from exec",
		ExecFail:    []string{"sh", "-c", "exit 3"},
		ExecFailUnobservable: "ECS Exec runs the command in an InteractiveCommands Session Manager session, whose agent " +
			"never sends the exit code (ExitCode payloads exist only in NonInteractiveCommands sessions with " +
			"separateOutputStream, which ECS ExecuteCommand cannot start); the fake agent behaves the same. " +
			"TestExecOneShot pins both paths",
		Timeout: 20 * time.Second,
		Cleanup: func(ctx context.Context, name string) { f.DeleteService("default", name) },
	})
}

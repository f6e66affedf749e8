package aws_test

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

func TestStartTranslatesSpec(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, map[string]any{"logGroup": "/app/logs"})
	sp := spec("web", 2)
	sp.Env = map[string]string{"MODE": "prod"}
	sp.Secrets = []workload.SecretRef{{Env: "DB_PASSWORD", From: "arn:aws:ssm:us-east-1:123456789012:parameter/db/password"}}
	sp.HealthCheck = &workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/healthz", Port: 80}}
	st, err := p.Start(ctx(t), sp)
	if err != nil || st.Phase != workload.Running || st.Replicas.Ready != 2 {
		t.Fatalf("Start = %+v, %v; want Running with 2 ready", st, err)
	}
	s := f.Service("default", "web")
	if s.Tags["alphaswarm.service"] != "web" || s.Tags["alphaswarm.target"] != "prod" {
		t.Errorf("service tags = %v", s.Tags)
	}
	td := f.TaskDefinition(s.TaskDef)
	if td["family"] != "as-prod-web" || td["cpu"] != "256" || td["memory"] != "512" || td["networkMode"] != "awsvpc" {
		t.Errorf("task definition = %v", td)
	}
	b, _ := json.Marshal(td["containerDefinitions"])
	for _, want := range []string{`"image":"public.ecr.aws/docker/library/nginx:1.27"`,
		`{"name":"DB_PASSWORD","valueFrom":"arn:aws:ssm:us-east-1:123456789012:parameter/db/password"}`,
		`{"name":"MODE","value":"prod"}`, `"logDriver":"awslogs"`, `"awslogs-group":"/app/logs"`,
		`"awslogs-stream-prefix":"web"`, `"containerPort":80`, `curl -fsS http://localhost:80/healthz`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("container definitions lack %s:\n%s", want, b)
		}
	}
	// The same spec again registers nothing new.
	regs := f.Requests("ecs.RegisterTaskDefinition")
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	if f.Requests("ecs.RegisterTaskDefinition") != regs {
		t.Error("an unchanged spec registered a new task definition revision")
	}
}

func TestStartFailedDeploymentReportsReason(t *testing.T) {
	p, _ := openFake(t, fakeaws.Options{BadImages: []string{"example.com/missing:1"}}, nil)
	sp := spec("bad", 1)
	sp.Image = "example.com/missing:1"
	st, err := p.Start(ctx(t), sp)
	if err != nil {
		t.Fatal(err)
	}
	if st.Phase != workload.Failed || !strings.Contains(st.Message, "CannotPullContainerError") {
		t.Fatalf("status = %s %q, want Failed with CannotPullContainerError", st.Phase, st.Message)
	}
}

func TestStartDeadlineIsProgressing(t *testing.T) {
	p, _ := openFake(t, fakeaws.Options{PendingSteps: 1000}, map[string]any{"pollInterval": "1s"})
	c, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	st, err := p.Start(c, spec("slow", 1))
	if err != nil || st.Phase != workload.Progressing {
		t.Fatalf("Start with a short deadline = %s, %v; want Progressing", st.Phase, err)
	}
}

func TestSecretRefsValidated(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	for _, from := range []string{"env:DB_PASSWORD", "secret/key", "arn:aws:s3:::bucket/key"} {
		sp := spec("sec", 1)
		sp.Secrets = []workload.SecretRef{{Env: "X", From: from}}
		_, err := p.Start(ctx(t), sp)
		var we *workload.Error
		if !errors.As(err, &we) || we.Code != workload.InvalidArgument || len(we.Fields) != 1 || we.Fields[0].Path != "secrets[0].from" {
			t.Errorf("from %q: error = %v, want invalid_argument on secrets[0].from", from, err)
		}
		if strings.HasPrefix(from, "env:") && !strings.Contains(err.Error(), "not supported on ECS") {
			t.Errorf("env: error does not say why: %v", err)
		}
	}
	if n := f.Requests("ecs.RegisterTaskDefinition") + f.Requests("ecs.DescribeServices"); n != 0 {
		t.Errorf("invalid specs reached AWS (%d requests)", n)
	}
}

func TestThrottlingIsRateLimited(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{Throttle: 100}, map[string]any{"maxAttempts": 2})
	_, err := p.Status(ctx(t), "web")
	if workload.CodeOf(err) != workload.RateLimited || !provider.NothingChanged(err) {
		t.Fatalf("error = %v, want rate_limited", err)
	}
	if n := f.Requests("ecs.DescribeServices"); n != 2 {
		t.Errorf("DescribeServices sent %d times, want 2 (the SDK retries)", n)
	}
}

package aws_test

import (
	"context"
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	t.Cleanup(cancel)
	return c
}

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

func TestApplyConfigParameters(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	if _, err := p.Start(ctx(t), spec("cfg", 1)); err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyConfig(ctx(t), "cfg", map[string]string{"greeting": "hi", "secret.token": "s3cr3t-value", "old": "x"}); err != nil {
		t.Fatal(err)
	}
	if err := p.ApplyConfig(ctx(t), "cfg", map[string]string{"greeting": "hello", "secret.token": "s3cr3t-value"}); err != nil {
		t.Fatal(err)
	}
	if v, typ, ok := f.Parameter("/alphaswarm/prod/cfg/greeting"); !ok || v != "hello" || typ != "String" {
		t.Errorf("greeting parameter = %q %q %v", v, typ, ok)
	}
	if _, typ, ok := f.Parameter("/alphaswarm/prod/cfg/secret.token"); !ok || typ != "SecureString" {
		t.Errorf("secret.token parameter type = %q %v, want SecureString", typ, ok)
	}
	if _, _, ok := f.Parameter("/alphaswarm/prod/cfg/old"); ok {
		t.Error("a key dropped from the config is still stored")
	}
	envs := f.TaskEnv("default", "cfg")
	if len(envs) != 1 || envs[0]["greeting"] != "hello" || envs[0]["token"] != "s3cr3t-value" || envs[0]["old"] != "" {
		t.Errorf("task env = %v", envs)
	}
	td := f.TaskDefinition(f.Service("default", "cfg").TaskDef)
	b, _ := json.Marshal(td["containerDefinitions"])
	if strings.Contains(string(b), "s3cr3t-value") || strings.Contains(string(b), `"hello"`) {
		t.Errorf("config values leaked into the task definition: %s", b)
	}
	// A later Start of the same spec keeps the config references.
	if _, err := p.Start(ctx(t), spec("cfg", 1)); err != nil {
		t.Fatal(err)
	}
	if envs := f.TaskEnv("default", "cfg"); envs[0]["greeting"] != "hello" {
		t.Errorf("after Start, task env = %v", envs)
	}
}

func TestMetricsSample(t *testing.T) {
	p, _ := openFake(t, fakeaws.Options{}, nil)
	if _, err := p.Start(ctx(t), spec("m", 2)); err != nil {
		t.Fatal(err)
	}
	for s, err := range p.StreamMetrics(ctx(t), "m") {
		if err != nil {
			t.Fatal(err)
		}
		// 25% of 256 units on 2 tasks = 12.5% of a core; 40% of 512 MiB x2.
		if s.Instances != 2 || s.CPUPercent != 12.5 || s.MemoryBytes != 2*512<<20*40/100 ||
			s.Resolution.D() != time.Second || s.Extra["runningTaskCount"] != 2 {
			t.Fatalf("sample = %+v", s)
		}
		break
	}
}

// TestLogsTailSinceAndCursor pins the FilterLogEvents cursor (live tail
// off: livetail_test.go covers StartLiveTail).
func TestLogsTailSinceAndCursor(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{StartupLine: "boot"}, map[string]any{"liveTail": false})
	if _, err := p.Start(ctx(t), spec("lg", 1)); err != nil {
		t.Fatal(err)
	}
	id := f.Service("default", "lg").RunningTasks[0]
	stream := "lg/lg/" + id
	base := time.Now().Add(time.Minute).UnixMilli()
	for i, ts := range []int64{base, base + 1, base + 1, base + 2} {
		f.PutLogEvent("/alphaswarm/prod", stream, ts, "line"+string(rune('a'+i)))
	}
	// Tail 2: the last two lines.
	var got []string
	for l, err := range p.(provider.LogTailer).Logs(ctx(t), "lg", provider.LogOptions{Tail: 2}) {
		if err != nil {
			t.Fatal(err)
		}
		if l.Instance != id {
			t.Errorf("line %q tagged %q, want task %s", l.Text, l.Instance, id)
		}
		got = append(got, l.Text)
	}
	if !slices.Equal(got, []string{"linec", "lined"}) {
		t.Errorf("tail 2 = %v", got)
	}
	// Since base+1: the three lines from there.
	got = nil
	for l := range p.(provider.LogTailer).Logs(ctx(t), "lg", provider.LogOptions{Tail: -1, Since: time.UnixMilli(base + 1)}) {
		got = append(got, l.Text)
	}
	if !slices.Equal(got, []string{"lineb", "linec", "lined"}) {
		t.Errorf("since = %v", got)
	}
	// Follow: a line in the same millisecond as the last one seen, and a
	// late one, arrive once each.
	c, cancel := context.WithCancel(ctx(t))
	defer cancel()
	got = nil
	for l, err := range p.(provider.LogTailer).Logs(c, "lg", provider.LogOptions{Tail: -1, Follow: true, Since: time.UnixMilli(base)}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Text)
		switch len(got) {
		case 4:
			f.PutLogEvent("/alphaswarm/prod", stream, base+2, "tie")
			f.PutLogEvent("/alphaswarm/prod", stream, base+1, "late")
		case 6:
			f.PutLogEvent("/alphaswarm/prod", stream, base+5, "end")
		}
		if len(got) == 7 {
			break
		}
	}
	want := []string{"linea", "lineb", "linec", "lined", "late", "tie", "end"}
	if !slices.Equal(got, want) {
		t.Errorf("follow = %v, want %v", got, want)
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

func TestOpenErrors(t *testing.T) {
	raw := func(m map[string]any) map[string]json.RawMessage {
		out := map[string]json.RawMessage{}
		for k, v := range m {
			out[k], _ = json.Marshal(v)
		}
		return out
	}
	_, err := provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"mode": "eks"})}, testCreds())
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "targets.x.options.cluster") {
		t.Errorf("mode eks without a cluster: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"clustr": "a"})}, testCreds())
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "clustr") {
		t.Errorf("unknown option: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"cluster": "a"})}, testCreds())
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "subnets") {
		t.Errorf("no subnets: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"subnets": []string{"subnet-1"}})}, credentials.FromMap(nil))
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "region") {
		t.Errorf("no region: %v", err)
	}
	// No credentials: the provider opens, operations are unauthenticated.
	f := fakeaws.New(fakeaws.Options{})
	defer f.Close()
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws",
		Options: raw(map[string]any{"baseEndpoint": f.URL(), "region": "us-east-1", "subnets": []string{"subnet-1"}})}, credentials.FromMap(map[string]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Status(ctx(t), "web"); workload.CodeOf(err) != workload.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
}

func TestWebIdentityCredentials(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{})
	defer f.Close()
	tok := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tok, []byte("eyJhbGciOiJSUzI1NiJ9.fake.jwt"), 0o600); err != nil {
		t.Fatal(err)
	}
	creds := credentials.FromMap(map[string]string{"AWS_REGION": "eu-west-1",
		"AWS_ROLE_ARN": "arn:aws:iam::123456789012:role/deployer", "AWS_WEB_IDENTITY_TOKEN_FILE": tok})
	opts := map[string]json.RawMessage{"baseEndpoint": json.RawMessage(`"` + f.URL() + `"`), "subnets": json.RawMessage(`["subnet-1"]`)}
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "x", Provider: "aws", Options: opts}, creds)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.Status(ctx(t), "web"); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Status = %v, want not_found", err)
	}
	role, token, session := f.WebIdentity()
	if role != "arn:aws:iam::123456789012:role/deployer" || token != "eyJhbGciOiJSUzI1NiJ9.fake.jwt" || session != "alphaswarm" {
		t.Errorf("AssumeRoleWithWebIdentity got role %q token %q session %q", role, token, session)
	}
	if f.SignedWith(fakeaws.AssumedAccessKey) == 0 {
		t.Error("ECS requests were not signed with the assumed role's credentials")
	}
}

func TestCapabilities(t *testing.T) {
	p, _ := openFake(t, fakeaws.Options{}, nil)
	for _, c := range provider.Capabilities(p) {
		if c.Op == provider.OpExec {
			if c.Supported {
				t.Error("exec reported as supported")
			}
			continue
		}
		if !c.Supported {
			t.Errorf("%s unsupported: %s", c.Op, c.Reason)
		}
	}
}

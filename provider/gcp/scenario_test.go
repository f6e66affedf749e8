package gcp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

func ctx(t *testing.T) context.Context {
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return c
}

func TestBadImageReportsFailedCondition(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("bad"), 1)
	sp.Image = "europe-docker.pkg.dev/demo-project/app/missing:0"
	f.BadImage(sp.Image, "Image 'europe-docker.pkg.dev/demo-project/app/missing:0' not found.")
	st, err := p.Start(ctx(t), sp)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	if st.Phase != workload.Failed || !strings.Contains(st.Message, "CONTAINER_MISSING") || !strings.Contains(st.Message, "not found") {
		t.Fatalf("status = %s %q, want Failed with the condition's reason and message", st.Phase, st.Message)
	}
	if o := f.Observe(sp.Name); o.Running != 0 {
		t.Fatalf("fake runs %d instances of a failed revision", o.Running)
	}
}

func TestBadImageKeepsPreviousRevisionServing(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("roll"), 2)
	if st, err := p.Start(ctx(t), sp); err != nil || st.Phase != workload.Running {
		t.Fatalf("Start: %v %v", st.Phase, err)
	}
	good := f.Observe(sp.Name).Revision
	sp.Image += "-broken"
	f.BadImage(sp.Image, "Image not found.")
	st, err := p.Start(ctx(t), sp)
	if err != nil || st.Phase != workload.Failed {
		t.Fatalf("second Start = %s, %v; want Failed", st.Phase, err)
	}
	if o := f.Observe(sp.Name); o.Revision != good || o.Running != 2 {
		t.Fatalf("fake serves %s x%d, want previous %s x2", o.Revision, o.Running, good)
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

func TestRestartKeepsSpecNewRevision(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("rs"), 1)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	before := f.Service(sp.Name)
	if _, err := p.Restart(ctx(t), sp.Name); err != nil {
		t.Fatal(err)
	}
	after := f.Service(sp.Name)
	if after.LatestReadyRevision == before.LatestReadyRevision {
		t.Fatal("restart did not roll a new revision")
	}
	if after.Template.Containers[0].Image != sp.Image || after.Template.Annotations[gcp.AnnotationRestart] == "" {
		t.Fatalf("template after restart = %v", after.Template)
	}
	// Starting the same spec again keeps the restart annotation: no new revision.
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	if again := f.Service(sp.Name); again.LatestCreatedRevision != after.LatestCreatedRevision {
		t.Fatalf("re-Start of the same spec rolled %s", again.LatestCreatedRevision)
	}
}

func TestApplyConfigSecretVersions(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("cfg"), 1)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	for i, v := range []string{"one", "two"} {
		if err := p.ApplyConfig(ctx(t), sp.Name, map[string]string{"greeting": v}); err != nil {
			t.Fatal(err)
		}
		if got := f.Calls("AddSecretVersion"); got != i+1 {
			t.Fatalf("AddSecretVersion calls = %d, want %d", got, i+1)
		}
		got, ok, err := f.ReadConfig(sp.Name, "greeting")
		if err != nil || !ok || got != v {
			t.Fatalf("workload sees %q %v %v, want %q", got, ok, err, v)
		}
	}
	c := f.Service(sp.Name).Template.Containers[0]
	for _, e := range c.Env {
		if e.Name == "greeting" && !strings.HasSuffix(e.GetValueSource().GetSecretKeyRef().GetSecret(), "/secrets/alphaswarm-prod--"+sp.Name+"--greeting") {
			t.Fatalf("env ref = %v", e)
		}
		if e.Name == "greeting" && e.GetValueSource().GetSecretKeyRef().GetVersion() != "2" {
			t.Fatalf("env ref version = %v, want the exact version 2", e.GetValueSource().GetSecretKeyRef().GetVersion())
		}
	}
}

func TestErrorsThroughClients(t *testing.T) {
	cases := []struct {
		method string
		code   codes.Code
		want   workload.Code
	}{
		{"GetService", codes.PermissionDenied, workload.PermissionDenied},
		{"GetService", codes.Unauthenticated, workload.Unauthenticated},
		{"GetService", codes.ResourceExhausted, workload.RateLimited},
		{"CreateService", codes.AlreadyExists, workload.AlreadyExists},
		{"CreateService", codes.FailedPrecondition, workload.Conflict},
		{"CreateService", codes.InvalidArgument, workload.InvalidArgument},
	}
	for _, c := range cases {
		p, f := openFake(t, nil)
		// Fail every attempt: the client retries Unavailable/Deadline itself.
		for range 10 {
			f.Fail(c.method, status.Error(c.code, "injected"))
		}
		_, err := p.Start(ctx(t), spec(providertest.Name("err"), 1))
		if workload.CodeOf(err) != c.want {
			t.Errorf("%s %s: Start error %v (%s), want %s", c.method, c.code, err, workload.CodeOf(err), c.want)
		}
	}
}

func TestFailedOperation(t *testing.T) {
	p, f := openFake(t, nil)
	f.FailOperation(status.New(codes.PermissionDenied, "Permission 'iam.serviceaccounts.actAs' denied"))
	_, err := p.Start(ctx(t), spec(providertest.Name("lro"), 1))
	if workload.CodeOf(err) != workload.ProviderError || !strings.Contains(err.Error(), "actAs") || provider.NothingChanged(err) {
		t.Fatalf("Start with a failed operation = %v (%s); want provider_error keeping the reason", err, workload.CodeOf(err))
	}
}

// TestOperationsArePolled: operations that are not done when the method
// answers are polled through the Operations service until they are, both
// the successful and the failed ones.
func TestOperationsArePolled(t *testing.T) {
	p, f := openFake(t, nil)
	f.OperationPolls = 2
	name := providertest.Name("poll")
	st, err := p.Start(ctx(t), spec(name, 1))
	if err != nil {
		t.Fatalf("Start with pending operations: %v", err)
	}
	if st.Phase != workload.Running {
		t.Errorf("phase %s after Start, want running", st.Phase)
	}
	if n := f.Calls("GetOperation"); n < 2 {
		t.Errorf("%d GetOperation calls, want >= 2: the operation was not polled", n)
	}
	f.FailOperation(status.New(codes.PermissionDenied, "Permission 'iam.serviceaccounts.actAs' denied"))
	before := f.Calls("GetOperation")
	_, err = p.Restart(ctx(t), name)
	if workload.CodeOf(err) != workload.ProviderError || !strings.Contains(err.Error(), "actAs") {
		t.Fatalf("Restart with a pending operation that fails = %v (%s); want provider_error keeping the reason", err, workload.CodeOf(err))
	}
	if n := f.Calls("GetOperation") - before; n < 2 {
		t.Errorf("%d GetOperation calls for the failing operation, want >= 2", n)
	}
}

func TestOpenOptions(t *testing.T) {
	open := func(opts map[string]string, env map[string]string) error {
		cfg := provider.TargetConfig{Name: "t", Provider: "gcp", Options: map[string]json.RawMessage{}}
		for k, v := range opts {
			cfg.Options[k] = json.RawMessage(`"` + v + `"`)
		}
		_, err := provider.Open(context.Background(), cfg, credentials.FromMap(env))
		return err
	}
	// gke mode names its region or zone "location" (gke_test.go covers
	// the mode's options).
	if err := open(map[string]string{"mode": "gke", "region": "r", "project": "p", "cluster": "c"}, nil); workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "options.location") {
		t.Errorf("gke mode with region instead of location: %v", err)
	}
	if err := open(map[string]string{"region": "r"}, nil); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("no project: %v", err)
	}
	if err := open(map[string]string{"region": "r"}, map[string]string{"GOOGLE_CLOUD_PROJECT": "p"}); workload.CodeOf(err) != workload.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
	if err := open(map[string]string{"bogus": "x"}, nil); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("unknown option: %v", err)
	}
}

// TestLogsPollingFallback: when TailLogEntries is refused, following polls
// ListLogEntries with a cursor that neither drops nor repeats lines.
func TestLogsPollingFallback(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("poll"), 2)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	f.Fail("TailLogEntries", status.Error(codes.Unimplemented, "TailLogEntries is not served here"))
	c, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	seen := map[string]int{}
	emitted := false
	for line, err := range p.Logs(c, sp.Name, provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		seen[line.Instance+" "+line.Text]++
		if len(seen) == 2 && !emitted {
			emitted = true
			f.EmitLog(sp.Name, "after-1")
			f.EmitLog(sp.Name, "after-2")
		}
		if len(seen) == 6 {
			break
		}
	}
	if len(seen) != 6 {
		t.Fatalf("saw %d distinct lines, want 6 (2 startup + 2x2 emitted): %v", len(seen), seen)
	}
	for k, n := range seen {
		if n != 1 {
			t.Errorf("line %q seen %d times", k, n)
		}
	}
	if f.Calls("ListLogEntries") < 2 {
		t.Errorf("ListLogEntries called %d times; want history plus polling", f.Calls("ListLogEntries"))
	}
}

package gcp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

func ctx(t *testing.T) context.Context { return testkit.Context(t, 10*time.Second) }

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

// TestStartTwiceNoNewRevision: Cloud Run fills defaults into the stored
// template (the fake: cpu "1" → "1000m", port name http1); starting the
// same spec again must still change nothing, a changed spec must roll.
func TestStartTwiceNoNewRevision(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("twice"), 1)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	first := f.Service(sp.Name)
	if first.Template.Containers[0].Resources.Limits["cpu"] != "1000m" || first.Template.Annotations[gcp.AnnotationSpecHash] == "" {
		t.Fatalf("fake did not fill defaults or no spec hash: %v", first.Template)
	}
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	if again := f.Service(sp.Name); again.LatestCreatedRevision != first.LatestCreatedRevision || f.Calls("UpdateService") != 0 {
		t.Fatalf("identical Start rolled %s (UpdateService x%d)", again.LatestCreatedRevision, f.Calls("UpdateService"))
	}
	sp.Env = map[string]string{"NEW": "1"}
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	if again := f.Service(sp.Name); again.LatestCreatedRevision == first.LatestCreatedRevision {
		t.Fatal("changed spec did not roll a revision")
	}
}

// TestFailedOperationIsFailedStatus: when Cloud Run fails the operation
// because the revision cannot become ready, Start reports the Failed
// status with the condition, and so does Restart (the runtime reports both
// as rollout_failed with that status); ApplyConfig, which has no status to
// answer, a rollout_failed error carrying it.
func TestFailedOperationIsFailedStatus(t *testing.T) {
	const bad = "europe-docker.pkg.dev/demo-project/app/missing:0"
	cases := []struct {
		name string
		run  func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error)
		want workload.Code // "" for a Failed status without error
	}{
		{"create", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			sp.Image = bad
			return p.Start(ctx(t), sp)
		}, ""},
		{"update", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			mustStart(t, p, sp)
			sp.Image = bad
			return p.Start(ctx(t), sp)
		}, ""},
		{"apply config", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			mustStart(t, p, sp)
			f.BadImage(sp.Image, "Image 'missing' not found.")
			return workload.DeploymentStatus{}, p.ApplyConfig(ctx(t), sp.Name, map[string]string{"a": "1"})
		}, workload.RolloutFailed},
		{"restart", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			mustStart(t, p, sp)
			f.BadImage(sp.Image, "Image 'missing' not found.")
			return p.Restart(ctx(t), sp.Name)
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			f.BadImageFailsOperation = true
			f.BadImage(bad, "Image 'missing' not found.")
			st, err := c.run(t, p, f, spec(providertest.Name("lrofail"), 1))
			if c.want == "" {
				if err != nil || st.Phase != workload.Failed || !strings.Contains(st.Message, "CONTAINER_MISSING") {
					t.Fatalf("= %s %q, %v; want Failed with the condition", st.Phase, st.Message, err)
				}
				return
			}
			if workload.CodeOf(err) != c.want || !strings.Contains(err.Error(), "CONTAINER_MISSING") || provider.NothingChanged(err) {
				t.Fatalf("= %v (%s); want %s carrying the condition", err, workload.CodeOf(err), c.want)
			}
		})
	}
}

func mustStart(t *testing.T, p *gcp.Provider, sp workload.DeploymentSpec) {
	t.Helper()
	if st, err := p.Start(ctx(t), sp); err != nil || st.Phase != workload.Running {
		t.Fatalf("Start = %s, %v", st.Phase, err)
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

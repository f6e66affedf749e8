package azure

import (
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

// Once a mutating call was accepted, a later refusal code (here
// rate_limited from throttled reads) must not promise that nothing
// changed.
func TestErrorsAfterChangeDoNotPromiseNothingChanged(t *testing.T) {
	cases := []struct {
		name string
		arm  func(*http.Request) bool
		op   func(ctx context.Context, p *Provider) error
	}{
		{"Scale(0) after stop", isPost("/stop"), func(ctx context.Context, p *Provider) error {
			_, err := p.Scale(ctx, "thr", 0)
			return err
		}},
		{"Stop", isPost("/stop"), func(ctx context.Context, p *Provider) error {
			_, err := p.Stop(ctx, "thr")
			return err
		}},
		{"Restart first group", isPost("/restart"), func(ctx context.Context, p *Provider) error {
			_, err := p.Restart(ctx, "thr")
			return err
		}},
		{"Start rolling a new image", isPut, func(ctx context.Context, p *Provider) error {
			sp := spec("thr", 2)
			sp.Image = "mcr.microsoft.com/azuredocs/aci-helloworld:v2"
			_, err := p.Start(ctx, sp)
			return err
		}},
		{"Start scaling up", isPut, func(ctx context.Context, p *Provider) error {
			_, err := p.Start(ctx, spec("thr", 3))
			return err
		}},
		{"Start after start of a stopped group", isPost("/start"), func(ctx context.Context, p *Provider) error {
			if _, err := p.Stop(ctx, "thr"); err != nil {
				return err
			}
			_, err := p.Start(ctx, spec("thr", 2))
			return err
		}},
		{"Scale up", isPut, func(ctx context.Context, p *Provider) error {
			_, err := p.Scale(ctx, "thr", 3)
			return err
		}},
		{"ApplyConfig", isPut, func(ctx context.Context, p *Provider) error {
			return p.ApplyConfig(ctx, "thr", map[string]string{"mode": "y"})
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			tr := &hookTransport{next: f.ACITransport(), arm: c.arm}
			p := openOn(t, f, tr, nil)
			ctx := ctxT(t)
			if _, err := p.Start(ctx, spec("thr", 2)); err != nil {
				t.Fatal(err)
			}
			tr.armed.Store(true)
			err := c.op(ctx, p)
			if !tr.throttle.Load() {
				t.Fatalf("the mutation was never made (err %v)", err)
			}
			if err == nil || provider.NothingChanged(err) || workload.CodeOf(err) != workload.ProviderError {
				t.Fatalf("err = %v (code %s, NothingChanged %v), want provider_error after the change", err, workload.CodeOf(err), provider.NothingChanged(err))
			}
		})
	}
}

// Start refuses before writing anything: no setting is written when a
// group is in the way or a secret reference does not resolve.
func TestStartRefusesBeforeWritingConfig(t *testing.T) {
	cases := []struct {
		name string
		prep func(ctx context.Context, p *Provider) error
		spec func() workload.DeploymentSpec
		code workload.Code
	}{
		{"another target's group", func(ctx context.Context, p *Provider) error {
			other := *p
			other.target = "other-target"
			_, err := other.Start(ctx, spec("shared", 1))
			return err
		}, func() workload.DeploymentSpec {
			sp := spec("shared", 1)
			sp.Config = map[string]string{"mode": "x", "secret.TOKEN": "tok-123456"}
			return sp
		}, workload.AlreadyExists},
		{"another target's group at a higher index", func(ctx context.Context, p *Provider) error {
			other := *p
			other.target = "other-target"
			if _, err := other.Start(ctx, spec("shared", 2)); err != nil {
				return err
			}
			return p.deleteGroup(ctx, "shared-0")
		}, func() workload.DeploymentSpec {
			sp := spec("shared", 2)
			sp.Config = map[string]string{"mode": "x"}
			return sp
		}, workload.AlreadyExists},
		{"missing Key Vault secret", func(context.Context, *Provider) error { return nil }, func() workload.DeploymentSpec {
			sp := spec("kvmissing", 1)
			sp.Secrets = []workload.SecretRef{{Env: "DB", From: "keyvault:no-such-secret"}}
			sp.Config = map[string]string{"mode": "x"}
			return sp
		}, workload.NotFound},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, fakeazure.Options{}, nil)
			ctx := ctxT(t)
			if err := c.prep(ctx, p); err != nil {
				t.Fatal(err)
			}
			creates := f.Calls("BeginCreateOrUpdate")
			_, err := p.Start(ctx, c.spec())
			if workload.CodeOf(err) != c.code || !provider.NothingChanged(err) {
				t.Fatalf("Start = %v (code %s), want %s promising nothing changed", err, workload.CodeOf(err), c.code)
			}
			if s := f.Settings(testTarget); len(s) > 0 {
				t.Errorf("settings written before the refusal: %v", s)
			}
			if n := f.Calls("BeginCreateOrUpdate"); n != creates {
				t.Errorf("%d groups created before the refusal", n-creates)
			}
		})
	}
}

// noContainers strips the containers from the GET of one group.
type noContainers struct {
	next  policy.Transporter
	group string
	armed atomic.Bool
}

func (r *noContainers) Do(req *http.Request) (*http.Response, error) {
	resp, err := r.next.Do(req)
	if err == nil && r.armed.Load() && req.Method == http.MethodGet && strings.HasSuffix(req.URL.Path, "/containerGroups/"+r.group) {
		b, _ := io.ReadAll(resp.Body)
		s := strings.Replace(string(b), `"containers":[`, `"containers":[],"x":[`, 1)
		resp.Body = io.NopCloser(strings.NewReader(s))
		resp.ContentLength = int64(len(s))
	}
	return resp, err
}

// A group without its container is a provider_error, never a panic.
func TestGroupWithoutContainers(t *testing.T) {
	ops := []struct {
		name string
		op   func(ctx context.Context, p *Provider) error
	}{
		{"Scale", func(ctx context.Context, p *Provider) error { _, err := p.Scale(ctx, "nc", 2); return err }},
		{"ApplyConfig", func(ctx context.Context, p *Provider) error {
			return p.ApplyConfig(ctx, "nc", map[string]string{"mode": "y"})
		}},
		{"Start", func(ctx context.Context, p *Provider) error {
			sp := spec("nc", 1)
			sp.Image = "mcr.microsoft.com/azuredocs/aci-helloworld:v2"
			_, err := p.Start(ctx, sp)
			return err
		}},
	}
	for _, o := range ops {
		t.Run(o.name, func(t *testing.T) {
			f := newFake(t)
			tr := &noContainers{next: f.ACITransport(), group: "nc-0"}
			p := openOn(t, f, tr, nil)
			ctx := ctxT(t)
			if _, err := p.Start(ctx, spec("nc", 1)); err != nil {
				t.Fatal(err)
			}
			tr.armed.Store(true)
			creates := f.Calls("BeginCreateOrUpdate")
			err := o.op(ctx, p)
			if workload.CodeOf(err) != workload.ProviderError {
				t.Fatalf("%s = %v, want provider_error", o.name, err)
			}
			if n := f.Calls("BeginCreateOrUpdate"); n != creates {
				t.Errorf("%d groups written", n-creates)
			}
			if s := f.Settings(testTarget); len(s) > 0 {
				t.Errorf("settings written: %v", s)
			}
		})
	}
	// Nil slice elements are skipped.
	cg := mkGroup("w-0", "Succeeded", "Running", "Running", time.Now())
	cg.Properties.Containers = append([]*armcontainerinstance.Container{nil}, cg.Properties.Containers...)
	cg.Properties.InstanceView.Events = []*armcontainerinstance.Event{nil, {Type: to.Ptr("Warning"), Name: to.Ptr("x"), Message: to.Ptr("y")}}
	g := group{name: "w-0", cg: cg}
	if g.container() == nil || !strings.Contains(g.message(), "event x: y") {
		t.Errorf("container %v, message %q", g.container(), g.message())
	}
	if _, err := blueprintFromGroup(cg); err != nil {
		t.Errorf("blueprintFromGroup with a nil element: %v", err)
	}
}

// Changing what ACI cannot update in place deletes and recreates each
// group, one at a time; the fake refuses such an update like ACI.
func TestStartReplacesImmutableProperties(t *testing.T) {
	cases := []struct {
		name  string
		extra map[string]any // options of the second provider
		edit  func(*workload.DeploymentSpec)
	}{
		{"cpu", nil, func(s *workload.DeploymentSpec) { s.Resources.CPU = "1" }},
		{"memory", nil, func(s *workload.DeploymentSpec) { s.Resources.Memory = "2Gi" }},
		{"ports", nil, func(s *workload.DeploymentSpec) { s.Ports = []workload.Port{{Container: 8080}} }},
		{"no ports (no IP address)", nil, func(s *workload.DeploymentSpec) { s.Ports = nil }},
		{"subnet", map[string]any{"subnet": "/subscriptions/" + testSub + "/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/aci"}, func(*workload.DeploymentSpec) {}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			f := newFake(t)
			var mu sync.Mutex
			var runningAtDelete []int
			tr := &hookTransport{next: f.ACITransport(), before: func(r *http.Request) {
				if r.Method == http.MethodDelete {
					mu.Lock()
					runningAtDelete = append(runningAtDelete, len(f.Observe(testTarget, "imm").Running))
					mu.Unlock()
				}
			}}
			p := openOn(t, f, tr, nil)
			ctx := ctxT(t)
			if _, err := p.Start(ctx, spec("imm", 2)); err != nil {
				t.Fatal(err)
			}
			old, _, _ := f.Group("imm-0")
			sp := spec("imm", 2)
			c.edit(&sp)
			q := p
			if c.extra != nil {
				q = openOn(t, f, tr, c.extra)
			}
			bp, err := q.blueprintFromSpec(sp)
			if err != nil {
				t.Fatal(err)
			}
			// The fake refuses the in-place update, as ACI does.
			if err := q.put(ctx, "imm", bp, nil, 0); err == nil || !strings.Contains(err.Error(), "InvalidContainerGroupUpdate") {
				t.Fatalf("in-place update of %s = %v, want InvalidContainerGroupUpdate", c.name, err)
			}
			st, err := q.Start(ctx, sp)
			if err != nil || st.Phase != workload.Running {
				t.Fatalf("Start = %+v, %v", st, err)
			}
			if n := f.Calls("BeginDelete"); n != 2 {
				t.Errorf("%d deletes, want 2", n)
			}
			mu.Lock()
			if !slices.Equal(runningAtDelete, []int{2, 2}) {
				t.Errorf("running groups at each delete = %v, want [2 2] (one at a time)", runningAtDelete)
			}
			mu.Unlock()
			for _, name := range []string{"imm-0", "imm-1"} {
				g, _, _ := f.Group(name)
				if fixedProps(&g) == fixedProps(&old) || fixedProps(&g) != fixedProps(&bp.cg) {
					t.Errorf("%s keeps its old %s", name, c.name)
				}
			}
			// The same spec again changes nothing.
			creates := f.Calls("BeginCreateOrUpdate")
			if _, err := q.Start(ctx, sp); err != nil || f.Calls("BeginCreateOrUpdate") != creates {
				t.Errorf("second Start: %v, %d creates", err, f.Calls("BeginCreateOrUpdate")-creates)
			}
		})
	}
}

// Restart waits, per group, for a new run before the next: the fake's
// instance view still shows the old run right after the restart.
func TestRestartRollsOneAtATime(t *testing.T) {
	f := newFake(t)
	var mu sync.Mutex
	var runningAtRestart []int
	tr := &hookTransport{next: f.ACITransport(), before: func(r *http.Request) {
		if isPost("/restart")(r) {
			mu.Lock()
			runningAtRestart = append(runningAtRestart, len(f.Observe(testTarget, "rs").Running))
			mu.Unlock()
		}
	}}
	p := openOn(t, f, tr, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("rs", 3)); err != nil {
		t.Fatal(err)
	}
	before := f.Observe(testTarget, "rs").Running
	st, err := p.Restart(ctx, "rs")
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Restart = %+v, %v", st, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if !slices.Equal(runningAtRestart, []int{3, 3, 3}) {
		t.Errorf("running groups at each restart = %v, want [3 3 3]", runningAtRestart)
	}
	after := f.Observe(testTarget, "rs").Running
	for i := range before {
		if after[i] == before[i] {
			t.Errorf("%s did not restart", before[i])
		}
	}
}

// Scale's name-length refusal names its field.
func TestScaleNameLengthFieldPath(t *testing.T) {
	p, _ := openFake(t, fakeazure.Options{}, nil)
	name := strings.Repeat("a", 62)
	_, err := p.Scale(ctxT(t), name, 10)
	we := workload.AsError(err)
	if we == nil || we.Code != workload.InvalidArgument || len(we.Fields) != 1 || we.Fields[0].Path != "replicas" {
		t.Fatalf("Scale = %#v", err)
	}
}

// TestInaccessibleImageRefusedAtOnce (review Z2): ACI refuses an image it
// cannot pull on the create request itself (400 InaccessibleImage), so
// Start is invalid_argument and no group exists; a rolling update to such
// an image leaves the running groups alone.
func TestInaccessibleImageRefusedAtOnce(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{FailingImages: []string{"example.azurecr.io/missing:1"}}, nil)
	sp := spec("broken", 1)
	sp.Image = "example.azurecr.io/missing:1"
	_, err := p.Start(ctxT(t), sp)
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "InaccessibleImage") || !provider.NothingChanged(err) {
		t.Fatalf("Start = %v; want invalid_argument InaccessibleImage that changed nothing", err)
	}
	if _, err := p.Status(ctxT(t), "broken"); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Status = %v; want not_found (no group was created)", err)
	}
	// A running service keeps running when the new image is refused.
	if _, err := p.Start(ctxT(t), spec("web", 2)); err != nil {
		t.Fatal(err)
	}
	before := f.Observe(testTarget, "web").Running
	bad := spec("web", 2)
	bad.Image = "example.azurecr.io/missing:1"
	if _, err := p.Start(ctxT(t), bad); workload.CodeOf(err) != workload.InvalidArgument {
		t.Fatalf("rolling to an inaccessible image = %v; want invalid_argument", err)
	}
	st, err := p.Status(ctxT(t), "web")
	if err != nil || st.Phase != workload.Running || !slices.Equal(f.Observe(testTarget, "web").Running, before) {
		t.Fatalf("after the refused update: %s %v, running %v (was %v)", st.Phase, err, f.Observe(testTarget, "web").Running, before)
	}
}

func TestStartSameSpecChangesNothingAndNewImageRolls(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("web", 2)); err != nil {
		t.Fatal(err)
	}
	puts := f.Calls("BeginCreateOrUpdate")
	if puts != 2 {
		t.Fatalf("creating 2 replicas took %d create calls", puts)
	}
	st, err := p.Start(ctx, spec("web", 2))
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("second Start = %s, %v", st.Phase, err)
	}
	if got := f.Calls("BeginCreateOrUpdate"); got != puts {
		t.Errorf("starting an unchanged spec made %d create calls", got-puts)
	}
	before := f.Observe(testTarget, "web").Running
	sp := spec("web", 2)
	sp.Image = "mcr.microsoft.com/azuredocs/aci-helloworld:v2"
	st, err = p.Start(ctx, sp)
	if err != nil || st.Phase != workload.Running || st.Image != sp.Image || st.Replicas.Updated != 2 {
		t.Fatalf("Start with a new image = %+v, %v", st, err)
	}
	after := f.Observe(testTarget, "web").Running
	for _, id := range after {
		if slices.Contains(before, id) {
			t.Errorf("run %s survived an image change", id)
		}
	}
	if g, _, _ := f.Group("web-1"); str(g.Properties.Containers[0].Properties.Image) != sp.Image {
		t.Errorf("web-1 runs %s", str(g.Properties.Containers[0].Properties.Image))
	}
}

func TestStopKeepsGroupsAndStartResumes(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("api", 2)); err != nil {
		t.Fatal(err)
	}
	st, err := p.Stop(ctx, "api")
	if err != nil || st.Phase != workload.Stopped || st.Replicas.Desired != 0 {
		t.Fatalf("Stop = %+v, %v", st, err)
	}
	o := f.Observe(testTarget, "api")
	if len(o.Groups) != 2 || len(o.Running) != 0 || f.Calls("Stop") != 2 {
		t.Fatalf("after Stop: groups %v, running %v, stop calls %d; want 2 kept groups, none running, 2 stops", o.Groups, o.Running, f.Calls("Stop"))
	}
	if _, state, _ := f.Group("api-0"); state != "Stopped" {
		t.Errorf("api-0 state %s", state)
	}
	st, err = p.Start(ctx, spec("api", 2))
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Start after Stop = %s, %v", st.Phase, err)
	}
	if f.Calls("BeginStart") != 2 || f.Calls("BeginCreateOrUpdate") != 2 {
		t.Errorf("Start after Stop: %d start and %d create calls, want 2 and 2 (the groups are started, not recreated)", f.Calls("BeginStart"), f.Calls("BeginCreateOrUpdate"))
	}
	list, err := p.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "api" || list[0].Phase != workload.Running {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestForeignGroupIsNotOverwritten(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	// Another target's service of the same name in the same resource
	// group.
	other := *p
	other.target = "other-target"
	if _, err := other.Start(ctx, spec("shared", 1)); err != nil {
		t.Fatal(err)
	}
	_, err := p.Start(ctx, spec("shared", 1))
	if workload.CodeOf(err) != workload.AlreadyExists || !provider.NothingChanged(err) {
		t.Fatalf("Start over another target's group = %v, want already_exists", err)
	}
	if g, _, _ := f.Group("shared-0"); str(g.Tags[tagTarget]) != "other-target" {
		t.Errorf("shared-0 now belongs to %s", str(g.Tags[tagTarget]))
	}
	// The unknown resource group: status not found, stop is no error.
	q, _ := openFake(t, fakeazure.Options{}, map[string]any{"resourceGroup": "missing-rg"})
	if _, err := q.Status(ctx, "web"); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("Status in a missing resource group = %v", err)
	}
	if st, err := q.Stop(ctx, "web"); err != nil || st.Phase != workload.Stopped {
		t.Errorf("Stop in a missing resource group = %+v, %v", st, err)
	}
}

// TestFailedGroupIsDeployedAsNew (review Z7): ACI does not update a group
// that has terminated (Failed or Succeeded); it must be deployed as new.
// Start and Scale delete such a group and create it again instead of
// sending an update the service refuses.
func TestFailedGroupIsDeployedAsNew(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("web", 2)); err != nil {
		t.Fatal(err)
	}
	f.FailGroup("web-1")
	if st, err := p.Status(ctx, "web"); err != nil || st.Phase != workload.Failed {
		t.Fatalf("Status after an infrastructure failure = %v, %v; want Failed", st.Phase, err)
	}
	// The same spec again: the failed group is deployed as new.
	st, err := p.Start(ctx, spec("web", 2))
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Start = %v, %v; want Running", st.Phase, err)
	}
	if n := f.Calls("BeginDelete"); n != 1 {
		t.Errorf("deletes = %d, want 1 (web-1 only)", n)
	}
	if n := f.Calls("update of a terminated group"); n != 0 {
		t.Errorf("%d updates of the terminated group were sent", n)
	}
	// Scale up while group 0 has failed: the same.
	f.FailGroup("web-0")
	if _, err := p.Scale(ctx, "web", 3); err != nil {
		t.Fatal(err)
	}
	if st, err := p.Status(ctx, "web"); err != nil || st.Phase != workload.Running || st.Replicas.Ready != 3 {
		t.Fatalf("Status after Scale = %+v, %v; want Running 3/3", st, err)
	}
	if n := f.Calls("BeginDelete"); n != 2 {
		t.Errorf("deletes = %d, want 2", n)
	}
	if n := f.Calls("update of a terminated group"); n != 0 {
		t.Errorf("%d updates of a terminated group were sent", n)
	}
}

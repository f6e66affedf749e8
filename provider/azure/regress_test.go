package azure

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	azfake "github.com/Azure/azure-sdk-for-go/sdk/azcore/fake"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

// hookTransport wraps the fake's ACI transport: before forwarding, before
// is called (if set); once armed and after a request matching arm went
// through, container group GETs answer 429 (throttled).
type hookTransport struct {
	next     policy.Transporter
	arm      func(*http.Request) bool
	before   func(*http.Request)
	armed    atomic.Bool
	throttle atomic.Bool
}

func (h *hookTransport) Do(req *http.Request) (*http.Response, error) {
	if h.throttle.Load() && req.Method == http.MethodGet && strings.Contains(req.URL.Path, "/containerGroups/") {
		body := `{"error":{"code":"TooManyRequests","message":"throttled"}}`
		return &http.Response{StatusCode: http.StatusTooManyRequests, Status: "429 Too Many Requests", Request: req,
			Header: http.Header{"Retry-After": {"0"}, "Content-Type": {"application/json"}, "X-Ms-Error-Code": {"TooManyRequests"}},
			Body:   io.NopCloser(bytes.NewReader([]byte(body)))}, nil
	}
	if h.before != nil {
		h.before(req)
	}
	resp, err := h.next.Do(req)
	if h.armed.Load() && h.arm != nil && h.arm(req) {
		h.throttle.Store(true)
	}
	return resp, err
}

// openOn opens the provider on an existing fake with the ACI transport
// tr (the fake's own when nil) and the fake's store and vault.
func openOn(t *testing.T, f *fakeazure.Fake, tr policy.Transporter, extra map[string]any) *Provider {
	t.Helper()
	if tr == nil {
		tr = f.ACITransport()
	}
	opts := map[string]any{
		"mode": "aci", "resourceGroup": testRG, "location": "westeurope",
		"appConfigEndpoint": f.AppConfigURL(), "keyVaultURL": fakeazure.VaultURL,
		"pollInterval": "5ms", "maxRetries": 1,
	}
	for k, v := range extra {
		opts[k] = v
	}
	p, err := open(context.Background(), provider.TargetConfig{Name: testTarget, Provider: Name, Options: rawOptions(opts)}, testCreds(), deps{
		cred: &azfake.TokenCredential{}, aci: tr, monitor: f.MonitorTransport(),
		keyVault: f.KeyVaultTransport(), appConfig: f.AppConfigTransport(),
	})
	if err != nil {
		t.Fatalf("open: %v", err)
	}
	return p.(*Provider)
}

func newFake(t *testing.T) *fakeazure.Fake {
	f := fakeazure.New(fakeazure.Options{SubscriptionID: testSub, ResourceGroup: testRG, StartupLine: startupLine})
	t.Cleanup(f.Close)
	return f
}

func isPost(suffix string) func(*http.Request) bool {
	return func(r *http.Request) bool {
		return r.Method == http.MethodPost && strings.HasSuffix(r.URL.Path, suffix)
	}
}

func isPut(r *http.Request) bool { return r.Method == http.MethodPut }

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

// An identical Start or ApplyConfig with a secret key writes nothing: no
// new Key Vault version, no new group. A removed secret key disables its
// Key Vault secret; adding it back works.
func TestSecretConfigIsIdempotent(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	sp := spec("idem", 2)
	sp.Config = map[string]string{"secret.TOKEN": "tok-abcdef", "mode": "x"}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	name := p.secretName("idem", "secret.TOKEN")
	versions, _ := f.SecretVersions(name)
	creates := f.Calls("BeginCreateOrUpdate")
	if !p.creds.Contains("tok-abcdef") {
		t.Errorf("the resolved Key Vault value is not registered for redaction")
	}
	steps := []struct {
		name string
		do   func() error
	}{
		{"second Start", func() error { _, err := p.Start(ctx, sp); return err }},
		{"identical ApplyConfig", func() error { return p.ApplyConfig(ctx, "idem", sp.Config) }},
		{"third Start", func() error { _, err := p.Start(ctx, sp); return err }},
	}
	for _, s := range steps {
		if err := s.do(); err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if n, _ := f.SecretVersions(name); n != versions {
			t.Errorf("%s: %d Key Vault versions, want %d", s.name, n, versions)
		}
		if n := f.Calls("BeginCreateOrUpdate"); n != creates {
			t.Errorf("%s: %d create-or-updates, want %d (no group recreated)", s.name, n, creates)
		}
	}
	// A changed value makes a new version.
	if err := p.ApplyConfig(ctx, "idem", map[string]string{"secret.TOKEN": "tok-changed", "mode": "x"}); err != nil {
		t.Fatal(err)
	}
	if n, on := f.SecretVersions(name); n != versions+1 || !on {
		t.Errorf("changed value: %d versions (enabled %v), want %d", n, on, versions+1)
	}
	if env := f.Env(testTarget, "idem"); env["TOKEN"] != "tok-changed" {
		t.Errorf("env TOKEN = %q", env["TOKEN"])
	}
	// Removing the key disables the secret.
	if err := p.ApplyConfig(ctx, "idem", map[string]string{"mode": "x"}); err != nil {
		t.Fatal(err)
	}
	if _, on := f.SecretVersions(name); on {
		t.Errorf("removed secret key: the Key Vault secret is still enabled")
	}
	if _, ok := f.Env(testTarget, "idem")["TOKEN"]; ok {
		t.Errorf("removed secret key still in the environment")
	}
	// Adding it back with the old value sets a new, enabled version.
	if err := p.ApplyConfig(ctx, "idem", map[string]string{"secret.TOKEN": "tok-changed", "mode": "x"}); err != nil {
		t.Fatal(err)
	}
	if _, on := f.SecretVersions(name); !on {
		t.Errorf("secret key added back: the latest version is disabled")
	}
	if env := f.Env(testTarget, "idem"); env["TOKEN"] != "tok-changed" {
		t.Errorf("env TOKEN after adding back = %q", env["TOKEN"])
	}
}

// keyvault: secret references are registered for redaction.
func TestKeyVaultSecretRegisteredForRedaction(t *testing.T) {
	p, _ := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr("kv-value-9f8e7d")}, nil); err != nil {
		t.Fatal(err)
	}
	sp := spec("kvref", 1)
	sp.Secrets = []workload.SecretRef{{Env: "DB", From: "keyvault:db-password"}}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	if !p.creds.Contains("kv-value-9f8e7d") {
		t.Errorf("the keyvault: value is not registered for redaction")
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

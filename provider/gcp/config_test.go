package gcp_test

import (
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

func readConfig(t *testing.T, f *fakegcp.Server, name, key string) (string, bool) {
	t.Helper()
	v, ok, err := f.ReadConfig(name, key)
	if err != nil {
		t.Fatalf("ReadConfig %s: %v", key, err)
	}
	return v, ok
}

// TestStartAppliesConfig: spec.Config is written at Start, through the
// same secrets as ApplyConfig; a nil Config keeps the current config.
func TestStartAppliesConfig(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("scfg"), 1)
	steps := []struct {
		config   map[string]string
		want     map[string]string // key → value; "" absent
		versions int               // AddSecretVersion calls so far
	}{
		{map[string]string{"greeting": "hi", "mode": "a"}, map[string]string{"greeting": "hi", "mode": "a"}, 2},
		{nil, map[string]string{"greeting": "hi", "mode": "a"}, 2},                                              // kept
		{map[string]string{"greeting": "hi", "mode": "a"}, map[string]string{"greeting": "hi", "mode": "a"}, 2}, // unchanged: no version
		{map[string]string{"greeting": "hello"}, map[string]string{"greeting": "hello", "mode": ""}, 3},
	}
	for i, s := range steps {
		sp.Config = s.config
		st, err := p.Start(ctx(t), sp)
		if err != nil || st.Phase != workload.Running {
			t.Fatalf("step %d: Start = %s, %v", i, st.Phase, err)
		}
		for k, want := range s.want {
			got, ok := readConfig(t, f, sp.Name, k)
			if want == "" && ok || want != "" && got != want {
				t.Errorf("step %d: %s = %q (%v), want %q", i, k, got, ok, want)
			}
		}
		if n := f.Calls("AddSecretVersion"); n != s.versions {
			t.Errorf("step %d: %d AddSecretVersion calls, want %d", i, n, s.versions)
		}
	}
}

// TestApplyConfigIdempotent: applying the same config twice adds no
// version and rolls no revision; changing one key adds one version.
func TestApplyConfigIdempotent(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("idem"), 1)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		config   map[string]string
		versions int
		rolls    bool
	}{
		{map[string]string{"a": "1", "b": "2"}, 2, true},
		{map[string]string{"a": "1", "b": "2"}, 2, false},
		{map[string]string{"a": "1", "b": "3"}, 3, true},
		{map[string]string{"a": "1"}, 3, true}, // b removed: env changes
		{map[string]string{"a": "1"}, 3, false},
	}
	for i, s := range steps {
		before := f.Service(sp.Name).LatestCreatedRevision
		if err := p.ApplyConfig(ctx(t), sp.Name, s.config); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if n := f.Calls("AddSecretVersion"); n != s.versions {
			t.Errorf("step %d: %d AddSecretVersion calls, want %d", i, n, s.versions)
		}
		if rolled := f.Service(sp.Name).LatestCreatedRevision != before; rolled != s.rolls {
			t.Errorf("step %d: rolled a revision = %v, want %v", i, rolled, s.rolls)
		}
		for k, v := range s.config {
			if got, _ := readConfig(t, f, sp.Name, k); got != v {
				t.Errorf("step %d: %s = %q, want %q", i, k, got, v)
			}
		}
	}
}

// TestApplyConfigErrorAfterChange: once a secret was created or a version
// added, a refusal no longer promises that nothing changed.
func TestApplyConfigErrorAfterChange(t *testing.T) {
	denied := status.Error(codes.PermissionDenied, "injected")
	cases := []struct {
		name      string
		config    map[string]string
		method    string
		skip      int // successful calls of method before the failing one
		want      workload.Code
		unchanged bool
	}{
		{"create refused", map[string]string{"a": "1"}, "CreateSecret", 0, workload.PermissionDenied, true},
		{"version refused after create", map[string]string{"a": "1"}, "AddSecretVersion", 0, workload.ProviderError, false},
		{"second key refused", map[string]string{"a": "1", "b": "2"}, "CreateSecret", 1, workload.ProviderError, false},
		{"update refused", map[string]string{"a": "1"}, "UpdateService", 0, workload.ProviderError, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("chg"), 1)
			if _, err := p.Start(ctx(t), sp); err != nil {
				t.Fatal(err)
			}
			for range c.skip {
				f.Fail(c.method, nil) // queued nil: that call succeeds
			}
			f.Fail(c.method, denied)
			err := p.ApplyConfig(ctx(t), sp.Name, c.config)
			if workload.CodeOf(err) != c.want || provider.NothingChanged(err) != c.unchanged {
				t.Fatalf("ApplyConfig = %v (%s, nothing changed %v), want %s, nothing changed %v", err, workload.CodeOf(err), provider.NothingChanged(err), c.want, c.unchanged)
			}
		})
	}
}

// TestConfigRefusedBeforeChange: what Secret Manager would refuse is
// invalid_argument with the key's path before anything is written; long
// keys get a valid id.
func TestConfigRefusedBeforeChange(t *testing.T) {
	long := strings.Repeat("k", 250)
	cases := []struct {
		name   string
		config map[string]string
		want   workload.Code
		path   string
	}{
		{"value over 64 KiB", map[string]string{"big": strings.Repeat("x", 64<<10+1)}, workload.InvalidArgument, "config.big"},
		{"value of 64 KiB", map[string]string{"big": strings.Repeat("x", 64<<10)}, "", ""},
		{"long key", map[string]string{long: "v"}, "", ""},
		{"dotted key", map[string]string{"app.mode": "v"}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("lim"), 1)
			if _, err := p.Start(ctx(t), sp); err != nil {
				t.Fatal(err)
			}
			err := p.ApplyConfig(ctx(t), sp.Name, c.config)
			if workload.CodeOf(err) != c.want || (c.path != "" && !strings.Contains(err.Error(), c.path)) {
				t.Fatalf("ApplyConfig = %v, want code %q with %q", err, c.want, c.path)
			}
			if c.want != "" {
				if f.Calls("CreateSecret")+f.Calls("AddSecretVersion") != 0 {
					t.Fatal("secrets written before the refusal")
				}
				sp.Config = c.config
				if _, err := p.Start(ctx(t), sp); workload.CodeOf(err) != c.want {
					t.Fatalf("Start with the config = %v, want %s", err, c.want)
				}
				return
			}
			for k, v := range c.config {
				if got, _ := readConfig(t, f, sp.Name, k); got != v {
					t.Fatalf("%s: workload sees %d bytes, want %d", k, len(got), len(v))
				}
			}
		})
	}
}

// TestUserSecretsNamedLikeConfigKept: only this service's config secrets
// are config env; a user's own secret alphaswarm-db stays.
func TestUserSecretsNamedLikeConfigKept(t *testing.T) {
	p, f := openFake(t, nil)
	f.AddSecret("projects/demo-project/secrets/alphaswarm-db", []byte("pw"))
	f.ProjectSecretAccessors = []string{"serviceAccount:" + testServiceAccount}
	sp := spec(providertest.Name("own"), 1)
	sp.Secrets = []workload.SecretRef{{Env: "DB", From: "projects/demo-project/secrets/alphaswarm-db/versions/1"}}
	mustStart(t, p, sp)
	if err := p.ApplyConfig(ctx(t), sp.Name, map[string]string{"a": "1"}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range f.Service(sp.Name).Template.Containers[0].Env {
		found = found || e.Name == "DB"
	}
	if !found {
		t.Fatal("ApplyConfig removed the user's secret env DB")
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

// TestConfigSecretsReadableByRevision (G6): Cloud Run reads secret env
// vars as the revision's service account. With options.serviceAccount the
// provider grants it roles/secretmanager.secretAccessor on each config
// secret; without it, a default account lacking access makes the
// revision fail, reported as the Failed status with Cloud Run's reason.
func TestConfigSecretsReadableByRevision(t *testing.T) {
	t.Run("granted", func(t *testing.T) {
		p, f := openFake(t, nil)
		sp := spec(providertest.Name("iam"), 1)
		sp.Config = map[string]string{"K": "v"}
		mustStart(t, p, sp)
		if f.Service(sp.Name).Template.ServiceAccount != testServiceAccount {
			t.Errorf("template service account = %q", f.Service(sp.Name).Template.ServiceAccount)
		}
		if v, ok, err := f.ReadConfig(sp.Name, "K"); err != nil || !ok || v != "v" {
			t.Fatalf("ReadConfig = %q %v %v", v, ok, err)
		}
		// A key added later is granted too, and granting is idempotent.
		if err := p.ApplyConfig(ctx(t), sp.Name, map[string]string{"K": "v", "L": "w"}); err != nil {
			t.Fatal(err)
		}
		sets := f.Calls("SetIamPolicy")
		if err := p.ApplyConfig(ctx(t), sp.Name, map[string]string{"K": "v", "L": "w"}); err != nil {
			t.Fatal(err)
		}
		if f.Calls("SetIamPolicy") != sets || sets != 2 {
			t.Errorf("SetIamPolicy calls = %d then %d; want 2 then no more", sets, f.Calls("SetIamPolicy"))
		}
	})
	t.Run("default account without access", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"serviceAccount": nil})
		sp := spec(providertest.Name("iam"), 1)
		sp.Config = map[string]string{"K": "v"}
		st, err := p.Start(ctx(t), sp)
		if err != nil || st.Phase != workload.Failed || !strings.Contains(st.Message, "Secret Manager Secret Accessor") {
			t.Fatalf("Start = %s %q, %v; want Failed with the permission message", st.Phase, st.Message, err)
		}
		if f.Calls("SetIamPolicy") != 0 {
			t.Error("granted access without a configured service account")
		}
	})
	t.Run("default account with project access", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"serviceAccount": nil})
		f.ProjectSecretAccessors = []string{"serviceAccount:" + f.DefaultServiceAccount}
		sp := spec(providertest.Name("iam"), 1)
		sp.Config = map[string]string{"K": "v"}
		mustStart(t, p, sp)
	})
}

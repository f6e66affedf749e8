package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

// Values planted to prove that no config value and no secret value
// reaches a diff.
const (
	diffConfigValue = "cfgval-7d1e4c"
	diffSecretValue = "tok-9a8b7c6d"
	diffKVValue     = "kv-5e4d3c2b"
)

func diffBase(name string) workload.DeploymentSpec {
	sp := spec(name, 2)
	sp.Env = map[string]string{"MODE": "blue"}
	sp.Secrets = []workload.SecretRef{{Env: "DB", From: "env:ALPHASWARM_SECRET_DB"}}
	sp.Config = map[string]string{"LOG_LEVEL": diffConfigValue, "secret.TOKEN": diffSecretValue}
	return sp
}

// mutations counts the fake's writing calls.
func mutations(f *fakeazure.Fake) string {
	var out []string
	for _, op := range []string{"BeginCreateOrUpdate", "BeginDelete", "Stop", "BeginStart", "BeginRestart",
		"SetSecret", "UpdateSecretProperties", "AppConfig PUT", "AppConfig DELETE"} {
		out = append(out, fmt.Sprintf("%s=%d", op, f.Calls(op)))
	}
	return strings.Join(out, " ")
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name string
		// prepare changes the backend after the base Start (nil: none).
		prepare func(ctx context.Context, t *testing.T, p *Provider, f *fakeazure.Fake)
		spec    func() workload.DeploymentSpec
		action  workload.DiffAction
		// want are changes the diff must hold (Replaces ignored).
		want []workload.Change
		// reason must be in the diff's reason.
		reason string
		// deletes is how many groups Start then deletes (recreate).
		deletes int
	}{
		{name: "none", spec: func() workload.DeploymentSpec { return diffBase("web") }, action: workload.DiffNone},
		{name: "create", spec: func() workload.DeploymentSpec { return diffBase("fresh") }, action: workload.DiffCreate,
			want: []workload.Change{{Path: "containerGroups/fresh-0", To: "create"}, {Path: "containerGroups/fresh-1", To: "create"},
				{Path: "properties.containers[app].properties.image", To: "mcr.microsoft.com/azuredocs/aci-helloworld:latest"},
				{Path: "properties.containers[app].properties.environmentVariables[DB].secureValue", To: "env:ALPHASWARM_SECRET_DB"},
				{Path: "properties.containers[app].properties.environmentVariables[MODE]", To: "blue"},
				{Path: "appConfiguration/alphaswarm/fresh/LOG_LEVEL", To: "(set)"}, {Path: "keyVault/alphaswarm-edge-aci-fresh-TOKEN", To: "(set)"}}},
		{name: "update scale up", spec: func() workload.DeploymentSpec { sp := diffBase("web"); sp.Replicas = 3; return sp },
			action: workload.DiffUpdate, want: []workload.Change{{Path: "containerGroups/web-2", To: "create"}}, reason: "web-2: created"},
		{name: "update scale down", spec: func() workload.DeploymentSpec { sp := diffBase("web"); sp.Replicas = 1; return sp },
			action: workload.DiffUpdate, want: []workload.Change{{Path: "containerGroups/web-1", To: "delete"}}, deletes: 1},
		{name: "update start stopped", prepare: func(ctx context.Context, t *testing.T, p *Provider, _ *fakeazure.Fake) {
			if _, err := p.Stop(ctx, "web"); err != nil {
				t.Fatal(err)
			}
		}, spec: func() workload.DeploymentSpec { return diffBase("web") }, action: workload.DiffUpdate,
			want: []workload.Change{{Path: "containerGroups/web-0", From: "Stopped", To: "start"}}},
		{name: "replace image", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Image = "mcr.microsoft.com/azuredocs/aci-helloworld:v2"
			return sp
		}, action: workload.DiffReplace, reason: "updated in place", want: []workload.Change{
			{Path: "containerGroups/web-0", To: "update in place"}, {Path: "containerGroups/web-1", To: "update in place"},
			{Path: "properties.containers[app].properties.image", From: "mcr.microsoft.com/azuredocs/aci-helloworld:latest", To: "mcr.microsoft.com/azuredocs/aci-helloworld:v2"}}},
		{name: "replace env", spec: func() workload.DeploymentSpec { sp := diffBase("web"); sp.Env["MODE"] = "green"; return sp },
			action: workload.DiffReplace, want: []workload.Change{{Path: "properties.containers[app].properties.environmentVariables[MODE]", From: "blue", To: "green"}}},
		{name: "replace config", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Config = map[string]string{"LOG_LEVEL": diffConfigValue + "-2", "secret.TOKEN": diffSecretValue, "NEW": diffConfigValue}
			return sp
		}, action: workload.DiffReplace, reason: "the config changed", want: []workload.Change{
			{Path: "appConfiguration/alphaswarm/web/LOG_LEVEL", From: "(set)", To: "(changed)"},
			{Path: "appConfiguration/alphaswarm/web/NEW", To: "(set)"}}},
		{name: "replace secret config value", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Config["secret.TOKEN"] = diffSecretValue + "-2"
			return sp
		}, action: workload.DiffReplace, want: []workload.Change{{Path: "keyVault/alphaswarm-edge-aci-web-TOKEN", From: "(set)", To: "(changed)"}}},
		{name: "replace config removed", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			delete(sp.Config, "LOG_LEVEL")
			return sp
		}, action: workload.DiffReplace, want: []workload.Change{{Path: "appConfiguration/alphaswarm/web/LOG_LEVEL", From: "(set)", To: "(removed)"}}},
		{name: "replace secret reference", prepare: func(ctx context.Context, t *testing.T, p *Provider, _ *fakeazure.Fake) {
			if _, err := p.secrets.SetSecret(ctx, "db-password", azsecrets.SetSecretParameters{Value: to.Ptr(diffKVValue)}, nil); err != nil {
				t.Fatal(err)
			}
		}, spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Secrets[0].From = "keyvault:db-password"
			return sp
		}, action: workload.DiffReplace, want: []workload.Change{{Path: "properties.containers[app].properties.environmentVariables[DB].secureValue",
			From: "env:ALPHASWARM_SECRET_DB", To: "keyvault:db-password"}}},
		{name: "recreate cpu", spec: func() workload.DeploymentSpec { sp := diffBase("web"); sp.Resources.CPU = "1"; return sp },
			action: workload.DiffRecreate, deletes: 2, reason: "ACI cannot update properties.containers[app].properties.resources.requests.cpu of an existing container group in place",
			want: []workload.Change{{Path: "containerGroups/web-0", To: "recreate (delete, then create)"},
				{Path: "properties.containers[app].properties.resources.requests.cpu", From: "0.5", To: "1"}}},
		{name: "recreate ports", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Ports = []workload.Port{{Container: 8080}}
			return sp
		}, action: workload.DiffRecreate, deletes: 2, reason: "properties.ipAddress.ports",
			want: []workload.Change{{Path: "properties.ipAddress.ports", From: "80/tcp", To: "8080/tcp"}}},
		{name: "recreate terminated", prepare: func(_ context.Context, _ *testing.T, _ *Provider, f *fakeazure.Fake) {
			f.FailGroup("web-1")
		}, spec: func() workload.DeploymentSpec { return diffBase("web") }, action: workload.DiffRecreate, deletes: 1,
			reason: "web-1: the container group has terminated (Failed)", want: []workload.Change{{Path: "containerGroups/web-1"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, f := openFake(t, fakeazure.Options{}, nil)
			ctx := ctxT(t)
			if _, err := p.Start(ctx, diffBase("web")); err != nil {
				t.Fatal(err)
			}
			if c.prepare != nil {
				c.prepare(ctx, t, p, f)
			}
			before, obs := mutations(f), f.Observe(testTarget, "web")
			d, err := provider.Diff(ctx, p, c.spec())
			if err != nil {
				t.Fatal(err)
			}
			if after := mutations(f); after != before {
				t.Errorf("Diff wrote to the backend:\n before %s\n after  %s", before, after)
			}
			if o := f.Observe(testTarget, "web"); !slices.Equal(o.Groups, obs.Groups) || !slices.Equal(o.Running, obs.Running) {
				t.Errorf("Diff changed the groups: %+v -> %+v", obs, o)
			}
			b, _ := json.Marshal(d)
			t.Logf("diff: %s", b)
			for _, v := range []string{diffConfigValue, diffSecretValue, diffKVValue, "s3cr3t-db-password"} {
				if strings.Contains(string(b), v) {
					t.Errorf("the diff shows a config or secret value: %s", b)
				}
			}
			if d.Action != c.action || d.Service != c.spec().Name || d.Provider != Name {
				t.Fatalf("diff = %s, want action %s", b, c.action)
			}
			if d.Changed() != (c.action != workload.DiffNone) || (c.action == workload.DiffNone && len(d.Changes) > 0) {
				t.Errorf("Changed() = %v with %d changes: %s", d.Changed(), len(d.Changes), b)
			}
			for _, w := range c.want {
				if !slices.ContainsFunc(d.Changes, func(g workload.Change) bool {
					return g.Path == w.Path && (w.From == "" || g.From == w.From) && (w.To == "" || g.To == w.To)
				}) {
					t.Errorf("no change %+v in %s", w, b)
				}
			}
			if !strings.Contains(d.Reason, c.reason) {
				t.Errorf("reason %q, want it to say %q", d.Reason, c.reason)
			}
			// Start does what the diff said: as many deletes, and no
			// write at all for none; then the diff is empty.
			dels, puts := f.Calls("BeginDelete"), f.Calls("BeginCreateOrUpdate")
			if _, err := p.Start(ctx, c.spec()); err != nil {
				t.Fatal(err)
			}
			if n := f.Calls("BeginDelete") - dels; n != c.deletes {
				t.Errorf("Start deleted %d groups, the diff said %d", n, c.deletes)
			}
			if c.action == workload.DiffNone && f.Calls("BeginCreateOrUpdate") != puts {
				t.Errorf("Start wrote groups after a none diff")
			}
			again, err := p.Diff(ctx, c.spec())
			if err != nil || again.Action != workload.DiffNone || len(again.Changes) != 0 {
				t.Errorf("diff after Start = %+v, %v; want none", again, err)
			}
		})
	}
}

func TestDiffInvalidSpec(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	sp := diffBase("web")
	sp.Ports = []workload.Port{{Container: 80, Host: 81}}
	_, err := p.Diff(ctxT(t), sp)
	var we *workload.Error
	if workload.CodeOf(err) != workload.InvalidArgument || !errors.As(err, &we) || len(we.Fields) == 0 || we.Fields[0].Path != "ports[0].host" {
		t.Fatalf("Diff = %v, want invalid_argument at ports[0].host", err)
	}
	if f.Calls("BeginCreateOrUpdate") != 0 {
		t.Errorf("Diff wrote")
	}
}

func TestCheckRefs(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	set := func(name, value string) string {
		resp, err := p.secrets.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return resp.ID.Version()
	}
	v1 := set("db-password", diffKVValue)
	set("db-password", diffKVValue+"-2")
	off := set("retired", diffKVValue+"-3")
	if _, err := p.secrets.UpdateSecretProperties(ctx, "retired", off, azsecrets.UpdateSecretPropertiesParameters{
		SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name  string
		from  string
		field string // "" = resolves
		says  string
	}{
		{"env present", "env:ALPHASWARM_SECRET_DB", "", ""},
		{"keyvault latest", "keyvault:db-password", "", ""},
		{"keyvault pinned", "keyvault:db-password/" + v1, "", ""},
		{"env missing", "env:ALPHASWARM_SECRET_GONE", "secrets[1].from", "env:ALPHASWARM_SECRET_GONE"},
		{"keyvault missing", "keyvault:no-such", "secrets[1].from", "the vault has no secret no-such"},
		{"keyvault version missing", "keyvault:db-password/0123", "secrets[1].from", "no version 0123"},
		{"keyvault disabled", "keyvault:retired", "secrets[1].from", "disabled"},
		{"keyvault disabled pinned", "keyvault:retired/" + off, "secrets[1].from", "disabled"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp := spec("refs", 1)
			sp.Secrets = []workload.SecretRef{{Env: "A", From: "env:ALPHASWARM_SECRET_DB"}, {Env: "B", From: c.from}}
			reads := f.Calls("ListSecretPropertiesVersions")
			err := provider.CheckRefs(ctx, p, sp)
			if c.field == "" {
				if err != nil {
					t.Fatalf("CheckRefs = %v", err)
				}
				return
			}
			var we *workload.Error
			if workload.CodeOf(err) != workload.NotFound || !errors.As(err, &we) || len(we.Fields) != 1 || we.Fields[0].Path != c.field {
				t.Fatalf("CheckRefs = %#v, want not_found at %s", err, c.field)
			}
			if !strings.Contains(err.Error(), c.says) {
				t.Errorf("CheckRefs = %v, want it to say %q", err, c.says)
			}
			for _, v := range []string{diffKVValue, "s3cr3t-db-password"} {
				if strings.Contains(err.Error(), v) {
					t.Errorf("the error shows a secret value: %v", err)
				}
			}
			if strings.HasPrefix(c.from, "keyvault:") && f.Calls("ListSecretPropertiesVersions") == reads {
				t.Errorf("no versions list read")
			}
		})
	}
}

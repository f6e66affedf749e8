package gcp_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"cloud.google.com/go/secretmanager/apiv1/secretmanagerpb"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
	"github.com/alphaswarm/controller/workload"
)

// Values planted to prove that no config value and no secret value
// reaches a diff or a CheckRefs error.
const (
	diffConfigValue = "cfgval-3c2b1a"
	diffSecretValue = "sm-value-8f7e6d"
)

const dbSecret = "projects/demo-project/secrets/db-password"

func diffBase(name string) workload.DeploymentSpec {
	sp := spec(name, 2)
	sp.Env = map[string]string{"MODE": "blue"}
	sp.Secrets = []workload.SecretRef{{Env: "DB", From: "secret:db-password:1"}}
	sp.Config = map[string]string{"LOG_LEVEL": diffConfigValue}
	return sp
}

// writes counts the fake's writing calls.
func writes(f *fakegcp.Server) string {
	var out []string
	for _, m := range []string{"CreateService", "UpdateService", "DeleteService", "CreateSecret", "AddSecretVersion", "SetIamPolicy"} {
		out = append(out, fmt.Sprintf("%s=%d", m, f.Calls(m)))
	}
	return strings.Join(out, " ")
}

func TestDiff(t *testing.T) {
	cases := []struct {
		name    string
		prepare func(ctx context.Context, t *testing.T, p *gcp.Provider, f *fakegcp.Server)
		spec    func() workload.DeploymentSpec
		action  workload.DiffAction
		want    []workload.Change // Replaces compared; empty From/To not compared
		reason  string
		// rolls: Start then creates a new revision.
		rolls bool
	}{
		{name: "none", spec: func() workload.DeploymentSpec { return diffBase("web") }, action: workload.DiffNone},
		{name: "none without config keeps the config env", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Config = nil
			return sp
		}, action: workload.DiffNone},
		{name: "create", spec: func() workload.DeploymentSpec { return diffBase("fresh") }, action: workload.DiffCreate, rolls: true,
			reason: "deploy creates it and its first revision", want: []workload.Change{
				{Path: "template.containers[0].image", To: "europe-docker.pkg.dev/demo-project/app/web:1", Replaces: true},
				{Path: "template.containers[0].env[LOG_LEVEL]", To: "(set)", Replaces: true},
				{Path: "scaling.manualInstanceCount", To: "2"}}},
		{name: "update scaling", spec: func() workload.DeploymentSpec { sp := diffBase("web"); sp.Replicas = 5; return sp },
			action: workload.DiffUpdate, reason: "no new revision",
			want: []workload.Change{{Path: "scaling.manualInstanceCount", From: "2", To: "5"}}},
		{name: "update labels", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Labels = map[string]string{"team": "core"}
			return sp
		}, action: workload.DiffUpdate, want: []workload.Change{{Path: "labels.team", To: "core"}}},
		{name: "replace image", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Image = "europe-docker.pkg.dev/demo-project/app/web:2"
			return sp
		}, action: workload.DiffReplace, rolls: true, reason: "Cloud Run rolls a new revision", want: []workload.Change{
			{Path: "template.containers[0].image", From: "europe-docker.pkg.dev/demo-project/app/web:1", To: "europe-docker.pkg.dev/demo-project/app/web:2", Replaces: true}}},
		{name: "replace config", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Config["LOG_LEVEL"] = diffConfigValue + "-2"
			return sp
		}, action: workload.DiffReplace, rolls: true, want: []workload.Change{
			{Path: "template.containers[0].env[LOG_LEVEL]", From: "(set)", To: "(changed)", Replaces: true}}},
		{name: "replace config removed and added", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Config = map[string]string{"OTHER": diffConfigValue}
			return sp
		}, action: workload.DiffReplace, rolls: true, want: []workload.Change{
			{Path: "template.containers[0].env[LOG_LEVEL]", From: "(set)", To: "(removed)", Replaces: true},
			{Path: "template.containers[0].env[OTHER]", To: "(set)", Replaces: true}}},
		{name: "replace secret reference", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Secrets[0].From = "secret:db-password:2"
			return sp
		}, action: workload.DiffReplace, rolls: true, want: []workload.Change{
			{Path: "template.containers[0].env[DB]", From: "secretKeyRef db-password:1", To: "secretKeyRef db-password:2", Replaces: true}}},
		{name: "replace env and scaling", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Env["MODE"] = "green"
			sp.Replicas = 3
			return sp
		}, action: workload.DiffReplace, rolls: true, want: []workload.Change{
			{Path: "template.containers[0].env[MODE]", From: "blue", To: "green", Replaces: true},
			{Path: "scaling.manualInstanceCount", From: "2", To: "3"}}},
		{name: "replace resources", spec: func() workload.DeploymentSpec {
			sp := diffBase("web")
			sp.Resources.CPU = "2"
			return sp
		}, action: workload.DiffReplace, rolls: true, want: []workload.Change{
			{Path: "template.containers[0].resources.limits.cpu", From: "1000m", To: "2000m", Replaces: true}}},
		{name: "update after stop", prepare: func(ctx context.Context, t *testing.T, p *gcp.Provider, _ *fakegcp.Server) {
			if _, err := p.Stop(ctx, "web"); err != nil {
				t.Fatal(err)
			}
		}, spec: func() workload.DeploymentSpec { return diffBase("web") }, action: workload.DiffUpdate,
			want: []workload.Change{{Path: "scaling.manualInstanceCount", From: "0", To: "2"}}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			p, f := openFake(t, nil)
			f.AddSecret(dbSecret, []byte(diffSecretValue))
			f.AddVersion(dbSecret, []byte(diffSecretValue+"-2"))
			f.ProjectSecretAccessors = []string{"serviceAccount:" + testServiceAccount}
			ctx := ctx(t)
			if _, err := p.Start(ctx, diffBase("web")); err != nil {
				t.Fatal(err)
			}
			if c.prepare != nil {
				c.prepare(ctx, t, p, f)
			}
			sp := c.spec()
			before, obs := writes(f), f.Observe(sp.Name)
			var revBefore string
			if svc := f.Service(sp.Name); svc != nil {
				revBefore = svc.LatestCreatedRevision
			}
			d, err := provider.Diff(ctx, p, sp)
			if err != nil {
				t.Fatal(err)
			}
			b, _ := json.Marshal(d)
			t.Logf("diff: %s", b)
			if after := writes(f); after != before {
				t.Errorf("Diff wrote:\n before %s\n after  %s", before, after)
			}
			if o := f.Observe(sp.Name); o.Revision != obs.Revision || o.Running != obs.Running {
				t.Errorf("Diff changed the service: %+v -> %+v", obs, o)
			}
			for _, v := range []string{diffConfigValue, diffSecretValue} {
				if strings.Contains(string(b), v) {
					t.Errorf("the diff shows a config or secret value: %s", b)
				}
			}
			if d.Action != c.action || d.Service != sp.Name || d.Provider != gcp.Name {
				t.Fatalf("diff = %s, want action %s", b, c.action)
			}
			if c.action == workload.DiffNone && (d.Changed() || len(d.Changes) > 0) {
				t.Errorf("a none diff with changes: %s", b)
			}
			for _, w := range c.want {
				if !slices.ContainsFunc(d.Changes, func(g workload.Change) bool {
					return g.Path == w.Path && (w.From == "" || g.From == w.From) && (w.To == "" || g.To == w.To) && g.Replaces == w.Replaces
				}) {
					t.Errorf("no change %+v in %s", w, b)
				}
			}
			if !strings.Contains(d.Reason, c.reason) {
				t.Errorf("reason %q, want it to say %q", d.Reason, c.reason)
			}
			// Start does what the diff said: a new revision exactly when
			// the diff said one rolls; then the diff is empty.
			if _, err := p.Start(ctx, sp); err != nil {
				t.Fatal(err)
			}
			rolled := f.Service(sp.Name).LatestCreatedRevision != revBefore
			if rolled != c.rolls {
				t.Errorf("Start rolled a revision: %v, the diff said %v", rolled, c.rolls)
			}
			if c.action == workload.DiffNone && writes(f) != before {
				t.Errorf("Start wrote after a none diff: %s -> %s", before, writes(f))
			}
			again, err := p.Diff(ctx, sp)
			if err != nil || again.Action != workload.DiffNone || len(again.Changes) != 0 {
				t.Errorf("diff after Start = %+v, %v; want none", again, err)
			}
		})
	}
}

func TestDiffInvalidSpec(t *testing.T) {
	p, f := openFake(t, nil)
	sp := diffBase("web")
	sp.Secrets[0].From = "env:ALPHASWARM_SECRET_DB"
	_, err := p.Diff(ctx(t), sp)
	var we *workload.Error
	if workload.CodeOf(err) != workload.InvalidArgument || !errors.As(err, &we) || len(we.Fields) == 0 || we.Fields[0].Path != "secrets[0].from" {
		t.Fatalf("Diff = %v, want invalid_argument at secrets[0].from", err)
	}
	if f.Calls("GetService") != 0 {
		t.Errorf("Diff read the service of an invalid spec")
	}
}

func TestCheckRefs(t *testing.T) {
	p, f := openFake(t, nil)
	c := ctx(t)
	f.AddSecret(dbSecret, []byte(diffSecretValue))
	f.AddVersion(dbSecret, []byte(diffSecretValue+"-2"))
	f.AddSecret("projects/demo-project/secrets/retired", []byte(diffSecretValue+"-3"))
	f.SetVersionState("projects/demo-project/secrets/retired", 1, secretmanagerpb.SecretVersion_DISABLED)
	f.AddSecret("projects/demo-project/secrets/gone", []byte(diffSecretValue+"-4"))
	f.SetVersionState("projects/demo-project/secrets/gone", 1, secretmanagerpb.SecretVersion_DESTROYED)
	cases := []struct {
		name, from, says string
		code             workload.Code // "" = resolves
	}{
		{"latest", "secret:db-password", "", ""},
		{"pinned", "secret:db-password:1", "", ""},
		{"full name", dbSecret + "/versions/2", "", ""},
		{"missing secret", "secret:no-such", "Secret Manager has no secret projects/demo-project/secrets/no-such", workload.NotFound},
		{"missing version", "secret:db-password:9", "no version 9", workload.NotFound},
		{"disabled", "secret:retired:1", "is DISABLED", workload.NotFound},
		{"latest disabled", "secret:retired", "is DISABLED", workload.NotFound},
		{"destroyed", dbSecret[:len(dbSecret)-len("db-password")] + "gone/versions/latest", "is DESTROYED", workload.NotFound},
		{"env reference", "env:ALPHASWARM_SECRET_DB", "Secret Manager", workload.InvalidArgument},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			sp := spec("refs", 1)
			sp.Secrets = []workload.SecretRef{{Env: "A", From: "secret:db-password:1"}, {Env: "B", From: tc.from}}
			access := f.Calls("AccessSecretVersion")
			err := provider.CheckRefs(c, p, sp)
			if f.Calls("AccessSecretVersion") != access {
				t.Errorf("CheckRefs read a secret value (AccessSecretVersion)")
			}
			if tc.code == "" {
				if err != nil {
					t.Fatalf("CheckRefs = %v", err)
				}
				return
			}
			var we *workload.Error
			if workload.CodeOf(err) != tc.code || !errors.As(err, &we) || len(we.Fields) != 1 || we.Fields[0].Path != "secrets[1].from" {
				t.Fatalf("CheckRefs = %#v, want %s at secrets[1].from", err, tc.code)
			}
			if !strings.Contains(err.Error()+we.Fields[0].Message, tc.says) {
				t.Errorf("CheckRefs = %v, want it to say %q", err, tc.says)
			}
			if strings.Contains(err.Error(), diffSecretValue) {
				t.Errorf("the error shows a secret value: %v", err)
			}
		})
	}
	t.Run("permission denied", func(t *testing.T) {
		f.Deny("secretmanager.versions.get")
		sp := spec("refs", 1)
		sp.Secrets = []workload.SecretRef{{Env: "A", From: "secret:db-password:1"}}
		err := provider.CheckRefs(c, p, sp)
		var we *workload.Error
		if workload.CodeOf(err) != workload.PermissionDenied || !errors.As(err, &we) || len(we.Fields) != 1 || we.Fields[0].Path != "secrets[0].from" {
			t.Fatalf("CheckRefs = %#v, want permission_denied at secrets[0].from", err)
		}
	})
}

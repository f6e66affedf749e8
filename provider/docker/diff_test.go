package docker

import (
	"encoding/json"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// The values the diff tests hand the provider: neither may ever appear in
// a Diff or an error.
const (
	diffSecretA   = "s3cret-value-of-A-4b1f"
	diffSecretB   = "s3cret-value-of-B-9c2e"
	diffConfigOne = "password=cfg-value-one-77a0"
	diffConfigTwo = "password=cfg-value-two-e513"
)

// diffCreds is the process environment (for DOCKER_HOST) plus two secrets.
func diffCreds() *credentials.Resolver {
	m := map[string]string{"ALPHASWARM_SECRET_DIFF_A": diffSecretA, "ALPHASWARM_SECRET_DIFF_B": diffSecretB}
	return credentials.New(func(k string) (string, bool) {
		if v, ok := m[k]; ok {
			return v, true
		}
		return os.LookupEnv(k)
	})
}

// noLeak fails the test if v's JSON holds a secret or config value.
func noLeak(t *testing.T, what string, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{diffSecretA, diffSecretB, diffConfigOne, diffConfigTwo, "cfg-value"} {
		if strings.Contains(string(b), s) {
			t.Fatalf("%s carries the value %q: %s", what, s, b)
		}
	}
	return string(b)
}

// TestDiff walks one service through the diff actions against the real
// Engine. Each step diffs a spec, checks the action and the changes, and,
// where it deploys the spec, checks that Start did what the diff said (a
// replace changes every serving replica, an update or none keeps them)
// and that the same spec then diffs to none.
func TestDiff(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProviderWith(t, map[string]any{"stopTimeout": "2s", "pull": "never", "minReady": "0s"}, diffCreds())
	name := uniqueName("diff")
	cleanupService(t, p, name)
	base := testSpec(name, 1, false)
	base.Env = map[string]string{"LOG_LEVEL": "info"}
	base.Secrets = []workload.SecretRef{{Env: "DB_PASSWORD", From: "env:ALPHASWARM_SECRET_DIFF_A"}}

	type change struct {
		path, from, to string
		replaces       bool
	}
	steps := []struct {
		name   string
		edit   func(*workload.DeploymentSpec)
		before func(t *testing.T) // changes the Engine behind the provider's back
		action workload.DiffAction
		want   []change // the changes that must be there (others may be, on create)
		only   bool     // want is the whole list
		deploy bool
	}{
		{name: "create", action: workload.DiffCreate, deploy: true, want: []change{
			{path: "Config.Image", to: testImage},
			{path: "Config.Env[LOG_LEVEL]", to: "info"},
			{path: "Config.Env[DB_PASSWORD]", to: "(secret env:ALPHASWARM_SECRET_DIFF_A)"},
			{path: "replicas", to: "1"},
		}},
		{name: "same spec", action: workload.DiffNone, only: true},
		{name: "env", edit: func(s *workload.DeploymentSpec) { s.Env["LOG_LEVEL"] = "debug" }, action: workload.DiffReplace, deploy: true, only: true, want: []change{
			{path: "Config.Env[LOG_LEVEL]", from: "info", to: "debug", replaces: true},
		}},
		{name: "secret reference", edit: func(s *workload.DeploymentSpec) { s.Secrets[0].From = "env:ALPHASWARM_SECRET_DIFF_B" }, action: workload.DiffReplace, only: true, want: []change{
			{path: "Config.Env[DB_PASSWORD]", from: "(secret env:ALPHASWARM_SECRET_DIFF_A)", to: "(secret env:ALPHASWARM_SECRET_DIFF_B)", replaces: true},
		}},
		{name: "config added", edit: func(s *workload.DeploymentSpec) { s.Config = map[string]string{"app.conf": diffConfigOne} }, action: workload.DiffReplace, deploy: true, only: true, want: []change{
			{path: "Archive[/etc/alphaswarm/config/app.conf]", to: "(set)", replaces: true},
		}},
		{name: "config changed", edit: func(s *workload.DeploymentSpec) { s.Config = map[string]string{"app.conf": diffConfigTwo} }, action: workload.DiffReplace, only: true, want: []change{
			{path: "Archive[/etc/alphaswarm/config/app.conf]", from: "(set)", to: "(changed)", replaces: true},
		}},
		{name: "config removed and image fields", edit: func(s *workload.DeploymentSpec) {
			s.Config = nil
			s.Resources = workload.Resources{CPU: "500m", Memory: "64Mi"}
			s.Ports = []workload.Port{{Container: 8080}}
			s.Labels = map[string]string{"team": "payments"}
			s.HealthCheck = testSpec(name, 1, true).HealthCheck
		}, action: workload.DiffReplace, deploy: true, only: true, want: []change{
			{path: "Archive[/etc/alphaswarm/config/app.conf]", from: "(set)", to: "(removed)", replaces: true},
			{path: "Config.Healthcheck", to: `["CMD" "/workload" "get" "http://127.0.0.1:8080/healthz"] interval=300ms timeout=2s retries=3 startPeriod=0s`, replaces: true},
			{path: "Config.Labels[team]", to: "payments", replaces: true},
			{path: "HostConfig.Memory", to: "67108864", replaces: true},
			{path: "HostConfig.NanoCpus", to: "500000000", replaces: true},
			{path: "HostConfig.PortBindings[8080/tcp]", to: "127.0.0.1:(any)", replaces: true},
		}},
		{name: "a port's name only", edit: func(s *workload.DeploymentSpec) {
			s.Ports = []workload.Port{{Name: "http", Container: 8080}}
		}, action: workload.DiffReplace, only: true, want: []change{
			{path: "Config.Labels[alphaswarm.spec-hash]", from: "(set)", to: "(changed)", replaces: true},
		}},
		{name: "replica count", edit: func(s *workload.DeploymentSpec) { s.Replicas = 2 }, action: workload.DiffUpdate, deploy: true, only: true, want: []change{
			{path: "replicas", from: "1", to: "2"},
		}},
		{name: "a replica removed behind our back", before: func(t *testing.T) {
			ctx := testkit.Context(t, time.Minute)
			waitFor(t, 30*time.Second, "the replaced replicas to drain", func() (bool, string) {
				ids, err := runningIDs(ctx, name)
				return err == nil && len(ids) == 2, strings.Join(ids, " ")
			})
			f := make(client.Filters).Add("label", labelService+"="+name, labelReplica+"=1")
			list, err := rawCli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
			if err != nil || len(list.Items) != 1 {
				t.Fatalf("replica 1: %v %v", list.Items, err)
			}
			if _, err := rawCli.ContainerRemove(ctx, list.Items[0].ID, client.ContainerRemoveOptions{Force: true}); err != nil {
				t.Fatal(err)
			}
		}, action: workload.DiffUpdate, deploy: true, only: true, want: []change{
			{path: "replicas[1]", from: "(missing)", to: "(created)"},
		}},
		{name: "scaled to zero", edit: func(s *workload.DeploymentSpec) { s.Replicas = 0 }, action: workload.DiffUpdate, deploy: true, only: true, want: []change{
			{path: "replicas", from: "2", to: "0"},
		}},
		{name: "new env at zero replicas", edit: func(s *workload.DeploymentSpec) { s.Replicas = 0; s.Env["LOG_LEVEL"] = "warn" }, action: workload.DiffUpdate, only: true, want: []change{
			{path: "Config.Env[LOG_LEVEL]", from: "debug", to: "warn"},
		}},
	}
	spec := base
	spec.Env = map[string]string{"LOG_LEVEL": "info"}
	for _, st := range steps {
		t.Run(st.name, func(t *testing.T) {
			ctx := testkit.Context(t, 2*time.Minute)
			s := spec
			s.Env = map[string]string{}
			for k, v := range spec.Env {
				s.Env[k] = v
			}
			s.Secrets = slices.Clone(spec.Secrets)
			if st.edit != nil {
				st.edit(&s)
			}
			if st.before != nil {
				st.before(t)
			}
			d, err := p.Diff(ctx, s)
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			js := noLeak(t, "the diff", d)
			t.Logf("diff: %s", js)
			if d.Action != st.action || d.Service != name || d.Provider != Name {
				t.Fatalf("diff %s, want action %s: %s", d.Action, st.action, js)
			}
			for _, w := range st.want {
				i := slices.IndexFunc(d.Changes, func(c workload.Change) bool { return c.Path == w.path })
				if i < 0 {
					t.Fatalf("no change of %s in %s", w.path, js)
				}
				if c := d.Changes[i]; c.From != w.from || c.To != w.to || c.Replaces != w.replaces {
					t.Errorf("change %+v, want %+v", c, w)
				}
			}
			if st.only && len(d.Changes) != len(st.want) {
				t.Errorf("%d changes, want %d: %s", len(d.Changes), len(st.want), js)
			}
			if !st.deploy {
				return
			}
			// The replicas serving before: running on the Engine (the
			// cache may lag a removal) and not draining.
			running, err := runningIDs(ctx, name)
			if err != nil {
				t.Fatal(err)
			}
			var before []string
			if cur, err := p.Status(ctx, name); err == nil {
				for _, id := range serving(cur) {
					if slices.Contains(running, id) {
						before = append(before, id)
					}
				}
			}
			after, err := p.Start(ctx, s)
			if err != nil || (s.Replicas > 0 && after.Phase != workload.Running) {
				t.Fatalf("Start: %+v %v", after, err)
			}
			kept := 0
			for _, id := range before {
				if slices.Contains(serving(after), id) {
					kept++
				}
			}
			switch {
			case d.Action == workload.DiffReplace && kept > 0:
				t.Errorf("the diff said replace, Start kept %d replica(s): before %v after %v", kept, before, serving(after))
			case d.Action == workload.DiffUpdate && s.Replicas > 0 && kept != min(len(before), s.Replicas):
				t.Errorf("the diff said update, Start replaced replicas: before %v after %v", before, serving(after))
			}
			again, err := p.Diff(ctx, s)
			if err != nil || again.Action != workload.DiffNone || len(again.Changes) != 0 {
				t.Fatalf("after Start, the same spec diffs to %+v %v", again, err)
			}
			spec = s
		})
	}
	// Start refuses to switch an image service to Compose; so does Diff.
	_, err := p.Diff(testkit.Context(t, time.Minute), composeSpec(name))
	if e := workload.AsError(err); err == nil || e.Code != workload.InvalidArgument || len(e.Fields) == 0 || e.Fields[0].Path != "compose" {
		t.Errorf("Diff of a Compose spec for an image service: %v", err)
	}
}

// TestDiffRefused: the answers Start would give before changing anything
// (an invalid spec, another target), and the Compose diff, which is
// Unsupported. (An image service switched to Compose: end of TestDiff.)
func TestDiffRefused(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("diffno")
	ctx := testkit.Context(t, time.Minute)
	bad := testSpec(name, 1, false)
	bad.Replicas = -1
	other := testSpec(name, 1, false)
	other.Target = "elsewhere"
	for _, tc := range []struct {
		name  string
		spec  workload.DeploymentSpec
		code  workload.Code
		field string
	}{
		{"invalid", bad, workload.InvalidArgument, "replicas"},
		{"another target", other, workload.InvalidArgument, "target"},
		{"compose", composeSpec(name), workload.Unsupported, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := p.Diff(ctx, tc.spec)
			e := workload.AsError(err)
			if err == nil || e.Code != tc.code {
				t.Fatalf("Diff: %v, want %s", err, tc.code)
			}
			if tc.field != "" && (len(e.Fields) == 0 || e.Fields[0].Path != tc.field) {
				t.Errorf("fields %+v, want %s", e.Fields, tc.field)
			}
		})
	}
}

func composeSpec(name string) workload.DeploymentSpec {
	return workload.DeploymentSpec{Name: name, Target: testTarget, Replicas: 1, Compose: &workload.ComposeProfile{File: "web.yml"}}
}

// TestCheckRefs: the image is looked up on the Engine, each secret
// reference through the resolver; what does not resolve is NotFound (or
// InvalidArgument for a reference of a form never resolved) with the spec
// path, and no value reaches the error.
func TestCheckRefs(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProviderWith(t, nil, diffCreds())
	ctx := testkit.Context(t, time.Minute)
	spec := func(image string, from ...string) workload.DeploymentSpec {
		s := testSpec(uniqueName("refs"), 1, false)
		s.Image = image
		for i, f := range from {
			s.Secrets = append(s.Secrets, workload.SecretRef{Env: "S" + string(rune('A'+i)), From: f})
		}
		return s
	}
	missing := "alphaswarm-missing-image:" + testTarget
	for _, tc := range []struct {
		name    string
		spec    workload.DeploymentSpec
		code    workload.Code // "" = resolves
		field   string
		mention string // the error names the reference
	}{
		{"all resolve", spec(testImage, "env:ALPHASWARM_SECRET_DIFF_A", "env:ALPHASWARM_SECRET_DIFF_B"), "", "", ""},
		{"image missing", spec(missing, "env:ALPHASWARM_SECRET_DIFF_A"), workload.NotFound, "image", missing},
		{"secret missing", spec(testImage, "env:ALPHASWARM_SECRET_DIFF_A", "env:ALPHASWARM_SECRET_DIFF_GONE"), workload.NotFound, "secrets[1].from", "ALPHASWARM_SECRET_DIFF_GONE"},
		{"value pasted as a reference", spec(testImage, diffSecretB), workload.InvalidArgument, "secrets[0].from", ""},
		{"controller variable", spec(testImage, "env:DOCKER_HOST"), workload.InvalidArgument, "secrets[0].from", "DOCKER_HOST"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := p.CheckRefs(ctx, tc.spec)
			if tc.code == "" {
				if err != nil {
					t.Fatalf("CheckRefs: %v", err)
				}
				return
			}
			e := workload.AsError(err)
			if err == nil || e.Code != tc.code || e.Provider != Name {
				t.Fatalf("CheckRefs: %v, want %s", err, tc.code)
			}
			if len(e.Fields) != 1 || e.Fields[0].Path != tc.field {
				t.Errorf("fields %+v, want %s", e.Fields, tc.field)
			}
			if !strings.Contains(e.Message, tc.mention) {
				t.Errorf("message %q does not name %s", e.Message, tc.mention)
			}
			noLeak(t, "the error", e)
			if strings.Contains(err.Error(), diffSecretA) || strings.Contains(err.Error(), diffSecretB) {
				t.Errorf("error carries a value: %v", err)
			}
		})
	}
	// Through provider.CheckRefs, as rollback calls it.
	if err := provider.CheckRefs(ctx, p, spec(missing)); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("provider.CheckRefs: %v", err)
	}
}

// TestDiffShown: what a diff may print of a secret reference and of a
// config file, without an Engine.
func TestDiffShown(t *testing.T) {
	for _, tc := range []struct{ from, want string }{
		{"env:ALPHASWARM_SECRET_DB", "(secret env:ALPHASWARM_SECRET_DB)"},
		{diffSecretA, "(secret: a reference this provider does not resolve, not shown)"},
		{"env:DOCKER_HOST", "(secret: a reference this provider does not resolve, not shown)"},
		{"env:ALPHASWARM_SECRET_X=" + diffSecretA, "(secret: a reference this provider does not resolve, not shown)"},
	} {
		if got := secretShown(tc.from); got != tc.want {
			t.Errorf("secretShown(%q) = %q, want %q", tc.from, got, tc.want)
		}
	}
	from := map[string]field{
		"Archive[/c/kept]":    {show: "(set)", cmp: diffConfigOne, hidden: true},
		"Archive[/c/changed]": {show: "(set)", cmp: diffConfigOne, hidden: true},
		"Archive[/c/gone]":    {show: "(set)", cmp: diffConfigOne, hidden: true},
		"Config.Env[A]":       {show: "1", cmp: "1"},
	}
	to := map[string]field{
		"Archive[/c/kept]":    {show: "(set)", cmp: diffConfigOne, hidden: true},
		"Archive[/c/changed]": {show: "(set)", cmp: diffConfigTwo, hidden: true},
		"Archive[/c/new]":     {show: "(set)", cmp: diffConfigTwo, hidden: true},
		"Config.Env[A]":       {show: "2", cmp: "2"},
	}
	got := compareFields(from, to, true)
	want := []workload.Change{
		{Path: "Archive[/c/changed]", From: "(set)", To: "(changed)", Replaces: true},
		{Path: "Archive[/c/gone]", From: "(set)", To: "(removed)", Replaces: true},
		{Path: "Archive[/c/new]", To: "(set)", Replaces: true},
		{Path: "Config.Env[A]", From: "1", To: "2", Replaces: true},
	}
	if !slices.Equal(got, want) {
		t.Errorf("compareFields:\n got %+v\nwant %+v", got, want)
	}
	noLeak(t, "compareFields", got)
}

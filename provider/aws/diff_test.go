package aws_test

import (
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/workload"
)

const (
	dbPass      = "arn:aws:ssm:us-east-1:123456789012:parameter/db/password"
	plantedConf = "planted-config-value-7f3a"
)

// diffBase is the spec every diff case deploys first.
func diffBase(name string) workload.DeploymentSpec {
	sp := spec(name, 2)
	sp.Env = map[string]string{"LOG_LEVEL": "info"}
	sp.Secrets = []workload.SecretRef{{Env: "DB_PASS", From: dbPass}}
	sp.Config = map[string]string{"FEATURE": "on", "secret.API_KEY": plantedConf}
	return sp
}

// TestDiff: each case deploys diffBase, diffs a changed spec, checks the
// action and the changes, that Diff changed nothing (no revision
// registered, no service or parameter written), that no config value
// reaches the diff's JSON, and then that Start does what Diff said:
// registers a revision exactly when Diff says create or replace.
func TestDiff(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	type chg = workload.Change
	cases := []struct {
		name   string
		deploy bool // deploy diffBase first
		change func(*workload.DeploymentSpec)
		action workload.DiffAction
		want   []chg // exactly, in order; nil: check only the paths in wantPaths
		// wantPaths must be among the changes (with Replaces as given).
		wantPaths map[string]bool
	}{
		{name: "none", deploy: true, change: func(*workload.DeploymentSpec) {}, action: workload.DiffNone, want: []chg{}},
		{name: "create", change: func(*workload.DeploymentSpec) {}, action: workload.DiffCreate,
			wantPaths: map[string]bool{"containerDefinitions[0].image": false, "cpu": false, "memory": false, "desiredCount": false,
				"containerDefinitions[0].environment[LOG_LEVEL]": false, "containerDefinitions[0].secrets[DB_PASS].valueFrom": false,
				"containerDefinitions[0].secrets[API_KEY].valueFrom": false, "ssm:/alphaswarm/prod/create/secret.API_KEY": false}},
		{name: "update", deploy: true, change: func(s *workload.DeploymentSpec) { s.Replicas = 5 }, action: workload.DiffUpdate,
			want: []chg{{Path: "desiredCount", From: "2", To: "5"}}},
		{name: "scale-to-zero", deploy: true, change: func(s *workload.DeploymentSpec) { s.Replicas = 0 }, action: workload.DiffUpdate,
			want: []chg{{Path: "desiredCount", From: "2", To: "0"}}},
		{name: "image", deploy: true, change: func(s *workload.DeploymentSpec) { s.Image = "public.ecr.aws/docker/library/nginx:1.28" },
			action: workload.DiffReplace, want: []chg{{Path: "containerDefinitions[0].image",
				From: "public.ecr.aws/docker/library/nginx:1.27", To: "public.ecr.aws/docker/library/nginx:1.28", Replaces: true}}},
		{name: "env", deploy: true, change: func(s *workload.DeploymentSpec) { s.Env = map[string]string{"LOG_LEVEL": "debug", "NEW": "1"} },
			action: workload.DiffReplace, want: []chg{
				{Path: "containerDefinitions[0].environment[LOG_LEVEL]", From: "info", To: "debug", Replaces: true},
				{Path: "containerDefinitions[0].environment[NEW]", To: "1", Replaces: true}}},
		{name: "secret-ref", deploy: true, change: func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "DB_PASS", From: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf"}}
		}, action: workload.DiffReplace, want: []chg{{Path: "containerDefinitions[0].secrets[DB_PASS].valueFrom",
			From: dbPass, To: "arn:aws:secretsmanager:us-east-1:123456789012:secret:prod/db-AbCdEf", Replaces: true}}},
		{name: "size-and-count", deploy: true, change: func(s *workload.DeploymentSpec) {
			s.Resources = workload.Resources{CPU: "1", Memory: "3Gi"}
			s.Replicas = 3
		}, action: workload.DiffReplace, want: []chg{
			{Path: "cpu", From: "256", To: "1024", Replaces: true},
			{Path: "memory", From: "512", To: "3072", Replaces: true},
			{Path: "desiredCount", From: "2", To: "3"}}},
		{name: "config-value", deploy: true, change: func(s *workload.DeploymentSpec) {
			s.Config = map[string]string{"FEATURE": "on", "secret.API_KEY": plantedConf + "-rotated"}
		}, action: workload.DiffReplace, want: []chg{{Path: "ssm:/alphaswarm/prod/config-value/secret.API_KEY", From: "(set)", To: "(changed)", Replaces: true}}},
		{name: "config-keys", deploy: true, change: func(s *workload.DeploymentSpec) {
			s.Config = map[string]string{"secret.API_KEY": plantedConf, "MODE": "fast"}
		}, action: workload.DiffReplace, want: []chg{
			{Path: "containerDefinitions[0].secrets[MODE].valueFrom", To: "/alphaswarm/prod/config-keys/MODE", Replaces: true},
			{Path: "containerDefinitions[0].secrets[FEATURE].valueFrom", From: "/alphaswarm/prod/config-keys/FEATURE", Replaces: true},
			{Path: "ssm:/alphaswarm/prod/config-keys/MODE", To: "(set)", Replaces: true},
			{Path: "ssm:/alphaswarm/prod/config-keys/FEATURE", From: "(set)", To: "(removed)", Replaces: true}}},
		{name: "no-config-keeps-refs", deploy: true, change: func(s *workload.DeploymentSpec) {
			s.Config = nil // Start carries the current config references over
			s.Args = []string{"--verbose"}
		}, action: workload.DiffReplace, want: []chg{{Path: "containerDefinitions[0].command", To: `["--verbose"]`, Replaces: true}}},
		{name: "unrendered-field", deploy: true, change: func(s *workload.DeploymentSpec) { s.Ports[0].Host = 8080 },
			action: workload.DiffReplace, want: []chg{{Path: "containerDefinitions[0].dockerLabels[alphaswarm.spec-hash]", From: "(set)", To: "(changed)", Replaces: true}}},
		{name: "health-check", deploy: true, change: func(s *workload.DeploymentSpec) {
			s.HealthCheck = &workload.HealthCheck{TCP: &workload.TCPCheck{Port: 80}}
		}, action: workload.DiffReplace, wantPaths: map[string]bool{"containerDefinitions[0].healthCheck.command": true,
			"containerDefinitions[0].healthCheck.interval": true, "containerDefinitions[0].healthCheck.retries": true}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			base := diffBase(c.name)
			if c.deploy {
				if _, err := p.Start(ctx(t), base); err != nil {
					t.Fatal(err)
				}
			}
			next := diffBase(c.name)
			c.change(&next)
			family := "as-prod-" + c.name
			writes := func() string {
				return fmt.Sprint(f.Revisions(family), f.Requests("ecs.RegisterTaskDefinition"), f.Requests("ecs.CreateService"),
					f.Requests("ecs.UpdateService"), f.Requests("ssm.PutParameter"), f.Requests("ssm.DeleteParameters"))
			}
			before, revs := writes(), f.Revisions(family)
			d, err := provider.Diff(ctx(t), p, next)
			if err != nil {
				t.Fatalf("Diff: %v", err)
			}
			if after := writes(); after != before {
				t.Errorf("Diff wrote to AWS: revisions and write requests %s -> %s", before, after)
			}
			if d.Action != c.action || d.Service != c.name || d.Provider != "aws" {
				t.Errorf("diff = %s %s/%s, want %s: %+v", d.Action, d.Provider, d.Service, c.action, d)
			}
			if c.want != nil && !slices.Equal(d.Changes, c.want) {
				t.Errorf("changes:\n got %+v\nwant %+v", d.Changes, c.want)
			}
			got := map[string]bool{}
			for _, ch := range d.Changes {
				got[ch.Path] = ch.Replaces
			}
			for path, repl := range c.wantPaths {
				if r, ok := got[path]; !ok || r != repl {
					t.Errorf("change %s (replaces %v) missing or different in %v", path, repl, slices.Sorted(maps.Keys(got)))
				}
			}
			if d.Changed() != (c.action != workload.DiffNone) || (d.Action != workload.DiffNone && d.Reason == "") {
				t.Errorf("Changed() = %v, reason %q", d.Changed(), d.Reason)
			}
			b, _ := json.Marshal(d)
			if strings.Contains(string(b), plantedConf) {
				t.Errorf("the diff's JSON carries a config value: %s", b)
			}
			if st := f.Service("default", c.name); st.Exists {
				// The spec hash covers the config values: not shown either.
				cd := f.TaskDefinition(st.TaskDef)["containerDefinitions"].([]any)[0].(map[string]any)
				if h := cd["dockerLabels"].(map[string]any)["alphaswarm.spec-hash"].(string); strings.Contains(string(b), h) {
					t.Errorf("the diff's JSON carries the spec hash %s: %s", h, b)
				}
			}
			// Start does what Diff said.
			if _, err := p.Start(ctx(t), next); err != nil {
				t.Fatalf("Start after Diff: %v", err)
			}
			wantRevs := revs
			if d.Action == workload.DiffCreate || d.Action == workload.DiffReplace {
				wantRevs++
			}
			if n := f.Revisions(family); n != wantRevs {
				t.Errorf("Start registered %d revisions after Diff said %s", n-revs, d.Action)
			}
			if st := f.Service("default", c.name); st.Desired != next.Replicas {
				t.Errorf("desired = %d after Start, want %d", st.Desired, next.Replicas)
			}
			if again, err := provider.Diff(ctx(t), p, next); err != nil || again.Action != workload.DiffNone {
				t.Errorf("Diff after Start = %s %+v, %v; want none", again.Action, again.Changes, err)
			}
		})
	}
}

// TestDiffRefusesLikeStart: what Start refuses, Diff refuses the same way,
// before any request.
func TestDiffRefusesLikeStart(t *testing.T) {
	p, f := openFake(t, fakeaws.Options{}, nil)
	for _, c := range []struct {
		name  string
		spec  func() workload.DeploymentSpec
		field string
	}{
		{"env secret", func() workload.DeploymentSpec {
			s := spec("a", 1)
			s.Secrets = []workload.SecretRef{{Env: "X", From: "env:X"}}
			return s
		}, "secrets[0].from"},
		{"too big", func() workload.DeploymentSpec { s := spec("a", 1); s.Resources.CPU = "64"; return s }, "resources"},
		{"config too long", func() workload.DeploymentSpec {
			s := spec("a", 1)
			s.Config = map[string]string{"K": strings.Repeat("x", 5000)}
			return s
		}, "config.K"},
	} {
		_, derr := provider.Diff(ctx(t), p, c.spec())
		_, serr := p.Start(ctx(t), c.spec())
		if workload.CodeOf(derr) != workload.InvalidArgument || derr.Error() != serr.Error() {
			t.Errorf("%s: Diff = %v; Start = %v", c.name, derr, serr)
		}
		if we := workload.AsError(derr); len(we.Fields) == 0 || we.Fields[0].Path != c.field {
			t.Errorf("%s: fields = %v, want %s", c.name, we.Fields, c.field)
		}
	}
	if n := f.Requests("ecs.DescribeServices"); n != 0 {
		t.Errorf("invalid specs reached AWS (%d DescribeServices)", n)
	}
}

// TestDiffTargetOptions: the target's options change what Start does the
// way Start decides it. ECS Exec turned on rolls (a new revision with the
// task role and an init process, and the service's enableExecuteCommand);
// another log group alone registers nothing, and Reason says so.
func TestDiffTargetOptions(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{StartupLine: startupLine})
	t.Cleanup(f.Close)
	p := openOn(t, f, nil)
	if _, err := p.Start(ctx(t), spec("web", 1)); err != nil {
		t.Fatal(err)
	}
	const role = "arn:aws:iam::123456789012:role/webTask"
	execOn := openOn(t, f, map[string]any{"enableExecuteCommand": true, "taskRoleArn": role})
	d, err := provider.Diff(ctx(t), execOn, spec("web", 1))
	if err != nil {
		t.Fatal(err)
	}
	want := []workload.Change{
		{Path: "taskRoleArn", To: role, Replaces: true},
		{Path: "containerDefinitions[0].linuxParameters.initProcessEnabled", To: "true", Replaces: true},
		{Path: "enableExecuteCommand", From: "false", To: "true", Replaces: true},
	}
	if d.Action != workload.DiffReplace || !slices.Equal(d.Changes, want) {
		t.Errorf("exec on: %s %+v, want replace %+v", d.Action, d.Changes, want)
	}
	logs := openOn(t, f, map[string]any{"logGroup": "/other"})
	d, err = provider.Diff(ctx(t), logs, spec("web", 1))
	if err != nil {
		t.Fatal(err)
	}
	if d.Action != workload.DiffNone || len(d.Changes) != 0 || !strings.Contains(d.Reason, "logConfiguration.options[awslogs-group]") {
		t.Errorf("another log group: %s %+v %q, want none with a reason naming the log group", d.Action, d.Changes, d.Reason)
	}
	revs := f.Revisions("as-prod-web")
	if _, err := logs.Start(ctx(t), spec("web", 1)); err != nil || f.Revisions("as-prod-web") != revs {
		t.Errorf("Start with another log group registered %d revisions (%v); Diff said none", f.Revisions("as-prod-web")-revs, err)
	}
	if v := f.Violations(); len(v) > 0 {
		t.Errorf("requests refused by the SDK's validation: %q", v)
	}
}

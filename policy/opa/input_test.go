package opa

import (
	"bytes"
	"context"
	"encoding/json"
	"maps"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/workload"
	"github.com/open-policy-agent/opa/v1/ast"
)

// jsonValue is how the input reached OPA before value built it directly:
// policy.Input's JSON encoding read back by OPA. It is the definition
// value must keep.
func jsonValue(t testing.TB, in policy.Input) ast.Value {
	t.Helper()
	in.Time = in.Time.UTC()
	b, err := json.Marshal(in)
	if err != nil {
		t.Fatal(err)
	}
	v, err := ast.ValueFromReader(bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func inputCases(t testing.TB) map[string]policy.Input {
	t.Helper()
	on, off := true, false
	spec := &workload.DeploymentSpec{Name: "web", Target: "prod", Image: "registry.example.com/web:1", Command: []string{"/web"},
		Args: []string{"-v"}, Env: map[string]string{"B": "x", "A": "y"}, Config: map[string]string{"c.yaml": "k: v"},
		Secrets: []workload.SecretRef{{Env: "DB_PASSWORD", From: "env:DB_PASSWORD"}}, Replicas: 3,
		Labels: map[string]string{"team": "a"}, Extensions: map[string]json.RawMessage{"docker": json.RawMessage(`{"network":"n"}`)}}
	at := time.Date(2026, 12, 5, 10, 0, 0, 123456789, time.FixedZone("CET", 3600))
	cases := map[string]policy.Input{
		"zero": {},
		"scale": {Principal: policy.Principal{User: "alice", Role: "operator"}, Action: "scale", Target: "local",
			Provider: "memory", Service: "web", Request: policy.Request{Replicas: 2}, Time: at},
		"start": {Principal: policy.Principal{User: "oidc:bob", Name: "Bob <b&b>", Auth: "oidc", Role: "admin"}, Action: "start",
			Target: "prod", Provider: "docker", Service: "web", Request: policy.StartRequest(spec), Time: at},
		"apply_config": {Principal: policy.Principal{User: "alice", Role: "operator"}, Action: "apply_config", Target: "local",
			Service: "web", Request: policy.Request{ConfigKeys: []string{"a", "b"}, NoWait: true}, Time: at},
		"exec": {Principal: policy.Principal{User: "alice", Role: "viewer"}, Action: "exec", Target: "prod", Service: "web",
			Request: policy.Request{Exec: &policy.Exec{Argv0: "/bin/sh", Argc: 3, TTY: true}}, Time: at},
		"exec without tty": {Action: "exec", Request: policy.Request{Exec: &policy.Exec{Argv0: "ls", Argc: 1}}},
		"halt on":          {Action: "halt", Request: policy.Request{HaltOn: &on}},
		"halt off":         {Action: "halt", Request: policy.Request{HaltOn: &off}},
		"status": {Action: "restart", Target: "local", Service: "web", Status: &workload.DeploymentStatus{ID: "local/web", Name: "web",
			Target: "local", Provider: "memory", Phase: workload.Running, Replicas: workload.Replicas{Desired: 2, Ready: 1},
			Image: "web:1", Instances: []workload.Instance{{ID: "i-1"}}, ObservedAt: at}},
		"status error": {Action: "restart", StatusError: "backend unreachable: connection refused"},
		"invalid utf-8": {Principal: policy.Principal{User: "a\xffb", Name: "\xc3", Role: "operator"}, Action: "exec",
			Request: policy.Request{Exec: &policy.Exec{Argv0: "x\xfe\xfey", Argc: 1}, EnvKeys: []string{"\xff"}}},
	}
	// Every input the shipped examples use.
	b, err := os.ReadFile("../../deploy/policies/examples.yaml")
	if err != nil {
		t.Fatal(err)
	}
	ex, err := policy.DecodeExamples(b)
	if err != nil {
		t.Fatal(err)
	}
	for _, x := range ex.Examples {
		cases["example "+x.Name] = x.Input
	}
	return cases
}

// TestValueIsTheJSONValue: the input value built term by term equals the
// one OPA reads from the input's JSON, for every shape of request.
func TestValueIsTheJSONValue(t *testing.T) {
	for name, in := range inputCases(t) {
		t.Run(name, func(t *testing.T) {
			got, err := value(in, allReads, true)
			if err != nil {
				t.Fatal(err)
			}
			if want := jsonValue(t, in); got.Compare(want) != 0 {
				t.Errorf("input value\n got %v\nwant %v", got, want)
			}
		})
	}
}

// BenchmarkInput compares building the input directly (whole, and only
// what the shipped policies read) with the JSON round trip it replaced,
// for a scale (what most requests look like) and a start.
func BenchmarkInput(b *testing.B) {
	e, err := Open(context.Background(), Options{Paths: []string{"../../deploy/policies"}})
	if err != nil {
		b.Fatal(err)
	}
	cases := inputCases(b)
	for _, name := range []string{"scale", "start"} {
		in := cases[name]
		for variant, rd := range map[string]reads{"direct": allReads, "read-by-shipped": e.cur.Load().reads} {
			b.Run(name+"/"+variant, func(b *testing.B) {
				b.ReportAllocs()
				for b.Loop() {
					if _, err := value(in, rd, true); err != nil {
						b.Fatal(err)
					}
				}
			})
		}
		b.Run(name+"/json", func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				jsonValue(b, in)
			}
		})
	}
}

// TestReads: the parts of the input a bundle can read come from its
// compiled refs; reading input whole, through a variable, a function
// argument or a key known only at evaluation reads everything.
func TestReads(t *testing.T) {
	for _, tc := range []struct {
		name, src string
		all       bool
		touches   []string // top-level keys built
		fields    []string // "request.replicas": fields built
		not       []string // top-level keys or fields left out
	}{
		{name: "keys", src: `deny contains "x" if { input.action == "scale"; input.request.replicas > 3; input.principal.role != "admin" }`,
			touches: []string{"action", "request", "principal"}, fields: []string{"request.replicas", "principal.role"},
			not: []string{"time", "status", "target", "request.spec", "principal.user"}},
		{name: "a whole sub-document", src: `deny contains "x" if count(input.request) > 3`,
			touches: []string{"request"}, fields: []string{"request.spec", "request.exec", "request.noWait"}, not: []string{"principal", "status"}},
		{name: "an import alias", src: "import input.request as req\ndeny contains \"x\" if req.replicas > 3",
			touches: []string{"request"}, fields: []string{"request.replicas"}, not: []string{"request.spec", "action"}},
		{name: "some in", src: `deny contains k if some k, _ in input.principal`,
			touches: []string{"principal"}, fields: []string{"principal.user", "principal.name"}, not: []string{"request"}},
		{name: "a dynamic key below", src: `deny contains "x" if { some k; input.request[k] == 3 }`,
			fields: []string{"request.replicas", "request.exec"}, not: []string{"status"}},
		{name: "input whole", src: `deny contains json.marshal(input) if true`, all: true},
		{name: "input through a variable", src: `deny contains "x" if { i := input; i.status.phase == "Failed" }`, all: true},
		{name: "input as an argument", src: "f(x) := x.time\ndeny contains f(input) if true", all: true},
		{name: "a dynamic top-level key", src: `deny contains k if { some k; input[k] == "x" }`, all: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			dir := t.TempDir()
			if err := os.WriteFile(dir+"/p.rego", []byte("package alphaswarm\n"+tc.src+"\n"), 0o600); err != nil {
				t.Fatal(err)
			}
			e, err := Open(context.Background(), Options{Paths: []string{dir}})
			if err != nil {
				t.Fatal(err)
			}
			rd := e.cur.Load().reads
			if rd.all != tc.all {
				t.Errorf("all = %v, want %v", rd.all, tc.all)
			}
			for _, k := range tc.touches {
				if !rd.touches(k) {
					t.Errorf("input.%s is not built", k)
				}
			}
			for _, f := range tc.fields {
				k, sub, _ := strings.Cut(f, ".")
				if !rd.field(k, sub) {
					t.Errorf("input.%s is not built", f)
				}
			}
			for _, n := range tc.not {
				k, sub, ok := strings.Cut(n, ".")
				if (ok && rd.field(k, sub)) || (!ok && rd.touches(k)) {
					t.Errorf("input.%s is built, though nothing reads it", n)
				}
			}
		})
	}
}

// TestOnlyWhatIsReadIsBuilt: with the shipped policies, and with policies
// that read each part of the input, the decision on the input built for
// the bundle (with the constants precomputed) equals the decision on the
// whole input (the JSON value, the evaluator computing every rule), for
// every request shape and every shipped example; so leaving out what no
// module reads, and serving the constants, change no decision.
func TestOnlyWhatIsReadIsBuilt(t *testing.T) {
	probe := t.TempDir()
	if err := os.WriteFile(probe+"/probe.rego", []byte(`package alphaswarm
deny contains sprintf("%v %v %v", [input.principal.user, input.request.replicas, input.service]) if input.target == "local"
deny contains sprintf("%v", [input.request.exec]) if input.request.exec.tty
deny contains sprintf("%v", [input.status.replicas]) if input.status.phase == "Running"
deny contains input.statusError if input.statusError != ""
deny contains "keys" if count(input.request.configKeys) + count(object.get(input.request, "envKeys", [])) > 1
deny contains "halt" if input.request.haltOn == false
deny contains input.request.spec.image if input.request.spec.labels.team == "a"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	// One whose decisions are kept (no status read), with a rule that
	// reads the time for some users only.
	timed := t.TempDir()
	if err := os.WriteFile(timed+"/timed.rego", []byte(`package alphaswarm
deny contains "late" if { input.principal.user == "alice"; time.parse_rfc3339_ns(input.time) > time.parse_rfc3339_ns("2026-12-20T00:00:00Z") }
deny contains sprintf("%v %v", [input.service, input.request.configKeys]) if input.provider == "docker"
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, paths := range [][]string{{"../../deploy/policies"}, {probe}, {"../../deploy/policies", probe}, {"../../deploy/policies", timed}} {
		e, err := Open(context.Background(), Options{Paths: paths})
		if err != nil {
			t.Fatal(err)
		}
		b := e.cur.Load()
		if b.reads.all {
			t.Fatalf("%v: reads everything; the test would prove nothing", paths)
		}
		if kept := b.decisions != nil; kept == (len(paths) == 1 && paths[0] == probe || len(paths) == 2 && paths[1] == probe) {
			t.Fatalf("%v: decisions kept %v", paths, kept)
		}
		denied := 0
		// Each request at times inside and outside the freeze window,
		// twice over: the later ones are answered from kept decisions.
		times := []time.Time{time.Date(2026, 12, 24, 1, 0, 0, 0, time.UTC), time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)}
		for round := range 2 {
			for name, in := range inputCases(t) {
				in.Time = times[round%2]
				for _, at := range append([]time.Time{in.Time}, times...) {
					in.Time = at
					got, err := e.Evaluate(context.Background(), in)
					if err != nil {
						t.Fatal(err)
					}
					plain := *b // the evaluator computing the constants itself, keeping nothing
					plain.consts, plain.decisions = nil, nil
					want, err := plain.eval(context.Background(), jsonValue(t, in))
					if err != nil {
						t.Fatal(err)
					}
					if !slices.Equal(got.Reasons, want.Reasons) || got.Allow != want.Allow {
						t.Errorf("%v, %s at %s: decided %+v on the input built for the bundle, %+v on the whole input", paths, name, at, got, want)
					}
					if !got.Allow {
						denied++
					}
				}
			}
		}
		if denied == 0 {
			t.Errorf("%v: nothing denied; the test would prove nothing", paths)
		}
	}
}

// TestConstants: the rules computed once per bundle are exactly the
// complete rules whose value cannot depend on the request.
func TestConstants(t *testing.T) {
	src := `package alphaswarm
limits := {"prod": 20, "*": 50}
targets := {t | some t, _ in limits}
n := count(targets) + 1
now := time.now_ns()
later := now + 1
who := input.principal.user
role := "x" if input.principal.role == "admin"
role := "y" if input.principal.role != "admin"
never := 1 if false
double(x) := x * 2
doubled := double(2)
obj.a := 1
shadowed := 1 if { true with input as {} }
windows := {t: [time.parse_rfc3339_ns(w) | some w in ws] | some t, ws in {"prod": ["2026-12-23T00:00:00Z"]}}
deny contains "x" if input.request.replicas > limits[input.target]
`
	dir := t.TempDir()
	if err := os.WriteFile(dir+"/p.rego", []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	e, err := Open(context.Background(), Options{Paths: []string{dir}})
	if err != nil {
		t.Fatal(err)
	}
	got := slices.Sorted(maps.Keys(e.cur.Load().consts))
	if want := []string{"limits", "n", "targets", "windows"}; !slices.Equal(got, want) {
		t.Errorf("constants %v, want %v", got, want)
	}
	if v := e.cur.Load().consts["n"]; v == nil || v.String() != "3" {
		t.Errorf("n = %v, want 3", v)
	}
	shipped, err := Open(context.Background(), Options{Paths: []string{"../../deploy/policies"}})
	if err != nil {
		t.Fatal(err)
	}
	got = slices.Sorted(maps.Keys(shipped.cur.Load().consts))
	if want := []string{"allowed_registries", "freeze_windows", "frozen_ns", "max_replicas", "prod_targets"}; !slices.Equal(got, want) {
		t.Errorf("shipped constants %v, want %v", got, want)
	}
}

// TestDecisionsKept: a deterministic bundle keeps the decision of a request
// shape whose decision does not depend on the time, evaluates the others
// every time, and keeps nothing when it reads the status or calls a
// nondeterministic builtin.
func TestDecisionsKept(t *testing.T) {
	ctx := context.Background()
	e, err := Open(ctx, Options{Paths: []string{"../../deploy/policies"}})
	if err != nil {
		t.Fatal(err)
	}
	ds := e.cur.Load().decisions
	if ds == nil {
		t.Fatal("the shipped policies keep no decisions")
	}
	in := func(target string, at time.Time) policy.Input {
		return policy.Input{Principal: policy.Principal{User: "alice", Role: "operator"}, Action: "scale", Target: target,
			Service: "web", Request: policy.Request{Replicas: 2}, Time: at}
	}
	frozen, open := time.Date(2026, 12, 24, 1, 0, 0, 0, time.UTC), time.Date(2026, 12, 5, 10, 0, 0, 0, time.UTC)
	for _, tc := range []struct {
		target string
		at     time.Time
		allow  bool
		timed  bool
	}{
		{"local", frozen, true, false}, {"local", open, true, false},
		{"prod", open, true, true}, {"prod", frozen, false, true}, {"prod", open, true, true},
	} {
		d, err := e.Evaluate(ctx, in(tc.target, tc.at))
		if err != nil {
			t.Fatal(err)
		}
		if d.Allow != tc.allow {
			t.Errorf("%s at %s: allow %v, want %v (%v)", tc.target, tc.at, d.Allow, tc.allow, d.Reasons)
		}
		shape, err := value(in(tc.target, tc.at), e.cur.Load().reads, false)
		if err != nil {
			t.Fatal(err)
		}
		if kept, ok := ds.lookup(shape); !ok || kept.timed != tc.timed {
			t.Errorf("%s: kept %+v (%v), want timed %v", tc.target, kept, ok, tc.timed)
		}
	}
	for _, src := range []string{
		`deny contains "late" if time.now_ns() > 0`,
		`deny contains "x" if { t := time.now_ns(); t > 0; input.action == "scale" }`,
		`deny contains "down" if input.status.phase == "Failed"`,
		`deny contains json.marshal(input) if true`,
	} {
		dir := t.TempDir()
		if err := os.WriteFile(dir+"/p.rego", []byte("package alphaswarm\n"+src+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		e, err := Open(ctx, Options{Paths: []string{dir}})
		if err != nil {
			t.Fatal(err)
		}
		if e.cur.Load().decisions != nil {
			t.Errorf("%s: decisions kept", src)
		}
	}
}

package control_test

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/policy/opa"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// policyEnv is a runtime over a SQLite ledger with the Rego policies in
// paths (none: no policy), on targets "local" and "prod" (memory
// providers).
type policyEnv struct {
	*env
	engine *opa.Engine
	prod   *providertest.Memory
}

func newPolicyEnv(t testing.TB, paths ...string) *policyEnv {
	t.Helper()
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	var engine *opa.Engine
	var evaluator policy.Evaluator
	if len(paths) > 0 {
		var err error
		if engine, err = opa.Open(context.Background(), opa.Options{Paths: paths, Logger: quiet}); err != nil {
			t.Fatal(err)
		}
		evaluator = engine
	}
	pe := newEvaluatorEnv(t, evaluator)
	pe.engine = engine
	return pe
}

// newEvaluatorEnv is newPolicyEnv's runtime with evaluator (nil: no
// policy).
func newEvaluatorEnv(t testing.TB, evaluator policy.Evaluator) *policyEnv {
	t.Helper()
	ctx := context.Background()
	led, err := sqlite.Open(ctx, filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	quiet := slog.New(slog.NewTextHandler(io.Discard, nil))
	mem, prod := providertest.NewMemory("local"), providertest.NewMemory("prod")
	creds := credentials.FromMap(map[string]string{"DB_PASSWORD": "hunter2-policy"})
	rt, err := control.New(ctx, control.Options{Ledger: led, Credentials: creds, Logger: quiet, Policy: evaluator,
		// The static admission limit is raised so that the policies' own
		// replica limits are what a test meets.
		Targets: []control.Target{{Name: "local", Provider: mem, Policy: provider.Policy{MaxReplicas: 100}},
			{Name: "prod", Provider: prod, Policy: provider.Policy{MaxReplicas: 100}}},
		RoleOn: func(p control.Principal, target string) string {
			if r := p.TargetRoles[target]; r != "" {
				return r
			}
			return p.Role
		}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return &policyEnv{env: &env{rt: rt, mem: mem, ledger: led, led: led}, prod: prod}
}

func writePolicy(t *testing.T, dir, name, src string, mtime time.Time) {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(p, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

const maxThree = `package alphaswarm
deny contains sprintf("at most 3 replicas, asked for %d", [input.request.replicas]) if {
	input.action in {"start", "scale"}
	input.request.replicas > 3
}
`

// TestPolicyDenyIsRecordedWithDigest: a deny is permission_denied with the
// policy's reasons, one rejected row carrying the bundle's digest and no
// provider call; an allowed request's intent and result carry the digest;
// the chain verifies.
func TestPolicyDenyIsRecordedWithDigest(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "max.rego", maxThree, time.Now().Add(-time.Hour))
	e := newPolicyEnv(t, dir)
	digest := e.engine.Digest()

	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 2)})
	_, err := e.do(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 5})
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "at most 3 replicas, asked for 5") ||
		!strings.Contains(err.Error(), digest) {
		t.Fatalf("scale to 5: %v; want permission_denied with the reason and the digest", err)
	}
	if st, err := e.mem.Status(context.Background(), "web"); err != nil || st.Replicas.Desired != 2 {
		t.Fatalf("after the denied scale the service has %d replicas (%v); the provider must not be called", st.Replicas.Desired, err)
	}
	e.mustDo(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 3})

	rows := e.records(t, ledger.Filter{Service: "web"})
	kinds := make([]string, 0, len(rows))
	for _, r := range rows {
		kinds = append(kinds, string(r.Kind)+"/"+string(r.Outcome))
		if r.PolicyDigest != digest {
			t.Errorf("row %d (%s %s) policy digest %q, want %q", r.Seq, r.Kind, r.Action, r.PolicyDigest, digest)
		}
		if r.Version != ledger.CurrentVersion {
			t.Errorf("row %d version %d", r.Seq, r.Version)
		}
	}
	if got := strings.Join(kinds, " "); got != "intent/ result/ok rejected/denied intent/ result/ok" {
		t.Fatalf("rows: %s", got)
	}
	if rej := rows[2]; rej.ErrorCode != string(workload.PermissionDenied) || !strings.Contains(rej.Message, "at most 3 replicas") {
		t.Errorf("rejected row: %+v", rej)
	}
	if res, err := e.ledger.Verify(context.Background()); err != nil || !res.OK {
		t.Fatalf("verify: %+v %v", res, err)
	}
}

// TestPolicyReloadChangesTheDigestOnRows: after the files change and the
// engine reloads, the next rows carry the new bundle's digest and are
// decided by it.
func TestPolicyReloadChangesTheDigestOnRows(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Now().Add(-time.Hour)
	writePolicy(t, dir, "max.rego", maxThree, t0)
	e := newPolicyEnv(t, dir)
	first := e.engine.Digest()
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	if _, err := e.do(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 4}); workload.CodeOf(err) != workload.PermissionDenied {
		t.Fatalf("scale to 4 under the first bundle: %v", err)
	}
	writePolicy(t, dir, "max.rego", strings.ReplaceAll(maxThree, "3", "9"), t0.Add(time.Second))
	if changed, err := e.engine.Reload(context.Background()); !changed || err != nil {
		t.Fatalf("reload: %v %v", changed, err)
	}
	second := e.engine.Digest()
	e.mustDo(t, control.Request{Action: workload.ActionScale, Service: "web", Replicas: 4})
	rows := e.records(t, ledger.Filter{Service: "web", Action: "scale"})
	want := []string{first, second, second}
	if len(rows) != len(want) || first == second {
		t.Fatalf("%d scale rows, digests %s %s", len(rows), first, second)
	}
	for i, r := range rows {
		if r.PolicyDigest != want[i] {
			t.Errorf("row %d (%s) digest %s, want %s", r.Seq, r.Kind, r.PolicyDigest, want[i])
		}
	}
}

// echoInput denies the service "probe" with the input it saw, so the test
// can read exactly what a policy is given.
const echoInput = `package alphaswarm
deny contains json.marshal(input) if input.service == "probe"
`

// TestPolicyInput: the policy sees the principal with its role on the
// target, the action, target, provider, service, the request with config
// and env keys but never their values, the service's current status and
// the time.
func TestPolicyInput(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "echo.rego", echoInput, time.Now().Add(-time.Hour))
	e := newPolicyEnv(t, dir)
	if _, err := e.prod.Start(context.Background(), workload.DeploymentSpec{Name: "probe", Image: "example/app:1", Replicas: 2}); err != nil {
		t.Fatal(err)
	}
	bob := control.Principal{User: "bob", Name: "Bob", Auth: "token:t1", Role: "viewer", TargetRoles: map[string]string{"prod": "operator"}}
	s := spec("probe", 4)
	s.Env = map[string]string{"MODE": "env-value-never-shown"}
	s.Config = map[string]string{"app.yaml": "config-value-never-shown"}
	cases := []struct {
		req   control.Request
		check func(t *testing.T, in policy.Input)
	}{
		{control.Request{Action: workload.ActionStart, Target: "prod", Service: "probe", Spec: s}, func(t *testing.T, in policy.Input) {
			r := in.Request
			if r.Spec == nil || r.Spec.Image != "example/app:1" || r.Replicas != 4 || r.Spec.Env != nil || r.Spec.Config != nil ||
				strings.Join(r.EnvKeys, ",") != "MODE" || strings.Join(r.ConfigKeys, ",") != "app.yaml" {
				t.Errorf("start request: %+v", r)
			}
		}},
		{control.Request{Action: workload.ActionScale, Target: "prod", Service: "probe", Replicas: 7}, func(t *testing.T, in policy.Input) {
			if in.Request.Replicas != 7 {
				t.Errorf("scale request: %+v", in.Request)
			}
		}},
		{control.Request{Action: workload.ActionApplyConfig, Target: "prod", Service: "probe", Config: map[string]string{"b": "config-value-never-shown", "a": "x"}},
			func(t *testing.T, in policy.Input) {
				if strings.Join(in.Request.ConfigKeys, ",") != "a,b" {
					t.Errorf("apply_config request: %+v", in.Request)
				}
			}},
		{control.Request{Action: workload.ActionExec, Target: "prod", Service: "probe", Exec: &provider.ExecRequest{Command: []string{"psql", "--password=hunter2-policy"}}},
			func(t *testing.T, in policy.Input) {
				if x := in.Request.Exec; x == nil || x.Argv0 != "psql" || x.Argc != 2 {
					t.Errorf("exec request: %+v", in.Request)
				}
			}},
	}
	for _, tc := range cases {
		t.Run(string(tc.req.Action), func(t *testing.T) {
			before := time.Now().UTC()
			tc.req.Principal = bob
			_, err := e.do(t, tc.req)
			if workload.CodeOf(err) != workload.PermissionDenied {
				t.Fatalf("%v", err)
			}
			msg := workload.AsError(err).Message
			for _, secret := range []string{"never-shown", "hunter2"} {
				if strings.Contains(msg, secret) {
					t.Fatalf("the policy input holds a value: %s", msg)
				}
			}
			i := strings.Index(msg, "{")
			if i < 0 {
				t.Fatalf("no input in the reason: %s", msg)
			}
			raw := msg[i:]
			in, err := workload.DecodeStrict[policy.Input]([]byte(raw), "input")
			if err != nil {
				t.Fatalf("input %s: %v", raw, err)
			}
			if in.Principal != (policy.Principal{User: "bob", Name: "Bob", Auth: "token:t1", Role: "operator"}) {
				t.Errorf("principal %+v, want bob with his role on prod", in.Principal)
			}
			if in.Action != string(tc.req.Action) || in.Target != "prod" || in.Provider != "memory" || in.Service != "probe" {
				t.Errorf("input %s", raw)
			}
			if in.Status == nil || in.Status.Replicas.Desired != 2 || in.Status.ID != "prod/probe" {
				t.Errorf("status %+v, want the running service's", in.Status)
			}
			if in.Time.Before(before.Add(-time.Second)) || in.Time.After(time.Now().Add(time.Second)) || in.Time.Location() != time.UTC {
				t.Errorf("time %v", in.Time)
			}
			tc.check(t, in)
		})
	}
	// A service that does not exist has a null status, not an error.
	_, err := e.do(t, control.Request{Action: workload.ActionStart, Target: "local", Service: "probe", Spec: spec("probe", 1)})
	var in map[string]any
	msg := workload.AsError(err).Message
	if json.Unmarshal([]byte(msg[strings.Index(msg, "{"):]), &in) != nil || in["status"] != nil || in["statusError"] != nil {
		t.Errorf("a new service's input: %s", msg)
	}
}

// TestShippedPoliciesThroughTheRuntime: the example policies of
// deploy/policies decide real requests — exec on prod only by admins,
// replicas capped, images only from the allowed registries — and allow
// what they do not cover.
func TestShippedPoliciesThroughTheRuntime(t *testing.T) {
	e := newPolicyEnv(t, "../deploy/policies")
	admin := control.Principal{User: "carol", Role: "admin"}
	ok := func(r control.Request) {
		t.Helper()
		if _, err := e.do(t, r); err != nil {
			t.Fatalf("%s %s/%s: %v", r.Action, r.Target, r.Service, err)
		}
	}
	denied := func(r control.Request, reason string) {
		t.Helper()
		if _, err := e.do(t, r); workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), reason) {
			t.Fatalf("%s %s/%s: %v, want permission_denied: %s", r.Action, r.Target, r.Service, err, reason)
		}
	}
	ok(control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)}) // local: any registry
	denied(control.Request{Action: workload.ActionStart, Target: "prod", Service: "web", Spec: spec("web", 1)}, "not from a registry allowed on target prod")
	good := spec("web", 2)
	good.Image = "registry.example.com/web:1"
	ok(control.Request{Action: workload.ActionStart, Target: "prod", Service: "web", Spec: good})
	denied(control.Request{Action: workload.ActionScale, Target: "prod", Service: "web", Replicas: 21}, "at most 20 replicas on target prod")
	exec := &provider.ExecRequest{Command: []string{"true"}}
	denied(control.Request{Action: workload.ActionExec, Target: "prod", Service: "web", Exec: exec}, "exec on target prod is for admins only (you are operator)")
	ok(control.Request{Principal: admin, Action: workload.ActionExec, Target: "prod", Service: "web", Exec: exec})
	ok(control.Request{Action: workload.ActionExec, Service: "web", Exec: exec})
}

// TestNoPolicyNoDigest: without a policy nothing changes and no row
// carries a digest.
func TestNoPolicyNoDigest(t *testing.T) {
	e := newEnv(t, nil, nil)
	for _, r := range actions("web") {
		e.mustDo(t, r)
	}
	for _, r := range e.records(t, ledger.Filter{}) {
		if r.PolicyDigest != "" {
			t.Errorf("row %d carries policy digest %q with no policy loaded", r.Seq, r.PolicyDigest)
		}
	}
}

package control_test

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
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

// TestDiffRefusals: Diff validates the spec as a start does (the same
// codes and field paths), names a configured target, needs an
// authenticated principal, and answers unsupported, with the reason, for a
// provider without provider.Differ (the in-memory one). None of it calls
// the provider's mutating side or writes a ledger row, and a halted target
// does not change the answer: Diff is a read.
func TestDiffRefusals(t *testing.T) {
	mem := providertest.NewMemory("local")
	e := newEnv(t, mem, nil)
	var calls atomic.Int32
	mem.Enter = func(context.Context, provider.Operation, string) error { calls.Add(1); return nil }
	viewer := control.Principal{User: "vic", Role: "viewer"}
	bad := *spec("web", -1)
	bad.Ports = []workload.Port{{Container: 80}, {Container: 0}}
	otherTarget := *spec("web", 1)
	otherTarget.Target = "prod"
	cases := []struct {
		name   string
		p      control.Principal
		target string
		spec   workload.DeploymentSpec
		code   workload.Code
		fields []string
		text   string // in the message
	}{
		{"bad spec", viewer, "local", bad, workload.InvalidArgument, []string{"replicas", "ports[1].container"}, ""},
		{"no name", viewer, "local", workload.DeploymentSpec{Image: "x/y:1", Replicas: 1}, workload.InvalidArgument, []string{"name", "service"}, ""},
		{"no image", viewer, "local", workload.DeploymentSpec{Name: "web", Replicas: 1}, workload.InvalidArgument, []string{"image"}, ""},
		{"spec names another target", viewer, "local", otherTarget, workload.InvalidArgument, []string{"target"}, ""},
		{"unknown target", viewer, "mars", *spec("web", 1), workload.NotFound, nil, `target "mars" is not configured`},
		{"bad target name", viewer, "Mars_1", *spec("web", 1), workload.InvalidArgument, []string{"target"}, ""},
		{"unauthenticated", control.Principal{}, "local", *spec("web", 1), workload.Unauthenticated, nil, ""},
		{"provider without Differ", viewer, "local", *spec("web", 1), workload.Unsupported, nil, "does not implement diff"},
	}
	admin := control.Principal{User: "root-admin", Role: "admin"}
	e.mustDo(t, control.Request{Principal: admin, Action: workload.ActionHalt, Target: "local", HaltOn: true})
	before := len(e.records(t, ledger.Filter{}))
	calls.Store(0)
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.rt.Diff(context.Background(), tc.p, tc.target, tc.spec, control.DiffOptions{})
			got := workload.AsError(err)
			if got == nil || got.Code != tc.code {
				t.Fatalf("Diff = %+v, %v; want %s", d, err, tc.code)
			}
			var paths []string
			for _, f := range got.Fields {
				paths = append(paths, f.Path)
			}
			for _, f := range tc.fields {
				if !slices.Contains(paths, f) {
					t.Errorf("fields %v lack %q", paths, f)
				}
			}
			if !strings.Contains(got.Message, tc.text) {
				t.Errorf("message %q lacks %q", got.Message, tc.text)
			}
			if tc.code == workload.Unsupported && got.Provider != "memory" {
				t.Errorf("unsupported names provider %q, want memory", got.Provider)
			}
		})
	}
	if n := calls.Load(); n != 0 {
		t.Errorf("the provider was entered %d times by diffs", n)
	}
	if after := len(e.records(t, ledger.Filter{})); after != before {
		t.Errorf("diffs wrote %d ledger rows; a diff is a read and writes none", after-before)
	}
}

// TestDiffRevisionRefusals: DiffRevision finds the recorded revision (a
// provider without Differ then answers unsupported: the revision's spec
// got as far as the provider), refuses a revision that does not exist
// (not_found), a negative one, and 0 when there is no revision before the
// current one (invalid_argument, field revision), and writes no ledger row.
func TestDiffRevisionRefusals(t *testing.T) {
	e := newEnv(t, nil, nil)
	e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	viewer := control.Principal{User: "vic", Role: "viewer"}
	before := len(e.records(t, ledger.Filter{}))
	for _, tc := range []struct {
		name            string
		p               control.Principal
		target, service string
		rev             int
		code            workload.Code
	}{
		{"recorded revision", viewer, "local", "web", 1, workload.Unsupported},
		{"no such revision", viewer, "local", "web", 7, workload.NotFound},
		{"unknown service", viewer, "local", "ghost", 1, workload.NotFound},
		{"unknown target", viewer, "mars", "web", 1, workload.NotFound},
		{"revision 0 with one revision", viewer, "local", "web", 0, workload.InvalidArgument},
		{"revision -1", viewer, "local", "web", -1, workload.InvalidArgument},
		{"unauthenticated", control.Principal{}, "local", "web", 1, workload.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.rt.DiffRevision(context.Background(), tc.p, tc.target, tc.service, tc.rev, control.DiffOptions{})
			if got := workload.CodeOf(err); got != tc.code {
				t.Fatalf("DiffRevision = %+v, %v; want %s", d, err, tc.code)
			}
			if tc.code == workload.InvalidArgument && workload.AsError(err).Fields[0].Path != "revision" {
				t.Errorf("fields %v, want revision", workload.AsError(err).Fields)
			}
		})
	}
	if after := len(e.records(t, ledger.Filter{})); after != before {
		t.Errorf("revision diffs wrote %d ledger rows", after-before)
	}
}

// newDiffEnv is a runtime over SQLite whose target "local" is a
// providertest.Differ (a Memory that previews) with the static policy pol
// and the admin's policy evaluator (nil: none).
func newDiffEnv(t testing.TB, pol provider.Policy, evaluator policy.Evaluator) (*env, *providertest.Differ) {
	t.Helper()
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "ledger.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	d := providertest.NewDiffer("local")
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: credentials.FromMap(nil), Policy: evaluator,
		Logger: slog.New(slog.DiscardHandler), Targets: []control.Target{{Name: "local", Provider: d, Policy: pol}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(rt.Close)
	return &env{rt: rt, mem: d.Memory, led: led, ledger: led}, d
}

// TestDiffRevisionZeroIsRollbackZero: ?revision=0 means what rollback's
// "to: 0" means, the revision before the current one, through the same
// lookup: the diff of revision 0 is the diff of that revision (and says
// which), a rollback to 0 then deploys exactly the spec that diff
// previewed, and with a single revision both refuse 0 on their field.
func TestDiffRevisionZeroIsRollbackZero(t *testing.T) {
	e, _ := newDiffEnv(t, provider.Policy{}, nil)
	ctx := context.Background()
	viewer := control.Principal{User: "vic", Role: "viewer"}
	deploy := func(image string, replicas int) {
		s := spec("web", replicas)
		s.Image = image
		e.mustDo(t, control.Request{Action: workload.ActionStart, Service: "web", Spec: s})
	}
	deploy("example/app:1", 1)
	// One revision: no revision before the current one, for either.
	_, derr := e.rt.DiffRevision(ctx, viewer, "local", "web", 0, control.DiffOptions{})
	_, rerr := e.do(t, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 0})
	for _, c := range []struct {
		what, field string
		err         error
	}{{"diff of revision 0", "revision", derr}, {"rollback to 0", "to", rerr}} {
		if got := workload.AsError(c.err); got == nil || got.Code != workload.InvalidArgument || len(got.Fields) != 1 ||
			got.Fields[0].Path != c.field || !strings.Contains(got.Fields[0].Message, "only revision 1") {
			t.Errorf("%s with one revision: %v, want invalid_argument on %s naming the only revision", c.what, c.err, c.field)
		}
	}

	deploy("example/app:2", 2) // revision 2
	for _, tc := range []struct {
		name     string
		ask      int
		revision int
		action   workload.DiffAction
		changes  []workload.Change
	}{
		{"0 is the one before the current", 0, 1, workload.DiffReplace, []workload.Change{
			{Path: "replicas", From: "2", To: "1"}, {Path: "image", From: "example/app:2", To: "example/app:1", Replaces: true}}},
		{"1 by number", 1, 1, workload.DiffReplace, []workload.Change{
			{Path: "replicas", From: "2", To: "1"}, {Path: "image", From: "example/app:2", To: "example/app:1", Replaces: true}}},
		{"the current one", 2, 2, workload.DiffNone, []workload.Change{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.rt.DiffRevision(ctx, viewer, "local", "web", tc.ask, control.DiffOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if d.Revision != tc.revision || d.Action != tc.action || !slices.Equal(d.Changes, tc.changes) {
				t.Errorf("DiffRevision(%d) = revision %d, %s %+v; want revision %d, %s %+v", tc.ask, d.Revision, d.Action, d.Changes, tc.revision, tc.action, tc.changes)
			}
		})
	}
	before, err := e.rt.DiffRevision(ctx, viewer, "local", "web", 0, control.DiffOptions{})
	if err != nil {
		t.Fatal(err)
	}
	res := e.mustDo(t, control.Request{Action: workload.ActionRollback, Service: "web", ToRevision: 0})
	if res.Revision != 3 || res.Status == nil || res.Status.Image != "example/app:1" || res.Status.Replicas.Desired != 1 {
		t.Fatalf("rollback to 0 = %+v, want revision 3 running example/app:1 ×1 (what the diff of 0 previewed: %+v)", res, before.Changes)
	}
	// Revision 1 (what the diff of 0 named) is now live: nothing to change.
	if d, err := e.rt.DiffRevision(ctx, viewer, "local", "web", before.Revision, control.DiffOptions{}); err != nil || d.Action != workload.DiffNone {
		t.Errorf("after the rollback, DiffRevision(%d) = %+v, %v; want none", before.Revision, d, err)
	}
	// And 0 now means revision 2, the one before the rollback's.
	if d, err := e.rt.DiffRevision(ctx, viewer, "local", "web", 0, control.DiffOptions{}); err != nil || d.Revision != 2 || d.Action != workload.DiffReplace {
		t.Errorf("after the rollback, DiffRevision(0) = %+v, %v; want revision 2, replace", d, err)
	}
}

// countingEvaluator counts the policy evaluations it passes on.
type countingEvaluator struct {
	policy.Evaluator
	n atomic.Int32
}

func (c *countingEvaluator) Evaluate(ctx context.Context, in policy.Input) (policy.Decision, error) {
	c.n.Add(1)
	return c.Evaluator.Evaluate(ctx, in)
}

// maxThreeStartRollback is the Rego policy of TestDiffAdmission: a start or
// rollback of more than 3 replicas is denied.
const maxThreeStartRollback = `package alphaswarm
deny contains sprintf("at most 3 replicas, asked for %d", [input.request.replicas]) if {
	input.action in {"start", "rollback"}
	input.request.replicas > 3
}
`

// TestDiffAdmission: a diff tells whether the previewed operation would be
// let through, by running its own admission checks (precheck) as a dry
// run: a spec outside the target's static policy (images, maxReplicas),
// one the Rego policy denies, and any spec on a halted target are refused
// with exactly the code, message and fields Do answers — while the diff
// itself is still computed — and an admitted one is allowed. A revision's
// diff judges the rollback: references that no longer resolve
// (provider.CheckRefs) and the current revision are refused as the
// rollback would be. Without DiffOptions.Admit (a caller whose role may
// not deploy) nothing is evaluated and the verdict is unchecked. No diff
// writes a ledger row or enters the provider's mutating side; each Do of
// a refused spec writes its one rejected row.
func TestDiffAdmission(t *testing.T) {
	dir := t.TempDir()
	writePolicy(t, dir, "max.rego", maxThreeStartRollback, time.Now().Add(-time.Hour))
	engine, err := opa.Open(context.Background(), opa.Options{Paths: []string{dir}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	eval := &countingEvaluator{Evaluator: engine}
	e, d := newDiffEnv(t, provider.Policy{Images: []string{"example/"}, MaxReplicas: 10}, eval)
	ctx := context.Background()
	op := control.Principal{User: "olga", Role: "operator"}
	admin := control.Principal{User: "root-admin", Role: "admin"}
	withImage := func(image string, replicas int) workload.DeploymentSpec {
		s := *spec("web", replicas)
		s.Image = image
		return s
	}
	e.mustDo(t, control.Request{Principal: op, Action: workload.ActionStart, Service: "web", Spec: spec("web", 1)})
	e.mustDo(t, control.Request{Principal: op, Action: workload.ActionScale, Service: "web", Replicas: 2}) // revision 2
	var entered atomic.Int32
	d.Enter = func(context.Context, provider.Operation, string) error { entered.Add(1); return nil }

	type verdict struct {
		v      workload.AdmissionVerdict
		code   workload.Code
		fields []string
		text   string // in the message
	}
	cases := []struct {
		name   string
		halt   bool
		spec   workload.DeploymentSpec
		admit  bool
		action workload.DiffAction
		want   verdict
	}{
		{"admitted", false, withImage("example/app:2", 2), true, workload.DiffReplace, verdict{v: workload.AdmissionAllowed}},
		{"image outside the target policy", false, withImage("registry.evil.example/app:2", 2), true, workload.DiffReplace,
			verdict{workload.AdmissionRefused, workload.PermissionDenied, []string{"image"}, "rule images"}},
		{"more replicas than the target admits", false, withImage("example/app:1", 12), true, workload.DiffUpdate,
			verdict{workload.AdmissionRefused, workload.PermissionDenied, []string{"replicas"}, "rule maxReplicas"}},
		{"denied by the Rego policy", false, withImage("example/app:1", 5), true, workload.DiffUpdate,
			verdict{workload.AdmissionRefused, workload.PermissionDenied, nil, "denied by policy " + engine.Digest() + ": at most 3 replicas, asked for 5"}},
		{"halted target", true, withImage("example/app:1", 2), true, workload.DiffNone,
			verdict{workload.AdmissionRefused, workload.Halted, nil, "halted for target local"}},
		{"not admitted to check", false, withImage("registry.evil.example/app:2", 5), false, workload.DiffReplace,
			verdict{workload.AdmissionUnchecked, "", nil, "not checked"}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if tc.halt {
				e.mustDo(t, control.Request{Principal: admin, Action: workload.ActionHalt, Target: "local", HaltOn: true})
				defer e.mustDo(t, control.Request{Principal: admin, Action: workload.ActionHalt, Target: "local", HaltOn: false})
			}
			rows, evals := len(e.records(t, ledger.Filter{})), eval.n.Load()
			got, err := e.rt.Diff(ctx, op, "local", tc.spec, control.DiffOptions{Admit: tc.admit})
			if err != nil {
				t.Fatalf("Diff: %v (a refusal belongs in Admission, not in the error)", err)
			}
			if n := len(e.records(t, ledger.Filter{})); n != rows {
				t.Errorf("the diff wrote %d ledger rows", n-rows)
			}
			if got.Action != tc.action {
				t.Errorf("diff action %s, want %s (%+v)", got.Action, tc.action, got.Changes)
			}
			a := got.Admission
			if a == nil || a.Verdict != tc.want.v || a.Code != tc.want.code || a.Action != workload.ActionStart || !strings.Contains(a.Message, tc.want.text) {
				t.Fatalf("admission %+v, want %s %s with %q (action start)", a, tc.want.v, tc.want.code, tc.want.text)
			}
			if got.Refused() != (tc.want.v == workload.AdmissionRefused) {
				t.Errorf("Refused() = %v", got.Refused())
			}
			var paths []string
			for _, f := range a.Fields {
				paths = append(paths, f.Path)
			}
			if !slices.Equal(paths, tc.want.fields) {
				t.Errorf("fields %v, want %v", paths, tc.want.fields)
			}
			if !tc.admit {
				if n := eval.n.Load(); n != evals {
					t.Errorf("an unchecked diff evaluated the policy %d times", n-evals)
				}
				return
			}
			if tc.want.v != workload.AdmissionRefused {
				return
			}
			// The operation itself answers what the diff said, and records it.
			s := tc.spec
			_, derr := e.do(t, control.Request{Principal: op, Action: workload.ActionStart, Service: "web", Spec: &s})
			de := workload.AsError(derr)
			if de == nil || de.Code != a.Code || de.Message != a.Message || !slices.Equal(de.Fields, a.Fields) {
				t.Errorf("Do answered %+v; the diff said %+v", de, a)
			}
			if n := len(e.records(t, ledger.Filter{})); n != rows+1 {
				t.Errorf("Do of the refused spec wrote %d rows, want its one rejected row", n-rows)
			}
		})
	}

	// A revision's diff judges the rollback to it.
	d.Refs = func(s workload.DeploymentSpec) error {
		if s.Replicas == 1 {
			return &workload.Error{Code: workload.NotFound, Message: "image example/app:1 is gone", Fields: []workload.FieldError{{Path: "image", Message: "not found"}}}
		}
		return nil
	}
	for _, tc := range []struct {
		name string
		rev  int
		want verdict
	}{
		{"references gone", 1, verdict{workload.AdmissionRefused, workload.NotFound, []string{"image"}, "revision 1 of local/web cannot be restored: image example/app:1 is gone"}},
		{"the current revision", 2, verdict{workload.AdmissionRefused, workload.InvalidArgument, []string{"to"}, "revision 2 is the current revision"}},
	} {
		t.Run("revision: "+tc.name, func(t *testing.T) {
			rows := len(e.records(t, ledger.Filter{}))
			got, err := e.rt.DiffRevision(ctx, op, "local", "web", tc.rev, control.DiffOptions{Admit: true})
			if err != nil {
				t.Fatal(err)
			}
			a := got.Admission
			if a == nil || a.Verdict != tc.want.v || a.Code != tc.want.code || a.Action != workload.ActionRollback || !strings.Contains(a.Message, tc.want.text) ||
				len(a.Fields) != 1 || a.Fields[0].Path != tc.want.fields[0] {
				t.Fatalf("admission %+v, want %s %s on %v with %q (action rollback)", a, tc.want.v, tc.want.code, tc.want.fields, tc.want.text)
			}
			_, derr := e.do(t, control.Request{Principal: op, Action: workload.ActionRollback, Service: "web", ToRevision: tc.rev})
			if de := workload.AsError(derr); de == nil || de.Code != a.Code || de.Message != a.Message {
				t.Errorf("the rollback answered %+v; the diff said %+v", de, a)
			}
			if n := len(e.records(t, ledger.Filter{})); n != rows+1 {
				t.Errorf("diff and refused rollback wrote %d rows, want the rollback's one", n-rows)
			}
		})
	}
	d.Refs = nil
	if got, err := e.rt.DiffRevision(ctx, op, "local", "web", 0, control.DiffOptions{Admit: true}); err != nil || got.Revision != 1 ||
		got.Admission == nil || got.Admission.Verdict != workload.AdmissionAllowed {
		t.Errorf("DiffRevision(0) with resolving references = %+v, %v; want revision 1 allowed", got, err)
	}
	if n := entered.Load(); n != 0 {
		t.Errorf("the provider's mutating side was entered %d times", n)
	}
}

package control_test

import (
	"context"
	"slices"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/ledger"
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
			d, err := e.rt.Diff(context.Background(), tc.p, tc.target, tc.spec)
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
// (not_found) or is not a number ≥ 1 (invalid_argument, field revision),
// and writes no ledger row.
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
		{"revision 0", viewer, "local", "web", 0, workload.InvalidArgument},
		{"unauthenticated", control.Principal{}, "local", "web", 1, workload.Unauthenticated},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, err := e.rt.DiffRevision(context.Background(), tc.p, tc.target, tc.service, tc.rev)
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

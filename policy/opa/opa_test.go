package opa_test

import (
	"context"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/policy/opa"
	"github.com/prometheus/client_golang/prometheus"
)

var quiet = slog.New(slog.NewTextHandler(io.Discard, nil))

const examplesDir = "../../deploy/policies"

// TestShippedPoliciesPassTheirExamples runs deploy/policies/examples.yaml
// against the policies shipped beside it, as `alphaswarm policy test` does.
func TestShippedPoliciesPassTheirExamples(t *testing.T) {
	e, err := opa.Open(context.Background(), opa.Options{Paths: []string{examplesDir}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(filepath.Join(examplesDir, "examples.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	ex, err := policy.DecodeExamples(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(ex.Examples) < 10 {
		t.Fatalf("only %d examples", len(ex.Examples))
	}
	res, err := policy.Test(context.Background(), e, ex)
	if err != nil {
		t.Fatal(err)
	}
	denied := 0
	for _, r := range res {
		if r.Mismatch != "" {
			t.Errorf("%s: %s", r.Name, r.Mismatch)
		}
		if !r.Decision.Allow {
			denied++
		}
		if r.Decision.Digest != e.Digest() || !strings.HasPrefix(e.Digest(), "sha256:") {
			t.Errorf("%s: digest %q, bundle %q", r.Name, r.Decision.Digest, e.Digest())
		}
	}
	if denied == 0 || denied == len(res) {
		t.Errorf("%d of %d examples denied; the file must exercise both", denied, len(res))
	}
}

// TestExampleMismatchIsReported: an example expecting the wrong decision,
// or a reason no deny gives, is a mismatch.
func TestExampleMismatchIsReported(t *testing.T) {
	e, err := opa.Open(context.Background(), opa.Options{Paths: []string{examplesDir}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	ex, err := policy.DecodeExamples([]byte(`
examples:
  - name: wrong decision
    allow: true
    input: {principal: {user: a, role: admin}, action: scale, target: prod, request: {replicas: 99}, time: "2026-12-05T10:00:00Z"}
  - name: wrong reason
    allow: false
    reasons: [no such reason]
    input: {principal: {user: a, role: admin}, action: scale, target: prod, request: {replicas: 99}, time: "2026-12-05T10:00:00Z"}
  - name: right
    allow: false
    reasons: [at most 20]
    input: {principal: {user: a, role: admin}, action: scale, target: prod, request: {replicas: 99}, time: "2026-12-05T10:00:00Z"}
`))
	if err != nil {
		t.Fatal(err)
	}
	res, err := policy.Test(context.Background(), e, ex)
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"expected allow, got deny: at most 20 replicas on target prod, asked for 99", `no reason contains "no such reason"`, ""}
	for i, r := range res {
		if !strings.HasPrefix(r.Mismatch, want[i]) || (want[i] == "") != (r.Mismatch == "") {
			t.Errorf("%s: mismatch %q, want %q", r.Name, r.Mismatch, want[i])
		}
	}
}

func write(t *testing.T, path, src string, mtime time.Time) {
	t.Helper()
	if err := os.WriteFile(path, []byte(src), 0o600); err != nil {
		t.Fatal(err)
	}
	// Distinct mtimes, so that a rewrite within one clock tick is noticed.
	if err := os.Chtimes(path, mtime, mtime); err != nil {
		t.Fatal(err)
	}
}

const limit5 = `package alphaswarm
deny contains "at most 5" if input.request.replicas > 5
`

// TestReload: a changed file is a new bundle with a new digest; a broken
// one keeps the last good bundle in force and is counted; fixing it loads.
func TestReload(t *testing.T) {
	ctx := context.Background()
	dir := t.TempDir()
	f := filepath.Join(dir, "limit.rego")
	t0 := time.Now().Add(-time.Hour)
	write(t, f, limit5, t0)
	write(t, filepath.Join(dir, "README.md"), "not a policy", t0) // ignored
	e, err := opa.Open(ctx, opa.Options{Paths: []string{dir}, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	in := policy.Input{Action: "scale", Request: policy.Request{Replicas: 6}, Time: time.Now()}
	decide := func() policy.Decision {
		t.Helper()
		d, err := e.Evaluate(ctx, in)
		if err != nil {
			t.Fatal(err)
		}
		return d
	}
	d1 := decide()
	if d1.Allow || len(d1.Reasons) != 1 || d1.Reasons[0] != "at most 5" {
		t.Fatalf("first bundle: %+v", d1)
	}
	if changed, err := e.Reload(ctx); changed || err != nil {
		t.Fatalf("unchanged files: reload %v %v", changed, err)
	}

	write(t, f, strings.ReplaceAll(limit5, "5", "10"), t0.Add(time.Second))
	if changed, err := e.Reload(ctx); !changed || err != nil {
		t.Fatalf("changed file: reload %v %v", changed, err)
	}
	d2 := decide()
	if !d2.Allow || d2.Digest == d1.Digest {
		t.Fatalf("second bundle: %+v (first digest %s)", d2, d1.Digest)
	}

	write(t, f, "package alphaswarm\ndeny contains if {", t0.Add(2*time.Second))
	if changed, err := e.Reload(ctx); changed || err == nil {
		t.Fatalf("broken file: reload %v %v", changed, err)
	}
	if d := decide(); !d.Allow || d.Digest != d2.Digest {
		t.Fatalf("after a broken reload: %+v, want the second bundle in force", d)
	}
	if n := metric(t, e, "alphaswarm_policy_reload_errors_total"); n != 1 {
		t.Errorf("reload errors = %v, want 1", n)
	}

	write(t, f, limit5, t0.Add(3*time.Second))
	if changed, err := e.Reload(ctx); !changed || err != nil {
		t.Fatalf("fixed file: reload %v %v", changed, err)
	}
	if d := decide(); d.Allow || d.Digest != d1.Digest {
		t.Fatalf("fixed bundle: %+v, want the first digest %s again (the digest is the contents')", d, d1.Digest)
	}
}

// TestRunPicksUpChanges: Run notices a changed file on its own.
func TestRunPicksUpChanges(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	dir := t.TempDir()
	f := filepath.Join(dir, "limit.rego")
	write(t, f, limit5, time.Now().Add(-time.Hour))
	e, err := opa.Open(ctx, opa.Options{Paths: []string{f}, ReloadInterval: 10 * time.Millisecond, Logger: quiet})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { e.Run(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	first := e.Digest()
	write(t, f, strings.ReplaceAll(limit5, "5", "7"), time.Now())
	deadline := time.Now().Add(5 * time.Second)
	for e.Digest() == first {
		if time.Now().After(deadline) {
			t.Fatal("Run did not reload the changed file within 5s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestOpenRefuses(t *testing.T) {
	dir := t.TempDir()
	other := filepath.Join(dir, "other.rego")
	write(t, other, "package other\ndeny contains \"x\"\n", time.Now())
	empty := t.TempDir()
	for _, tc := range []struct {
		name  string
		paths []string
		want  string
	}{
		{"no paths", nil, "no paths"},
		{"missing", []string{filepath.Join(dir, "nope")}, "no such file"},
		{"empty dir", []string{empty}, "no .rego files"},
		{"wrong package", []string{other}, "must be in package alphaswarm"},
	} {
		_, err := opa.Open(context.Background(), opa.Options{Paths: tc.paths, Logger: quiet})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: err %v, want %q", tc.name, err, tc.want)
		}
	}
}

// metric reads one counter or gauge of the engine's collector.
func metric(t *testing.T, e *opa.Engine, name string) float64 {
	t.Helper()
	reg := prometheus.NewRegistry()
	reg.MustRegister(e.Collector())
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() == name && len(mf.GetMetric()) == 1 {
			m := mf.GetMetric()[0]
			return m.GetCounter().GetValue() + m.GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}

// TestNeedsStatus: only a bundle that reads input.status (or input whole)
// makes the caller ask the provider for the status.
func TestNeedsStatus(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{limit5, false},
		{"package alphaswarm\ndeny contains \"down\" if input.status.phase == \"Failed\"\n", true},
		{"package alphaswarm\ndeny contains json.marshal(input) if input.service == \"x\"\n", true},
		{"package alphaswarm\ndeny contains \"x\" if { s := input.status; s.replicas.desired > 3 }\n", true},
	} {
		dir := t.TempDir()
		write(t, filepath.Join(dir, "p.rego"), tc.src, time.Now())
		e, err := opa.Open(context.Background(), opa.Options{Paths: []string{dir}, Logger: quiet})
		if err != nil {
			t.Fatal(err)
		}
		if e.NeedsStatus() != tc.want {
			t.Errorf("%s: NeedsStatus %v, want %v", tc.src, e.NeedsStatus(), tc.want)
		}
	}
	e, err := opa.Open(context.Background(), opa.Options{Paths: []string{examplesDir}, Logger: quiet})
	if err != nil || e.NeedsStatus() {
		t.Errorf("the shipped policies need no status: %v %v", e.NeedsStatus(), err)
	}
}

// BenchmarkEvaluate is one decision of the shipped policies, per request
// shape: what the runtime pays per request with them loaded.
func BenchmarkEvaluate(b *testing.B) {
	e, err := opa.Open(context.Background(), opa.Options{Paths: []string{examplesDir}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	trivial, err := opa.Open(context.Background(), opa.Options{Paths: []string{"testdata/trivial"}, Logger: quiet})
	if err != nil {
		b.Fatal(err)
	}
	at := time.Date(2026, 12, 24, 10, 0, 0, 0, time.UTC)
	scale := policy.Input{Principal: policy.Principal{User: "alice", Role: "operator"}, Action: "scale", Target: "local",
		Service: "web", Request: policy.Request{Replicas: 2}, Time: at}
	b.Run("trivial bundle", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := trivial.Evaluate(context.Background(), scale); err != nil {
				b.Fatal(err)
			}
		}
	})
	for name, in := range map[string]policy.Input{
		"scale local": scale,
		"scale prod frozen": {Principal: policy.Principal{User: "alice", Role: "operator"}, Action: "scale", Target: "prod",
			Service: "web", Request: policy.Request{Replicas: 2}, Time: at},
	} {
		b.Run(name, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if _, err := e.Evaluate(context.Background(), in); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}

package provider_test

import (
	"context"
	"encoding/json"
	"errors"
	"iter"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// minimal implements only the required interface.
type minimal struct{}

func (minimal) Start(context.Context, workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	return workload.DeploymentStatus{}, nil
}
func (minimal) Stop(context.Context, string) (workload.DeploymentStatus, error) {
	return workload.DeploymentStatus{}, nil
}
func (minimal) Scale(context.Context, string, int) (workload.DeploymentStatus, error) {
	return workload.DeploymentStatus{}, nil
}
func (minimal) Status(context.Context, string) (workload.DeploymentStatus, error) {
	return workload.DeploymentStatus{}, nil
}
func (minimal) ApplyConfig(context.Context, string, map[string]string) error { return nil }
func (minimal) StreamMetrics(context.Context, string) iter.Seq2[workload.MetricSample, error] {
	return func(func(workload.MetricSample, error) bool) {}
}
func (minimal) ProviderName() string { return "minimal" }

// explained implements Execer but declines it.
type explained struct{ minimal }

func (explained) Exec(context.Context, string, provider.ExecRequest) (provider.ExecResult, error) {
	return provider.ExecResult{}, nil
}
func (explained) UnsupportedReason(op provider.Operation) string {
	if op == provider.OpExec {
		return "Cloud Run has no exec"
	}
	return ""
}

// explainsMissing does not implement Restarter and says why.
type explainsMissing struct{ minimal }

func (explainsMissing) UnsupportedReason(op provider.Operation) string {
	if op == provider.OpRestart {
		return "Cloud Run rolls a new revision instead"
	}
	return ""
}

func TestRegistry(t *testing.T) {
	type opts struct {
		Region string `json:"region"`
	}
	provider.Register("test-registry", func(_ context.Context, cfg provider.TargetConfig, _ *credentials.Resolver) (provider.Provider, error) {
		var o opts
		if err := cfg.DecodeOptions(&o); err != nil {
			return nil, err
		}
		return minimal{}, nil
	})
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "t1", Provider: "test-registry",
		Options: map[string]json.RawMessage{"region": json.RawMessage(`"eu"`)}}, credentials.FromMap(nil))
	if err != nil || p == nil {
		t.Fatalf("Open: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "t1", Provider: "test-registry",
		Options: map[string]json.RawMessage{"regoin": json.RawMessage(`"eu"`)}}, nil)
	if e := workload.AsError(err); e == nil || e.Code != workload.InvalidArgument || e.Fields[0].Path != "targets.t1.options.regoin" {
		t.Fatalf("unknown option: %v", err)
	}
	// A wrongly typed option is named by its path, in the words the spec
	// and the config file use for the same mistake.
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "t1", Provider: "test-registry",
		Options: map[string]json.RawMessage{"region": json.RawMessage(`3`)}}, nil)
	if e := workload.AsError(err); e == nil || len(e.Fields) != 1 ||
		e.Fields[0] != (workload.FieldError{Path: "targets.t1.options.region", Message: "must be a string, not number"}) {
		t.Fatalf("wrongly typed option: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "t1", Provider: "nope"}, nil)
	if err == nil || !strings.Contains(err.Error(), "test-registry") || !strings.Contains(err.Error(), "imported") {
		t.Fatalf("unknown provider error should list registered ones: %v", err)
	}
	_, err = provider.Open(context.Background(), provider.TargetConfig{Name: "Bad Name", Provider: "test-registry"}, nil)
	if e := workload.AsError(err); e == nil || len(e.Fields) != 1 || e.Fields[0].Path != "targets.name" ||
		e.Fields[0].Message != workload.ValidateName("Bad Name") {
		t.Fatalf("bad target name: %v", err)
	}
	mustPanic(t, "duplicate", func() {
		provider.Register("test-registry", func(context.Context, provider.TargetConfig, *credentials.Resolver) (provider.Provider, error) {
			return nil, nil
		})
	})
	mustPanic(t, "nil", func() { provider.Register("test-nil", nil) })
}

func mustPanic(t *testing.T, name string, f func()) {
	t.Helper()
	defer func() {
		if recover() == nil {
			t.Errorf("%s: no panic", name)
		}
	}()
	f()
}

func TestCapabilities(t *testing.T) {
	caps := provider.Capabilities(minimal{})
	if len(caps) != 9 {
		t.Fatalf("%d capabilities, want 9", len(caps))
	}
	for _, c := range caps {
		optional := c.Op == provider.OpRestart || c.Op == provider.OpExec || c.Op == provider.OpLogs
		if c.Supported == optional {
			t.Errorf("%s supported=%v", c.Op, c.Supported)
		}
		if !c.Supported && !strings.Contains(c.Reason, "minimal") {
			t.Errorf("%s reason %q", c.Op, c.Reason)
		}
	}
	for _, c := range provider.Capabilities(explained{}) {
		if c.Op == provider.OpExec && (c.Supported || c.Reason != "Cloud Run has no exec") {
			t.Errorf("explained exec: %+v", c)
		}
	}
	_, err := provider.Exec(context.Background(), explained{}, "web", provider.ExecRequest{Command: []string{"sh"}})
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "Cloud Run has no exec") {
		t.Fatalf("Exec on declined provider: %v", err)
	}
	// An Explainer explains an interface the provider lacks too; without
	// a reason the generic one stays.
	for _, c := range provider.Capabilities(explainsMissing{}) {
		switch c.Op {
		case provider.OpRestart:
			if c.Supported || c.Reason != "Cloud Run rolls a new revision instead" {
				t.Errorf("explained missing restart: %+v", c)
			}
		case provider.OpExec, provider.OpLogs:
			if c.Supported || !strings.Contains(c.Reason, "does not implement") {
				t.Errorf("unexplained missing %s: %+v", c.Op, c)
			}
		default:
			if !c.Supported {
				t.Errorf("%s: %+v", c.Op, c)
			}
		}
	}
	_, err = provider.Restart(context.Background(), explainsMissing{}, "web")
	if !errors.Is(err, errors.ErrUnsupported) || !strings.Contains(err.Error(), "Cloud Run rolls a new revision instead") {
		t.Fatalf("Restart on a provider explaining its missing Restarter: %v", err)
	}
	_, err = provider.Restart(context.Background(), minimal{}, "web")
	if workload.CodeOf(err) != workload.Unsupported {
		t.Fatalf("Restart: %v", err)
	}
	for _, err := range provider.Logs(context.Background(), minimal{}, "web", provider.LogOptions{}) {
		if workload.CodeOf(err) != workload.Unsupported {
			t.Fatalf("Logs: %v", err)
		}
	}
}

func TestNothingChanged(t *testing.T) {
	for code, want := range map[workload.Code]bool{workload.InvalidArgument: true, workload.NotFound: true,
		workload.PermissionDenied: true, workload.Unsupported: true, workload.RateLimited: true,
		workload.Timeout: false, workload.Unavailable: false, workload.ProviderError: false, workload.Conflict: false} {
		if got := provider.NothingChanged(&workload.Error{Code: code}); got != want {
			t.Errorf("%s: %v", code, got)
		}
	}
	if provider.NothingChanged(nil) {
		t.Error("nil error: nothing changed?")
	}
}

func TestAfterChange(t *testing.T) {
	refused := workload.Errorf(workload.NotFound, "no such image")
	err := provider.AfterChange("docker", refused, "replica 0 replaced")
	e := workload.AsError(err)
	if e.Code != workload.ProviderError || e.Provider != "docker" || !errors.Is(err, refused) ||
		!strings.Contains(e.Message, "no such image") || !strings.Contains(e.Message, "replica 0 replaced") {
		t.Fatalf("AfterChange = %+v", e)
	}
	if provider.NothingChanged(err) {
		t.Fatal("after a change the error still promises nothing changed")
	}
	timeout := workload.Errorf(workload.Timeout, "slow")
	if got := provider.AfterChange("docker", timeout, ""); got != error(timeout) {
		t.Fatalf("a code that promises nothing was rewritten: %v", got)
	}
	if provider.AfterChange("docker", nil, "") != nil {
		t.Fatal("nil became an error")
	}
}

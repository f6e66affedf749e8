package docker

import (
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

// TestInstanceScoping: two controllers on one Engine, with the same target
// name, neither see nor change each other's services; a controller that
// names the other's instance shares them deliberately; containers without
// an instance label (created before scoping) are left alone.
func TestInstanceScoping(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	ctx := testkit.Context(t, 3*time.Minute)
	open := func(instance string, opts map[string]any) *Provider {
		if opts == nil {
			opts = map[string]any{"stopTimeout": "2s", "pull": "never"}
		}
		return openProviderConfig(t, provider.TargetConfig{Name: testTarget, Provider: Name, Instance: instance}, opts, credentials.FromEnv())
	}
	instA, instB := "ia"+randHex(3), "ib"+randHex(3)
	a := open(instA, nil)
	b := open(instB, nil)
	shared := open(instB, map[string]any{"stopTimeout": "2s", "pull": "never", "instance": instA}) // the option wins
	legacy := open("", nil)

	name := uniqueName("inst")
	cleanupService(t, a, name)
	if _, err := a.Start(ctx, testSpec(name, 1, false)); err != nil {
		t.Fatal(err)
	}
	ids, _ := runningIDs(ctx, name)
	if len(ids) != 1 {
		t.Fatalf("running %v", ids)
	}
	if r, _ := rawCli.ContainerInspect(ctx, ids[0], client.ContainerInspectOptions{}); r.Container.Config.Labels[labelInstance] != instA ||
		!strings.HasPrefix(strings.TrimPrefix(r.Container.Name, "/"), "as-"+instA+"-"+testTarget+"-") {
		t.Fatalf("replica %s labels %v: want %s=%s and the instance in its name", r.Container.Name, r.Container.Config.Labels, labelInstance, instA)
	}

	for _, other := range []struct {
		name string
		p    *Provider
	}{{"other instance", b}, {"unscoped", legacy}} {
		t.Run(other.name, func(t *testing.T) {
			p := other.p
			if err := p.cache.waitReady(ctx); err != nil {
				t.Fatal(err)
			}
			list, err := p.List(ctx)
			if err != nil {
				t.Fatal(err)
			}
			if slices.ContainsFunc(list, func(s workload.DeploymentStatus) bool { return s.Name == name }) {
				t.Errorf("List shows the other controller's service %s", name)
			}
			if _, err := p.Status(ctx, name); workload.CodeOf(err) != workload.NotFound {
				t.Errorf("Status: %v, want not_found", err)
			}
			if _, err := p.Scale(ctx, name, 3); workload.CodeOf(err) != workload.NotFound {
				t.Errorf("Scale: %v, want not_found", err)
			}
			if _, err := p.Restart(ctx, name); workload.CodeOf(err) != workload.NotFound {
				t.Errorf("Restart: %v, want not_found", err)
			}
			if _, err := p.Exec(ctx, name, provider.ExecRequest{Command: []string{"/workload", "env"}}); workload.CodeOf(err) != workload.NotFound {
				t.Errorf("Exec: %v, want not_found", err)
			}
			if _, err := p.Stop(ctx, name); err != nil && workload.CodeOf(err) != workload.NotFound {
				t.Errorf("Stop: %v", err)
			}
			if now, _ := runningIDs(ctx, name); !slices.Equal(now, ids) {
				t.Fatalf("the other controller's operations changed %s: %v -> %v", name, ids, now)
			}
		})
	}

	// Sharing on purpose: the same instance sees and operates the service.
	if err := shared.cache.waitReady(ctx); err != nil {
		t.Fatal(err)
	}
	st, err := shared.Status(ctx, name)
	if err != nil || st.Replicas.Ready != 1 {
		t.Fatalf("shared Status: %+v %v", st, err)
	}
	if st, err := shared.Scale(ctx, name, 2); err != nil || st.Replicas.Ready != 2 {
		t.Fatalf("shared Scale: %+v %v", st, err)
	}

	// A container of the target without an instance label (made by an
	// older controller) is not the scoped controller's.
	old := uniqueName("old")
	cleanupService(t, legacy, old)
	if _, err := legacy.Start(ctx, testSpec(old, 1, false)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 10*time.Second, "legacy service listed by the unscoped provider", func() (bool, string) {
		_, err := legacy.Status(ctx, old)
		return err == nil, ""
	})
	if _, err := a.Status(ctx, old); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("scoped Status of an unlabelled service: %v, want not_found", err)
	}
}

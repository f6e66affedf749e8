package docker

import (
	"context"
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(provider.Providers(), Name) {
		t.Fatalf("providers %v lack %q", provider.Providers(), Name)
	}
	// The factory never contacts the Engine, and reads DOCKER_HOST from the
	// resolver it is given, not from the process environment.
	creds := credentials.FromMap(map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
	pr, err := provider.Open(context.Background(), provider.TargetConfig{Name: "local", Provider: Name}, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.(*Provider).Close()
	if got := pr.(*Provider).eng.DaemonHost(); got != "unix:///nonexistent/docker.sock" {
		t.Fatalf("daemon host = %q, want the resolver's DOCKER_HOST", got)
	}
	for _, c := range provider.Capabilities(pr) {
		if !c.Supported {
			t.Errorf("capability %s unsupported: %s", c.Op, c.Reason)
		}
	}
}

func TestOptions(t *testing.T) {
	open := func(opts string) error {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(opts), &m); err != nil {
			t.Fatal(err)
		}
		creds := credentials.FromMap(map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
		pr, err := Open(context.Background(), provider.TargetConfig{Name: "local", Provider: Name, Options: m}, creds)
		if err == nil {
			pr.(*Provider).Close()
		}
		return err
	}
	for _, ok := range []string{`{}`, `{"stopTimeout":"3s","networkPrefix":"net-","pull":"always","restartPolicy":"on-failure","composeCommand":["docker","compose"]}`} {
		if err := open(ok); err != nil {
			t.Errorf("options %s: %v", ok, err)
		}
	}
	for _, bad := range []string{`{"stopTimout":"3s"}`, `{"pull":"sometimes"}`, `{"namePrefix":"Bad Prefix"}`, `{"configDir":"relative"}`, `{"stopTimeout":"-1s"}`} {
		err := open(bad)
		if workload.CodeOf(err) != workload.InvalidArgument {
			t.Errorf("options %s: error %v, want invalid_argument", bad, err)
		}
	}
}

// TestNegotiatesAPIVersion: the client settles on the Engine's API version
// (1.41 for Debian's Docker 20.10) instead of failing on its newer default.
func TestNegotiatesAPIVersion(t *testing.T) {
	requireDocker(t)
	p := openProvider(t, nil)
	ctx := testkit.Context(t, 10*time.Second)
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	sv, err := rawCli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := p.eng.(*client.Client).ClientVersion()
	want := sv.APIVersion
	if versions.GreaterThan(want, client.MaxAPIVersion) {
		want = client.MaxAPIVersion
	}
	if got != want {
		t.Fatalf("negotiated API %s; the Engine speaks %s", got, sv.APIVersion)
	}
	t.Logf("Engine %s speaks API %s (min %s); the provider negotiated %s", sv.Version, sv.APIVersion, sv.MinAPIVersion, got)
}

// TestEngineUnreachable points DOCKER_HOST at a dead socket: every
// operation answers Unavailable, quickly.
func TestEngineUnreachable(t *testing.T) {
	for _, host := range []string{"unix:///tmp/alphaswarm-dead-" + randHex(4) + ".sock", "tcp://127.0.0.1:1"} {
		t.Run(strings.SplitN(host, ":", 2)[0], func(t *testing.T) {
			creds := credentials.FromMap(map[string]string{"DOCKER_HOST": host})
			pr, err := provider.Open(context.Background(), provider.TargetConfig{Name: "local", Provider: Name}, creds)
			if err != nil {
				t.Fatalf("Open must not contact the Engine: %v", err)
			}
			p := pr.(*Provider)
			defer p.Close()
			ctx := testkit.Context(t, 20*time.Second)
			began := time.Now()
			want := func(op string, err error) {
				t.Helper()
				if workload.CodeOf(err) != workload.Unavailable {
					t.Errorf("%s: error %v, want unavailable", op, err)
				}
			}
			want("ping", p.Ping(ctx))
			_, err = p.Status(ctx, "web")
			want("status", err)
			spec := testSpec("web", 1, false)
			spec.Target = "local"
			_, err = p.Start(ctx, spec)
			want("start", err)
			_, err = p.Stop(ctx, "web")
			want("stop", err)
			_, err = p.Scale(ctx, "web", 2)
			want("scale", err)
			_, err = p.Restart(ctx, "web")
			want("restart", err)
			want("apply_config", p.ApplyConfig(ctx, "web", map[string]string{"a": "b"}))
			_, err = p.List(ctx)
			want("list", err)
			_, err = p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"true"}})
			want("exec", err)
			for _, err := range p.StreamMetrics(ctx, "web") {
				want("stream_metrics", err)
				break
			}
			for _, err := range p.Logs(ctx, "web", provider.LogOptions{}) {
				want("logs", err)
				break
			}
			for _, err := range p.Watch(ctx) {
				want("watch", err)
				break
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("the unreachable Engine took %v to report", d)
			}
			if e := workload.AsError(err); e != nil && !strings.Contains(e.Message, host) {
				t.Errorf("message %q does not name the Engine address", e.Message)
			}
		})
	}
}

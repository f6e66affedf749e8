package docker

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// fakeEngine answers every Engine API request with one status and
// message, the way the Engine reports errors; /_ping answers API 1.41.
func fakeEngine(t *testing.T, status int, message string, delay time.Duration) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Api-Version", "1.41")
		if strings.HasSuffix(r.URL.Path, "/_ping") {
			w.WriteHeader(http.StatusOK)
			return
		}
		if delay > 0 {
			select {
			case <-time.After(delay):
			case <-r.Context().Done():
				return
			}
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(status)
		_ = json.NewEncoder(w).Encode(map[string]string{"message": message})
	}))
	t.Cleanup(srv.Close)
	return "tcp://" + strings.TrimPrefix(srv.URL, "http://")
}

// TestErrorMapping maps every Engine failure the provider meets onto a
// workload code, through the real client.
func TestErrorMapping(t *testing.T) {
	inspect := func(ctx context.Context, e engine) error {
		_, err := e.ContainerInspect(ctx, "abc", client.ContainerInspectOptions{})
		return err
	}
	create := func(ctx context.Context, e engine) error {
		_, err := e.ContainerCreate(ctx, client.ContainerCreateOptions{Name: "x", Config: &container.Config{Image: "img"}})
		return err
	}
	image := func(ctx context.Context, e engine) error {
		_, err := e.ImageInspect(ctx, "nosuch:latest")
		return err
	}
	cases := []struct {
		name    string
		status  int
		message string
		host    string // instead of the fake Engine
		delay   time.Duration
		op      func(context.Context, engine) error
		want    workload.Code
	}{
		{name: "no such container", status: 404, message: "No such container: abc", op: inspect, want: workload.NotFound},
		{name: "no such image", status: 404, message: "No such image: nosuch:latest", op: image, want: workload.NotFound},
		{name: "create without image", status: 404, message: "No such image: img:latest", op: create, want: workload.NotFound},
		{name: "name conflict", status: 409, message: `Conflict. The container name "/x" is already in use by container "0123". You have to remove (or rename) that container to be able to reuse that name.`, op: create, want: workload.AlreadyExists},
		{name: "removal in progress", status: 409, message: "removal of container abc is already in progress", op: inspect, want: workload.Conflict},
		{name: "bad request", status: 400, message: "invalid reference format", op: create, want: workload.InvalidArgument},
		{name: "unauthenticated", status: 401, message: "authentication required", op: inspect, want: workload.Unauthenticated},
		{name: "forbidden", status: 403, message: "authorization denied by plugin", op: inspect, want: workload.PermissionDenied},
		{name: "rate limited", status: 429, message: "toomanyrequests: pull rate limit", op: image, want: workload.RateLimited},
		{name: "engine error", status: 500, message: "driver failed programming external connectivity", op: create, want: workload.ProviderError},
		{name: "not implemented", status: 501, message: "not implemented", op: inspect, want: workload.Unsupported},
		{name: "engine unavailable", status: 503, message: "daemon is shutting down", op: inspect, want: workload.Unavailable},
		{name: "daemon unreachable (unix)", host: "unix:///tmp/alphaswarm-no-daemon-" + randHex(4) + ".sock", op: inspect, want: workload.Unavailable},
		{name: "daemon unreachable (tcp)", host: "tcp://127.0.0.1:1", op: inspect, want: workload.Unavailable},
		{name: "timeout", status: 200, delay: 5 * time.Second, op: inspect, want: workload.Timeout},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			host := tc.host
			if host == "" {
				host = fakeEngine(t, tc.status, tc.message, tc.delay)
			}
			creds := credentials.FromMap(map[string]string{"DOCKER_HOST": host})
			pr, err := Open(context.Background(), provider.TargetConfig{Name: "local", Provider: Name}, creds)
			if err != nil {
				t.Fatal(err)
			}
			p := pr.(*Provider)
			defer p.Close()
			ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
			defer cancel()
			raw := tc.op(ctx, p.eng)
			if raw == nil {
				t.Fatal("the operation did not fail")
			}
			err = provider.Wrap(Name, p.classifier, raw, "op")
			var we *workload.Error
			if !errors.As(err, &we) || we.Code != tc.want || we.Provider != Name {
				t.Fatalf("%v (raw %T %v) -> %v, want code %s from provider docker", tc.name, raw, raw, err, tc.want)
			}
			if tc.message != "" && !strings.Contains(we.Message, tc.message) {
				t.Errorf("message %q lost the Engine's %q", we.Message, tc.message)
			}
		})
	}
	// Errors that already are *workload.Error keep their code.
	p := &Provider{host: "x"}
	if c := workload.CodeOf(provider.Wrap(Name, p.classifier, workload.Errorf(workload.Halted, "h"), "op")); c != workload.Halted {
		t.Errorf("wrapped workload error: %s", c)
	}
	if provider.Wrap(Name, p.classifier, nil, "x") != nil {
		t.Error("wrap(nil) != nil")
	}
}

// TestOperationErrorsThroughFake: an Engine whose event stream cannot be
// followed leaves the status unknown: Unavailable, never NotFound.
func TestOperationErrorsThroughFake(t *testing.T) {
	host := fakeEngine(t, 404, "No such image: nosuch:1", 0)
	pr, err := Open(context.Background(), provider.TargetConfig{Name: "local", Provider: Name}, credentials.FromMap(map[string]string{"DOCKER_HOST": host}))
	if err != nil {
		t.Fatal(err)
	}
	p := pr.(*Provider)
	defer p.Close()
	// The events endpoint is refused too (404): the cache cannot sync, and
	// operations report that instead of guessing.
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	_, err = p.Status(ctx, "web")
	if workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("Status: %v, want unavailable", err)
	}
}

// TestChangedDowngradesPromises: an error met after the first mutation
// must not claim that nothing changed.
func TestChangedDowngradesPromises(t *testing.T) {
	err := provider.AfterChange(Name, provider.NotFound(Name, "No such image: x"), "")
	if workload.CodeOf(err) != workload.ProviderError || provider.NothingChanged(err) || !strings.Contains(err.Error(), "No such image") {
		t.Errorf("after a change, not_found became %v", err)
	}
	if c := workload.CodeOf(provider.AfterChange(Name, provider.Errorf(Name, workload.Timeout, "slow"), "")); c != workload.Timeout {
		t.Errorf("timeout became %s", c)
	}
	if provider.AfterChange(Name, nil, "") != nil {
		t.Error("changed(nil) != nil")
	}
}

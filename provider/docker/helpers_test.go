package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/docker/dockertest"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// The tests of this package run against the real Docker Engine. One test
// binary uses one target name (so its containers are easy to sweep) and
// one test image, built once, FROM scratch, from testdata/workload.
var (
	testTarget = "dt" + randHex(3)
	testImage  = "alphaswarm-test-workload:" + testTarget

	engineOnce sync.Once
	engineErr  error
	rawCli     *client.Client // an independent client: the tests' own view of the Engine

	imageOnce sync.Once
	imageErr  error
)

const startupLine = "workload: listening on"

func TestMain(m *testing.M) {
	code := m.Run()
	if rawCli != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		if left := sweep(ctx, ""); left > 0 {
			fmt.Fprintf(os.Stderr, "docker tests: the final label sweep removed %d leftover containers\n", left)
		}
		_, _ = rawCli.ImageRemove(ctx, testImage, client.ImageRemoveOptions{Force: true, PruneChildren: true})
		cancel()
	}
	os.Exit(code)
}

// requireDocker skips the test (loudly) when no Engine answers, or fails
// it under CI, where the Engine is required.
func requireDocker(t testing.TB) {
	t.Helper()
	engineOnce.Do(func() {
		cli, _, err := newClient(credentials.FromEnv().Provider(Name))
		if err != nil {
			engineErr = err
			return
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
			engineErr = err
			return
		}
		rawCli = cli
	})
	if engineErr != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Docker Engine is required under CI and does not answer: %v", engineErr)
		}
		t.Skipf("SKIPPING: no Docker Engine answers (%v); these tests need one", engineErr)
	}
	imageOnce.Do(func() { imageErr = buildTestImage() })
	if imageErr != nil {
		t.Fatalf("build the test image: %v", imageErr)
	}
}

// buildTestImage builds the test image FROM scratch (see dockertest).
func buildTestImage() error {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	return dockertest.BuildImage(ctx, rawCli, testImage, testTarget)
}

// openProvider opens a docker provider for the test target through the
// registry, closed at the end of the test.
func openProvider(t testing.TB, opts map[string]any) *Provider {
	t.Helper()
	return openProviderWith(t, opts, credentials.FromEnv())
}

func openProviderWith(t testing.TB, opts map[string]any, creds *credentials.Resolver) *Provider {
	t.Helper()
	return openProviderConfig(t, provider.TargetConfig{Name: testTarget, Provider: Name, Options: map[string]json.RawMessage{}}, opts, creds)
}

// openProviderConfig opens a docker provider for cfg (its name, policy and
// instance), with opts as its options.
func openProviderConfig(t testing.TB, cfg provider.TargetConfig, opts map[string]any, creds *credentials.Resolver) *Provider {
	t.Helper()
	if cfg.Options == nil {
		cfg.Options = map[string]json.RawMessage{}
	}
	if opts == nil {
		opts = map[string]any{"stopTimeout": "5s", "pull": "never"}
	}
	for k, v := range opts {
		b, _ := json.Marshal(v)
		cfg.Options[k] = b
	}
	pr, err := provider.Open(context.Background(), cfg, creds)
	if err != nil {
		t.Fatalf("open docker provider: %v", err)
	}
	p := pr.(*Provider)
	t.Cleanup(func() { _ = p.Close() })
	return p
}

// uniqueName returns a service name no other test (or package) uses.
func uniqueName(prefix string) string { return providertest.Name(prefix) }

// testSpec is a spec of the test image; health=true adds an exec health
// check.
func testSpec(name string, replicas int, health bool) workload.DeploymentSpec {
	spec := workload.DeploymentSpec{
		Name:     name,
		Target:   testTarget,
		Image:    testImage,
		Replicas: replicas,
		Env:      map[string]string{"GREETING": "hello"},
	}
	if health {
		spec.HealthCheck = &workload.HealthCheck{
			Exec:     []string{"/workload", "get", "http://127.0.0.1:8080/healthz"},
			Interval: workload.Duration(300 * time.Millisecond),
			Timeout:  workload.Duration(2 * time.Second),
			Retries:  3,
		}
	}
	return spec
}

// dockerCLI runs the docker CLI: the tests' independent view.
func dockerCLI(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, "docker", args...)
	var out, errOut bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errOut
	err := cmd.Run()
	if err != nil {
		return out.String(), fmt.Errorf("docker %s: %v: %s", strings.Join(args, " "), err, errOut.String())
	}
	return out.String(), nil
}

// runningIDs lists the running replica containers of a service with
// `docker ps`.
func runningIDs(ctx context.Context, name string) ([]string, error) {
	out, err := dockerCLI(ctx, "ps", "-q",
		"--filter", "label="+labelTarget+"="+testTarget,
		"--filter", "label="+labelService+"="+name,
		"--filter", "label="+labelRole+"="+roleReplica)
	if err != nil {
		return nil, err
	}
	return strings.Fields(out), nil
}

// dockerExec runs a command in a container with `docker exec`.
func dockerExec(ctx context.Context, id string, cmd ...string) (string, int, error) {
	c := exec.CommandContext(ctx, "docker", append([]string{"exec", id}, cmd...)...)
	var out bytes.Buffer
	c.Stdout, c.Stderr = &out, &out
	err := c.Run()
	var ee *exec.ExitError
	if errors.As(err, &ee) {
		return out.String(), ee.ExitCode(), nil
	}
	return out.String(), 0, err
}

// harness adapts the provider to providertest, observing through the
// docker CLI.
func harness(p *Provider) providertest.Harness {
	return providertest.Harness{
		Provider: p,
		Target:   testTarget,
		Spec:     func(name string, n int) workload.DeploymentSpec { return testSpec(name, n, true) },
		Observe: func(ctx context.Context, name string) (providertest.Observation, error) {
			ids, err := runningIDs(ctx, name)
			return providertest.Observation{Running: len(ids), InstanceIDs: ids}, err
		},
		ReadConfig: func(ctx context.Context, name, key string) (string, bool, error) {
			ids, err := runningIDs(ctx, name)
			if err != nil || len(ids) == 0 {
				return "", false, err
			}
			// Every running replica must see the same value.
			var first string
			for i, id := range ids {
				out, code, err := dockerExec(ctx, id, "/workload", "cat", p.opts.ConfigDir+"/"+key)
				if err != nil {
					return "", false, err
				}
				if code != 0 {
					return "", false, nil
				}
				if i == 0 {
					first = out
				} else if out != first {
					return "", false, fmt.Errorf("replicas disagree on %s: %q vs %q", key, first, out)
				}
			}
			return first, true, nil
		},
		EmitLog: func(ctx context.Context, name, text string) error {
			ids, err := runningIDs(ctx, name)
			if err != nil {
				return err
			}
			for _, id := range ids {
				if out, code, err := dockerExec(ctx, id, "/workload", "get", "http://127.0.0.1:8080/log?text="+text); err != nil || code != 0 {
					return fmt.Errorf("emit log in %s: exit %d %v: %s", id, code, err, out)
				}
			}
			return nil
		},
		StartupLine:  startupLine,
		ExecCommand:  []string{"/workload", "echo", "hello-exec"},
		ExecOutput:   "hello-exec",
		ExecFail:     []string{"/workload", "exit", "3"},
		ExecFailCode: 3,
		Timeout:      90 * time.Second,
		Cleanup: func(ctx context.Context, name string) {
			sweep(ctx, name)
		},
	}
}

// cleanupService stops the service through the provider and sweeps
// whatever is left by label.
func cleanupService(t testing.TB, p *Provider, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		_, _ = p.Stop(ctx, name)
		if n := sweep(ctx, name); n > 0 {
			t.Logf("label sweep removed %d containers of %s left after Stop", n, name)
		}
	})
}

// startService opens a provider of the test's own and starts a service
// of replicas (testSpec, no health check) named after prefix, stopped and
// swept at cleanup. ctx bounds the rest of the test (2 min); st is what
// Start returned.
func startService(t *testing.T, prefix string, replicas int) (p *Provider, name string, ctx context.Context, st workload.DeploymentStatus) {
	t.Helper()
	requireDocker(t)
	p = openProvider(t, nil)
	name = uniqueName(prefix)
	cleanupService(t, p, name)
	ctx = testkit.Context(t, 2*time.Minute)
	st, err := p.Start(ctx, testSpec(name, replicas, false))
	if err != nil {
		t.Fatalf("Start %s: %v", name, err)
	}
	return p, name, ctx, st
}

// sweep removes every container of the test target (of one service, if
// name is set) and their networks, with the raw client. It returns how
// many containers it found.
func sweep(ctx context.Context, name string) int {
	if rawCli == nil {
		return 0
	}
	f := make(client.Filters).Add("label", labelTarget+"="+testTarget)
	if name != "" {
		f.Add("label", labelService+"="+name)
	}
	list, err := rawCli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return 0
	}
	for _, c := range list.Items {
		_, _ = rawCli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
	prefix := "as-" + testTarget + "-"
	if name != "" {
		prefix += name
	}
	if nets, err := rawCli.NetworkList(ctx, client.NetworkListOptions{}); err == nil {
		for _, n := range nets.Items {
			// By name, or by label (instance-scoped names start otherwise).
			if strings.HasPrefix(n.Name, prefix) || n.Labels[labelTarget] == testTarget && (name == "" || n.Labels[labelService] == name) {
				_, _ = rawCli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
			}
		}
	}
	return len(list.Items)
}

// waitFor polls cond every 50ms until it holds or d passes.
func waitFor(t testing.TB, d time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(d)
	for {
		ok, state := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s (last: %s)", d, what, state)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (p *Provider) mustSnapshot(t testing.TB, name string) []instance {
	t.Helper()
	_, insts, ok := p.cache.snapshot(name)
	if !ok {
		t.Fatalf("service %s not in the cache", name)
	}
	return insts
}

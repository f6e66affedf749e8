package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/docker"
	"github.com/alphaswarm/controller/provider/docker/dockertest"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
	"github.com/moby/moby/client"
	"go.uber.org/goleak"
)

var (
	// One target per test binary, so its containers are easy to sweep.
	target = "e2e" + strings.ToLower(providertest.Name("t")[2:])
	image  = "alphaswarm-e2e-workload:" + target
	raw    *client.Client
	binary string // the alphaswarm binary
)

func TestMain(m *testing.M) {
	code := run(m)
	os.Exit(code)
}

func run(m *testing.M) int {
	dir, err := os.MkdirTemp("", "alphaswarm-e2e")
	if err != nil {
		panic(err)
	}
	defer os.RemoveAll(dir)
	binary = filepath.Join(dir, "alphaswarm")
	if out, err := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../../cmd/alphaswarm", "../../cmd/alphaswarmd").CombinedOutput(); err != nil {
		fmt.Fprintf(os.Stderr, "build alphaswarm: %v\n%s", err, out)
		return 2
	}
	if cli, err := dockertest.Client(context.Background()); err == nil {
		raw = cli
		ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
		if err := dockertest.BuildImage(ctx, raw, image, target); err != nil {
			fmt.Fprintf(os.Stderr, "build the test image: %v\n", err)
			cancel()
			return 2
		}
		cancel()
		defer func() {
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if n := dockertest.Sweep(ctx, raw, target); n > 0 {
				fmt.Fprintf(os.Stderr, "e2e: the final sweep removed %d leftover containers\n", n)
			}
			dockertest.RemoveImage(ctx, raw, image)
		}()
	}
	code := m.Run()
	k8stest.Shutdown() // the control plane of TestRollbackKubernetes, if it started
	if code == 0 {
		if err := goleak.Find(goleak.IgnoreTopFunction("net/http.(*persistConn).readLoop"),
			goleak.IgnoreTopFunction("net/http.(*persistConn).writeLoop"),
			goleak.IgnoreTopFunction("internal/poll.runtime_pollWait")); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	return code
}

func requireDocker(t testing.TB) {
	t.Helper()
	if raw == nil {
		dockertest.Require(t) // skips, or fails under CI
	}
}

// stack is the whole control plane in-process over the docker provider.
type stack struct {
	url     string
	tokens  map[string]string
	rt      *control.Runtime
	led     ledger.Ledger
	docker  *docker.Provider
	api     *httpapi.Server
	metrics *httpapi.Metrics
}

func newStack(t testing.TB) *stack {
	t.Helper()
	return newStackWith(t, provider.Policy{}, io.Discard)
}

// newStackWith is newStack with a target policy, logging (JSON) to logs:
// testkit.NewStack (the stack as serve assembles it) over one docker target.
func newStackWith(t testing.TB, pol provider.Policy, logs io.Writer) *stack {
	t.Helper()
	requireDocker(t)
	creds := credentials.FromEnv()
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: target, Provider: "docker",
		Options: map[string]json.RawMessage{"stopTimeout": json.RawMessage(`"2s"`)}, Policy: pol}, creds)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(*docker.Provider).Close() }) // after the stack's own cleanups
	ks := testkit.NewStack(t, testkit.Options{Targets: []control.Target{{Name: target, Provider: p, Policy: pol}}, Credentials: creds,
		Logger: slog.New(credentials.NewHandler(slog.NewJSONHandler(logs, nil), creds)), UserPrefix: "e2e"})
	return &stack{url: ks.URL, tokens: ks.Tokens, rt: ks.Runtime, led: ks.Ledger, docker: p.(*docker.Provider), api: ks.API, metrics: ks.Metrics}
}

func spec(name string, replicas int) workload.DeploymentSpec {
	s := providertest.Spec(name, replicas)
	s.Image, s.Env = image, map[string]string{"GREETING": "hello"}
	return s
}

// cleanup stops a service at the end of a test and sweeps what is left.
func (s *stack) cleanup(t testing.TB, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		s.rt.Do(ctx, control.Request{Principal: control.Principal{User: "cleanup", Role: "admin"}, Action: workload.ActionStop,
			Target: target, Service: name})
	})
}

type envelope struct {
	Status string          `json:"status"`
	Data   json.RawMessage `json:"data"`
	Error  *workload.Error `json:"error"`
}

// call makes one API request and decodes the envelope strictly.
func (s *stack) call(t testing.TB, role, method, path, body string) (int, envelope) {
	t.Helper()
	req, _ := http.NewRequest(method, s.url+path, strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+s.tokens[role])
	if strings.HasPrefix(body, "{") {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	var env envelope
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&env); err != nil {
		t.Fatalf("%s %s: not an envelope: %s", method, path, b)
	}
	if (env.Status == "ok") != (env.Error == nil) || (env.Status != "ok" && env.Status != "error") {
		t.Fatalf("%s %s: malformed envelope %s", method, path, b)
	}
	return resp.StatusCode, env
}

// dockerPS lists the running container ids of a service, asked of the
// docker CLI (not the provider).
func dockerPS(t testing.TB, name string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=alphaswarm.target="+target,
		"--filter", "label=alphaswarm.service="+name, "--filter", "status=running").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

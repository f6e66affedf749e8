package e2e

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestDockerEndToEnd drives deploy → scale → restart → config → stop
// through the real router, token auth, runtime and SQLite ledger onto the
// Docker Engine, checking envelopes, ledger rows and the containers.
func TestDockerEndToEnd(t *testing.T) {
	s := newStack(t)
	name := providertest.Name("e2e")
	s.cleanup(t, name)
	svc := "/v1/targets/" + target + "/services/" + name
	body, _ := json.Marshal(spec(name, 2))

	code, env := s.call(t, "operator", "POST", "/v1/targets/"+target+"/services", string(body))
	var res control.Result
	json.Unmarshal(env.Data, &res)
	if code != 200 || res.Status == nil || res.Status.Phase != workload.Running || res.Status.Replicas.Ready != 2 {
		t.Fatalf("deploy: %d %+v %+v", code, env.Error, res.Status)
	}
	if ids := dockerPS(t, name); len(ids) != 2 {
		t.Fatalf("docker ps shows %d containers after deploy, want 2", len(ids))
	}

	code, env = s.call(t, "operator", "POST", svc+"/scale", `{"replicas":3}`)
	if code != 200 {
		t.Fatalf("scale: %d %+v", code, env.Error)
	}
	testkit.WaitFor(t, 30*time.Second, "3 running containers", func() bool { return len(dockerPS(t, name)) == 3 })

	before := dockerPS(t, name)
	if code, env = s.call(t, "operator", "POST", svc+"/restart", ""); code != 200 {
		t.Fatalf("restart: %d %+v", code, env.Error)
	}
	testkit.WaitFor(t, 30*time.Second, "3 new containers", func() bool {
		after := dockerPS(t, name)
		if len(after) != 3 {
			return false
		}
		for _, id := range after {
			if slices.Contains(before, id) {
				return false
			}
		}
		return true
	})

	if code, env = s.call(t, "operator", "PUT", svc+"/config", `{"config":{"greeting":"bonjour"}}`); code != 200 {
		t.Fatalf("config: %d %+v", code, env.Error)
	}
	testkit.WaitFor(t, 30*time.Second, "the workload to see the new config", func() bool {
		ids := dockerPS(t, name)
		if len(ids) == 0 {
			return false
		}
		out, err := exec.Command("docker", "exec", ids[0], "/workload", "cat", "/etc/alphaswarm/config/greeting").Output()
		return err == nil && strings.TrimSpace(string(out)) == "bonjour"
	})

	// A viewer is refused, an unknown service is not_found: envelopes both.
	if code, env = s.call(t, "viewer", "POST", svc+"/stop", ""); code != 403 || env.Error.Code != workload.PermissionDenied {
		t.Fatalf("viewer stop: %d %+v", code, env.Error)
	}
	if code, env = s.call(t, "viewer", "GET", "/v1/targets/"+target+"/services/ghost-"+name, ""); code != 404 || env.Error.Code != workload.NotFound {
		t.Fatalf("unknown service: %d %+v", code, env.Error)
	}

	if code, env = s.call(t, "operator", "POST", svc+"/stop", ""); code != 200 {
		t.Fatalf("stop: %d %+v", code, env.Error)
	}
	if ids := dockerPS(t, name); len(ids) != 0 {
		t.Fatalf("containers still running after stop: %v", ids)
	}

	// The ledger: every action has intent+result by the operator, the
	// viewer's denial is recorded, and the chain verifies.
	page, err := s.led.Query(context.Background(), ledger.Filter{Service: name, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, r := range page.Records {
		got = append(got, fmt.Sprintf("%s/%s/%s/%s", r.Kind, r.Action, r.UserID, r.Outcome))
	}
	want := []string{
		"intent/start/e2e-operator/", "result/start/e2e-operator/ok",
		"intent/scale/e2e-operator/", "result/scale/e2e-operator/ok",
		"intent/restart/e2e-operator/", "result/restart/e2e-operator/ok",
		"intent/apply_config/e2e-operator/", "result/apply_config/e2e-operator/ok",
		"rejected/stop/e2e-viewer/denied",
		"intent/stop/e2e-operator/", "result/stop/e2e-operator/ok",
	}
	if !slices.Equal(got, want) {
		t.Fatalf("ledger rows:\n got %v\nwant %v", got, want)
	}
	if v, err := s.led.Verify(context.Background()); err != nil || !v.OK {
		t.Fatalf("verify: %+v %v", v, err)
	}
}

// TestDockerUnreachableIsRecorded points DOCKER_HOST at a dead socket: the
// operation answers unavailable and the ledger records the failure.
func TestDockerUnreachableIsRecorded(t *testing.T) {
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	defer led.Close()
	creds := credentials.FromMap(map[string]string{"DOCKER_HOST": "unix://" + filepath.Join(t.TempDir(), "dead.sock")})
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "dead", Provider: "docker"}, creds)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := p.(interface{ Close() error }); ok {
		defer c.Close()
	}
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Credentials: creds,
		Targets: []control.Target{{Name: "dead", Provider: p}}, Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer rt.Close()
	ctx := testkit.Context(t, 30*time.Second)
	_, err = rt.Do(ctx, control.Request{Principal: control.Principal{User: "oncall"}, Action: workload.ActionStart,
		Target: "dead", Service: "web", Spec: &workload.DeploymentSpec{Name: "web", Image: "x", Replicas: 1}})
	if workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("start on a dead daemon: %v, want unavailable", err)
	}
	page, _ := led.Query(context.Background(), ledger.Filter{Kind: ledger.KindResult})
	if len(page.Records) != 1 || page.Records[0].Outcome != ledger.OutcomeError || page.Records[0].ErrorCode != "unavailable" {
		t.Fatalf("ledger result: %+v", page.Records)
	}
	if _, err := rt.Status(ctx, "dead", "web"); workload.CodeOf(err) != workload.Unavailable {
		t.Fatalf("status on a dead daemon: %v", err)
	}
}

// serveProcess runs `alphaswarm serve` as the README says, with a config
// that adds this binary's docker target, and returns its URL and env.
func serveProcess(t testing.TB) (url string, env []string) {
	t.Helper()
	requireDocker(t)
	data := t.TempDir()
	cfg := filepath.Join(data, "alphaswarm.yaml")
	os.WriteFile(cfg, []byte(fmt.Sprintf("listen: 127.0.0.1:0\ntargets:\n  %s:\n    provider: docker\n    options:\n      stopTimeout: 2s\n", target)), 0o600)
	env = append(os.Environ(), "ALPHASWARM_DATA_DIR="+data)
	cmd := exec.Command(binary, "serve", "--config", cfg)
	cmd.Env = env
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	logPath := filepath.Join(data, "serve.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = logFile
	t.Cleanup(func() {
		logFile.Close()
		if t.Failed() {
			b, _ := os.ReadFile(logPath)
			t.Logf("serve log:\n%s", b)
		}
	})
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cmd.Process.Signal(syscall.SIGTERM)
		done := make(chan error, 1)
		go func() { done <- cmd.Wait() }()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("serve exited with %v after SIGTERM", err)
			}
		case <-time.After(30 * time.Second):
			cmd.Process.Kill()
			t.Error("serve did not stop within 30s of SIGTERM")
		}
	})
	sc := bufio.NewScanner(out)
	var lines []string
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		if u, ok := strings.CutPrefix(line, "listening on "); ok {
			url = u
			break
		}
	}
	go func() {
		for sc.Scan() {
		}
	}()
	if url == "" {
		t.Fatalf("serve did not start:\n%s", strings.Join(lines, "\n"))
	}
	all := strings.Join(lines, "\n")
	for _, want := range []string{"first start: admin token written to", "target local: docker (embedded default)", "target " + target + ": docker"} {
		if !strings.Contains(all, want) {
			t.Fatalf("serve output lacks %q:\n%s", want, all)
		}
	}
	return url, append(env, "ALPHASWARM_SERVER="+url, "ALPHASWARM_TARGET="+target)
}

func cli(t testing.TB, env []string, args ...string) string {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = env
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("alphaswarm %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// TestServeAndCLI is the README's promise: `serve` on its defaults and the
// CLI on the same machine, with the admin token it wrote, against Docker.
func TestServeAndCLI(t *testing.T) {
	_, env := serveProcess(t)
	name := providertest.Name("cli")
	specFile := filepath.Join(t.TempDir(), "web.yaml")
	os.WriteFile(specFile, []byte(fmt.Sprintf("name: %s\nimage: %s\nreplicas: 1\n", name, image)), 0o644)
	t.Cleanup(func() { exec.Command(binary, "stop", name).Run() })
	cmdEnv := env
	if out := cli(t, cmdEnv, "targets"); !strings.Contains(out, "local") || !strings.Contains(out, target) {
		t.Fatalf("targets: %s", out)
	}
	if out := cli(t, cmdEnv, "deploy", "-f", specFile); !strings.Contains(out, "Running") {
		t.Fatalf("deploy: %s", out)
	}
	cli(t, cmdEnv, "scale", name, "2")
	if ids := dockerPS(t, name); len(ids) != 2 {
		t.Fatalf("docker ps after scale: %v", ids)
	}
	if out := cli(t, cmdEnv, "exec", name, "--", "/workload", "echo", "hi-from-exec"); !strings.Contains(out, "hi-from-exec") {
		t.Fatalf("exec: %s", out)
	}
	if out := cli(t, cmdEnv, "logs", name, "--tail", "-1"); !strings.Contains(out, "listening") {
		t.Fatalf("logs: %s", out)
	}
	cli(t, cmdEnv, "stop", name)
	if out := cli(t, cmdEnv, "runs", "--service", name, "--kind", "result", "-o", "json"); strings.Count(out, `"outcome": "ok"`) != 4 {
		t.Fatalf("runs: %s", out)
	}
	if out := cli(t, cmdEnv, "ledger", "verify"); !strings.HasPrefix(out, "chain OK") {
		t.Fatalf("verify: %s", out)
	}
}

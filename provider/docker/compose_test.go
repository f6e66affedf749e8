package docker

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

const composeFile = `version: "3.8"
services:
  web:
    image: %[1]s
    env_file: web.env
    environment:
      ROLE: web
  worker:
    image: %[1]s
    profiles: ["extra"]
    environment:
      ROLE: ${WORKER_ROLE:-worker}
`

// TestCompose drives a two-service Compose profile through the Compose CLI:
// status, scale, restart, logs, metrics, exec and stop work on it like on
// a plain service.
func TestCompose(t *testing.T) {
	requireDocker(t)
	if _, err := exec.LookPath("docker-compose"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("docker-compose is required under CI: %v", err)
		}
		t.Skipf("SKIPPING: docker-compose is not installed: %v", err)
	}
	t.Parallel()
	dir := t.TempDir()
	p := openProviderConfig(t, provider.TargetConfig{Name: testTarget, Provider: Name,
		Policy: provider.Policy{Compose: provider.ComposePolicy{Dir: dir}}}, nil, credentials.FromEnv())
	name := uniqueName("compose")
	cleanupService(t, p, name)
	ctx := testkit.Context(t, 3*time.Minute)
	file := filepath.Join(dir, "compose.yml")
	if err := os.WriteFile(file, []byte(fmt.Sprintf(composeFile, testImage)), 0o644); err != nil {
		t.Fatal(err)
	}
	spec := workload.DeploymentSpec{
		Name: name, Target: testTarget, Replicas: 1,
		Env:     map[string]string{"WORKER_ROLE": "bg"},
		Compose: &workload.ComposeProfile{File: "compose.yml", Profiles: []string{"extra"}},
	}

	if err := os.WriteFile(filepath.Join(dir, "web.env"), []byte("FROM_ENV_FILE=yes\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	// A file that escapes its containers is refused before anything runs
	// (the audit's payload: host root, the Docker socket, host network).
	pwn := filepath.Join(dir, "pwn.yml")
	_ = os.WriteFile(pwn, []byte(fmt.Sprintf("services:\n  pwn:\n    image: %s\n    network_mode: host\n    volumes: [\"/:/host\", \"/var/run/docker.sock:/var/run/docker.sock\"]\n", testImage)), 0o644)
	pwnSpec := spec
	pwnSpec.Compose = &workload.ComposeProfile{File: "pwn.yml"}
	if _, err := p.Start(ctx, pwnSpec); workload.CodeOf(err) != workload.InvalidArgument || !provider.NothingChanged(err) ||
		!strings.Contains(err.Error(), "service pwn: network_mode is refused") || !strings.Contains(err.Error(), "docker_socket is refused") {
		t.Fatalf("Start with an escaping Compose file: %v", err)
	}
	if out, _ := dockerCLI(ctx, "ps", "-aq", "--filter", "label="+labelService+"="+name); strings.TrimSpace(out) != "" {
		t.Fatalf("a refused Compose file created containers: %q", out)
	}

	// Invalid files are refused before anything runs.
	bad := filepath.Join(dir, "bad.yml")
	_ = os.WriteFile(bad, []byte("services:\n  web:\n    image: x\n    ports: 12\n"), 0o644)
	badSpec := spec
	badSpec.Compose = &workload.ComposeProfile{File: "bad.yml"}
	if _, err := p.Start(ctx, badSpec); workload.CodeOf(err) != workload.InvalidArgument || !provider.NothingChanged(err) {
		t.Fatalf("Start with an invalid Compose file: %v", err)
	}

	st, err := p.Start(ctx, spec)
	if err != nil || st.Phase != workload.Running || st.Replicas.Desired != 2 || len(st.Instances) != 2 {
		t.Fatalf("Start: %+v %v", st, err)
	}
	ids, _ := runningIDs(ctx, name)
	if len(ids) != 2 {
		t.Fatalf("docker ps: %v", ids)
	}
	roles := map[string]bool{}
	envFile := false
	for _, id := range ids {
		out, _, _ := dockerExec(ctx, id, "/workload", "env")
		envFile = envFile || strings.Contains(out, "FROM_ENV_FILE=yes")
		for _, l := range strings.Split(out, "\n") {
			if r, ok := strings.CutPrefix(l, "ROLE="); ok {
				roles[r] = true
			}
		}
	}
	if !envFile {
		t.Errorf("env_file web.env (relative to the Compose directory) did not reach the web service")
	}
	if !roles["web"] || !roles["bg"] {
		t.Errorf("roles %v: want web and bg (interpolated from the spec's env)", roles)
	}

	st, err = p.Scale(ctx, name, 2)
	if err != nil || st.Phase != workload.Running || st.Replicas.Ready != 4 {
		t.Fatalf("Scale(2): %+v %v", st, err)
	}
	before, _ := runningIDs(ctx, name)
	st, err = p.Restart(ctx, name)
	if err != nil || st.Phase != workload.Running || st.Replicas.Ready != 4 {
		t.Fatalf("Restart: %+v %v", st, err)
	}
	after, _ := runningIDs(ctx, name)
	if len(after) != 4 {
		t.Fatalf("after Restart: %v", after)
	}
	for _, id := range after {
		if slices.Contains(before, id) {
			t.Errorf("container %s survived Restart", id)
		}
	}

	lctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	seen := map[string]bool{}
	for l, err := range p.Logs(lctx, name, provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		if strings.Contains(l.Text, startupLine) {
			seen[l.Instance] = true
		}
		if len(seen) == 4 {
			break
		}
	}
	cancel()
	if len(seen) != 4 {
		t.Errorf("startup lines from %d instances, want 4", len(seen))
	}
	mctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	for s, err := range p.StreamMetrics(mctx, name) {
		if err != nil || s.Instances != 4 {
			t.Errorf("metrics sample %+v %v", s, err)
		}
		break
	}
	cancel()
	res, err := p.Exec(ctx, name, provider.ExecRequest{Command: []string{"/workload", "exit", "4"}})
	if err != nil || res.ExitCode != 4 {
		t.Errorf("exec: %+v %v", res, err)
	}
	if err := p.ApplyConfig(ctx, name, map[string]string{"a": "b"}); workload.CodeOf(err) != workload.Unsupported {
		t.Errorf("ApplyConfig on a Compose service: %v", err)
	}

	st, err = p.Scale(ctx, name, 0)
	if err != nil || st.Phase != workload.Stopped {
		t.Fatalf("Scale(0): %+v %v", st, err)
	}
	if _, err := p.Stop(ctx, name); err != nil {
		t.Fatal(err)
	}
	out, err := dockerCLI(ctx, "ps", "-aq", "--filter", "label="+labelService+"="+name)
	if err != nil || strings.TrimSpace(out) != "" {
		t.Errorf("after Stop docker ps -a shows %q (%v)", out, err)
	}
	nets, _ := dockerCLI(ctx, "network", "ls", "-q", "--filter", "name="+p.projectName(name))
	if strings.TrimSpace(nets) != "" {
		t.Errorf("after Stop the project's networks remain: %q", nets)
	}
}

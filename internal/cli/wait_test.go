package cli_test

import (
	"bytes"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
)

func writeSpec(t *testing.T, name string, replicas int) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), name+".yaml")
	os.WriteFile(p, []byte("name: "+name+"\nimage: example/web:1\nreplicas: "+string(rune('0'+replicas))+"\n"), 0o644)
	return p
}

// D2: a deploy whose rollout ends Failed exits non-zero and says what
// failed; on the old code it exited 0 with "Failed" in the table.
func TestCLIFailedRolloutExitsNonZero(t *testing.T) {
	s := startServer(t)
	s.mem.Fail = func(provider.Operation, string) string { return "ImagePullBackOff: Back-off pulling image" }
	r := s.run(t, "operator", "deploy", "-f", writeSpec(t, "web", 2))
	if r.code != 1 || !strings.Contains(r.stderr, "rollout_failed") || !strings.Contains(r.stderr, "ImagePullBackOff") ||
		!strings.Contains(r.stderr, "status: local/web Failed, 0/2 ready") {
		t.Fatalf("deploy: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	r = s.run(t, "operator", "scale", "web", "3")
	if r.code != 1 || !strings.Contains(r.stderr, "rollout_failed") {
		t.Fatalf("scale: exit %d\nstderr: %s", r.code, r.stderr)
	}
}

// Wait is a choice: --no-wait answers at once and says it did not wait;
// --timeout bounds the wait; status --watch follows the rollout.
func TestCLIWaitFlags(t *testing.T) {
	s := startServer(t)
	s.mustRun(t, "operator", "deploy", "-f", writeSpec(t, "web", 1))
	s.mem.ReadyAfter = time.Hour
	out := s.mustRun(t, "operator", "scale", "web", "3", "--no-wait")
	if !strings.Contains(out, "Progressing") || !strings.Contains(out, "did not wait") {
		t.Fatalf("scale --no-wait:\n%s", out)
	}
	r := s.run(t, "operator", "restart", "web", "--timeout", "1s")
	if r.code != 1 || !strings.Contains(r.stderr, "timeout") || !strings.Contains(r.stderr, "status: local/web Progressing") {
		t.Fatalf("restart --timeout 1s: exit %d\nstderr: %s", r.code, r.stderr)
	}
	r = s.run(t, "operator", "stop", "web", "--wait", "--no-wait")
	if r.code == 0 {
		t.Fatalf("--wait --no-wait accepted: %s", r.stdout)
	}
	for _, args := range [][]string{{"deploy", "-f", writeSpec(t, "web", 1)}, {"stop", "web"}, {"restart", "web"},
		{"config", "set", "web", "a=b"}, {"config", "apply", "web", "-f", "x"}, {"scale", "web", "1"}} {
		help := s.mustRun(t, "viewer", append(args, "--help")...)
		for _, flag := range []string{"--wait", "--no-wait", "--timeout"} {
			if !strings.Contains(help, flag) {
				t.Errorf("%s has no %s", args[0], flag)
			}
		}
	}
	// status --watch follows a rollout to its end.
	s.mem.ReadyAfter = 3 * time.Second
	s.mustRun(t, "operator", "restart", "web", "--no-wait") // every instance new: ready in 3s
	out = s.mustRun(t, "viewer", "status", "web", "--watch")
	if !strings.Contains(out, "Progressing") || !strings.Contains(out, "Running") {
		t.Fatalf("status --watch:\n%s", out)
	}
}

// D3: log lines carry the whole instance name (pods of one ReplicaSet
// differ only at the end); the old code cut it to 12 characters.
func TestCLILogsFullInstanceNames(t *testing.T) {
	s := startServer(t)
	s.mustRun(t, "operator", "deploy", "-f", writeSpec(t, "checkout-frontend", 2))
	out := s.mustRun(t, "viewer", "logs", "checkout-frontend")
	lines := strings.Split(strings.TrimSpace(out), "\n")
	if len(lines) != 2 || lines[0] == lines[1] {
		t.Fatalf("logs:\n%s", out)
	}
	for _, l := range lines {
		if !strings.HasPrefix(l, "[checkout-frontend-") {
			t.Fatalf("line %q does not carry the instance name", l)
		}
	}
	// D4 through the binary: no lines is exit 0 and no output.
	r := s.run(t, "viewer", "logs", "checkout-frontend", "--tail", "0")
	if r.code != 0 || r.stdout != "" {
		t.Fatalf("logs --tail 0: exit %d %q %q", r.code, r.stdout, r.stderr)
	}
}

// S7: without a token the error names the token file looked for.
func TestCLIUnauthenticatedNamesTokenFile(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	cmd := exec.Command(binary, "status")
	cmd.Env = append(os.Environ(), "ALPHASWARM_SERVER="+s.url, "ALPHASWARM_TOKEN=", "ALPHASWARM_DATA_DIR="+dir)
	var errb bytes.Buffer
	cmd.Stderr = &errb
	err := cmd.Run()
	if err == nil || !strings.Contains(errb.String(), "unauthenticated") || !strings.Contains(errb.String(), filepath.Join(dir, "admin.token")) {
		t.Fatalf("err %v, stderr: %s", err, errb.String())
	}
	cmd = exec.Command(binary, "status")
	cmd.Env = append(os.Environ(), "ALPHASWARM_SERVER="+s.url, "ALPHASWARM_TOKEN=asw_wrong", "ALPHASWARM_DATA_DIR="+dir)
	errb.Reset()
	cmd.Stderr = &errb
	if err := cmd.Run(); err == nil || !strings.Contains(errb.String(), "refused the token from $ALPHASWARM_TOKEN") {
		t.Fatalf("err %v, stderr: %s", err, errb.String())
	}
}

// S8: a CLI stopped by a signal says so; it does not blame the server.
func TestCLIInterruptedBySignal(t *testing.T) {
	arrived := make(chan struct{}, 1)
	release := make(chan struct{})
	hang := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		select {
		case arrived <- struct{}{}:
		default:
		}
		select {
		case <-r.Context().Done():
		case <-release:
		}
	}))
	t.Cleanup(func() { close(release); hang.CloseClientConnections(); hang.Close() })
	cmd := exec.Command(binary, "scale", "web", "3")
	cmd.Env = append(os.Environ(), "ALPHASWARM_SERVER="+hang.URL, "ALPHASWARM_TOKEN=asw_x", "ALPHASWARM_DATA_DIR="+t.TempDir())
	var errb bytes.Buffer
	cmd.Stderr = &errb
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	ctx := testkit.Context(t, 30*time.Second)
	select {
	case <-arrived:
	case <-ctx.Done():
		cmd.Process.Kill()
		t.Fatal("the request never arrived")
	}
	cmd.Process.Signal(syscall.SIGTERM)
	err := cmd.Wait()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 130 || !strings.Contains(errb.String(), "interrupted") || strings.Contains(errb.String(), "cannot reach") {
		t.Fatalf("err %v, stderr: %s", err, errb.String())
	}
}

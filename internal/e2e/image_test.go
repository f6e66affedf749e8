package e2e

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider/providertest"
)

// TestControllerImage builds the controller image as the README says
// (scripts/image.sh: FROM scratch, nothing pulled), checks it is the image
// the README promises (non-root, no shell, the data dir a volume, the
// version stamped), then runs it as a user would — read-only root, the
// Docker socket mounted with its group added, the config mounted read-only
// — deploys a service through its API with the CLI, reads the ledger back,
// and restarts the container to show the ledger lives on the volume.
func TestControllerImage(t *testing.T) {
	requireDocker(t)
	const sock = "/var/run/docker.sock"
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the image test mounts %s, which is required under CI: %v", sock, err)
		}
		t.Skipf("SKIPPING: no Docker socket at %s to mount into the controller (%v)", sock, err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	t.Cleanup(cancel)
	run := func(args ...string) string {
		t.Helper()
		out, err := exec.CommandContext(ctx, args[0], args[1:]...).CombinedOutput()
		if err != nil {
			t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
		}
		return strings.TrimSpace(string(out))
	}

	tag := "alphaswarm-e2e-controller:" + target
	t.Cleanup(func() { exec.Command("docker", "image", "rm", "-f", tag).Run() })
	run("bash", "../../scripts/image.sh", tag)

	var img []struct {
		Size   int64
		Config struct {
			User       string
			Entrypoint []string
			Volumes    map[string]any
		}
	}
	if err := json.Unmarshal([]byte(run("docker", "image", "inspect", tag)), &img); err != nil || len(img) != 1 {
		t.Fatalf("docker image inspect: %v", err)
	}
	c := img[0].Config
	if c.User != "65532:65532" || strings.Join(c.Entrypoint, " ") != "/alphaswarm" {
		t.Fatalf("image config: user %q entrypoint %q", c.User, c.Entrypoint)
	}
	for _, v := range []string{"/var/lib/alphaswarm", "/var/lib/alphaswarm-checkpoints"} {
		if _, ok := c.Volumes[v]; !ok {
			t.Fatalf("%s is not a volume: %v", v, c.Volumes)
		}
	}
	t.Logf("image %s: %.1f MB", tag, float64(img[0].Size)/1e6)
	if out, err := exec.CommandContext(ctx, "docker", "run", "--rm", "--entrypoint", "/bin/sh", tag, "-c", "true").CombinedOutput(); err == nil {
		t.Fatalf("the image has a shell: %s", out)
	}

	var bi struct{ Version, Revision, GoVersion string }
	if err := json.Unmarshal([]byte(run("docker", "run", "--rm", "--read-only", tag, "version", "-o", "json")), &bi); err != nil {
		t.Fatal(err)
	}
	t.Logf("docker run --rm %s version: %+v", tag, bi)
	if bi.Version == "" || bi.GoVersion == "" {
		t.Fatalf("version: %+v", bi)
	}
	if head, err := exec.Command("git", "rev-parse", "HEAD").Output(); err == nil && bi.Revision != strings.TrimSpace(string(head)) {
		t.Fatalf("version reports revision %q, the checkout is at %s", bi.Revision, head)
	}

	cfg := filepath.Join(t.TempDir(), "alphaswarm.yaml")
	if err := os.WriteFile(cfg, []byte(fmt.Sprintf("noLocalTarget: true\ntargets:\n  %s:\n    provider: docker\n    options: {stopTimeout: 2s}\n", target)), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(cfg, 0o644); err != nil { // not narrowed by the umask: UID 65532 reads it
		t.Fatal(err)
	}
	name := "alphaswarm-e2e-ctl-" + target
	t.Cleanup(func() { exec.Command("docker", "rm", "-f", "-v", name).Run() })
	run("docker", "run", "-d", "--name", name, "--read-only", "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
		"--group-add", fmt.Sprint(st.Gid), "-v", sock+":"+sock, "-v", cfg+":/etc/alphaswarm/alphaswarm.yaml:ro",
		"-p", "127.0.0.1::7070", tag, "serve", "--config", "/etc/alphaswarm/alphaswarm.yaml")
	logs := func() string {
		out, _ := exec.Command("docker", "logs", name).CombinedOutput()
		return string(out)
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("controller container log:\n%s", logs())
		}
	})
	url := "http://" + run("docker", "port", name, "7070/tcp")
	ready := func() {
		t.Helper()
		waitFor(t, time.Minute, "the controller's /readyz", func() bool {
			resp, err := http.Get(url + "/readyz")
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		})
	}
	ready()

	// The admin token the controller wrote on first start, read off the volume.
	var tok string
	tr := tar.NewReader(bytes.NewReader([]byte(run("docker", "cp", name+":/var/lib/alphaswarm/admin.token", "-"))))
	if h, err := tr.Next(); err != nil || h.Mode&0o077 != 0 || h.Uid != 65532 {
		t.Fatalf("admin.token on the volume: %v %+v", err, h)
	}
	b, _ := io.ReadAll(tr)
	tok = strings.TrimSpace(string(b))
	env := append(os.Environ(), "ALPHASWARM_SERVER="+url, "ALPHASWARM_TOKEN="+tok, "ALPHASWARM_TARGET="+target)

	svc := providertest.Name("img")
	specFile := filepath.Join(t.TempDir(), "svc.yaml")
	os.WriteFile(specFile, []byte(fmt.Sprintf("name: %s\nimage: %s\nreplicas: 1\n", svc, image)), 0o644)
	t.Cleanup(func() {
		cmd := exec.Command(binary, "stop", svc)
		cmd.Env = env
		cmd.Run()
	})
	if out := cli(t, env, "deploy", "-f", specFile); !strings.Contains(out, "Running") {
		t.Fatalf("deploy through the containerised controller: %s", out)
	}
	if ids := dockerPS(t, svc); len(ids) != 1 {
		t.Fatalf("docker ps after deploy: %v", ids)
	}
	cli(t, env, "stop", svc)

	// The ledger survives a restart of the read-only container: it is on the volume.
	run("docker", "restart", "-t", "10", name)
	url = "http://" + run("docker", "port", name, "7070/tcp")
	env = append(env, "ALPHASWARM_SERVER="+url)
	ready()
	if out := cli(t, env, "runs", "--service", svc, "--kind", "result", "-o", "json"); strings.Count(out, `"outcome": "ok"`) != 2 {
		t.Fatalf("runs after a restart: %s", out)
	}
	// The CLI inside the image, with the admin token file on the volume, as an operator would use it.
	if out := run("docker", "exec", name, "/alphaswarm", "ledger", "verify"); !strings.HasPrefix(out, "chain OK") {
		t.Fatalf("ledger verify inside the container: %s", out)
	}
}

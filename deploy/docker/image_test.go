package image

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

	"github.com/alphaswarm/controller/provider/docker/dockertest"
	"github.com/alphaswarm/controller/provider/providertest"
)

// dockerPS lists the running containers of a service of target, asked of
// the docker CLI.
func dockerPS(t *testing.T, target, name string) []string {
	t.Helper()
	out, err := exec.Command("docker", "ps", "-q", "--filter", "label=alphaswarm.target="+target,
		"--filter", "label=alphaswarm.service="+name, "--filter", "status=running").Output()
	if err != nil {
		t.Fatalf("docker ps: %v", err)
	}
	return strings.Fields(string(out))
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// TestControllerImage builds the controller image as the README says
// (scripts/image.sh: FROM scratch, nothing pulled), checks it is the image
// the README promises (non-root, no shell, the data dir a volume, the
// version stamped), then runs it as a user would — read-only root, the
// Docker socket mounted with its group added, the config mounted read-only
// — deploys a service through its API with the CLI, reads the ledger back,
// and restarts the container to show the ledger lives on the volume.
func TestControllerImage(t *testing.T) {
	raw := dockertest.Require(t)
	defer raw.Close()
	const sock = "/var/run/docker.sock"
	var st syscall.Stat_t
	if err := syscall.Stat(sock, &st); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the image test mounts %s, which is required under CI: %v", sock, err)
		}
		t.Skipf("SKIPPING: no Docker socket at %s to mount into the controller (%v)", sock, err)
	}
	// A cold static build of the whole module is most of this budget on a
	// loaded 2-core machine; the package has the go test timeout to itself.
	ctx, cancel := context.WithTimeout(context.Background(), 9*time.Minute)
	t.Cleanup(cancel)
	target := strings.ToLower(providertest.Name("img"))
	image := "alphaswarm-image-workload:" + target
	if err := dockertest.BuildImage(ctx, raw, image, target); err != nil {
		t.Fatalf("build the test workload image: %v", err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		dockertest.Sweep(ctx, raw, target)
		dockertest.RemoveImage(ctx, raw, image)
	})
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
		"-p", "127.0.0.1::7070", "-e", "ALPHASWARM_TARGET="+target, tag, "serve", "--config", "/etc/alphaswarm/alphaswarm.yaml")
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
	// The entrypoint is the CLI; `alphaswarm serve` executed the control
	// plane beside it, which is now the container's main process.
	if top := run("docker", "top", name); !strings.Contains(top, "/alphaswarmd serve") {
		t.Fatalf("the container's process is not /alphaswarmd:\n%s", top)
	}

	// The admin token the controller wrote on first start, on the volume,
	// owned by the image's user and readable by it only; it works from the
	// host through the published port.
	tr := tar.NewReader(bytes.NewReader([]byte(run("docker", "cp", name+":/var/lib/alphaswarm/admin.token", "-"))))
	if h, err := tr.Next(); err != nil || h.Mode&0o077 != 0 || h.Uid != 65532 {
		t.Fatalf("admin.token on the volume: %v %+v", err, h)
	}
	b, _ := io.ReadAll(tr)
	req, _ := http.NewRequestWithContext(ctx, "GET", url+"/v1/targets", nil)
	req.Header.Set("Authorization", "Bearer "+strings.TrimSpace(string(b)))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(body), target) {
		t.Fatalf("GET /v1/targets with the admin token: %d %s", resp.StatusCode, body)
	}

	// The CLI inside the image talks to the API on loopback with that token,
	// as an operator would: `docker exec alphaswarm /alphaswarm ...`.
	cli := func(args ...string) string {
		t.Helper()
		return run(append([]string{"docker", "exec", name, "/alphaswarm"}, args...)...)
	}
	svc := providertest.Name("img")
	specFile := filepath.Join(t.TempDir(), "svc.yaml")
	if err := os.WriteFile(specFile, []byte(fmt.Sprintf("name: %s\nimage: %s\nreplicas: 1\n", svc, image)), 0o644); err != nil {
		t.Fatal(err)
	}
	run("docker", "cp", specFile, name+":/var/lib/alphaswarm/svc.yaml")
	t.Cleanup(func() { exec.Command("docker", "exec", name, "/alphaswarm", "stop", svc).Run() })
	if out := cli("deploy", "-f", "/var/lib/alphaswarm/svc.yaml"); !strings.Contains(out, "Running") {
		t.Fatalf("deploy through the containerised controller: %s", out)
	}
	if ids := dockerPS(t, target, svc); len(ids) != 1 {
		t.Fatalf("docker ps after deploy: %v", ids)
	}
	cli("stop", svc)

	// The ledger survives a restart of the read-only container: it is on the volume.
	run("docker", "restart", "-t", "10", name)
	url = "http://" + run("docker", "port", name, "7070/tcp")
	ready()
	if out := cli("runs", "--service", svc, "--kind", "result", "-o", "json"); strings.Count(out, `"outcome": "ok"`) != 2 {
		t.Fatalf("runs after a restart: %s", out)
	}
	if out := cli("ledger", "verify"); !strings.HasPrefix(out, "chain OK") {
		t.Fatalf("ledger verify inside the container: %s", out)
	}
	t.Logf("ledger verify inside the container: %s", cli("ledger", "verify"))
}

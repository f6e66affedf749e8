// Package dockertest gives tests outside provider/docker what they need to
// run against the real Docker Engine: a check that an Engine answers
// (skipping loudly on a laptop without one, failing under CI), the test
// workload image, built FROM scratch from a static Go program
// (provider/docker/testdata/workload) because there is no registry to pull
// from, and NewTarget, a docker target of a test's own with that image and
// the provider opened on it, removed when the test ends.
//
// It is for tests (and the bench harness) only: nothing the controller
// ships imports it. It does not import provider/docker, whose own tests
// import it; a caller of NewTarget imports provider/docker itself.
package dockertest

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"time"

	"github.com/moby/moby/client"
)

// TB is the part of testing.TB the package uses.
type TB interface {
	Helper()
	Fatalf(format string, args ...any)
	Skipf(format string, args ...any)
	Cleanup(func())
}

// Client returns a raw Engine client from the environment, or an error if
// no Engine answers.
func Client(ctx context.Context) (*client.Client, error) {
	cli, err := client.New(client.FromEnv, client.WithAPIVersionNegotiation())
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if _, err := cli.Ping(ctx, client.PingOptions{NegotiateAPIVersion: true}); err != nil {
		cli.Close()
		return nil, err
	}
	return cli, nil
}

// Require skips (loudly) when no Engine answers, or fails under CI.
func Require(t TB) *client.Client {
	t.Helper()
	cli, err := Client(context.Background())
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("the Docker Engine is required under CI and does not answer: %v", err)
		}
		t.Skipf("SKIPPING: no Docker Engine answers (%v); these tests need one", err)
	}
	return cli
}

// WorkloadDir is the source directory of the test workload program.
func WorkloadDir() string {
	_, file, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(file), "..", "testdata", "workload")
}

// BuildImage compiles the test workload statically and builds an image
// tagged tag FROM scratch through the Engine API, labelled
// alphaswarm.test=<label>. The program serves HTTP on 8080 (/healthz,
// /env, /config, /burn?ms=, /log?text=), prints a startup line, and has
// subcommands for exec (echo, exit N, cat FILE, env, get URL).
func BuildImage(ctx context.Context, cli *client.Client, tag, label string) error {
	dir, err := os.MkdirTemp("", "alphaswarm-workload-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "workload")
	cmd := exec.CommandContext(ctx, "go", "build", "-trimpath", "-ldflags=-s -w", "-o", bin, ".")
	cmd.Dir = WorkloadDir()
	cmd.Env = append(os.Environ(), "CGO_ENABLED=0", "GOOS=linux")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build the test workload: %v\n%s", err, out)
	}
	binary, err := os.ReadFile(bin)
	if err != nil {
		return err
	}
	dockerfile := "FROM scratch\nCOPY workload /workload\nENTRYPOINT [\"/workload\"]\n"
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, f := range []struct {
		name string
		mode int64
		data []byte
	}{{"Dockerfile", 0o644, []byte(dockerfile)}, {"workload", 0o755, binary}} {
		if err := tw.WriteHeader(&tar.Header{Name: f.name, Mode: f.mode, Size: int64(len(f.data)), ModTime: time.Now()}); err != nil {
			return err
		}
		if _, err := tw.Write(f.data); err != nil {
			return err
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	res, err := cli.ImageBuild(ctx, &buf, client.ImageBuildOptions{
		Tags: []string{tag}, Remove: true, ForceRemove: true,
		Labels: map[string]string{"alphaswarm.test": label},
	})
	if err != nil {
		return err
	}
	defer res.Body.Close()
	dec := json.NewDecoder(res.Body)
	for {
		var msg struct {
			Error string `json:"error"`
		}
		if err := dec.Decode(&msg); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			return err
		}
		if msg.Error != "" {
			return errors.New(msg.Error)
		}
	}
	_, err = cli.ImageInspect(ctx, tag)
	return err
}

// RemoveImage removes an image built by BuildImage.
func RemoveImage(ctx context.Context, cli *client.Client, tag string) {
	_, _ = cli.ImageRemove(ctx, tag, client.ImageRemoveOptions{Force: true, PruneChildren: true})
}

// Sweep force-removes every container labelled alphaswarm.target=target,
// then removes the networks with that label, and returns how many
// containers there were.
func Sweep(ctx context.Context, cli *client.Client, target string) int {
	f := make(client.Filters).Add("label", "alphaswarm.target="+target)
	list, err := cli.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return 0
	}
	for _, c := range list.Items {
		_, _ = cli.ContainerRemove(ctx, c.ID, client.ContainerRemoveOptions{Force: true})
	}
	// The provider's per-service networks carry the same label; a
	// network outlives its containers unless removed.
	if nets, err := cli.NetworkList(ctx, client.NetworkListOptions{Filters: f}); err == nil {
		for _, n := range nets.Items {
			_, _ = cli.NetworkRemove(ctx, n.ID, client.NetworkRemoveOptions{})
		}
	}
	return len(list.Items)
}

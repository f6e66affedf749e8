package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"time"
)

// moduleRoot is the directory of the module the harness belongs to.
func moduleRoot() (string, error) {
	_, file, _, ok := runtime.Caller(0)
	if !ok {
		return "", fmt.Errorf("cannot locate the module")
	}
	return filepath.Dir(filepath.Dir(file)), nil
}

// buildBinaries builds alphaswarm and alphaswarmd into dir, and the floor:
// a Go program that only prints a line.
func buildBinaries(ctx context.Context, dir string) error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.CommandContext(ctx, "go", "build", "-o", dir+string(os.PathSeparator), "./cmd/alphaswarm", "./cmd/alphaswarmd")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build: %v\n%s", err, out)
	}
	floor := filepath.Join(dir, "floor")
	if err := os.MkdirAll(floor, 0o755); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(floor, "main.go"), []byte("package main\n\nimport \"os\"\n\nfunc main() { os.Stdout.WriteString(\"ok\\n\") }\n"), 0o644); err != nil {
		return err
	}
	if err := os.WriteFile(filepath.Join(floor, "go.mod"), []byte("module floor\n\ngo 1.21\n"), 0o644); err != nil {
		return err
	}
	cmd = exec.CommandContext(ctx, "go", "build", "-o", filepath.Join(dir, "empty-go-program"), ".")
	cmd.Dir = floor
	cmd.Env = append(os.Environ(), "GOWORK=off", "GOFLAGS=-mod=mod")
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("go build (empty program): %v\n%s", err, out)
	}
	return nil
}

// runner runs commands with a fixed environment.
type runner struct{ env []string }

// run runs argv and returns its wall time; a failure is an error with the
// command's output.
func (r runner) run(ctx context.Context, argv ...string) (time.Duration, error) {
	_, d, err := r.output(ctx, argv...)
	return d, err
}

func (r runner) output(ctx context.Context, argv ...string) (string, time.Duration, error) {
	cmd := exec.CommandContext(ctx, argv[0], argv[1:]...)
	cmd.Env = r.env
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	t0 := time.Now()
	err := cmd.Run()
	d := time.Since(t0)
	if err != nil {
		return out.String(), d, fmt.Errorf("%s: %v\n%s", strings.Join(argv, " "), err, strings.TrimSpace(out.String()))
	}
	return out.String(), d, nil
}

// median runs f n times and returns the median duration.
func median(n int, f func() (time.Duration, error)) (time.Duration, error) {
	ds := make([]time.Duration, 0, n)
	for range n {
		d, err := f()
		if err != nil {
			return 0, err
		}
		ds = append(ds, d)
	}
	return quantile(ds, 0.5), nil
}

// pairedMedians alternates a and b n times (alternating which goes first)
// and returns both medians.
func pairedMedians(n int, a, b func() (time.Duration, error)) (time.Duration, time.Duration, error) {
	var as, bs []time.Duration
	for i := range n {
		first, second := a, b
		if i%2 == 1 {
			first, second = b, a
		}
		d1, err := first()
		if err != nil {
			return 0, 0, err
		}
		d2, err := second()
		if err != nil {
			return 0, 0, err
		}
		if i%2 == 1 {
			d1, d2 = d2, d1
		}
		as, bs = append(as, d1), append(bs, d2)
	}
	return quantile(as, 0.5), quantile(bs, 0.5), nil
}

// server is alphaswarmd running for the harness.
type server struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	log  *lockedBuffer
}

type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServer runs `alphaswarm serve` (which runs alphaswarmd) with cfg and
// waits for its "listening on" line.
func startServer(ctx context.Context, bin string, env []string, cfg string) (*server, error) {
	s := &server{done: make(chan error, 1), log: &lockedBuffer{}}
	s.cmd = exec.Command(bin, "serve", "--config", cfg)
	s.cmd.Env = env
	s.cmd.Stderr = s.log
	out, err := s.cmd.StdoutPipe()
	if err != nil {
		return nil, err
	}
	if err := s.cmd.Start(); err != nil {
		return nil, err
	}
	go func() { s.done <- s.cmd.Wait() }()
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	timeout := time.After(2 * time.Minute)
	for {
		select {
		case line, ok := <-lines:
			if !ok {
				s.stop()
				return nil, fmt.Errorf("alphaswarmd exited before listening:\n%s", s.log.String())
			}
			if u, found := strings.CutPrefix(line, "listening on "); found {
				s.url = u
				go func() {
					for range lines {
					}
				}()
				return s, nil
			}
		case <-timeout:
			s.stop()
			return nil, fmt.Errorf("alphaswarmd did not listen within 2 minutes:\n%s", s.log.String())
		case <-ctx.Done():
			s.stop()
			return nil, ctx.Err()
		}
	}
}

func (s *server) stop() {
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(30 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

var _ io.Writer = (*lockedBuffer)(nil)

package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/url"
	"path"
	"sync/atomic"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/tools/remotecommand"
	utilexec "k8s.io/client-go/util/exec"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Exec implements provider.Execer through the pods' exec subresource, as
// `kubectl exec` does: a WebSocket stream (the API server's v5 remote
// command protocol), falling back to SPDY when the upgrade is refused.
// Instance names a pod of the service; empty picks the first ready pod by
// name. With TTY, stderr is merged into stdout by the terminal and Resize
// sizes it. The command's exit code is the result's; a failure to run it at
// all is an error.
//
// The command runs under /bin/sh, which reports its process ID and then
// becomes the command (exec_end.go), so that a command whose session ends
// first can be ended: Kubernetes has no call for that, and closing the
// streams does not do it. In a container without /bin/sh the command runs
// as given and cannot be ended that way; the result says so.
func (p *Provider) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	var res provider.ExecResult
	if err := workload.CheckName("name", name); err != nil {
		return res, err
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return res, workload.Invalid(workload.FieldError{Path: "command", Message: "is required"})
	}
	if err := p.permitted(provider.OpExec); err != nil {
		return res, err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return res, err
	}
	if _, ok := p.cache.deployment(name); !ok {
		return res, notFound(name)
	}
	pod, err := p.pickPod(name, req.Instance)
	if err != nil {
		return res, err
	}
	res.Instance = pod.Name
	x := &execRun{p: p, pod: pod.Name, container: containerFor(pod, name), req: req}
	x.stdout = &cutWriter{w: req.Stdout}
	if req.Stdout == nil {
		x.stdout.w = discard{}
	}
	if req.Stderr != nil && !req.TTY {
		x.stderr = &cutWriter{w: req.Stderr}
	}

	// Under the wrapper; its first line of output reports the process.
	mark := newMarkFilter(x.stdout)
	var stdin io.Reader
	gate := &gatedReader{r: req.Stdin, open: mark.seen, quit: make(chan struct{})}
	if req.Stdin != nil {
		// Stdin waits for that line: if /bin/sh cannot start, nothing
		// ran and no input was consumed, so the command can run as given.
		stdin = gate
	}
	orphan, err := x.run(ctx, wrapCommand(req.Command), mark, stdin, func(done <-chan error) *provider.ExecOrphan {
		return p.endExec(x, mark, done)
	})
	mark.flush()
	if err != nil && orphan == nil && ctx.Err() == nil && !mark.started() && !mark.wrote() && !isExitError(err) {
		// /bin/sh did not start (an image without a shell).
		close(gate.quit)
		orphan, err = x.run(ctx, req.Command, x.stdout, req.Stdin, func(<-chan error) *provider.ExecOrphan {
			return &provider.ExecOrphan{Detail: "not ended, it may still run: the container has no /bin/sh, so the command ran " +
				"without the wrapper that records its process ID, and the Kubernetes API cannot signal an exec'd process " +
				"(kubernetes/kubernetes#89031); its streams were closed, which ends only a command that stops at the end of its input"}
		})
	}
	if orphan != nil {
		res.Orphan = orphan
		return res, provider.Wrap(Name, p.classified, ctx.Err(), fmt.Sprintf("exec in pod %s (session ended before the command; %s)", pod.Name, orphan.Detail))
	}
	var exit utilexec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitStatus()
		return res, nil
	}
	return res, provider.Wrap(Name, p.classified, err, fmt.Sprintf("exec %q in pod %s", req.Command[0], pod.Name))
}

// execRun is one exec session: a pod's container and the caller's
// request, its output behind writers that go quiet once the caller has
// gone.
type execRun struct {
	p              *Provider
	pod, container string
	req            provider.ExecRequest
	stdout, stderr *cutWriter // stderr nil unless asked for (and no TTY)
}

// run streams command until it ends, or until ctx ends first: then the
// caller's output is cut off and end decides what becomes of the process
// while the stream is still open (end receives the stream's outcome
// channel). It returns the stream's error, or the orphan end reported and
// ctx's error.
func (x *execRun) run(ctx context.Context, command []string, stdout io.Writer, stdin io.Reader,
	end func(done <-chan error) *provider.ExecOrphan) (*provider.ExecOrphan, error) {
	// The stream outlives the caller's context, so that the command can
	// be ended (and seen to end) before its streams are closed; it ends
	// with the provider.
	sctx, stop := context.WithCancel(context.WithoutCancel(ctx))
	defer stop()
	defer context.AfterFunc(x.p.ctx, stop)()
	opts := &corev1.PodExecOptions{
		Container: x.container,
		Command:   command,
		Stdin:     stdin != nil,
		Stdout:    true,
		Stderr:    x.stderr != nil,
		TTY:       x.req.TTY,
	}
	so := remotecommand.StreamOptions{Stdout: stdout, Tty: x.req.TTY}
	if stdin != nil {
		so.Stdin = stdin
	}
	if x.stderr != nil {
		so.Stderr = x.stderr
	}
	if x.req.TTY && x.req.Resize != nil {
		so.TerminalSizeQueue = &sizeQueue{ctx: sctx, ch: x.req.Resize}
	}
	done := make(chan error, 1)
	go func() { done <- x.p.streamExec(sctx, x.pod, opts, so) }()
	select {
	case err := <-done:
		return nil, err
	case <-ctx.Done():
		x.stdout.cut()
		x.stderr.cut()
		return end(done), ctx.Err()
	}
}

// streamExec runs one exec of the pods' exec subresource.
func (p *Provider) streamExec(ctx context.Context, pod string, opts *corev1.PodExecOptions, so remotecommand.StreamOptions) error {
	u := *p.baseURL
	u.Path = path.Join(u.Path, "/api/v1/namespaces", p.opts.Namespace, "pods", pod, "exec")
	params, err := scheme.ParameterCodec.EncodeParameters(opts, corev1.SchemeGroupVersion)
	if err != nil {
		return provider.Errorf(Name, workload.Internal, "encode exec options: %v", err)
	}
	u.RawQuery = params.Encode()
	exec, err := p.newExecutor(&u)
	if err != nil {
		return provider.Wrap(Name, p.classified, err, "exec in pod "+pod)
	}
	return exec.StreamWithContext(ctx, so)
}

func isExitError(err error) bool {
	var exit utilexec.ExitError
	return errors.As(err, &exit)
}

// pickPod returns the named pod of a service, or its first ready pod.
func (p *Provider) pickPod(service, instance string) (*corev1.Pod, error) {
	pods := p.cache.podsOf(service)
	if instance != "" {
		for _, pod := range pods {
			if pod.Name == instance {
				if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
					return nil, provider.Errorf(Name, workload.Unavailable, "pod %s of service %s is %s, not running", instance, service, viewPod(pod).state)
				}
				return pod, nil
			}
		}
		return nil, provider.Errorf(Name, workload.NotFound, "service %s has no pod %s", service, instance)
	}
	for _, pod := range pods {
		if v := viewPod(pod); v.ready && pod.Status.Phase == corev1.PodRunning {
			return pod, nil
		}
	}
	return nil, provider.Errorf(Name, workload.Unavailable, "service %s has no ready pod to exec in (%d pods)", service, len(pods))
}

// sizeQueue hands terminal sizes to the executor until ctx ends or the
// channel closes.
type sizeQueue struct {
	ctx context.Context
	ch  <-chan provider.TermSize
}

func (q *sizeQueue) Next() *remotecommand.TerminalSize {
	select {
	case <-q.ctx.Done():
		return nil
	case s, ok := <-q.ch:
		if !ok {
			return nil
		}
		return &remotecommand.TerminalSize{Width: s.Cols, Height: s.Rows}
	}
}

type discard struct{}

func (discard) Write(b []byte) (int, error) { return len(b), nil }

// cutWriter passes writes on until cut, then drops them: the output of a
// command whose caller has gone goes nowhere. A nil *cutWriter is a no-op.
type cutWriter struct {
	w     io.Writer
	isCut atomic.Bool
}

func (c *cutWriter) Write(b []byte) (int, error) {
	if c.isCut.Load() {
		return len(b), nil
	}
	return c.w.Write(b)
}

func (c *cutWriter) cut() {
	if c != nil {
		c.isCut.Store(true)
	}
}

// parseBaseURL is the API server's base URL for a rest.Config host.
func parseBaseURL(host string) *url.URL {
	u, err := url.Parse(host)
	if err != nil || u.Scheme == "" || u.Host == "" {
		u = &url.URL{Scheme: "https", Host: host}
	}
	return u
}

package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"path"

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
func (p *Provider) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	var res provider.ExecResult
	if err := checkName(name); err != nil {
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
	opts := &corev1.PodExecOptions{
		Container: containerFor(pod, name),
		Command:   req.Command,
		Stdin:     req.Stdin != nil,
		Stdout:    req.Stdout != nil,
		Stderr:    req.Stderr != nil && !req.TTY,
		TTY:       req.TTY,
	}
	if !opts.Stdout && !opts.Stderr {
		// The API server refuses an exec with no stream at all.
		opts.Stdout = true
		req.Stdout = discard{}
	}
	u := *p.baseURL
	u.Path = path.Join(u.Path, "/api/v1/namespaces", p.opts.Namespace, "pods", pod.Name, "exec")
	params, err := scheme.ParameterCodec.EncodeParameters(opts, corev1.SchemeGroupVersion)
	if err != nil {
		return res, errorf(workload.Internal, "encode exec options: %v", err)
	}
	u.RawQuery = params.Encode()
	exec, err := p.newExecutor(&u)
	if err != nil {
		return res, p.wrap(err, "exec in pod "+pod.Name)
	}
	so := remotecommand.StreamOptions{Stdin: req.Stdin, Stdout: req.Stdout, Tty: req.TTY}
	if opts.Stderr {
		so.Stderr = req.Stderr
	}
	if req.TTY && req.Resize != nil {
		so.TerminalSizeQueue = &sizeQueue{ctx: ctx, ch: req.Resize}
	}
	err = exec.StreamWithContext(ctx, so)
	var exit utilexec.ExitError
	switch {
	case err == nil:
		return res, nil
	case errors.As(err, &exit):
		res.ExitCode = exit.ExitStatus()
		return res, nil
	}
	return res, p.wrap(err, fmt.Sprintf("exec %q in pod %s", req.Command[0], pod.Name))
}

// pickPod returns the named pod of a service, or its first ready pod.
func (p *Provider) pickPod(service, instance string) (*corev1.Pod, error) {
	pods := p.cache.podsOf(service)
	if instance != "" {
		for _, pod := range pods {
			if pod.Name == instance {
				if pod.DeletionTimestamp != nil || pod.Status.Phase != corev1.PodRunning {
					return nil, errorf(workload.Unavailable, "pod %s of service %s is %s, not running", instance, service, viewPod(pod).state)
				}
				return pod, nil
			}
		}
		return nil, errorf(workload.NotFound, "service %s has no pod %s", service, instance)
	}
	for _, pod := range pods {
		if v := viewPod(pod); v.ready && pod.Status.Phase == corev1.PodRunning {
			return pod, nil
		}
	}
	return nil, errorf(workload.Unavailable, "service %s has no ready pod to exec in (%d pods)", service, len(pods))
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

// parseBaseURL is the API server's base URL for a rest.Config host.
func parseBaseURL(host string) *url.URL {
	u, err := url.Parse(host)
	if err != nil || u.Scheme == "" || u.Host == "" {
		u = &url.URL{Scheme: "https", Host: host}
	}
	return u
}

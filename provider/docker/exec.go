package docker

import (
	"context"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Exec implements provider.Execer: the command runs in one replica (the
// one req.Instance names by id prefix or container name, else the lowest
// ready one) with its streams attached; with TTY the output comes as one
// raw stream on Stdout and Resize sizes the terminal. A command that runs
// and fails is not an error: its exit code is in the result.
func (p *Provider) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	if err := workload.CheckName("name", name); err != nil {
		return provider.ExecResult{}, err
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return provider.ExecResult{}, workload.Invalid(workload.FieldError{Path: "command", Message: "is required"})
	}
	if err := p.cache.waitReady(ctx); err != nil {
		return provider.ExecResult{}, err
	}
	in, err := p.pickInstance(name, req.Instance)
	if err != nil {
		return provider.ExecResult{}, err
	}
	res := provider.ExecResult{Instance: shortID(in.id)}
	cr, err := p.eng.ExecCreate(ctx, in.id, client.ExecCreateOptions{
		Cmd:          req.Command,
		TTY:          req.TTY,
		AttachStdin:  req.Stdin != nil,
		AttachStdout: true,
		AttachStderr: true,
	})
	if err != nil {
		return res, provider.Wrap(Name, p.classifier, err, "exec in "+in.name)
	}
	att, err := p.eng.ExecAttach(ctx, cr.ID, client.ExecAttachOptions{TTY: req.TTY})
	if err != nil {
		return res, provider.Wrap(Name, p.classifier, err, "attach to exec in "+in.name)
	}
	defer att.Close()

	done := make(chan struct{})
	defer close(done)
	var wg sync.WaitGroup
	// The caller's context ends the session.
	wg.Add(1)
	go func() {
		defer wg.Done()
		select {
		case <-ctx.Done():
			att.Close()
		case <-done:
		}
	}()
	if req.Resize != nil && req.TTY {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case sz, ok := <-req.Resize:
					if !ok {
						return
					}
					_, _ = p.eng.ExecResize(ctx, cr.ID, client.ExecResizeOptions{Height: uint(sz.Rows), Width: uint(sz.Cols)})
				case <-done:
					return
				}
			}
		}()
	}
	if req.Stdin != nil {
		// Not waited for: a Stdin that never ends must not hold Exec.
		go func() {
			_, _ = io.Copy(att.Conn, req.Stdin)
			_ = att.CloseWrite()
		}()
	}
	stdout, stderr := req.Stdout, req.Stderr
	if stdout == nil {
		stdout = io.Discard
	}
	if stderr == nil {
		stderr = io.Discard
	}
	if req.TTY {
		_, err = io.Copy(stdout, att.Reader)
	} else {
		_, err = stdcopy.StdCopy(stdout, stderr, att.Reader)
	}
	if ctx.Err() != nil {
		// The session ended first (client gone, timeout): end the process (exec_end.go).
		res.Orphan = p.endExec(cr.ID, in.id)
		return res, provider.Wrap(Name, p.classifier, ctx.Err(), "exec in "+in.name+" (session ended before the command; "+res.Orphan.Detail+")")
	}
	if err != nil && !isClosedErr(err) {
		return res, provider.Wrap(Name, p.classifier, err, "exec output from "+in.name)
	}
	// The output ends a moment before the Engine records the exit code.
	delay := 5 * time.Millisecond
	for {
		ins, err := p.eng.ExecInspect(ctx, cr.ID, client.ExecInspectOptions{})
		if err != nil {
			return res, provider.Wrap(Name, p.classifier, err, "exec result in "+in.name)
		}
		if !ins.Running {
			res.ExitCode = ins.ExitCode
			return res, nil
		}
		select {
		case <-ctx.Done():
			res.Orphan = p.endExec(cr.ID, in.id)
			return res, provider.Wrap(Name, p.classifier, ctx.Err(), "exec in "+in.name+" (session ended before the command; "+res.Orphan.Detail+")")
		case <-time.After(delay):
		}
		delay = min(2*delay, 200*time.Millisecond)
	}
}

func isClosedErr(err error) bool {
	return err == io.EOF || strings.Contains(err.Error(), "use of closed network connection")
}

// pickInstance finds the replica an exec runs in.
func (p *Provider) pickInstance(name, want string) (instance, error) {
	_, insts, ok := p.cache.snapshot(name)
	if !ok {
		return instance{}, provider.NotFound(Name, "service %s not found on docker target %s", name, p.target)
	}
	if want != "" {
		for _, in := range insts {
			if strings.HasPrefix(in.id, want) || in.name == want {
				if in.state != container.StateRunning {
					return instance{}, provider.Errorf(Name, workload.Conflict, "instance %s of %s is %s, not running", want, name, in.state)
				}
				return in, nil
			}
		}
		return instance{}, provider.NotFound(Name, "service %s has no instance %s", name, want)
	}
	var fallback *instance
	for i := range insts {
		in := &insts[i]
		if in.terminating {
			continue
		}
		if in.ready() {
			return *in, nil
		}
		if in.state == container.StateRunning && fallback == nil {
			fallback = in
		}
	}
	if fallback != nil {
		return *fallback, nil
	}
	return instance{}, provider.Errorf(Name, workload.Unavailable, "service %s has no running instance to exec in", name)
}

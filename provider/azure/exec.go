package azure

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/aciexec"
	"github.com/alphaswarm/controller/workload"
)

// ctrlC is the terminal's interrupt character: sent over the exec socket
// it makes the terminal ACI runs the command on send SIGINT to it (the
// Azure CLI forwards a user's Ctrl-C as this byte).
const ctrlC = 0x03

// execCancelGrace is how long Exec waits, after sending Ctrl-C to a
// command whose client left, for ACI to close the session (it does when
// the command exits).
const execCancelGrace = 2 * time.Second

// execOrphan says what became of a command whose client left first. ACI
// has no operation that ends an exec process (Containers has
// executeCommand, attach and listLogs only) and does not document whether
// closing the socket ends it; Ctrl-C is what it offers.
func execOrphan(ended bool) *provider.ExecOrphan {
	if ended {
		return &provider.ExecOrphan{Ended: true, Detail: "ended: Ctrl-C was sent over the exec socket (SIGINT through the terminal ACI runs the command on) and ACI closed the session, which it does when the command exits"}
	}
	return &provider.ExecOrphan{Detail: fmt.Sprintf("left running (unconfirmed): ACI has no operation that ends an exec process; Ctrl-C sent over the exec socket did not end the session within %s (the command ignores SIGINT, or is not the terminal's foreground process), and ACI does not document whether closing the socket, done next, ends it", execCancelGrace)}
}

// defaultTermSize is the terminal size sent when the request gives none.
var defaultTermSize = provider.TermSize{Cols: 80, Rows: 24}

// Exec implements provider.Execer with the containers' executeCommand
// operation and its WebSocket (package aciexec). ACI takes one command
// string and runs it as a single executable path, without arguments: "ls /"
// is looked up as an executable named "ls /" and the failure only shows as
// text on the socket (Azure/azure-cli#10039; docker/compose-cli's ACI
// backend refuses arguments for the same reason). A command of more than
// one word, or a word containing white space, is therefore invalid_argument
// before anything is sent: put the command line in a script in the image
// and exec the script. ACI runs it on a pseudo-terminal whose size goes in the request
// (the first size on req.Resize if one is ready, else 80x24) and cannot be
// changed during the session: later sizes are read and dropped. Output is
// one stream (stdout and stderr merged, to req.Stdout). ACI does not
// report exit codes: ExitCode is always 0.
func (p *Provider) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	if err := workload.CheckName("name", name); err != nil {
		return provider.ExecResult{}, err
	}
	if err := p.permitted(provider.OpExec); err != nil {
		return provider.ExecResult{}, err
	}
	if len(req.Command) == 0 {
		return provider.ExecResult{}, workload.Invalid(workload.FieldError{Path: "command", Message: "is required"})
	}
	if len(req.Command) > 1 || strings.ContainsAny(req.Command[0], " \t\r\n") {
		return provider.ExecResult{}, workload.Invalid(workload.FieldError{Path: "command", Message: "Azure Container Instances runs one executable without arguments (the whole command string is taken as the executable path); exec a script in the image instead"})
	}
	groups, err := p.existing(ctx, name)
	if err != nil {
		return provider.ExecResult{}, err
	}
	var g *group
	for i := range groups {
		if req.Instance != "" && groups[i].name != groupName(req.Instance) {
			continue
		}
		if groups[i].ready() {
			g = &groups[i]
			break
		}
	}
	if g == nil {
		if req.Instance != "" {
			return provider.ExecResult{}, provider.NotFound(Name, "service %s has no running instance %q", workload.ServiceID(p.target, name), req.Instance)
		}
		return provider.ExecResult{}, provider.Errorf(Name, workload.Conflict, "service %s has no running instance", workload.ServiceID(p.target, name))
	}
	size := defaultTermSize
	if req.Resize != nil {
		select {
		case s, ok := <-req.Resize:
			if ok && s.Cols > 0 && s.Rows > 0 {
				size = s
			}
		default:
		}
		done := make(chan struct{})
		defer close(done)
		go func() {
			for {
				select {
				case <-done:
					return
				case _, ok := <-req.Resize:
					if !ok {
						return
					}
				}
			}
		}()
	}
	resp, err := p.containers.ExecuteCommand(ctx, p.opts.ResourceGroup, g.name, containerName, armcontainerinstance.ContainerExecRequest{
		Command:      to.Ptr(req.Command[0]),
		TerminalSize: &armcontainerinstance.ContainerExecRequestTerminalSize{Rows: to.Ptr(int32(size.Rows)), Cols: to.Ptr(int32(size.Cols))},
	}, nil)
	if err != nil {
		return provider.ExecResult{}, mapErr("execute command in "+g.name, err)
	}
	if resp.WebSocketURI == nil || resp.Password == nil {
		return provider.ExecResult{}, provider.Errorf(Name, workload.ProviderError, "%s: %s", "execute command in "+g.name, "no WebSocket URI or password in the response")
	}
	st, err := aciexec.RunWith(ctx, *resp.WebSocketURI, *resp.Password, req.Stdin, req.Stdout, aciexec.Options{
		HTTPClient: p.execClient, OnCancel: []byte{ctrlC}, CancelGrace: execCancelGrace})
	if err != nil && ctx.Err() != nil {
		// The client left (or the exec timed out) before the command
		// ended: say what became of it.
		res := provider.ExecResult{Instance: g.instanceID(), Orphan: execOrphan(st.EndedAfterCancel)}
		code, why := workload.Unavailable, "cancelled"
		if errors.Is(err, context.DeadlineExceeded) {
			code, why = workload.Timeout, "deadline exceeded"
		}
		return res, provider.Wrap(Name, as(code, why+"; "+res.Orphan.Detail), err, "exec session of "+g.name)
	}
	switch {
	case err == nil:
	case errors.Is(err, aciexec.ErrPasswordRefused):
		return provider.ExecResult{}, provider.Wrap(Name, as(workload.ProviderError, err.Error()), err, "exec session of "+g.name)
	default:
		return provider.ExecResult{}, provider.Wrap(Name, as(workload.Unavailable, err.Error()), err, "exec session of "+g.name)
	}
	return provider.ExecResult{Instance: g.instanceID()}, nil
}

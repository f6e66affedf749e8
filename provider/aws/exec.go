package aws

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"time"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"
	"github.com/aws/smithy-go"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/ssmsession"
	"github.com/alphaswarm/controller/workload"
)

// ssmMessagesPermissions is what the task role must allow for ECS Exec.
const ssmMessagesPermissions = "ssmmessages:CreateControlChannel, ssmmessages:CreateDataChannel, " +
	"ssmmessages:OpenControlChannel and ssmmessages:OpenDataChannel"

// execUnsupportedReason says why the target cannot exec at all, or "".
func (p *Provider) execUnsupportedReason() string {
	if !p.opts.EnableExecuteCommand {
		return fmt.Sprintf("target %s does not turn on ECS Exec: set targets.%s.options.enableExecuteCommand: true "+
			"and taskRoleArn (a task role allowing %s), then start each service again", p.target, p.target, ssmMessagesPermissions)
	}
	if p.opts.TaskRoleArn == "" {
		return fmt.Sprintf("targets.%s.options.enableExecuteCommand needs taskRoleArn: ECS turns exec on only for tasks with a task role", p.target)
	}
	return ""
}

// checkExecOptions refuses, before Start changes anything, a target that
// asks for ECS Exec without the task role ECS requires for it.
func (p *Provider) checkExecOptions() error {
	if p.opts.EnableExecuteCommand && p.opts.TaskRoleArn == "" {
		return workload.Invalid(workload.FieldError{Path: "targets." + p.target + ".options.taskRoleArn",
			Message: "is required with enableExecuteCommand: ECS refuses to turn exec on for tasks without a task role, " +
				"and the role must allow " + ssmMessagesPermissions})
	}
	return nil
}

// Exec implements provider.Execer with ECS Exec: ExecuteCommand on one
// RUNNING task of the service (req.Instance, a task id, or the first task,
// by ARN, that has exec on and its ECS Exec agent running), then the
// Session Manager data channel (package ssmsession) for the session ECS
// returns. See "Exec" in docs/providers/aws.md for what the session can and
// cannot carry: notably the exit code is known only when the agent sends
// it, which ECS's agent does not; it is then reported as 0.
func (p *Provider) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	var res provider.ExecResult
	if err := workload.CheckName("name", name); err != nil {
		return res, err
	}
	if len(req.Command) == 0 || req.Command[0] == "" {
		return res, workload.Invalid(workload.FieldError{Path: "command", Message: "is required"})
	}
	if r := p.execUnsupportedReason(); r != "" {
		return res, provider.ErrUnsupported(Name, provider.OpExec, r)
	}
	if err := p.permitted(provider.OpExec, false); err != nil {
		return res, err
	}
	svc, err := p.describe(ctx, name)
	if err != nil {
		return res, err
	}
	if svc == nil {
		return res, provider.NotFound(Name, "ECS service %q not found", workload.ServiceID(p.target, name))
	}
	if !svc.EnableExecuteCommand {
		return res, provider.ErrUnsupported(Name, provider.OpExec, fmt.Sprintf(
			"service %s was started without enableExecuteCommand; the target option is set now: start the service again "+
				"(ECS turns exec on only for the tasks launched after that)", name))
	}
	task, err := p.execTask(ctx, name, req.Instance)
	if err != nil {
		return res, err
	}
	res.Instance = taskID(sdkaws.ToString(task.TaskArn))
	out, err := p.ecs.ExecuteCommand(ctx, &ecs.ExecuteCommandInput{
		Cluster:     sdkaws.String(p.opts.Cluster),
		Task:        sdkaws.String(res.Instance), // the id (ECS takes the id or the ARN)
		Container:   sdkaws.String(name),
		Command:     sdkaws.String(joinCommand(req.Command)),
		Interactive: true, // the only mode ECS supports
	})
	if err != nil {
		var ae smithy.APIError
		if errors.As(err, &ae) && ae.ErrorCode() == "InvalidParameterException" &&
			strings.Contains(ae.ErrorMessage(), "execute command was not enabled") {
			// The task has exec on (checked above), so of the two causes
			// ECS's message names, its agent not running is the one.
			return res, provider.Wrap(Name, func(error) (workload.Code, string) {
				return workload.Unavailable, ae.ErrorMessage() + " (the task has exec on: its ECS Exec agent is not running; retry later)"
			}, err, "ExecuteCommand in task "+res.Instance)
		}
		return res, mapErr("ExecuteCommand in task "+res.Instance, err)
	}
	if out.Session == nil || sdkaws.ToString(out.Session.StreamUrl) == "" || sdkaws.ToString(out.Session.TokenValue) == "" {
		return res, provider.Errorf(Name, workload.ProviderError, "ExecuteCommand in task %s: the answer has no session", res.Instance)
	}
	sessionID := sdkaws.ToString(out.Session.SessionId)
	opts := ssmsession.Options{Stdin: req.Stdin, Stdout: req.Stdout, Stderr: req.Stderr}
	var normalized []*crlfWriter
	if req.TTY {
		opts.Resize = req.Resize
	} else {
		// The session is a terminal whatever the caller asked: undo its
		// output translation, and end the input the way a terminal's
		// reader sees an end.
		if req.Stdout != nil {
			w := &crlfWriter{w: req.Stdout}
			normalized, opts.Stdout = append(normalized, w), w
		}
		if req.Stderr != nil {
			w := &crlfWriter{w: req.Stderr}
			normalized, opts.Stderr = append(normalized, w), w
		}
		opts.EOFSendsEOT = true
		if req.Stdin == nil {
			// No input is an empty one: its end (Ctrl-D) still goes out
			// after the handshake, or a command reading the terminal
			// (cat) would wait until ctx ends.
			opts.Stdin = strings.NewReader("")
		}
	}
	r, err := ssmsession.Run(ctx, sdkaws.ToString(out.Session.StreamUrl), sdkaws.ToString(out.Session.TokenValue), opts)
	for _, w := range normalized {
		if ferr := w.Flush(); ferr != nil && err == nil {
			err = fmt.Errorf("write output: %w", ferr)
		}
	}
	what := "exec session " + sessionID + " in task " + res.Instance
	if err != nil {
		// The caller gave up or the channel broke: end the command rather
		// than leave it to Session Manager's idle timeout, and say so.
		res.Orphan = p.terminateSession(ctx, sessionID)
		if errors.Is(err, ssmsession.ErrKMSEncryption) {
			return res, provider.ErrUnsupported(Name, provider.OpExec, fmt.Sprintf(
				"%s: %v (the cluster's executeCommandConfiguration names a KMS key; this controller's Session Manager client has no KMS support)", what, err))
		}
		if errors.Is(err, ssmsession.ErrChannelClosed) {
			return res, provider.Wrap(Name, func(error) (workload.Code, string) { return workload.Unavailable, "" }, err, what)
		}
		return res, mapErr(what, err)
	}
	if r.CloseOutput != "" {
		// A normal end closes the channel with an empty Output.
		return res, provider.Errorf(Name, workload.Unavailable, "%s: Session Manager closed the session: %s", what, r.CloseOutput)
	}
	if r.ExitCode != nil {
		res.ExitCode = *r.ExitCode
	}
	return res, nil
}

// terminateSession ends an abandoned session so that its command does
// not outlive the caller (with a context of its own), and says what became
// of the command. When Session Manager accepts TerminateSession, the
// agent in the task cancels the session: it kills the command's process
// (SIGKILL) and closes its terminal, which hangs up the rest of the
// terminal's process group (amazon-ssm-agent, agent/session/shell/shell.go,
// executeCommandsWithPty: "Setup cancellation flag for accepting
// TerminateSession requests", then execCmd.Kill() and the pty closed).
// Nothing in ECS shows the process itself, so that is the evidence: a
// child that left the terminal's session (setsid, nohup with a new
// session) is not reached, and the init process the target's task
// definitions run reaps what is left. A refused or failed TerminateSession
// leaves the command running until Session Manager's idle timeout.
func (p *Provider) terminateSession(ctx context.Context, id string) *provider.ExecOrphan {
	if id == "" {
		return &provider.ExecOrphan{Detail: "left running: ECS answered no session id, so the session cannot be terminated"}
	}
	tctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	if _, err := p.ssm.TerminateSession(tctx, &ssm.TerminateSessionInput{SessionId: sdkaws.String(id)}); err != nil {
		return &provider.ExecOrphan{Detail: fmt.Sprintf("left running: SSM TerminateSession %s failed (%v); the command runs until "+
			"Session Manager's idle session timeout ends the session", id, mapErr("TerminateSession", err))}
	}
	return &provider.ExecOrphan{Ended: true, Detail: fmt.Sprintf("ended: SSM TerminateSession %s accepted; the session's agent "+
		"kills the command (SIGKILL) and closes its terminal (SIGHUP to its process group); a process that left the "+
		"terminal's session is not reached (ECS shows no process to confirm this)", id)}
}

// execTask picks the task to exec in.
func (p *Provider) execTask(ctx context.Context, name, instance string) (*ecstypes.Task, error) {
	tasks, err := p.tasks(ctx, name) // status.go
	if err != nil {
		return nil, err
	}
	sort.Slice(tasks, func(i, j int) bool { return sdkaws.ToString(tasks[i].TaskArn) < sdkaws.ToString(tasks[j].TaskArn) })
	unavailable := func(format string, args ...any) error {
		return provider.Errorf(Name, workload.Unavailable, format, args...)
	}
	if instance != "" {
		for i := range tasks {
			t := &tasks[i]
			id := taskID(sdkaws.ToString(t.TaskArn))
			if id != instance && sdkaws.ToString(t.TaskArn) != instance {
				continue
			}
			switch {
			case sdkaws.ToString(t.LastStatus) != "RUNNING":
				return nil, unavailable("task %s of service %s is %s, not RUNNING", id, name, sdkaws.ToString(t.LastStatus))
			case !t.EnableExecuteCommand:
				return nil, provider.ErrUnsupported(Name, provider.OpExec, fmt.Sprintf(
					"task %s of service %s was launched before enableExecuteCommand was set, and keeps it off: exec in another task, or restart the service", id, name))
			}
			if s := execAgentStatus(t); s != "" && s != "RUNNING" {
				return nil, unavailable("the ECS Exec agent of task %s is %s, not RUNNING", id, s)
			}
			return t, nil
		}
		return nil, provider.NotFound(Name, "service %s has no running task %s", name, instance)
	}
	running, enabled := 0, 0
	var agents []string
	for i := range tasks {
		t := &tasks[i]
		if sdkaws.ToString(t.LastStatus) != "RUNNING" {
			continue
		}
		running++
		if !t.EnableExecuteCommand {
			continue
		}
		enabled++
		if s := execAgentStatus(t); s != "" && s != "RUNNING" {
			agents = append(agents, taskID(sdkaws.ToString(t.TaskArn))+" "+s)
			continue
		}
		return t, nil
	}
	switch {
	case running == 0:
		return nil, unavailable("service %s has no running task to exec in (%d tasks)", name, len(tasks))
	case enabled == 0:
		return nil, unavailable("the %d running tasks of service %s were launched before enableExecuteCommand was set: "+
			"the next deployment replaces them (restart the service)", running, name)
	}
	return nil, unavailable("the ECS Exec agents of service %s's tasks are not running yet: %s", name, strings.Join(agents, ", "))
}

// execAgentStatus is the lastStatus of the task's ECS Exec agent, or "" if
// DescribeTasks does not report one.
func execAgentStatus(t *ecstypes.Task) string {
	for _, c := range t.Containers {
		for _, a := range c.ManagedAgents {
			if a.Name == ecstypes.ManagedAgentNameExecuteCommandAgent {
				return sdkaws.ToString(a.LastStatus)
			}
		}
	}
	return ""
}

// joinCommand makes the one string ExecuteCommand takes. The agent in a
// container splits it into words with google/shlex and runs them without a
// shell, so every word that is not made only of safe characters is put in
// single quotes (a quote inside ends them, is escaped with a backslash,
// and reopens them), which that splitter reads back exactly; # is quoted
// too, as it starts a comment there.
func joinCommand(args []string) string {
	quoted := make([]string, len(args))
	for i, a := range args {
		quoted[i] = shellQuote(a)
	}
	return strings.Join(quoted, " ")
}

func shellQuote(s string) string {
	if s == "" {
		return "''"
	}
	safe := true
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || strings.ContainsRune("@%+=:,./_-", r)) {
			safe = false
			break
		}
	}
	if safe {
		return s
	}
	return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
}

// crlfWriter undoes a terminal's output translation (ONLCR: every "\n"
// sent as "\r\n") by writing every "\r\n" as "\n"; it is the exact
// inverse, so a "\r\n" the command itself wrote ("\r\r\n" on the wire)
// comes out as "\r\n". A "\r" ending a write is held until the next write
// or Flush.
type crlfWriter struct {
	w  io.Writer
	cr bool
}

func (c *crlfWriter) Write(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	out := make([]byte, 0, len(p)+1)
	if c.cr {
		c.cr = false
		if p[0] != '\n' {
			out = append(out, '\r')
		}
	}
	for i, b := range p {
		if b == '\r' {
			if i == len(p)-1 {
				c.cr = true
				continue
			}
			if p[i+1] == '\n' {
				continue
			}
		}
		out = append(out, b)
	}
	if _, err := c.w.Write(out); err != nil {
		return 0, err
	}
	return len(p), nil
}

// Flush writes a held "\r".
func (c *crlfWriter) Flush() error {
	if !c.cr {
		return nil
	}
	c.cr = false
	_, err := c.w.Write([]byte{'\r'})
	return err
}

package docker

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
)

// Ending an exec whose session is gone.
//
// The Engine API has no call that signals an exec'd process (moby/moby
// issue 9098: "docker exec" processes survive their client; the CLI's
// own detach leaves them running too), and closing the attach stream
// ends nothing when the exec has a TTY. What the Engine does report is
// the process's PID in the Engine's PID namespace (ExecInspect). When the
// controller shares that namespace (the Engine on this host, the usual
// local target) and /proc shows that PID inside the container's cgroup
// (so a reused PID is never signalled), the process group is sent SIGHUP
// and SIGTERM, as a terminal hang-up would, then SIGKILL if it has not
// exited after execEndGrace. Otherwise the process is left running and
// the result says why.

// execEndGrace is how long an orphaned exec gets between SIGTERM and
// SIGKILL.
const execEndGrace = 2 * time.Second

// endExec ends exec execID in container containerID (a full ID) after
// its session ended first, and reports what happened.
func (p *Provider) endExec(execID, containerID string) *provider.ExecOrphan {
	ctx, cancel := context.WithTimeout(context.Background(), execEndGrace+10*time.Second)
	defer cancel()
	ins, err := p.eng.ExecInspect(ctx, execID, client.ExecInspectOptions{})
	if err != nil {
		return &provider.ExecOrphan{Detail: "left running: the Engine could not be asked about the exec: " + err.Error()}
	}
	if !ins.Running {
		return &provider.ExecOrphan{Ended: true, Detail: fmt.Sprintf("the command had already exited with code %d", ins.ExitCode)}
	}
	pid := ins.PID
	if pid <= 0 {
		return &provider.ExecOrphan{Detail: "left running: the Engine did not report the exec's process ID"}
	}
	if why := ownedBy(pid, containerID); why != "" {
		// The command may have exited between the inspection and the look
		// at /proc: one reading stdin ends on the EOF the closed session
		// gives it. Ask the Engine again, briefly, before saying it runs.
		if ins, ok := p.execExited(ctx, execID, execGoneWait); ok {
			return &provider.ExecOrphan{Ended: true, Detail: fmt.Sprintf("the command exited with code %d as its session ended", ins.ExitCode)}
		}
		return &provider.ExecOrphan{Detail: "left running: the Engine API cannot signal an exec'd process " +
			"(moby/moby#9098) and " + why}
	}
	target := pid
	if pgid, err := syscall.Getpgid(pid); err == nil && pgid == pid {
		target = -pid // the exec leads its process group (always with a TTY): end the group
	}
	for _, sig := range []syscall.Signal{syscall.SIGHUP, syscall.SIGTERM} {
		if err := syscall.Kill(target, sig); err != nil && !errors.Is(err, syscall.ESRCH) {
			return &provider.ExecOrphan{Detail: fmt.Sprintf("left running: signalling process %d failed: %v", pid, err)}
		}
	}
	if p.waitExecExit(ctx, execID, execEndGrace) {
		return &provider.ExecOrphan{Ended: true, Detail: fmt.Sprintf("ended: process %d was sent SIGHUP and SIGTERM", pid)}
	}
	if ownedBy(pid, containerID) == "" {
		_ = syscall.Kill(target, syscall.SIGKILL)
	}
	if p.waitExecExit(ctx, execID, execEndGrace) {
		return &provider.ExecOrphan{Ended: true, Detail: fmt.Sprintf("ended: process %d ignored SIGTERM for %v and was sent SIGKILL", pid, execEndGrace)}
	}
	return &provider.ExecOrphan{Detail: fmt.Sprintf("left running: process %d was still running after SIGKILL", pid)}
}

// execGoneWait is how long endExec waits for the Engine to report the
// exit of an exec whose process is no longer to be seen.
const execGoneWait = 500 * time.Millisecond

// waitExecExit polls until the exec is no longer running or d passes.
func (p *Provider) waitExecExit(ctx context.Context, execID string, d time.Duration) bool {
	_, ok := p.execExited(ctx, execID, d)
	return ok
}

// execExited polls until the Engine reports the exec not running (true,
// with that inspection) or d passes.
func (p *Provider) execExited(ctx context.Context, execID string, d time.Duration) (client.ExecInspectResult, bool) {
	deadline := time.Now().Add(d)
	for {
		ins, err := p.eng.ExecInspect(ctx, execID, client.ExecInspectOptions{})
		if err == nil && !ins.Running {
			return ins, true
		}
		if time.Now().After(deadline) {
			return ins, false
		}
		select {
		case <-ctx.Done():
			return ins, false
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// ownedBy returns "" when process pid, as this process sees it, is in
// containerID's cgroup; otherwise why it cannot be told.
func ownedBy(pid int, containerID string) string {
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/cgroup")
	if err != nil {
		return fmt.Sprintf("its process %d is not visible here (the Engine runs on another host or in another PID namespace)", pid)
	}
	if containerID == "" || !strings.Contains(string(b), containerID) {
		return fmt.Sprintf("process %d here is not in the container's cgroup (another PID namespace)", pid)
	}
	return ""
}

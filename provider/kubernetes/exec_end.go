package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/alphaswarm/controller/provider"
)

// Ending an exec whose session is gone.
//
// Kubernetes has no call that signals an exec'd process, and closing the
// exec's streams does not end it: the kubelet's container runtime keeps
// it running, with or without a TTY (kubernetes/kubernetes#89031,
// kubernetes/kubectl#1076; containerd and runc behave alike,
// opencontainers/runc#3359). What a second exec in the same container can
// do is signal a process by its ID, in the container's PID namespace. So
// every command runs under /bin/sh, which prints one line,
//
//	@alphaswarm-exec PID STARTTIME
//
// (its process ID and its start time from /proc/PID/stat) and then execs
// the command, which keeps that PID. Exec strips the line from the output
// and holds stdin back until it has come. When the session ends before the
// command (the client went away, or the exec timed out), the exec's stream
// is kept open and a second exec runs endScript, which checks that the PID
// still has that start time (so a reused PID is never signalled), collects
// the process's descendants through /proc, and sends SIGHUP and SIGTERM to
// its process group (when it leads one, as with a TTY) and to each of
// them, as a terminal hang-up would; after execEndGrace, SIGKILL. The
// command is ended when its stream ends (the runtime saw it exit); only
// then are the streams closed.
//
// Limits: the container needs /bin/sh (with `read` and `kill`, any POSIX
// shell) and /proc; without /bin/sh the command runs as given and the
// result says it may still run. A process that leaves the tree (a daemon
// reparented to PID 1) is not found. The second exec needs the same
// pods/exec permission as the first. A command that is not found is
// reported by the shell (exit code 127) rather than by the runtime.

// execEndGrace is how long an orphaned exec gets between SIGTERM and
// SIGKILL, and how long a signalled exec's stream gets to end.
const execEndGrace = 2 * time.Second

// markPrefix starts the wrapper's first line of output.
const markPrefix = "@alphaswarm-exec "

// wrapScript reports the shell's PID and start time, then becomes the
// command ("$@"). The start time is field 22 of /proc/PID/stat, counted
// after the parenthesised command name (which may hold spaces).
const wrapScript = `t=; s=; read -r s 2>/dev/null </proc/$$/stat && { f() { [ $# -ge 20 ] && shift 19 && t=$1; }; f ${s##*) }; }; ` +
	`echo "` + markPrefix + `$$ $t"; exec "$@"`

// endScript SIGS PID START signals process PID and its descendants with
// each of SIGS (none: only look) if PID still has start time START, and
// prints "signalled PID..." or "gone".
const endScript = `st() { s=; read -r s 2>/dev/null </proc/$1/stat || return 1; set -- ${s##*) }; [ $# -ge 20 ] || return 1; pp=$2; shift 19; t=$1; }
sig=$1; pid=$2; start=$3
[ "$pid" -gt 1 ] 2>/dev/null && st "$pid" && [ "$t" = "$start" ] || { echo gone; exit 0; }
all=$pid; new=$pid
while [ -n "$new" ]; do
  next=
  for d in /proc/[0-9]*; do
    c=${d#/proc/}
    st "$c" || continue
    for q in $new; do [ "$pp" = "$q" ] && next="$next $c"; done
  done
  all="$all$next"; new=$next
done
for g in $sig; do kill -s "$g" -- "-$pid" 2>/dev/null; kill -s "$g" $all 2>/dev/null; done
echo "signalled $all"`

// wrapCommand is command under the wrapper.
func wrapCommand(command []string) []string {
	return append([]string{"/bin/sh", "-c", wrapScript, "alphaswarm-exec"}, command...)
}

// endExec ends the command of x, whose session ended first, while its
// stream (done delivers its end) is still open, and reports what happened.
func (p *Provider) endExec(x *execRun, mark *markFilter, done <-chan error) *provider.ExecOrphan {
	select { // the session may end while the shell is starting
	case <-mark.seen:
	case <-done:
		return &provider.ExecOrphan{Ended: true, Detail: "the command had already exited"}
	case <-time.After(execEndGrace):
	}
	pid, start, ok := mark.process()
	switch {
	case !ok:
		return &provider.ExecOrphan{Detail: "not ended, it may still run: the wrapper never reported the command's process ID " +
			"(the session ended before /bin/sh started), and the Kubernetes API cannot signal an exec'd process (kubernetes/kubernetes#89031)"}
	case start == "":
		return &provider.ExecOrphan{Detail: fmt.Sprintf("not ended, it may still run: the container has no /proc, so process %d "+
			"cannot be told from a later one with the same ID, and is not signalled", pid)}
	}
	ctx, cancel := context.WithTimeout(p.ctx, 4*execEndGrace+30*time.Second)
	defer cancel()
	steps := []struct{ sigs, how string }{
		{"HUP TERM", "was sent SIGHUP and SIGTERM"},
		{"KILL", fmt.Sprintf("ignored SIGTERM for %v and was sent SIGKILL", execEndGrace)},
	}
	for _, step := range steps {
		out, err := p.signalExec(ctx, x, step.sigs, pid, start)
		if err != nil {
			return &provider.ExecOrphan{Detail: fmt.Sprintf("not ended, it may still run: signalling process %d takes a second exec in pod %s, which failed: %v", pid, x.pod, err)}
		}
		if out == "gone" {
			return &provider.ExecOrphan{Ended: true, Detail: "the command had already exited"}
		}
		select {
		case <-done:
			return &provider.ExecOrphan{Ended: true, Detail: fmt.Sprintf("ended: process %d %s (%s)", pid, step.how, strings.TrimPrefix(out, "signalled "))}
		case <-time.After(execEndGrace):
		}
	}
	if out, err := p.signalExec(ctx, x, "", pid, start); err == nil && out == "gone" {
		return &provider.ExecOrphan{Ended: true, Detail: fmt.Sprintf("ended: process %d was sent SIGKILL; its stream stayed open (a process it left behind holds its output)", pid)}
	}
	return &provider.ExecOrphan{Detail: fmt.Sprintf("left running: process %d was still running after SIGKILL", pid)}
}

// signalExec runs endScript in x's container and returns its answer.
func (p *Provider) signalExec(ctx context.Context, x *execRun, sigs string, pid int, start string) (string, error) {
	var out, errOut bytes.Buffer
	opts := &corev1.PodExecOptions{Container: x.container, Stdout: true, Stderr: true,
		Command: []string{"/bin/sh", "-c", endScript, "alphaswarm-exec-end", sigs, strconv.Itoa(pid), start}}
	err := p.streamExec(ctx, x.pod, opts, remotecommand.StreamOptions{Stdout: &out, Stderr: &errOut})
	answer := strings.TrimSpace(out.String())
	if err == nil && answer != "gone" && !strings.HasPrefix(answer, "signalled ") {
		err = fmt.Errorf("unexpected answer %q %q", answer, strings.TrimSpace(errOut.String()))
	}
	return answer, err
}

// markFilter takes the wrapper's first line out of the command's output
// and passes everything else on to w.
type markFilter struct {
	w    io.Writer
	seen chan struct{} // closed when the wrapper's line has come

	mu      sync.Mutex
	through bool   // the first line is past: write through
	buf     []byte // the first line so far
	pid     int
	start   string
	any     bool // w was written to
}

// maxMarkLine bounds the wrapper's line; a longer first line is output.
const maxMarkLine = 128

func newMarkFilter(w io.Writer) *markFilter {
	return &markFilter{w: w, seen: make(chan struct{})}
}

func (m *markFilter) Write(b []byte) (int, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.through {
		m.any = m.any || len(b) > 0
		return m.write(b, len(b))
	}
	m.buf = append(m.buf, b...)
	i := bytes.IndexByte(m.buf, '\n')
	if i < 0 {
		if len(m.buf) < maxMarkLine && (bytes.HasPrefix(m.buf, []byte(markPrefix)) || bytes.HasPrefix([]byte(markPrefix), m.buf)) {
			return len(b), nil // maybe ours: wait for the rest of the line
		}
		return m.release(len(b))
	}
	if pid, start, ok := parseMark(string(bytes.TrimRight(m.buf[:i], "\r"))); ok {
		m.pid, m.start = pid, start
		m.buf = m.buf[i+1:]
		close(m.seen)
	}
	return m.release(len(b))
}

// release writes what is buffered through, from now on.
func (m *markFilter) release(n int) (int, error) {
	m.through = true
	rest := m.buf
	m.buf = nil
	m.any = m.any || len(rest) > 0
	return m.write(rest, n)
}

func (m *markFilter) write(b []byte, n int) (int, error) {
	if len(b) > 0 {
		if _, err := m.w.Write(b); err != nil {
			return 0, err
		}
	}
	return n, nil
}

// flush writes out a partial first line left when the stream ended.
func (m *markFilter) flush() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if !m.through {
		_, _ = m.release(0)
	}
}

// started reports whether the wrapper's line came (the shell ran).
func (m *markFilter) started() bool {
	select {
	case <-m.seen:
		return true
	default:
		return false
	}
}

// wrote reports whether any output was passed on.
func (m *markFilter) wrote() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.any
}

// process returns what the wrapper reported.
func (m *markFilter) process() (pid int, start string, ok bool) {
	if !m.started() {
		return 0, "", false
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.pid, m.start, true
}

// parseMark reads "@alphaswarm-exec PID [START]".
func parseMark(line string) (int, string, bool) {
	rest, ok := strings.CutPrefix(line, markPrefix)
	if !ok {
		return 0, "", false
	}
	f := strings.Fields(rest)
	if len(f) == 0 || len(f) > 2 {
		return 0, "", false
	}
	pid, err := strconv.Atoi(f[0])
	if err != nil || pid <= 1 {
		return 0, "", false
	}
	start := ""
	if len(f) == 2 {
		if _, err := strconv.ParseUint(f[1], 10, 64); err != nil {
			return 0, "", false
		}
		start = f[1]
	}
	return pid, start, true
}

// gatedReader holds reads back until open is closed; once quit is closed
// instead, it reports the end of input without reading anything.
type gatedReader struct {
	r    io.Reader
	open <-chan struct{}
	quit chan struct{}
}

func (g *gatedReader) Read(b []byte) (int, error) {
	select {
	case <-g.open:
		return g.r.Read(b)
	case <-g.quit:
		return 0, io.EOF
	}
}

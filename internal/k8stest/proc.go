package k8stest

import (
	"bufio"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"time"

	"github.com/alphaswarm/controller/internal/testproc"
)

// proc is one running component.
type proc struct {
	name  string
	log   string // its stdout and stderr
	cmd   *exec.Cmd
	child *testproc.Child
	done  <-chan struct{} // closed when it has exited
}

// startProc starts bin with args as a child of the test process, its output
// going to dir/name.log.
func startProc(dir, name, bin string, args, env []string) (*proc, error) {
	p := &proc{name: name, log: filepath.Join(dir, name+".log")}
	logf, err := os.Create(p.log)
	if err != nil {
		return nil, err
	}
	defer logf.Close()
	p.cmd = exec.Command(bin, args...)
	p.cmd.Dir = dir
	p.cmd.Stdout, p.cmd.Stderr = logf, logf
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.SysProcAttr = testproc.DeathSignal(syscall.SIGKILL, nil)
	child, err := testproc.Start(p.cmd)
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", name, err)
	}
	p.child, p.done = child, child.Done
	return p, nil
}

// exited reports, without waiting, whether the component has exited and
// if so an error saying so with the tail of its log.
func (p *proc) exited() error {
	select {
	case <-p.done:
		return p.failure(fmt.Sprintf("exited (%v)", p.child.Err()))
	default:
		return nil
	}
}

// failure is an error about the component with the tail of its log.
func (p *proc) failure(what string) error {
	return fmt.Errorf("%s %s; last lines of %s:\n%s", p.name, what, p.log, tail(p.log, 40))
}

// signal sends sig unless the component has exited.
func (p *proc) signal(sig os.Signal) {
	select {
	case <-p.done:
	default:
		_ = p.cmd.Process.Signal(sig)
	}
}

// stop sends SIGTERM, then SIGKILL after grace, and waits for the exit.
func (p *proc) stop(grace time.Duration) {
	p.signal(syscall.SIGTERM)
	select {
	case <-p.done:
	case <-time.After(grace):
		p.signal(syscall.SIGKILL)
		<-p.done
	}
}

// tail returns the last n lines of a file.
func tail(path string, n int) string {
	f, err := os.Open(path)
	if err != nil {
		return "(no log: " + err.Error() + ")"
	}
	defer f.Close()
	var lines []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		lines = append(lines, sc.Text())
		if len(lines) > n {
			lines = lines[1:]
		}
	}
	return strings.Join(lines, "\n")
}

// freePorts returns n distinct TCP ports free on 127.0.0.1 right now. A
// component may still lose its port to another process before it binds it;
// Start then tries again with new ports.
func freePorts(n int) ([]int, error) {
	var ls []net.Listener
	defer func() {
		for _, l := range ls {
			l.Close()
		}
	}()
	ports := make([]int, 0, n)
	for range n {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		ls = append(ls, l)
		ports = append(ports, l.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// dirPrefix names the cluster directories.
const dirPrefix = "k8stest-"

// makeDir creates a cluster directory in base, marked with the test
// process's pid so that a later run can tell when it is abandoned.
func makeDir(base string) (string, error) { return testproc.MakeDir(base, dirPrefix, nil) }

// Package testproc starts the servers tests depend on (PostgreSQL, etcd,
// kube-apiserver…) as children that die with the test process: the
// parent-death signal is delivered when the OS thread that started the child
// exits, so Start keeps that thread alive for the child's whole life.
package testproc

import (
	"os/exec"
	"runtime"
)

// Child is a started process.
type Child struct {
	Cmd *exec.Cmd
	// Done is closed when the process has exited; Err is then its status.
	Done <-chan struct{}
	err  error
}

// Err is the exit status; valid once Done is closed.
func (c *Child) Err() error { return c.err }

// Start starts cmd on a locked OS thread and waits for it in the background.
// Set cmd.SysProcAttr (see DeathSignal) before calling it.
func Start(cmd *exec.Cmd) (*Child, error) {
	done := make(chan struct{})
	c := &Child{Cmd: cmd, Done: done}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread() // never unlocked: the thread dies with the child's waiter
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		c.err = cmd.Wait()
		close(done)
	}()
	if err := <-started; err != nil {
		return nil, err
	}
	return c, nil
}

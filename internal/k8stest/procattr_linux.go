package k8stest

import "syscall"

// procAttr has the kernel kill the component if the test process (strictly:
// the OS thread that started it, which startProc keeps alive for the
// component's whole life) dies first.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
}

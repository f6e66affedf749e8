package testproc

import "syscall"

// DeathSignal returns process attributes that make the kernel send sig to
// the child if the test process dies first, running it as cred when set.
func DeathSignal(sig syscall.Signal, cred *syscall.Credential) *syscall.SysProcAttr {
	return &syscall.SysProcAttr{Pdeathsig: sig, Credential: cred}
}

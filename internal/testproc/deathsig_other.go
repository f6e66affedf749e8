//go:build !linux

package testproc

import "syscall"

// DeathSignal returns process attributes running the child as cred; only
// Linux has a parent-death signal.
func DeathSignal(_ syscall.Signal, cred *syscall.Credential) *syscall.SysProcAttr {
	if cred == nil {
		return nil
	}
	return &syscall.SysProcAttr{Credential: cred}
}

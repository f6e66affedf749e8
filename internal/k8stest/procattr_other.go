//go:build !linux

package k8stest

import "syscall"

// procAttr has no parent-death signal outside Linux: a test process that is
// killed can leave components running there.
func procAttr() *syscall.SysProcAttr {
	return &syscall.SysProcAttr{}
}

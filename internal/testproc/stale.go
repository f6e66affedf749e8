package testproc

import (
	"errors"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
)

// ownerFile, in a directory made by MakeDir, holds its owner's pid.
const ownerFile = "owner.pid"

// Alive reports whether process pid exists (a process of another user
// counts).
func Alive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

// MakeDir creates a new directory in base named prefix followed by random
// characters, marked with this process's pid. First it removes the
// directories with the same prefix whose owner is gone (a test process
// killed before its cleanup ran), unless inUse (may be nil) says one is
// still in use, say by a server the dead test started.
func MakeDir(base, prefix string, inUse func(dir string) bool) (string, error) {
	RemoveStale(base, prefix, inUse)
	dir, err := os.MkdirTemp(base, prefix)
	if err != nil {
		return "", err
	}
	if err := os.WriteFile(filepath.Join(dir, ownerFile), []byte(strconv.Itoa(os.Getpid())), 0o644); err != nil {
		os.RemoveAll(dir)
		return "", err
	}
	return dir, nil
}

// RemoveStale removes the directories in base named with prefix that
// MakeDir made for a process now gone, unless inUse (may be nil) says one
// is still in use.
func RemoveStale(base, prefix string, inUse func(dir string) bool) {
	dirs, _ := filepath.Glob(filepath.Join(base, prefix+"*"))
	for _, d := range dirs {
		b, err := os.ReadFile(filepath.Join(d, ownerFile))
		if err != nil {
			continue // not ours, or still being set up
		}
		owner, err := strconv.Atoi(strings.TrimSpace(string(b)))
		if err != nil || Alive(owner) || inUse != nil && inUse(d) {
			continue
		}
		os.RemoveAll(d)
	}
}

//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package auth

// lockFile is a no-op where flock is unavailable: writers in one process
// are still serialised by the store's mutex, but two processes writing the
// same store at the same moment may lose one change.
func lockFile(string) (unlock func(), err error) { return func() {}, nil }

// syncDir is a no-op where directories cannot be opened for fsync.
func syncDir(string) error { return nil }

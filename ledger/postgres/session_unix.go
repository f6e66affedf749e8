//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package postgres

import (
	"errors"
	"net"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"
)

// quiet reports whether an idle session's socket is as it was left: open,
// with nothing to read. The server writes nothing to a session between
// queries unless it is ending it (a FATAL message, then EOF: the session
// was terminated, timed out or the server is shutting down), so pending
// bytes or EOF mean the session, and every lock it held, may be gone. The
// check is one non-blocking peek, no round trip. False when it cannot
// tell.
func quiet(c *pgconn.PgConn) bool {
	return !c.IsClosed() && quietConn(c.Conn())
}

// canPeek tells that quiet can look at a socket here.
const canPeek = true

// quietConn reports whether nc's socket is open with nothing to read.
func quietConn(nc net.Conn) bool {
	if t, ok := nc.(interface{ NetConn() net.Conn }); ok { // TLS: any record pending is as telling
		nc = t.NetConn()
	}
	sc, ok := nc.(syscall.Conn)
	if !ok {
		return false
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return false
	}
	// Control, not Read: pgx may have left a read of its own parked on the
	// socket (its background reader), which holds the socket's read lock
	// until bytes come; a peek needs no lock and takes nothing away.
	var rerr error
	var b [1]byte
	if err := rc.Control(func(fd uintptr) {
		_, _, rerr = syscall.Recvfrom(int(fd), b[:], syscall.MSG_PEEK|syscall.MSG_DONTWAIT)
	}); err != nil {
		return false
	}
	// Nothing to read is the only quiet answer: a byte or EOF (no error)
	// or any other error is not.
	return errors.Is(rerr, syscall.EAGAIN) || errors.Is(rerr, syscall.EWOULDBLOCK)
}

//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package postgres

import "github.com/jackc/pgx/v5/pgconn"

// quiet cannot look at the socket on this platform: a lingering lock is
// never reused (lock.go), each relock pays its round trip.
func quiet(*pgconn.PgConn) bool { return false }

// canPeek is false: fenced locks (fence.go) ping their sessions instead.
const canPeek = false

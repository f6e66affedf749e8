package ledger

import (
	"context"
	"errors"
)

// Fencing. A ServiceLocker's lock is held by something that can end
// without its process: a PostgreSQL advisory lock lives in one session,
// and a session the server terminates, times out or loses frees the lock
// while the process that took it is still running the operation under it.
// Another process can then take the lock while that operation is in
// flight. A Fencer closes that hole from both sides:
//
//   - the new holder learns, with the lock, the service's newest run that
//     has no result (FencedLock.Open), and treats it as possibly live until
//     its result is written, its owner is proven gone (OwnerGone) or its
//     deadline has passed (package control decides);
//   - the old holder can tell, without a round trip, that its lock is
//     still held before it calls the provider (FencedLock.Held), and have
//     its call cancelled once the lock's session is seen ended
//     (FencedLock.Watch).
//
// Each intent written under a FencedLock records its Owner: the identity of
// the ledger handle that holds it, alive while that handle's own session
// (its owner lock) is.
type Fencer interface {
	ServiceLocker
	// LockFenced is LockService for the lock of one service (key), which
	// also reads the newest intent on target/service, exec's excepted,
	// that has no result.
	LockFenced(ctx context.Context, key, target, service string) (FencedLock, error)
	// OwnerGone reports whether the owner an intent recorded is proven
	// gone: its owner lock has been seen free for long enough that the
	// owner, if its process still runs, has noticed and cancelled what it
	// ran (the implementation documents the bound). False for the
	// caller's own live owner and for an owner still holding its lock.
	OwnerGone(ctx context.Context, owner string) (bool, error)
}

// FencedLock is a service lock taken with Fencer.LockFenced. Its methods
// may be called concurrently.
type FencedLock interface {
	// Unlock gives the lock back; later calls do nothing.
	Unlock()
	// Open is the newest intent on the service (exec's excepted) that had
	// no result when the lock was taken; nil when there was none, or when
	// the lock's session has held the lock without a break since it last
	// saw none (no other process can have written one in between).
	Open() *Record
	// Owner is the owner to record in the intents written under the lock.
	Owner() string
	// Held reports, without a round trip, whether the lock's session and
	// the owner's still look alive. False means the lock may be another
	// process's now.
	Held() bool
	// Watch returns a context derived from ctx that is cancelled, with
	// cause ErrLockLost, once the lock's session or the owner's is seen
	// ended. stop ends the watch; call it before Unlock.
	Watch(ctx context.Context) (watched context.Context, stop func())
}

// ErrLockLost is the cause of a FencedLock.Watch context cancelled because
// the lock was lost while held.
var ErrLockLost = errors.New("ledger: the service lock's session ended while the lock was held")

package control

import (
	"context"
	"errors"
)

// ErrClientGone is the cancellation cause (context.WithCancelCause) a caller
// of Do gives when it ends an exec because its client went away: the
// WebSocket was closed (normally or not) or the HTTP connection of a
// non-interactive exec was closed before the command ended. Wrap it to say
// how ("%w: the client closed the WebSocket (1000)").
//
// Such a run is not a failure of the system, so its result row does not
// say error/unavailable. It uses the ledger's existing vocabulary: outcome
// interrupted (the run did not finish: something outside the operation
// ended it, as a controller crash does for the runs recovery closes), with
// no error code, the cause as its message, and, in its detail, what became
// of the process (ExecResult.Orphan: ended, or left running and why). A
// crash-closed run, by contrast, has error code unavailable, so
// `runs --outcome interrupted` lists both and the code tells them apart.
var ErrClientGone = errors.New("the client ended the session")

// clientGone reports whether ctx ended because its client went away.
func clientGone(ctx context.Context) bool {
	return ctx.Err() != nil && errors.Is(context.Cause(ctx), ErrClientGone)
}

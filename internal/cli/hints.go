package cli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/alphaswarm/controller/workload"
)

// tokenHint explains, for an unauthenticated answer, which token the CLI
// sent and where it looked: the server refused it, or there was none.
func (g *globals) tokenHint(err error) error {
	var e *workload.Error
	if !errors.As(err, &e) || e.Code != workload.Unauthenticated {
		return err
	}
	var hint string
	switch g.tokenFrom {
	case "":
		if g.tokenFile == "" {
			hint = "no token was sent: --token and $ALPHASWARM_TOKEN are empty (the admin token file is read only for a server on this machine)"
			break
		}
		hint = fmt.Sprintf("no token was sent: --token and $ALPHASWARM_TOKEN are empty and there is no admin token file at %s "+
			"(the server writes it into its data dir; set $ALPHASWARM_DATA_DIR to the server's)", g.tokenFile)
	default:
		hint = "the server refused the token from " + g.tokenFrom
	}
	c := *e
	c.Message = e.Message + "; " + hint
	return &c
}

// interrupted reports a command stopped by a signal as that, not as the
// server being unreachable: the client went away, and a mutating operation
// it started may still be running on the server.
func interrupted(ctx context.Context, w io.Writer, err error) bool {
	if ctx.Err() == nil || err == nil {
		return false
	}
	fmt.Fprintf(w, "error: interrupted (%v) before the server answered; an operation already sent may still be running: check `alphaswarm status` and `alphaswarm runs`\n", context.Cause(ctx))
	return true
}

// printStatusOf writes the status an error carries (a rollout that failed,
// one still under way at the deadline).
func printStatusOf(w io.Writer, e *workload.Error) {
	if e.Status == nil {
		return
	}
	st := e.Status
	fmt.Fprintf(w, "  status: %s %s, %d/%d ready, revision %s\n", st.ID, st.Phase, st.Replicas.Ready, st.Replicas.Desired, dash(st.Revision))
	for _, in := range st.Instances {
		if in.Message != "" {
			fmt.Fprintf(w, "  %s: %s: %s\n", in.ID, in.State, oneLine(in.Message))
		}
	}
}

package docker

import (
	"context"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
)

// TestExecEndedWhenSessionEnds (review third-party-clients F1): when the
// caller's context ends before the command (the WebSocket client went
// away), the exec'd process is ended in the container and the result says
// so. The Engine's own view (`docker top`) is the witness.
func TestExecEndedWhenSessionEnds(t *testing.T) {
	t.Parallel()
	p, name, ctx, _ := startService(t, "execend", 1)
	ids, err := runningIDs(ctx, name)
	if err != nil || len(ids) != 1 {
		t.Fatalf("replicas: %v %v", ids, err)
	}
	for _, c := range []struct {
		name  string
		tty   bool
		stdin bool
		cmd   []string
	}{
		{"tty reading stdin", true, true, []string{"/workload", "stdin", "tag-tty"}},
		{"no tty, stdin held open", false, true, []string{"/workload", "stdin", "tag-pipe"}},
		{"no tty, no stdin, long request", false, false, []string{"/workload", "get", "http://127.0.0.1:8080/burn?ms=30000&tag=tag-burn"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			tag := c.cmd[len(c.cmd)-1]
			tag = tag[strings.LastIndex(tag, "tag-"):]
			sctx, cancel := context.WithCancel(ctx)
			defer cancel()
			req := provider.ExecRequest{Command: c.cmd, TTY: c.tty, Stdout: io.Discard, Stderr: io.Discard}
			if c.stdin {
				r, w := io.Pipe()
				defer w.Close() // never written to: stdin stays open
				req.Stdin = r
			}
			type answer struct {
				res provider.ExecResult
				err error
			}
			done := make(chan answer, 1)
			go func() { res, err := p.Exec(sctx, name, req); done <- answer{res, err} }()
			waitTop(t, ctx, ids[0], tag, true)
			cancel() // the client goes away
			var a answer
			select {
			case a = <-done:
			case <-time.After(30 * time.Second):
				t.Fatal("Exec did not return after its context ended")
			}
			if a.err == nil {
				t.Fatalf("Exec returned no error after its context ended: %+v", a.res)
			}
			if a.res.Orphan == nil || !a.res.Orphan.Ended {
				t.Fatalf("result does not say the process was ended: %+v (err %v)", a.res.Orphan, a.err)
			}
			if !strings.Contains(a.err.Error(), a.res.Orphan.Detail) {
				t.Errorf("error %q does not carry the orphan's fate %q", a.err, a.res.Orphan.Detail)
			}
			waitTop(t, ctx, ids[0], tag, false)
			t.Logf("%s: %s", c.name, a.res.Orphan.Detail)
		})
	}
}

// waitTop waits until `docker top id` does (present) or does not list a
// process whose arguments contain tag.
func waitTop(t *testing.T, ctx context.Context, id, tag string, present bool) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	var out string
	for time.Now().Before(deadline) {
		var err error
		out, err = dockerCLI(ctx, "top", id, "-o", "pid,args")
		if err != nil {
			t.Fatal(err)
		}
		if strings.Contains(out, tag) == present {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("after 15s, process %q present=%v is not true; docker top:\n%s", tag, present, out)
}

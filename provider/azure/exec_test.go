package azure

import (
	"bytes"
	"context"
	"io"
	"strings"
	"sync"
	"testing"

	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/aciexec/aciexectest"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

func TestExecDetails(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// Registered first, so it runs after every other cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("sh", 2)); err != nil {
		t.Fatal(err)
	}
	srv := aciexectest.NewServer(t, runExec)
	var gotGroup, gotCommand string
	var gotRows, gotCols int
	f.SetExec(func(group, command string, rows, cols int) (string, string, error) {
		gotGroup, gotCommand, gotRows, gotCols = group, command, rows, cols
		uri, pw := srv.Session(command)
		return uri, pw, nil
	})
	p.execClient = srv.HTTPClient()
	st, _ := p.Status(ctx, "sh")
	target := st.Instances[1].ID
	resize := make(chan provider.TermSize, 1)
	resize <- provider.TermSize{Cols: 132, Rows: 43}
	var out bytes.Buffer
	res, err := p.Exec(ctx, "sh", provider.ExecRequest{Instance: target, Command: []string{"readline"}, TTY: true,
		Stdin: strings.NewReader("typed input\n"), Stdout: &out, Resize: resize})
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance != target || res.ExitCode != 0 || out.String() != "typed input\n" {
		t.Fatalf("Exec = %+v, output %q", res, out.String())
	}
	if gotGroup != "sh-1" || gotCommand != "readline" || gotRows != 43 || gotCols != 132 {
		t.Errorf("executeCommand got group %s command %q size %dx%d; want sh-1 readline 43x132", gotGroup, gotCommand, gotRows, gotCols)
	}
	// Default terminal size without a resize channel.
	out.Reset()
	if _, err := p.Exec(ctx, "sh", provider.ExecRequest{Command: []string{"/bin/hello"}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if gotRows != 24 || gotCols != 80 || gotCommand != "/bin/hello" || out.String() != "hello\n" {
		t.Errorf("default exec: command %q size %dx%d output %q", gotCommand, gotRows, gotCols, out.String())
	}
	// ACI takes no arguments (review Z1): refused before executeCommand.
	calls := f.Calls("ExecuteCommand")
	for _, cmd := range [][]string{{"echo", "hi"}, {"echo hi"}, {"sh", "-c", "ls"}} {
		_, err := p.Exec(ctx, "sh", provider.ExecRequest{Command: cmd, Stdout: &out})
		if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "command") {
			t.Errorf("Exec(%q) = %v; want invalid_argument at command", cmd, err)
		}
	}
	if f.Calls("ExecuteCommand") != calls {
		t.Error("a refused command reached executeCommand")
	}
	_, err = p.Exec(ctx, "sh", provider.ExecRequest{Instance: "sh-7@20260101T000000.000000000Z", Command: []string{"cat"}})
	if workload.CodeOf(err) != workload.NotFound {
		t.Errorf("exec in an unknown instance = %v", err)
	}
	if _, err := p.Stop(ctx, "sh"); err != nil {
		t.Fatal(err)
	}
	_, err = p.Exec(ctx, "sh", provider.ExecRequest{Command: []string{"cat"}})
	if workload.CodeOf(err) != workload.Conflict {
		t.Errorf("exec in a stopped service = %v, want conflict", err)
	}
	srv.Close()
}

// promptWriter signals once the output holds "$ ".
type promptWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	once sync.Once
	seen chan struct{}
}

func (w *promptWriter) Write(b []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(b)
	if strings.Contains(w.buf.String(), "$ ") {
		w.once.Do(func() { close(w.seen) })
	}
	return len(b), nil
}

// TestExecEndedWhenClientLeaves (issue 16, ACI): when the client goes
// before the command ends, Exec sends Ctrl-C over the session (ACI has no
// operation that ends an exec process; the command sits on a terminal),
// and the result says whether ACI then ended the session (the command
// exited) or the command was left running, and why.
func TestExecEndedWhenClientLeaves(t *testing.T) {
	p, _ := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("sh", 1)); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		command   string
		wantEnded bool
		detail    string
	}{
		{"/bin/wait", true, "ended: Ctrl-C"},
		{"/bin/nointr", false, "left running (unconfirmed)"},
	} {
		t.Run(c.command, func(t *testing.T) {
			ectx, cancel := context.WithCancel(ctx)
			defer cancel()
			stdin, stdinW := io.Pipe() // the client never ends its input
			defer stdinW.Close()
			out := &promptWriter{seen: make(chan struct{})}
			type result struct {
				res provider.ExecResult
				err error
			}
			done := make(chan result, 1)
			go func() {
				res, err := p.Exec(ectx, "sh", provider.ExecRequest{Command: []string{c.command}, TTY: true, Stdin: stdin, Stdout: out})
				done <- result{res, err}
			}()
			select {
			case <-out.seen:
			case r := <-done:
				t.Fatalf("Exec returned before the prompt: %+v %v", r.res, r.err)
			case <-ctx.Done():
				t.Fatal("no prompt")
			}
			cancel() // the client leaves
			r := <-done
			if r.err == nil || r.res.Orphan == nil {
				t.Fatalf("Exec = %+v, %v; want an error and an orphan report", r.res, r.err)
			}
			if r.res.Orphan.Ended != c.wantEnded || !strings.HasPrefix(r.res.Orphan.Detail, c.detail) {
				t.Errorf("orphan = %+v, want ended=%v detail %q...", *r.res.Orphan, c.wantEnded, c.detail)
			}
			if !strings.HasPrefix(r.res.Instance, "sh-0@") {
				t.Errorf("instance = %q", r.res.Instance)
			}
		})
	}
}

package docker

import (
	"bytes"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// TestExecStreams: stdin, stderr, TTY with resize, picking an instance.
func TestExecStreams(t *testing.T) {
	t.Parallel()
	p, name, ctx, st := startService(t, "exec", 2)
	var out, errOut bytes.Buffer
	res, err := p.Exec(ctx, name, provider.ExecRequest{Command: []string{"/workload", "stdin"}, Stdin: strings.NewReader("line one\nline two\n"), Stdout: &out, Stderr: &errOut})
	if err != nil || res.ExitCode != 0 || out.String() != "line one\nline two\nstdin closed\n" {
		t.Fatalf("stdin exec: %+v %v %q", res, err, out.String())
	}
	out.Reset()
	res, err = p.Exec(ctx, name, provider.ExecRequest{Command: []string{"/workload", "cat", "/nonexistent"}, Stdout: &out, Stderr: &errOut})
	if err != nil || res.ExitCode != 1 || !strings.Contains(errOut.String(), "no such file") || out.Len() != 0 {
		t.Fatalf("stderr exec: %+v %v stdout %q stderr %q", res, err, out.String(), errOut.String())
	}
	// TTY: one raw stream on Stdout, CRLF line ends; resizes are applied.
	out.Reset()
	resize := make(chan provider.TermSize, 1)
	resize <- provider.TermSize{Cols: 120, Rows: 40}
	res, err = p.Exec(ctx, name, provider.ExecRequest{Command: []string{"/workload", "echo", "tty-ok"}, TTY: true, Stdout: &out, Resize: resize})
	if err != nil || res.ExitCode != 0 || !strings.Contains(out.String(), "tty-ok\r\n") {
		t.Fatalf("tty exec: %+v %v %q", res, err, out.String())
	}
	// Picking the second instance by id.
	second := st.Instances[1].ID
	res, err = p.Exec(ctx, name, provider.ExecRequest{Instance: second, Command: []string{"/workload", "exit", "0"}})
	if err != nil || res.Instance != second {
		t.Fatalf("exec in %s ran in %s (%v)", second, res.Instance, err)
	}
	if _, err := p.Exec(ctx, name, provider.ExecRequest{Instance: "nosuch", Command: []string{"/workload"}}); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("exec in an unknown instance: %v", err)
	}
	if _, err := p.Exec(ctx, name, provider.ExecRequest{}); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("exec without a command: %v", err)
	}
}

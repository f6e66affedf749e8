package kubernetes

import (
	"errors"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/alphaswarm/controller/provider"
)

// TestMarkFilter: the wrapper's line is taken out of the output however
// the stream splits it, with or without a TTY's \r\n; any other first line
// is output.
func TestMarkFilter(t *testing.T) {
	for _, tc := range []struct {
		name   string
		writes []string
		out    string
		pid    int
		start  string
	}{
		{"one write", []string{"@alphaswarm-exec 42 777\nhello\n"}, "hello\n", 42, "777"},
		{"split", []string{"@alpha", "swarm-exec 4", "2 777", "\r\nhel", "lo"}, "hello", 42, "777"},
		{"no proc", []string{"@alphaswarm-exec 42 \n", "x"}, "x", 42, ""},
		{"not ours", []string{"hello\n@alphaswarm-exec 42 777\n"}, "hello\n@alphaswarm-exec 42 777\n", 0, ""},
		{"prefix-like but other", []string{"@alpha", "bet\n"}, "@alphabet\n", 0, ""},
		{"bad pid", []string{"@alphaswarm-exec 1 777\n"}, "@alphaswarm-exec 1 777\n", 0, ""},
		{"partial at end", []string{"@alphaswarm-exec 4"}, "@alphaswarm-exec 4", 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out strings.Builder
			m := newMarkFilter(&out)
			for _, w := range tc.writes {
				if n, err := m.Write([]byte(w)); n != len(w) || err != nil {
					t.Fatalf("Write(%q) = %d, %v", w, n, err)
				}
			}
			m.flush()
			pid, start, ok := m.process()
			if out.String() != tc.out || pid != tc.pid || start != tc.start || ok != (tc.pid != 0) {
				t.Fatalf("output %q, process %d %q %v; want %q, %d %q", out.String(), pid, start, ok, tc.out, tc.pid, tc.start)
			}
		})
	}
}

// TestFakeExecWithoutShell: in a container without /bin/sh the wrapper
// cannot start; nothing ran and no input was consumed, so the command runs
// as given, with all of its input.
func TestFakeExecWithoutShell(t *testing.T) {
	dep := &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: ownLabels("prod", "web")}}
	p, _, _ := fakeProvider(t, dep, readyPod("apps", "web", "web-a", metav1.OwnerReference{UID: "rs"}))
	fe := &fakeExecutor{noShell: true, out: "done\n"}
	p.newExecutor = func(u *url.URL) (remotecommand.Executor, error) { fe.url = u; return fe, nil }
	ctx := ctxT(t, 5*time.Second)
	var out strings.Builder
	res, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"/app", "import"}, Stdin: strings.NewReader("all of it"), Stdout: &out})
	if err != nil || res.Orphan != nil {
		t.Fatalf("exec: %+v %v", res, err)
	}
	if len(fe.calls) != 2 || !slices.Equal(fe.calls[0], wrapCommand([]string{"/app", "import"})) || !slices.Equal(fe.calls[1], []string{"/app", "import"}) {
		t.Fatalf("commands %q", fe.calls)
	}
	if fe.stdin != "all of it" || out.String() != "done\n" {
		t.Fatalf("stdin %q, output %q", fe.stdin, out.String())
	}
	// A command that fails after the shell ran is not run twice.
	fe.noShell, fe.calls, fe.err = false, nil, errors.New("error dialing backend")
	if _, err := p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"/app"}, Stdin: strings.NewReader("")}); err == nil || len(fe.calls) != 1 {
		t.Fatalf("exec: %v, %d calls", err, len(fe.calls))
	}
}

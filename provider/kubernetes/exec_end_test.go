package kubernetes

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/tools/remotecommand"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// TestExecEndedWhenSessionEnds: a command whose session ends first (the
// client went away) is ended, and the result says how. kwok runs exec'd
// commands on the host as the test's user, so /proc here is the witness:
// every process of the command (found by a marker in its command line,
// children included) is gone when Exec returns.
func TestExecEndedWhenSessionEnds(t *testing.T) {
	e := newEnv(t, nil)
	ctx := e.ctx(t)
	if _, err := e.p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 1}); err != nil {
		t.Fatal(err)
	}
	t.Run("control: closing the stream alone", func(t *testing.T) {
		// What the provider works around: the exec's stream closed by its
		// client leaves the command running, as with a kubelet
		// (kubernetes/kubernetes#89031).
		marker := fmt.Sprintf("alphaswarm-exec-test-%d", time.Now().UnixNano())
		pod, err := e.p.pickPod("web", "")
		if err != nil {
			t.Fatal(err)
		}
		sctx, leave := context.WithCancel(ctx)
		stdin, w := io.Pipe()
		defer w.Close()
		opts := &corev1.PodExecOptions{Container: "web", Command: []string{"sh", "-c", "read x", marker}, Stdin: true, Stdout: true}
		go e.p.streamExec(sctx, pod.Name, opts, remotecommand.StreamOptions{Stdin: stdin, Stdout: io.Discard})
		deadline := time.Now().Add(30 * time.Second)
		for len(processesWith(marker)) == 0 {
			if time.Now().After(deadline) {
				t.Fatal("the command never ran")
			}
			time.Sleep(50 * time.Millisecond)
		}
		leave()
		time.Sleep(time.Second)
		left := processesWith(marker)
		t.Cleanup(func() {
			for _, p := range left {
				if pid, err := strconv.Atoi(strings.SplitN(p, ":", 2)[0]); err == nil {
					_ = syscall.Kill(pid, syscall.SIGKILL)
				}
			}
		})
		if len(left) == 0 {
			t.Fatal("the command ended when its stream closed: the workaround would not be needed here")
		}
		t.Logf("a second after its client closed the stream, still running: %v", left)
	})
	for _, tc := range []struct {
		name   string
		script string // run as sh -c SCRIPT MARKER; $0 is the marker
		tty    bool
		how    string // in the orphan's detail
	}{
		{"tty reading stdin", `read x; echo "got $x"`, true, "SIGHUP and SIGTERM"},
		// The shell and a child shell, both waiting; stdin is never closed.
		{"stdin held open with a child", `sh -c 'sleep 300; :' "$0-child" & sleep 301; wait`, false, "SIGHUP and SIGTERM"},
		{"ignores SIGTERM", `trap "" HUP TERM; while :; do sleep 0.2; done`, false, "SIGKILL"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			marker := fmt.Sprintf("alphaswarm-exec-test-%d", time.Now().UnixNano())
			stdin, w := io.Pipe() // never written to nor closed: the client just goes
			t.Cleanup(func() { w.Close() })
			sctx, leave := context.WithCancel(ctx)
			defer leave()
			type answer struct {
				res provider.ExecResult
				err error
			}
			got := make(chan answer, 1)
			var out bytes.Buffer
			go func() {
				res, err := e.p.Exec(sctx, "web", provider.ExecRequest{Command: []string{"sh", "-c", tc.script, marker},
					TTY: tc.tty, Stdin: stdin, Stdout: &out, Stderr: io.Discard})
				got <- answer{res, err}
			}()
			want := 1
			if strings.Contains(tc.script, "-child") {
				want = 2
			}
			deadline := time.Now().Add(30 * time.Second)
			for len(processesWith(marker)) < want {
				if time.Now().After(deadline) {
					t.Fatalf("the command never ran (processes %v)", processesWith(marker))
				}
				time.Sleep(50 * time.Millisecond)
			}
			running := processesWith(marker)
			start := time.Now()
			leave()
			var a answer
			select {
			case a = <-got:
			case <-time.After(30 * time.Second):
				t.Fatal("Exec did not return after its session ended")
			}
			t.Logf("processes %v; Exec returned in %v: %v; orphan %+v", running, time.Since(start).Round(time.Millisecond), a.err, a.res.Orphan)
			if a.res.Orphan == nil || !a.res.Orphan.Ended || !strings.Contains(a.res.Orphan.Detail, tc.how) {
				t.Fatalf("orphan %+v, want ended with %s", a.res.Orphan, tc.how)
			}
			if a.err == nil || !strings.Contains(a.err.Error(), "session ended before the command") {
				t.Fatalf("error %v", a.err)
			}
			if left := processesWith(marker); len(left) > 0 {
				t.Fatalf("still running after Exec said ended: %v", left)
			}
			if strings.Contains(out.String(), "@alphaswarm-exec") {
				t.Fatalf("the wrapper's line reached the output: %q", out.String())
			}
		})
	}
}

// processesWith lists the live processes whose command line holds s.
func processesWith(s string) []string {
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	var found []string
	for _, d := range dirs {
		b, err := os.ReadFile(d + "/cmdline")
		if err != nil || !bytes.Contains(b, []byte(s)) {
			continue
		}
		if st, err := os.ReadFile(d + "/stat"); err == nil && strings.Contains(string(st), ") Z ") {
			continue // a zombie: ended, not reaped yet
		}
		found = append(found, filepath.Base(d)+":"+strings.ReplaceAll(string(bytes.TrimRight(b, "\x00")), "\x00", " "))
	}
	return found
}

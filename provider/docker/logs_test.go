package docker

import (
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// TestLogsOptions: tail, since, stderr, per-instance tags, no follow.
func TestLogsOptions(t *testing.T) {
	t.Parallel()
	p, name, ctx, _ := startService(t, "logs", 2)
	ids, _ := runningIDs(ctx, name)
	mid := time.Now()
	time.Sleep(50 * time.Millisecond)
	for _, id := range ids {
		if out, code, err := dockerExec(ctx, id, "/workload", "get", "http://127.0.0.1:8080/log?text=err-"+id+"&stderr=1"); err != nil || code != 0 {
			t.Fatalf("emit: %v %s", err, out)
		}
	}
	collect := func(opts provider.LogOptions) []workload.LogLine {
		var out []workload.LogLine
		for l, err := range p.Logs(ctx, name, opts) {
			if err != nil {
				t.Fatalf("Logs(%+v): %v", opts, err)
			}
			out = append(out, l)
		}
		return out
	}
	all := collect(provider.LogOptions{Tail: -1})
	perInstance := map[string]int{}
	stderr := 0
	for _, l := range all {
		perInstance[l.Instance]++
		if l.Stream == "stderr" && strings.HasPrefix(l.Text, "err-") {
			if !strings.HasPrefix(ids[0], l.Instance) && !strings.HasPrefix(ids[1], l.Instance) {
				t.Errorf("line %q tagged with unknown instance %s", l.Text, l.Instance)
			}
			if l.Text != "err-"+l.Instance {
				t.Errorf("stderr line %q tagged %s: not its instance", l.Text, l.Instance)
			}
			stderr++
		}
	}
	if len(perInstance) != 2 || stderr != 2 {
		t.Fatalf("lines per instance %v, stderr lines %d; want 2 instances, 2 stderr lines (%+v)", perInstance, stderr, all)
	}
	if !slices.IsSortedFunc(all, func(a, b workload.LogLine) int { return a.Time.Compare(b.Time) }) {
		t.Error("merged lines are not in time order")
	}
	tail := collect(provider.LogOptions{Tail: 1})
	if len(tail) != 2 {
		t.Errorf("Tail 1 over 2 instances gave %d lines: %+v", len(tail), tail)
	}
	since := collect(provider.LogOptions{Tail: -1, Since: mid})
	for _, l := range since {
		if strings.Contains(l.Text, startupLine) {
			t.Errorf("Since %v returned the startup line %+v", mid, l)
		}
	}
	if len(since) < 4 { // each instance: its stdout and stderr copy
		t.Errorf("Since gave %d lines, want the 4 emitted: %+v", len(since), since)
	}
	if _, err := collectErr(p.Logs(ctx, uniqueName("absent"), provider.LogOptions{})); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("Logs of an unknown service: %v", err)
	}
}

func collectErr[T any](seq func(func(T, error) bool)) ([]T, error) {
	var out []T
	for v, err := range seq {
		if err != nil {
			return out, err
		}
		out = append(out, v)
	}
	return out, nil
}

package docker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// slowSpec is a spec whose replicas become ready only at their first health
// check, 2s after they start: long enough that a rolling replacement of two
// replicas cannot be over before a no-wait operation has answered.
func slowSpec(name string, replicas int) workload.DeploymentSpec {
	spec := testSpec(name, replicas, true)
	spec.HealthCheck.Interval = workload.Duration(2 * time.Second)
	return spec
}

// serving returns the ids (12 characters) of st's instances that are not
// terminating.
func serving(st workload.DeploymentStatus) []string {
	var out []string
	for _, in := range st.Instances {
		if in.State != "terminating" {
			out = append(out, in.ID)
		}
	}
	return out
}

func shortIDs(ids []string) []string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = shortID(id)
	}
	return out
}

// startSlow starts a slow service of n replicas, waited for, and returns
// the ids of its replicas.
func startSlow(t *testing.T, p *Provider, name string, n int) []string {
	t.Helper()
	ctx := testkit.Context(t, 3*time.Minute)
	st, err := p.Start(ctx, slowSpec(name, n))
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Start: %+v %v", st, err)
	}
	ids, err := runningIDs(ctx, name)
	if err != nil || len(ids) != n {
		t.Fatalf("docker ps: %v %v", ids, err)
	}
	return shortIDs(ids)
}

// TestNoWaitRollout (issue 22): under provider.WithoutWait a rolling
// replacement (Restart; a changed spec) answers once the first new replica
// is started, Progressing, with the old replicas still serving; the rollout
// goes on in the background replace-then-retire (never a moment without a
// ready replica) and ends Running with every replica new.
func TestNoWaitRollout(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	for _, op := range []string{"restart", "changed spec"} {
		t.Run(op, func(t *testing.T) {
			t.Parallel()
			p := openProvider(t, nil)
			name := uniqueName("nowait-roll")
			cleanupService(t, p, name)
			old := startSlow(t, p, name, 2)
			ctx := provider.WithoutWait(testkit.Context(t, 3*time.Minute))
			var st workload.DeploymentStatus
			var err error
			if op == "restart" {
				st, err = p.Restart(ctx, name)
			} else {
				spec := slowSpec(name, 2)
				spec.Env["GREETING"] = "changed"
				st, err = p.Start(ctx, spec)
			}
			if err != nil {
				t.Fatalf("%s without wait: %v", op, err)
			}
			// Today's main waited replica by replica and answered Running
			// with every old replica terminating.
			if st.Phase != workload.Progressing {
				t.Fatalf("%s without wait answered %s (%s), want Progressing: it waited for the rollout", op, st.Phase, st.Message)
			}
			still := 0
			for _, id := range serving(st) {
				if slices.Contains(old, id) {
					still++
				}
			}
			if still == 0 || len(serving(st)) <= still {
				t.Fatalf("answer %+v: want the old replicas %v still serving beside a started new one", st.Instances, old)
			}
			// The background rollout: never no ready replica; ends Running
			// with new replicas only.
			waitFor(t, 2*time.Minute, "the background rollout to finish", func() (bool, string) {
				cur, err := p.Status(context.Background(), name)
				if err != nil {
					t.Fatalf("Status: %v", err)
				}
				if cur.Replicas.Ready < 1 {
					t.Fatalf("no ready replica during the rollout: %+v", cur)
				}
				if cur.Phase != workload.Running {
					return false, string(cur.Phase) + ": " + cur.Message
				}
				for _, id := range serving(cur) {
					if slices.Contains(old, id) {
						return false, "old replica " + id + " still serving"
					}
				}
				return len(serving(cur)) == 2, cur.Message
			})
			p.drains.Wait() // the old replicas stop gracefully in the background
			ids, err := runningIDs(context.Background(), name)
			if err != nil {
				t.Fatal(err)
			}
			for _, id := range shortIDs(ids) {
				if slices.Contains(old, id) {
					t.Errorf("old replica %s still running after the rollout", id)
				}
			}
		})
	}
}

// TestNoWaitRolloutSuperseded: the next operation on the service
// supersedes a background rollout (cancels it and waits until it stopped,
// so operations stay serialised): a Stop stops everything, a Scale that
// supersedes a restart replaces the replicas the restart had not reached.
func TestNoWaitRolloutSuperseded(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	t.Run("stop", func(t *testing.T) {
		t.Parallel()
		p := openProvider(t, nil)
		name := uniqueName("nowait-stop")
		cleanupService(t, p, name)
		startSlow(t, p, name, 2)
		ctx := testkit.Context(t, 3*time.Minute)
		if _, err := p.Restart(provider.WithoutWait(ctx), name); err != nil {
			t.Fatal(err)
		}
		st, err := p.Stop(ctx, name)
		if err != nil || st.Phase != workload.Stopped {
			t.Fatalf("Stop after a no-wait restart: %+v %v", st, err)
		}
		waitFor(t, time.Minute, "no container of the service", func() (bool, string) {
			ids, err := runningIDs(ctx, name)
			return err == nil && len(ids) == 0, fmt.Sprint("running: ", ids)
		})
		// Nothing of the superseded rollout comes back.
		time.Sleep(3 * time.Second)
		if ids, _ := runningIDs(ctx, name); len(ids) != 0 {
			t.Fatalf("containers %v started after Stop answered", ids)
		}
	})
	t.Run("scale", func(t *testing.T) {
		t.Parallel()
		p := openProvider(t, nil)
		name := uniqueName("nowait-scale")
		cleanupService(t, p, name)
		old := startSlow(t, p, name, 2)
		ctx := testkit.Context(t, 3*time.Minute)
		if _, err := p.Restart(provider.WithoutWait(ctx), name); err != nil {
			t.Fatal(err)
		}
		st, err := p.Scale(ctx, name, 3)
		if err != nil || st.Phase != workload.Running {
			t.Fatalf("Scale after a no-wait restart: %+v %v", st, err)
		}
		// The cache may still show a drained replica as terminating.
		if got := serving(st); len(got) != 3 {
			t.Fatalf("Scale answered %d serving replicas, want 3: %+v", len(got), st.Instances)
		}
		for _, id := range serving(st) {
			if slices.Contains(old, id) {
				t.Fatalf("replica %s was never restarted: the superseded restart's remaining replicas were dropped", id)
			}
		}
	})
}

// TestNoWaitRolloutClose: Close stops a background rollout with the old
// replicas serving and leaves no goroutine behind.
func TestNoWaitRolloutClose(t *testing.T) {
	requireDocker(t)
	opt := goleak.IgnoreCurrent()
	p := openProvider(t, nil)
	name := uniqueName("nowait-close")
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		defer cancel()
		sweep(ctx, name)
	})
	old := startSlow(t, p, name, 2)
	ctx := testkit.Context(t, 3*time.Minute)
	if _, err := p.Restart(provider.WithoutWait(ctx), name); err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatal(err)
	}
	goleak.VerifyNone(t, opt,
		goleak.IgnoreAnyFunction("net/http.(*persistConn).readLoop"),
		goleak.IgnoreAnyFunction("net/http.(*persistConn).writeLoop"))
	ids, err := runningIDs(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got := shortIDs(ids); !sameSet(got, old) {
		t.Fatalf("after Close the running replicas are %v, want the old ones %v (the unready new one removed)", got, old)
	}
}

// TestNoWaitRolloutFails: a background rollout whose new replica fails
// stops there: the failed replica is removed, the old replicas keep
// serving, and the status says why the rollout stopped.
func TestNoWaitRolloutFails(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("nowait-fail")
	cleanupService(t, p, name)
	old := startSlow(t, p, name, 2)
	ctx := testkit.Context(t, 3*time.Minute)
	spec := slowSpec(name, 2)
	spec.Args = []string{"exit", "3"}
	st, err := p.Start(provider.WithoutWait(ctx), spec)
	if err != nil || st.Phase != workload.Progressing {
		t.Fatalf("a changed spec without wait: %+v %v", st, err)
	}
	var last workload.DeploymentStatus
	waitFor(t, 2*time.Minute, "the background rollout to stop", func() (bool, string) {
		cur, err := p.Status(ctx, name)
		if err != nil {
			t.Fatalf("Status: %v", err)
		}
		last = cur
		return cur.Phase != workload.Progressing, string(cur.Phase) + ": " + cur.Message
	})
	if last.Phase != workload.Degraded || !strings.Contains(last.Message, "the last background rollout stopped") || !strings.Contains(last.Message, "exited with code 3") {
		t.Fatalf("after a failed background rollout: %s %q, want Degraded naming why it stopped", last.Phase, last.Message)
	}
	p.drains.Wait()
	ids, err := runningIDs(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	if got := shortIDs(ids); !sameSet(got, old) {
		t.Fatalf("running after the failed rollout: %v, want the old replicas %v", got, old)
	}
}

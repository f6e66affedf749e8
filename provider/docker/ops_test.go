package docker

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// TestKillDegradedRestartHeals kills one replica behind the provider's
// back: the event stream shows the service Degraded within 2s, Watch
// reports it, and Restart brings it back with new instances.
func TestKillDegradedRestartHeals(t *testing.T) {
	t.Parallel()
	p, name, ctx, st := startService(t, "kill", 2)
	if st.Phase != workload.Running {
		t.Fatalf("Start: %+v", st)
	}
	watchCtx, stopWatch := context.WithCancel(ctx)
	defer stopWatch()
	sawDegraded := make(chan struct{})
	go func() {
		for st, err := range p.Watch(watchCtx) {
			if err != nil {
				return
			}
			if st.Name == name && st.Phase == workload.Degraded {
				close(sawDegraded)
				return
			}
		}
	}()
	before, _ := runningIDs(ctx, name)
	if len(before) != 2 {
		t.Fatalf("docker ps shows %v", before)
	}
	began := time.Now()
	if _, err := dockerCLI(ctx, "kill", before[0]); err != nil {
		t.Fatal(err)
	}
	var (
		last workload.DeploymentStatus
		err  error
	)
	waitFor(t, 2*time.Second, "Degraded after docker kill", func() (bool, string) {
		last, err = p.Status(ctx, name)
		return err == nil && last.Phase == workload.Degraded && last.Replicas.Ready == 1, fmt.Sprintf("%s %+v %v", last.Phase, last.Replicas, err)
	})
	t.Logf("Degraded %v after docker kill: %s", time.Since(began).Round(time.Millisecond), last.Message)
	if !strings.Contains(last.Message, "exited with code 137") {
		t.Errorf("message %q does not say the replica exited", last.Message)
	}
	select {
	case <-sawDegraded:
	case <-time.After(2 * time.Second):
		t.Error("Watch did not report Degraded")
	}
	st, err = p.Restart(ctx, name)
	if err != nil || st.Phase != workload.Running || st.Replicas.Ready != 2 {
		t.Fatalf("Restart: %+v, %v", st, err)
	}
	p.drains.Wait() // the replaced replica stops in the background
	after, _ := runningIDs(ctx, name)
	if len(after) != 2 {
		t.Fatalf("after Restart docker ps shows %v", after)
	}
	for _, id := range after {
		if slices.Contains(before, id) {
			t.Errorf("instance %s survived Restart", id)
		}
	}
	for _, in := range st.Instances {
		if in.State != "terminating" && in.Started.Before(began) {
			t.Errorf("instance %s started at %v, before the restart", in.ID, in.Started)
		}
	}
}

// TestSurvivesControllerRestart: the spec (with its config) lives in the
// anchor, so a new provider, as after a controller restart, rebuilds the
// status from labels and scales a service up from 0.
func TestSurvivesControllerRestart(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	name := uniqueName("persist")
	p1 := openProvider(t, nil)
	t.Cleanup(func() { sweep(context.Background(), name) })
	ctx := testkit.Context(t, 2*time.Minute)
	spec := testSpec(name, 1, false)
	spec.Secrets = []workload.SecretRef{{Env: "API_TOKEN", From: "env:ALPHASWARM_SECRET_TEST_PERSIST_TOKEN"}}
	secret := "s3cret-" + randHex(8)
	creds := credentials.FromMap(map[string]string{"ALPHASWARM_SECRET_TEST_PERSIST_TOKEN": secret, "PATH": "/usr/bin:/bin"})
	p1.creds = creds
	if _, err := p1.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	if err := p1.ApplyConfig(ctx, name, map[string]string{"mode": "blue"}); err != nil {
		t.Fatal(err)
	}
	st, err := p1.Scale(ctx, name, 0)
	if err != nil || st.Phase != workload.Stopped || st.Replicas.Desired != 0 {
		t.Fatalf("Scale(0): %+v, %v", st, err)
	}
	_ = p1.Close()

	p2 := openProviderWith(t, nil, creds)
	cleanupService(t, p2, name)
	st, err = p2.Status(ctx, name)
	if err != nil || st.Phase != workload.Stopped || st.Replicas.Desired != 0 {
		t.Fatalf("Status after a controller restart: %+v, %v", st, err)
	}
	if list, err := p2.List(ctx); err != nil || !slices.ContainsFunc(list, func(s workload.DeploymentStatus) bool { return s.Name == name }) {
		t.Fatalf("List lacks %s: %v", name, err)
	}
	st, err = p2.Scale(ctx, name, 2)
	if err != nil || st.Phase != workload.Running || st.Replicas.Ready != 2 {
		t.Fatalf("Scale(2) from 0 after a controller restart: %+v, %v", st, err)
	}
	ids, _ := runningIDs(ctx, name)
	for _, id := range ids {
		out, _, err := dockerExec(ctx, id, "/workload", "cat", "/etc/alphaswarm/config/mode")
		if err != nil || out != "blue" {
			t.Errorf("replica %s config mode = %q (%v), want blue", id, out, err)
		}
		out, _, _ = dockerExec(ctx, id, "/workload", "env")
		if !strings.Contains(out, "API_TOKEN="+secret) || !strings.Contains(out, "GREETING=hello") {
			t.Errorf("replica %s env lacks the secret or GREETING:\n%s", id, out)
		}
	}
	// The secret's value is never persisted in a label.
	out, err := dockerCLI(ctx, "ps", "-a", "--no-trunc", "--filter", "label="+labelService+"="+name, "--format", "{{.Labels}}")
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(out, secret) {
		t.Errorf("a label holds the secret value: %s", out)
	}
	if !strings.Contains(out, "env:ALPHASWARM_SECRET_TEST_PERSIST_TOKEN") {
		t.Errorf("the anchor does not hold the secret reference: %s", out)
	}
	if !creds.Contains("x " + secret + " y") {
		t.Error("the resolved secret was not registered for redaction")
	}
}

// TestRollingUpdate: Start with a changed spec replaces one replica at a
// time, new before old, so the service never runs fewer than desired;
// Start with the same spec leaves the replicas alone.
func TestRollingUpdate(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("roll")
	cleanupService(t, p, name)
	ctx := testkit.Context(t, 2*time.Minute)
	spec := testSpec(name, 2, true)
	if _, err := p.Start(ctx, spec); err != nil {
		t.Fatal(err)
	}
	before, _ := runningIDs(ctx, name)
	st, err := p.Start(ctx, spec)
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("second Start: %+v %v", st, err)
	}
	if same, _ := runningIDs(ctx, name); !sameSet(same, before) {
		t.Fatalf("Start with an unchanged spec replaced replicas: %v -> %v", before, same)
	}

	var minRunning, maxRunning atomic.Int64
	minRunning.Store(99)
	pollCtx, stopPoll := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for pollCtx.Err() == nil {
			ids, err := runningIDs(pollCtx, name)
			if err == nil {
				n := int64(len(ids))
				if n < minRunning.Load() {
					minRunning.Store(n)
				}
				if n > maxRunning.Load() {
					maxRunning.Store(n)
				}
			}
		}
	}()
	spec.Env = map[string]string{"GREETING": "bonjour"}
	st, err = p.Start(ctx, spec)
	p.drains.Wait()
	stopPoll()
	wg.Wait()
	if err != nil || st.Phase != workload.Running || st.Replicas.Updated != 2 {
		t.Fatalf("rolling Start: %+v %v", st, err)
	}
	// One new replica at a time, each before its predecessor stops; a
	// replaced replica may still be draining while the next one starts.
	if minRunning.Load() < 2 || maxRunning.Load() > 4 {
		t.Errorf("during the roll docker ps counted between %d and %d replicas, want 2..4", minRunning.Load(), maxRunning.Load())
	}
	after, _ := runningIDs(ctx, name)
	for _, id := range after {
		if slices.Contains(before, id) {
			t.Errorf("replica %s was not replaced", id)
		}
		out, _, _ := dockerExec(ctx, id, "/workload", "env")
		if !strings.Contains(out, "GREETING=bonjour") {
			t.Errorf("replica %s runs the old env", id)
		}
	}
}

func sameSet(a, b []string) bool {
	a, b = slices.Clone(a), slices.Clone(b)
	slices.Sort(a)
	slices.Sort(b)
	return slices.Equal(a, b)
}

// TestStartFailures: an image the Engine lacks, a workload that exits,
// a health check that never passes, a deadline before readiness.
func TestStartFailures(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	ctx := testkit.Context(t, 2*time.Minute)

	t.Run("NoSuchImage", func(t *testing.T) {
		name := uniqueName("noimage")
		cleanupService(t, p, name)
		spec := testSpec(name, 1, false)
		spec.Image = "alphaswarm-no-such-image:" + randHex(4)
		_, err := p.Start(ctx, spec)
		if workload.CodeOf(err) != workload.NotFound || !provider.NothingChanged(err) {
			t.Fatalf("Start: %v, want not_found", err)
		}
		if _, err := p.Status(ctx, name); workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("Status after a refused Start: %v", err)
		}
	})
	t.Run("Exits", func(t *testing.T) {
		name := uniqueName("exits")
		cleanupService(t, p, name)
		spec := testSpec(name, 1, false)
		spec.Args = []string{"exit", "3"}
		st, err := p.Start(ctx, spec)
		if err != nil || st.Phase != workload.Failed || !strings.Contains(st.Message, "exited with code 3") {
			t.Fatalf("Start: %+v %v, want Failed exited with code 3", st, err)
		}
		st, err = p.Status(ctx, name)
		if err != nil || st.Phase != workload.Failed {
			t.Fatalf("Status: %+v %v", st, err)
		}
	})
	t.Run("Unhealthy", func(t *testing.T) {
		name := uniqueName("unhealthy")
		cleanupService(t, p, name)
		spec := testSpec(name, 1, true)
		spec.HealthCheck.Exec = []string{"/workload", "exit", "1"}
		spec.HealthCheck.Retries = 1
		st, err := p.Start(ctx, spec)
		if err != nil || st.Phase != workload.Failed || !strings.Contains(st.Message, "health check") {
			t.Fatalf("Start: %+v %v, want Failed on the health check", st, err)
		}
	})
	t.Run("Deadline", func(t *testing.T) {
		name := uniqueName("slow")
		cleanupService(t, p, name)
		spec := testSpec(name, 1, true)
		spec.HealthCheck.Interval = workload.Duration(time.Minute)
		short, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		st, err := p.Start(short, spec)
		if err != nil || st.Phase != workload.Progressing {
			t.Fatalf("Start: %+v %v, want Progressing", st, err)
		}
	})
}

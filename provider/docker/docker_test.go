package docker

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/moby/moby/client"
	"github.com/moby/moby/client/pkg/versions"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func TestRegistered(t *testing.T) {
	if !slices.Contains(provider.Providers(), Name) {
		t.Fatalf("providers %v lack %q", provider.Providers(), Name)
	}
	// The factory never contacts the Engine, and reads DOCKER_HOST from the
	// resolver it is given, not from the process environment.
	creds := credentials.FromMap(map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
	pr, err := provider.Open(context.Background(), provider.TargetConfig{Name: "local", Provider: Name}, creds)
	if err != nil {
		t.Fatal(err)
	}
	defer pr.(*Provider).Close()
	if got := pr.(*Provider).eng.DaemonHost(); got != "unix:///nonexistent/docker.sock" {
		t.Fatalf("daemon host = %q, want the resolver's DOCKER_HOST", got)
	}
	for _, c := range provider.Capabilities(pr) {
		if !c.Supported {
			t.Errorf("capability %s unsupported: %s", c.Op, c.Reason)
		}
	}
}

func TestOptions(t *testing.T) {
	open := func(opts string) error {
		var m map[string]json.RawMessage
		if err := json.Unmarshal([]byte(opts), &m); err != nil {
			t.Fatal(err)
		}
		creds := credentials.FromMap(map[string]string{"DOCKER_HOST": "unix:///nonexistent/docker.sock"})
		pr, err := Factory(context.Background(), provider.TargetConfig{Name: "local", Provider: Name, Options: m}, creds)
		if err == nil {
			pr.(*Provider).Close()
		}
		return err
	}
	for _, ok := range []string{`{}`, `{"stopTimeout":"3s","networkPrefix":"net-","pull":"always","restartPolicy":"on-failure","composeCommand":["docker","compose"]}`} {
		if err := open(ok); err != nil {
			t.Errorf("options %s: %v", ok, err)
		}
	}
	for _, bad := range []string{`{"stopTimout":"3s"}`, `{"pull":"sometimes"}`, `{"namePrefix":"Bad Prefix"}`, `{"configDir":"relative"}`, `{"stopTimeout":"-1s"}`} {
		err := open(bad)
		if workload.CodeOf(err) != workload.InvalidArgument {
			t.Errorf("options %s: error %v, want invalid_argument", bad, err)
		}
	}
}

// TestNegotiatesAPIVersion: the client settles on the Engine's API version
// (1.41 for Debian's Docker 20.10) instead of failing on its newer default.
func TestNegotiatesAPIVersion(t *testing.T) {
	requireDocker(t)
	p := openProvider(t, nil)
	ctx := testCtx(t, 10*time.Second)
	if err := p.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	sv, err := rawCli.ServerVersion(ctx, client.ServerVersionOptions{})
	if err != nil {
		t.Fatal(err)
	}
	got := p.eng.(*client.Client).ClientVersion()
	want := sv.APIVersion
	if versions.GreaterThan(want, client.MaxAPIVersion) {
		want = client.MaxAPIVersion
	}
	if got != want {
		t.Fatalf("negotiated API %s; the Engine speaks %s", got, sv.APIVersion)
	}
	t.Logf("Engine %s speaks API %s (min %s); the provider negotiated %s", sv.Version, sv.APIVersion, sv.MinAPIVersion, got)
}

// TestEngineUnreachable points DOCKER_HOST at a dead socket: every
// operation answers Unavailable, quickly.
func TestEngineUnreachable(t *testing.T) {
	for _, host := range []string{"unix:///tmp/alphaswarm-dead-" + randHex(4) + ".sock", "tcp://127.0.0.1:1"} {
		t.Run(strings.SplitN(host, ":", 2)[0], func(t *testing.T) {
			creds := credentials.FromMap(map[string]string{"DOCKER_HOST": host})
			pr, err := provider.Open(context.Background(), provider.TargetConfig{Name: "local", Provider: Name}, creds)
			if err != nil {
				t.Fatalf("Open must not contact the Engine: %v", err)
			}
			p := pr.(*Provider)
			defer p.Close()
			ctx := testCtx(t, 20*time.Second)
			began := time.Now()
			want := func(op string, err error) {
				t.Helper()
				if workload.CodeOf(err) != workload.Unavailable {
					t.Errorf("%s: error %v, want unavailable", op, err)
				}
			}
			want("ping", p.Ping(ctx))
			_, err = p.Status(ctx, "web")
			want("status", err)
			spec := testSpec("web", 1, false)
			spec.Target = "local"
			_, err = p.Start(ctx, spec)
			want("start", err)
			_, err = p.Stop(ctx, "web")
			want("stop", err)
			_, err = p.Scale(ctx, "web", 2)
			want("scale", err)
			_, err = p.Restart(ctx, "web")
			want("restart", err)
			want("apply_config", p.ApplyConfig(ctx, "web", map[string]string{"a": "b"}))
			_, err = p.List(ctx)
			want("list", err)
			_, err = p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"true"}})
			want("exec", err)
			for _, err := range p.StreamMetrics(ctx, "web") {
				want("stream_metrics", err)
				break
			}
			for _, err := range p.Logs(ctx, "web", provider.LogOptions{}) {
				want("logs", err)
				break
			}
			for _, err := range p.Watch(ctx) {
				want("watch", err)
				break
			}
			if d := time.Since(began); d > 5*time.Second {
				t.Errorf("the unreachable Engine took %v to report", d)
			}
			if e := workload.AsError(err); e != nil && !strings.Contains(e.Message, host) {
				t.Errorf("message %q does not name the Engine address", e.Message)
			}
		})
	}
}

// TestKillDegradedRestartHeals kills one replica behind the provider's
// back: the event stream shows the service Degraded within 2s, Watch
// reports it, and Restart brings it back with new instances.
func TestKillDegradedRestartHeals(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("kill")
	cleanupService(t, p, name)
	ctx := testCtx(t, 2*time.Minute)
	st, err := p.Start(ctx, testSpec(name, 2, false))
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Start: %+v, %v", st, err)
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
	var last workload.DeploymentStatus
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
	ctx := testCtx(t, 2*time.Minute)
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
	ctx := testCtx(t, 2*time.Minute)
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

// TestSpecToContainer checks what a replica is made of: labels, network,
// env and secrets, ports, limits, health check; and that the published
// port answers.
func TestSpecToContainer(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("spec")
	cleanupService(t, p, name)
	ctx := testCtx(t, 2*time.Minute)
	secret := "tok-" + randHex(8)
	p.creds = credentials.FromMap(map[string]string{"ALPHASWARM_SECRET_TEST_SPEC_SECRET": secret})
	spec := testSpec(name, 1, true)
	spec.Secrets = []workload.SecretRef{{Env: "API_TOKEN", From: "env:ALPHASWARM_SECRET_TEST_SPEC_SECRET"}}
	spec.Ports = []workload.Port{{Container: 8080}}
	spec.Resources = workload.Resources{CPU: "500m", Memory: "64Mi"}
	spec.Labels = map[string]string{"team": "core"}
	st, err := p.Start(ctx, spec)
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Start: %+v %v", st, err)
	}
	if st.Instances[0].Healthy == nil || !*st.Instances[0].Healthy {
		t.Errorf("instance health = %v, want healthy", st.Instances[0].Healthy)
	}
	ids, _ := runningIDs(ctx, name)
	if len(ids) != 1 {
		t.Fatalf("running %v", ids)
	}
	r, err := rawCli.ContainerInspect(ctx, ids[0], client.ContainerInspectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	c := r.Container
	for k, v := range map[string]string{labelService: name, labelTarget: testTarget, labelReplica: "0", labelRole: roleReplica, "team": "core"} {
		if c.Config.Labels[k] != v {
			t.Errorf("label %s = %q, want %q", k, c.Config.Labels[k], v)
		}
	}
	if c.Config.Labels[labelSpecHash] == "" || c.Config.Labels[labelSpecHash] != st.Revision {
		t.Errorf("spec-hash label %q, status revision %q", c.Config.Labels[labelSpecHash], st.Revision)
	}
	if c.HostConfig.Init == nil || !*c.HostConfig.Init {
		t.Errorf("replica runs without an init process")
	}
	if c.HostConfig.NanoCPUs != 500_000_000 || c.HostConfig.Memory != 64<<20 {
		t.Errorf("limits: NanoCpus %d Memory %d", c.HostConfig.NanoCPUs, c.HostConfig.Memory)
	}
	if string(c.HostConfig.NetworkMode) != p.networkName(name) {
		t.Errorf("network mode %q, want %q", c.HostConfig.NetworkMode, p.networkName(name))
	}
	if c.Config.Healthcheck == nil || c.Config.Healthcheck.Test[0] != "CMD" {
		t.Errorf("health check %+v", c.Config.Healthcheck)
	}
	if !slices.Contains(c.Config.Env, "API_TOKEN="+secret) || !slices.Contains(c.Config.Env, "ALPHASWARM_REPLICA=0") {
		t.Errorf("env %v lacks the secret or the replica index", c.Config.Env)
	}
	var hostPort string
	for _, b := range c.NetworkSettings.Ports {
		for _, pb := range b {
			if pb.HostPort != "" && !pb.HostIP.Is6() {
				hostPort = pb.HostPort
			}
			// The default bind address is loopback, not every interface.
			if pb.HostIP.String() != "127.0.0.1" {
				t.Errorf("port published on %s, want 127.0.0.1 (the default bind address)", pb.HostIP)
			}
		}
	}
	if hostPort == "" {
		t.Fatalf("no published port: %+v", c.NetworkSettings.Ports)
	}
	resp, err := http.Get("http://127.0.0.1:" + hostPort + "/env")
	if err != nil {
		t.Fatalf("published port: %v", err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if !strings.Contains(string(body), "GREETING=hello") {
		t.Errorf("/env through the published port: %s", body)
	}
	// Unresolvable secrets are refused before anything changes.
	spec.Secrets = []workload.SecretRef{{Env: "API_TOKEN", From: "env:ALPHASWARM_SECRET_TEST_NO_SUCH_SECRET"}}
	_, err = p.Start(ctx, spec)
	if workload.CodeOf(err) != workload.InvalidArgument || !provider.NothingChanged(err) {
		t.Errorf("Start with a missing secret: %v", err)
	}
	if again, _ := runningIDs(ctx, name); !sameSet(again, ids) {
		t.Errorf("a refused Start changed the replicas: %v -> %v", ids, again)
	}
}

// TestStartFailures: an image the Engine lacks, a workload that exits,
// a health check that never passes, a deadline before readiness.
func TestStartFailures(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	ctx := testCtx(t, 2*time.Minute)

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

// TestLogsOptions: tail, since, stderr, per-instance tags, no follow.
func TestLogsOptions(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("logs")
	cleanupService(t, p, name)
	ctx := testCtx(t, 2*time.Minute)
	if _, err := p.Start(ctx, testSpec(name, 2, false)); err != nil {
		t.Fatal(err)
	}
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

// TestExecStreams: stdin, stderr, TTY with resize, picking an instance.
func TestExecStreams(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("exec")
	cleanupService(t, p, name)
	ctx := testCtx(t, 2*time.Minute)
	st, err := p.Start(ctx, testSpec(name, 2, false))
	if err != nil {
		t.Fatal(err)
	}
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

// TestMetricsFanOut: two callers watching the same service share one
// Engine stats stream per container; burning CPU shows in the samples;
// the upstreams close when the callers leave.
func TestMetricsFanOut(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("metrics")
	cleanupService(t, p, name)
	ctx := testCtx(t, 2*time.Minute)
	if _, err := p.Start(ctx, testSpec(name, 2, false)); err != nil {
		t.Fatal(err)
	}
	ids, _ := runningIDs(ctx, name)
	mctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wg sync.WaitGroup
	var mu sync.Mutex
	var maxCPU [2]float64
	var samples [2][]string
	var streamErr [2]error
	const busy = 25.0 // percent of a core; an idle replica shows ~0
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for s, err := range p.StreamMetrics(mctx, name) {
				mu.Lock()
				if err != nil {
					streamErr[i] = err
					mu.Unlock()
					return
				}
				samples[i] = append(samples[i], fmt.Sprintf("%d:%.0f%%", s.Instances, s.CPUPercent))
				bad := s.Instances != 2 || s.MemoryBytes == 0 || s.Service != workload.ServiceID(testTarget, name)
				if bad {
					streamErr[i] = fmt.Errorf("sample %+v", s)
				}
				maxCPU[i] = max(maxCPU[i], s.CPUPercent)
				done := bad || maxCPU[i] > busy
				mu.Unlock()
				if done {
					return
				}
			}
		}()
	}
	// Two callers, two containers: two upstreams, each with two
	// subscribers.
	waitFor(t, 10*time.Second, "both callers on each container's one upstream", func() (bool, string) {
		var counts []int
		ok := true
		for _, in := range p.mustSnapshot(t, name) {
			n := p.stats.Subscribers(in.id)
			counts = append(counts, n)
			ok = ok && n == 2
		}
		return ok && p.stats.Upstreams() == 2, fmt.Sprintf("subscribers %v, %d upstreams", counts, p.stats.Upstreams())
	})
	// Burn a core in one replica, again and again, until both callers saw it.
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	burnErrs := make(chan string, 16)
	go func() {
		for mctx.Err() == nil {
			out, code, err := dockerExec(mctx, ids[0], "/workload", "get", "http://127.0.0.1:8080/burn?ms=2500")
			if (err != nil || code != 0) && mctx.Err() == nil {
				select {
				case burnErrs <- fmt.Sprintf("exit %d %v %s", code, err, out):
				default:
				}
			}
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		mu.Lock()
		t.Errorf("no sample showed the CPU burn: samples %v", samples)
		mu.Unlock()
		select {
		case e := <-burnErrs:
			t.Errorf("burn: %s", e)
		default:
		}
	}
	cancel()
	wg.Wait()
	for i := range 2 {
		if streamErr[i] != nil || maxCPU[i] <= busy {
			t.Errorf("caller %d: samples %v, max CPU %.1f%%, err %v", i, samples[i], maxCPU[i], streamErr[i])
		}
	}
	waitFor(t, 5*time.Second, "the upstreams to close", func() (bool, string) {
		return p.stats.Upstreams() == 0, fmt.Sprintf("%d upstreams", p.stats.Upstreams())
	})
}

func (p *Provider) mustSnapshot(t testing.TB, name string) []instance {
	t.Helper()
	_, insts, ok := p.cache.snapshot(name)
	if !ok {
		t.Fatalf("service %s not in the cache", name)
	}
	return insts
}

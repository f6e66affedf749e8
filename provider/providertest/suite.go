package providertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Run runs every scenario against h. Scenarios for operations the provider
// does not declare are skipped by name with the provider's reason.
func Run(t *testing.T, h Harness) {
	if h.Provider == nil || h.Spec == nil || h.Observe == nil {
		t.Fatal("providertest: Harness needs Provider, Spec and Observe")
	}
	if h.Timeout == 0 {
		h.Timeout = 2 * time.Minute
	}
	s := &suite{h: h, caps: map[provider.Operation]provider.Capability{}}
	for _, c := range provider.Capabilities(h.Provider) {
		s.caps[c.Op] = c
	}
	t.Run("StatusUnknownIsNotFound", s.statusUnknown)
	t.Run("InvalidSpecChangesNothing", s.invalidSpec)
	t.Run("StartReachesRunning", s.start)
	t.Run("ScaleUpDownZeroAndBack", s.scale)
	t.Run("Restart", s.restart)
	t.Run("ApplyConfigVisibleToWorkload", s.applyConfig)
	t.Run("MetricsStreamAndStop", s.metrics)
	t.Run("NoWaitConverges", s.noWait)
	t.Run("LogsFollow", s.logs)
	t.Run("LogsEmptyIsNotAnError", s.logsEmpty)
	t.Run("Exec", s.exec)
	t.Run("StopTwice", s.stop)
}

type suite struct {
	h    Harness
	caps map[provider.Operation]provider.Capability
}

func (s *suite) require(t *testing.T, op provider.Operation) {
	t.Helper()
	if c := s.caps[op]; !c.Supported {
		t.Skipf("SKIPPED by declaration: %s does not support %s: %s", provider.NameOf(s.h.Provider), op, c.Reason)
	}
}

func (s *suite) ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
	t.Cleanup(cancel)
	return ctx
}

// Name returns a unique service name with the given prefix.
func Name(prefix string) string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return prefix + "-" + hex.EncodeToString(b)
}

// Spec returns the smallest valid spec: name, replicas and an image the
// in-memory provider runs. A test for another backend sets what that
// backend needs (its image, ports, resources) on the result.
func Spec(name string, replicas int) workload.DeploymentSpec {
	return workload.DeploymentSpec{Name: name, Image: "memory/workload:1", Replicas: replicas}
}

func (s *suite) cleanup(t *testing.T, name string) {
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), s.h.Timeout)
		defer cancel()
		_, _ = s.h.Provider.Stop(ctx, name)
		if s.h.Cleanup != nil {
			s.h.Cleanup(ctx, name)
		}
	})
}

// startService starts name with n replicas and waits for Running.
func (s *suite) startService(t *testing.T, name string, n int) workload.DeploymentStatus {
	t.Helper()
	s.cleanup(t, name)
	spec := s.h.Spec(name, n)
	st, err := s.h.Provider.Start(s.ctx(t), spec)
	if err != nil {
		t.Fatalf("Start(%s): %v", name, err)
	}
	return s.waitPhase(t, name, st, workload.Running, n)
}

// waitPhase polls Status until the phase and ready count are reached.
func (s *suite) waitPhase(t *testing.T, name string, st workload.DeploymentStatus, phase workload.Phase, ready int) workload.DeploymentStatus {
	t.Helper()
	ctx := s.ctx(t)
	for st.Phase != phase || st.Replicas.Ready != ready {
		select {
		case <-ctx.Done():
			t.Fatalf("%s: phase %s ready %d, want %s ready %d (%s)", name, st.Phase, st.Replicas.Ready, phase, ready, st.Message)
		case <-time.After(100 * time.Millisecond):
		}
		var err error
		st, err = s.h.Provider.Status(ctx, name)
		if err != nil && workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("Status(%s): %v", name, err)
		}
	}
	return st
}

func (s *suite) observe(t *testing.T, name string, running int) Observation {
	t.Helper()
	ctx := s.ctx(t)
	for {
		o, err := s.h.Observe(ctx, name)
		if err != nil {
			t.Fatalf("Observe(%s): %v", name, err)
		}
		if o.Running == running {
			return o
		}
		select {
		case <-ctx.Done():
			t.Fatalf("%s: backend runs %d instances, want %d", name, o.Running, running)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

func wantCode(t *testing.T, err error, code workload.Code) {
	t.Helper()
	if got := workload.CodeOf(err); got != code {
		t.Fatalf("error = %v (code %q), want code %q", err, got, code)
	}
}

func (s *suite) statusUnknown(t *testing.T) {
	_, err := s.h.Provider.Status(s.ctx(t), Name("absent"))
	wantCode(t, err, workload.NotFound)
	_, err = s.h.Provider.Scale(s.ctx(t), Name("absent"), 2)
	wantCode(t, err, workload.NotFound)
}

func (s *suite) invalidSpec(t *testing.T) {
	name := Name("invalid")
	s.cleanup(t, name)
	bad := []func(*workload.DeploymentSpec){
		func(sp *workload.DeploymentSpec) { sp.Replicas = -1 },
		func(sp *workload.DeploymentSpec) { sp.Ports = []workload.Port{{Container: 70000}} },
		func(sp *workload.DeploymentSpec) { sp.Name = "Not_A_Label" },
		func(sp *workload.DeploymentSpec) { sp.Image = "" },
	}
	for i, mutate := range bad {
		spec := s.h.Spec(name, 1)
		mutate(&spec)
		_, err := s.h.Provider.Start(s.ctx(t), spec)
		if workload.CodeOf(err) != workload.InvalidArgument {
			t.Errorf("bad spec %d: error = %v, want invalid_argument", i, err)
		}
		if !provider.NothingChanged(err) {
			t.Errorf("bad spec %d: NothingChanged(%v) = false", i, err)
		}
	}
	if o, err := s.h.Observe(s.ctx(t), name); err != nil || o.Running != 0 {
		t.Fatalf("after invalid specs the backend runs %d instances (err %v), want 0", o.Running, err)
	}
	_, err := s.h.Provider.Status(s.ctx(t), name)
	wantCode(t, err, workload.NotFound)
}

func (s *suite) start(t *testing.T) {
	name := Name("start")
	st := s.startService(t, name, 2)
	if st.Replicas.Desired != 2 || st.Name != name || len(st.Instances) != 2 {
		t.Fatalf("status = %+v, want 2 desired, 2 instances named %s", st, name)
	}
	if st.ObservedAt.IsZero() {
		t.Error("status has no observedAt")
	}
	o := s.observe(t, name, 2)
	ids := instanceIDs(st)
	for _, id := range o.InstanceIDs {
		if !containsPrefix(ids, id) {
			t.Errorf("backend instance %s missing from status instances %v", id, ids)
		}
	}
	// Starting the same spec again is not an error.
	st, err := s.h.Provider.Start(s.ctx(t), s.h.Spec(name, 2))
	if err != nil {
		t.Fatalf("second Start with the same spec: %v", err)
	}
	s.waitPhase(t, name, st, workload.Running, 2)
}

func (s *suite) scale(t *testing.T) {
	s.require(t, provider.OpScale)
	name := Name("scale")
	s.startService(t, name, 1)
	for _, n := range []int{3, 1, 0, 2} {
		st, err := s.h.Provider.Scale(s.ctx(t), name, n)
		if err != nil {
			t.Fatalf("Scale(%d): %v", n, err)
		}
		want := workload.Running
		if n == 0 {
			want = workload.Stopped
		}
		st = s.waitPhase(t, name, st, want, n)
		if st.Replicas.Desired != n {
			t.Fatalf("after Scale(%d): desired %d", n, st.Replicas.Desired)
		}
		s.observe(t, name, n)
	}
	_, err := s.h.Provider.Scale(s.ctx(t), name, -1)
	wantCode(t, err, workload.InvalidArgument)
}

func (s *suite) restart(t *testing.T) {
	s.require(t, provider.OpRestart)
	name := Name("restart")
	s.startService(t, name, 2)
	before := s.observe(t, name, 2).InstanceIDs
	st, err := provider.Restart(s.ctx(t), s.h.Provider, name)
	if err != nil {
		t.Fatalf("Restart: %v", err)
	}
	s.waitPhase(t, name, st, workload.Running, 2)
	after := s.observe(t, name, 2).InstanceIDs
	for _, id := range after {
		if slices.Contains(before, id) {
			t.Fatalf("instance %s survived a restart (before %v, after %v)", id, before, after)
		}
	}
}

func (s *suite) applyConfig(t *testing.T) {
	s.require(t, provider.OpApplyConfig)
	if s.h.ReadConfig == nil {
		t.Fatal("providertest: Harness.ReadConfig is required to check apply_config")
	}
	name := Name("config")
	s.startService(t, name, 1)
	value := "v-" + Name("x")
	if err := s.h.Provider.ApplyConfig(s.ctx(t), name, map[string]string{"greeting": value, "mode": "blue"}); err != nil {
		t.Fatalf("ApplyConfig: %v", err)
	}
	ctx := s.ctx(t)
	for {
		got, ok, err := s.h.ReadConfig(ctx, name, "greeting")
		if err == nil && ok && got == value {
			break
		}
		select {
		case <-ctx.Done():
			t.Fatalf("workload sees greeting=%q (present %v, err %v), want %q", got, ok, err, value)
		case <-time.After(200 * time.Millisecond):
		}
	}
	err := s.h.Provider.ApplyConfig(s.ctx(t), Name("absent"), map[string]string{"a": "b"})
	wantCode(t, err, workload.NotFound)
}

func (s *suite) metrics(t *testing.T) {
	s.require(t, provider.OpStreamMetrics)
	name := Name("metrics")
	s.startService(t, name, 1)
	ctx, cancel := context.WithCancel(s.ctx(t))
	defer cancel()
	n := 0
	for sample, err := range s.h.Provider.StreamMetrics(ctx, name) {
		if err != nil {
			t.Fatalf("metrics stream error after %d samples: %v", n, err)
		}
		if sample.Time.IsZero() || sample.Instances < 1 {
			t.Fatalf("sample %d = %+v: want a time and at least one instance", n, sample)
		}
		n++
		if n == 2 {
			break
		}
	}
	if n != 2 {
		t.Fatalf("metrics stream ended after %d samples, want 2", n)
	}
	// A stream over a cancelled context ends promptly.
	cancel()
	done := make(chan struct{})
	go func() {
		defer close(done)
		for range s.h.Provider.StreamMetrics(ctx, name) {
		}
	}()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("metrics stream did not end after its context was cancelled")
	}
}

func (s *suite) logs(t *testing.T) {
	s.require(t, provider.OpLogs)
	name := Name("logs")
	s.startService(t, name, 2)
	ctx, cancel := context.WithCancel(s.ctx(t))
	defer cancel()
	marker := "marker-" + Name("m")
	emitted := s.h.EmitLog == nil
	seenStartup := map[string]bool{}
	seenMarker := map[string]bool{}
	for line, err := range provider.Logs(ctx, s.h.Provider, name, provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		if line.Instance == "" {
			t.Fatalf("log line %q has no instance", line.Text)
		}
		if s.h.StartupLine != "" && strings.Contains(line.Text, s.h.StartupLine) {
			seenStartup[line.Instance] = true
		}
		if strings.Contains(line.Text, marker) {
			seenMarker[line.Instance] = true
		}
		if len(seenStartup) == 2 && !emitted {
			emitted = true
			if err := s.h.EmitLog(ctx, name, marker); err != nil {
				t.Fatalf("EmitLog: %v", err)
			}
		}
		if len(seenStartup) == 2 && (s.h.EmitLog == nil || len(seenMarker) == 2) {
			return
		}
	}
	t.Fatalf("log stream ended: startup seen on %d instances, marker on %d; want 2 and 2", len(seenStartup), len(seenMarker))
}

func (s *suite) exec(t *testing.T) {
	s.require(t, provider.OpExec)
	name := Name("exec")
	s.startService(t, name, 1)
	var out, errOut bytes.Buffer
	res, err := provider.Exec(s.ctx(t), s.h.Provider, name, provider.ExecRequest{Command: s.h.ExecCommand, Stdout: &out, Stderr: &errOut})
	if err != nil {
		t.Fatalf("Exec(%v): %v", s.h.ExecCommand, err)
	}
	if res.ExitCode != 0 || !strings.Contains(out.String(), s.h.ExecOutput) {
		t.Fatalf("Exec(%v) = exit %d, stdout %q, stderr %q; want exit 0 and %q", s.h.ExecCommand, res.ExitCode, out.String(), errOut.String(), s.h.ExecOutput)
	}
	if s.h.ExecFailUnobservable != "" {
		t.Logf("NOT CHECKED: a failing command's exit code: %s", s.h.ExecFailUnobservable)
	} else {
		res, err = provider.Exec(s.ctx(t), s.h.Provider, name, provider.ExecRequest{Command: s.h.ExecFail})
		if err != nil {
			t.Fatalf("Exec(%v): %v", s.h.ExecFail, err)
		}
		if res.ExitCode != s.h.ExecFailCode {
			t.Fatalf("Exec(%v) exit code = %d, want %d", s.h.ExecFail, res.ExitCode, s.h.ExecFailCode)
		}
	}
	_, err = provider.Exec(s.ctx(t), s.h.Provider, Name("absent"), provider.ExecRequest{Command: s.h.ExecCommand})
	wantCode(t, err, workload.NotFound)
}

func (s *suite) stop(t *testing.T) {
	name := Name("stop")
	s.startService(t, name, 2)
	for i := range 2 {
		st, err := s.h.Provider.Stop(s.ctx(t), name)
		if err != nil {
			t.Fatalf("Stop #%d: %v", i+1, err)
		}
		s.waitPhase(t, name, st, workload.Stopped, 0)
		s.observe(t, name, 0)
	}
	if _, err := s.h.Provider.Stop(s.ctx(t), Name("absent")); err != nil {
		t.Fatalf("Stop of an unknown service: %v (the contract says it is not an error)", err)
	}
}

func instanceIDs(st workload.DeploymentStatus) []string {
	ids := make([]string, len(st.Instances))
	for i, in := range st.Instances {
		ids[i] = in.ID
	}
	return ids
}

// containsPrefix allows short and long forms of the same id (Docker's
// 12-character ids against full ones).
func containsPrefix(ids []string, id string) bool {
	for _, x := range ids {
		if strings.HasPrefix(x, id) || strings.HasPrefix(id, x) {
			return true
		}
	}
	return false
}

// String describes the harness, for failure messages.
func (h Harness) String() string {
	return fmt.Sprintf("%s target %s", provider.NameOf(h.Provider), h.Target)
}

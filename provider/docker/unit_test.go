package docker

import (
	"archive/tar"
	"bytes"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/api/types/container"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// TestPhaseTable checks the native-state -> phase table of the package
// documentation.
func TestPhaseTable(t *testing.T) {
	p := &Provider{target: "local"}
	p.cache = newCache(p)
	spec := workload.DeploymentSpec{Name: "web", Target: "local", Image: "img", Replicas: 2}
	rec := &record{Spec: spec}
	hash := rec.hash()
	run := func(idx int) *instance {
		return &instance{id: "run" + string(rune('a'+idx)) + strings.Repeat("0", 20), index: idx, hash: hash, state: container.StateRunning, inspected: true}
	}
	healthy := func(h container.HealthStatus) func(*instance) {
		return func(i *instance) { i.hasHealth, i.health = true, h }
	}
	with := func(in *instance, f func(*instance)) *instance { f(in); return in }
	cases := []struct {
		name    string
		desired int
		busy    bool
		noAnch  bool
		insts   []*instance
		want    workload.Phase
		ready   int
		updated int
	}{
		{name: "all running", desired: 2, insts: []*instance{run(0), run(1)}, want: workload.Running, ready: 2, updated: 2},
		{name: "all healthy", desired: 2, insts: []*instance{
			with(run(0), healthy(container.Healthy)),
			with(run(1), healthy(container.Healthy))}, want: workload.Running, ready: 2, updated: 2},
		{name: "one killed", desired: 2, insts: []*instance{run(0), with(run(1), func(i *instance) { i.state, i.exitCode = container.StateExited, 137 })}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "one removed", desired: 2, insts: []*instance{run(0)}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "one unhealthy", desired: 2, insts: []*instance{run(0), with(run(1), healthy(container.Unhealthy))}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "one paused", desired: 2, insts: []*instance{run(0), with(run(1), func(i *instance) { i.state = container.StatePaused })}, want: workload.Degraded, ready: 1, updated: 1},
		{name: "old spec", desired: 2, insts: []*instance{run(0), with(run(1), func(i *instance) { i.hash = "old" })}, want: workload.Degraded, ready: 2, updated: 1},
		{name: "starting", desired: 2, insts: []*instance{
			with(run(0), healthy(container.Starting)),
			with(run(1), func(i *instance) { i.state = container.StateCreated })}, want: workload.Pending},
		{name: "restarting", desired: 1, insts: []*instance{with(run(0), func(i *instance) { i.state = container.StateRestarting })}, want: workload.Pending},
		{name: "all exited", desired: 2, insts: []*instance{
			with(run(0), func(i *instance) { i.state, i.exitCode = container.StateExited, 1 }),
			with(run(1), func(i *instance) { i.state, i.exitCode = container.StateExited, 1 })}, want: workload.Failed},
		{name: "all gone", desired: 2, want: workload.Failed},
		{name: "dead", desired: 1, insts: []*instance{with(run(0), func(i *instance) { i.state = container.StateDead })}, want: workload.Failed},
		{name: "unhealthy only", desired: 1, insts: []*instance{with(run(0), healthy(container.Unhealthy))}, want: workload.Failed},
		{name: "seen by an event, not yet inspected", desired: 1, insts: []*instance{with(run(0), func(i *instance) { i.inspected = false })}, want: workload.Pending},
		{name: "health check not run yet", desired: 1, insts: []*instance{with(run(0), healthy(""))}, want: workload.Pending},
		{name: "scaled to zero", desired: 0, want: workload.Stopped},
		{name: "scaled to zero, exited left", desired: 0, insts: []*instance{with(run(0), func(i *instance) { i.state = container.StateExited })}, want: workload.Stopped},
		{name: "scaled to zero, still running", desired: 0, insts: []*instance{run(0)}, want: workload.Progressing, ready: 1, updated: 1},
		{name: "operation in flight", desired: 2, busy: true, insts: []*instance{run(0), run(1)}, want: workload.Progressing, ready: 2, updated: 2},
		{name: "anchor gone", desired: -1, noAnch: true, insts: []*instance{run(0), run(1)}, want: workload.Running, ready: 2, updated: 2},
		{name: "replaced one draining", desired: 2, insts: []*instance{run(0), run(1), with(run(2), func(i *instance) { i.id, i.index = "draining", 1 })}, want: workload.Running, ready: 2, updated: 2},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			s := &serviceEntry{name: "web", anchors: map[string]*anchorEntry{}, replicas: map[string]*instance{}}
			if !tc.noAnch {
				r := *rec
				r.Spec.Replicas = tc.desired
				s.anchors["anchor"] = &anchorEntry{id: "anchor", gen: 1, rec: &r}
			}
			for _, in := range tc.insts {
				s.replicas[in.id] = in
			}
			p.cache.terminating = map[string]bool{"draining": true}
			if tc.busy {
				s.busy, s.busyOp = 1, "restart"
			}
			st := p.statusOf(s)
			if st.Phase != tc.want || st.Replicas.Ready != tc.ready || st.Replicas.Updated != tc.updated {
				t.Fatalf("phase %s ready %d updated %d (%s), want %s ready %d updated %d", st.Phase, st.Replicas.Ready, st.Replicas.Updated, st.Message, tc.want, tc.ready, tc.updated)
			}
			if st.ID != "local/web" || st.Provider != Name || st.ObservedAt.IsZero() || st.Instances == nil {
				t.Fatalf("status %+v", st)
			}
		})
	}
}

func TestHealthConfig(t *testing.T) {
	if healthConfig(nil) != nil {
		t.Fatal("no health check must stay nil (inherit the image's)")
	}
	hc := healthConfig(&workload.HealthCheck{Exec: []string{"/bin/check", "x"}})
	if strings.Join(hc.Test, " ") != "CMD /bin/check x" || hc.Interval != 2*time.Second || hc.Retries != 3 || hc.Timeout != 5*time.Second {
		t.Errorf("exec: %+v", hc)
	}
	hc = healthConfig(&workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/it's", Port: 8080}, Interval: workload.Duration(time.Second), Retries: 5})
	if hc.Test[0] != "CMD-SHELL" || !strings.Contains(hc.Test[1], `'http://127.0.0.1:8080/it'\''s'`) || hc.Interval != time.Second || hc.Retries != 5 {
		t.Errorf("http: %+v", hc)
	}
	hc = healthConfig(&workload.HealthCheck{TCP: &workload.TCPCheck{Port: 5432}, StartPeriod: workload.Duration(3 * time.Second)})
	if hc.Test[0] != "CMD-SHELL" || !strings.Contains(hc.Test[1], "nc -z 127.0.0.1 5432") || hc.StartPeriod != 3*time.Second {
		t.Errorf("tcp: %+v", hc)
	}
}

func TestConfigTar(t *testing.T) {
	b, err := configTar("/etc/alphaswarm/config", map[string]string{"mode": "blue", "app.yaml": "a: 1\n"})
	if err != nil {
		t.Fatal(err)
	}
	tr := tar.NewReader(bytes.NewReader(b))
	got := map[string]string{}
	for {
		h, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(tr)
		got[h.Name] = string(data)
		if h.Typeflag == tar.TypeReg && h.Mode != 0o644 {
			t.Errorf("%s mode %o", h.Name, h.Mode)
		}
	}
	want := map[string]string{"etc/": "", "etc/alphaswarm/": "", "etc/alphaswarm/config/": "",
		"etc/alphaswarm/config/mode": "blue", "etc/alphaswarm/config/app.yaml": "a: 1\n"}
	if len(got) != len(want) {
		t.Fatalf("entries %v", got)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
}

func TestSpecHash(t *testing.T) {
	a := workload.DeploymentSpec{Name: "web", Image: "img", Replicas: 1, Config: map[string]string{"a": "1"}}
	b := a
	b.Replicas = 5
	if specHash(a, "") != specHash(b, "") {
		t.Error("the replica count changed the hash: scaling would roll every replica")
	}
	b.Config = map[string]string{"a": "2"}
	if specHash(a, "") == specHash(b, "") {
		t.Error("a config change left the hash alone: ApplyConfig would not roll")
	}
	if specHash(a, "x") == specHash(a, "y") {
		t.Error("the Compose file hash is ignored")
	}
}

// TestChangedDowngradesPromises: an error met after the first mutation
// must not claim that nothing changed.
func TestChangedDowngradesPromises(t *testing.T) {
	p := &Provider{}
	err := p.changed(notFound("No such image: x"))
	if workload.CodeOf(err) != workload.ProviderError || provider.NothingChanged(err) || !strings.Contains(err.Error(), "No such image") {
		t.Errorf("after a change, not_found became %v", err)
	}
	if c := workload.CodeOf(p.changed(errorf(workload.Timeout, "slow"))); c != workload.Timeout {
		t.Errorf("timeout became %s", c)
	}
	if p.changed(nil) != nil {
		t.Error("changed(nil) != nil")
	}
}

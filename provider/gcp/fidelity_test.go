package gcp_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// Regression tests for the cloud-fidelity review (G1, G2, G5, G6): each
// runs against fakegcp, which now enforces the documented Cloud Run rule
// (the source is cited next to the rule in fakegcp.go).

// TestTCPCheckIsStartupProbeOnly (G1): Cloud Run has TCP startup probes but
// no TCP liveness probe; a tcp health check becomes a startup probe only.
func TestTCPCheckIsStartupProbeOnly(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("tcp"), 1)
	sp.HealthCheck = &workload.HealthCheck{TCP: &workload.TCPCheck{Port: 8080}, Interval: workload.Duration(5 * time.Second), StartPeriod: workload.Duration(30 * time.Second)}
	mustStart(t, p, sp)
	c := f.Service(sp.Name).Template.Containers[0]
	if c.GetStartupProbe().GetTcpSocket().GetPort() != 8080 || c.GetStartupProbe().GetInitialDelaySeconds() != 30 {
		t.Errorf("startup probe = %v; want tcpSocket 8080, initial delay 30", c.GetStartupProbe())
	}
	if c.LivenessProbe != nil {
		t.Errorf("liveness probe = %v; Cloud Run has no TCP liveness probe", c.LivenessProbe)
	}
	// An HTTP check still gets both.
	sp.HealthCheck = &workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/healthz", Port: 8080}}
	mustStart(t, p, sp)
	if c := f.Service(sp.Name).Template.Containers[0]; c.GetLivenessProbe().GetHttpGet() == nil || c.GetStartupProbe().GetHttpGet() == nil {
		t.Errorf("http check: startup %v liveness %v", c.StartupProbe, c.LivenessProbe)
	}
}

// TestLabelsMustBeGoogleCloudLabels (G2): labels Cloud Run would refuse
// are invalid_argument naming the label, before anything is written.
func TestLabelsMustBeGoogleCloudLabels(t *testing.T) {
	for _, c := range []struct{ key, value string }{
		{"app.kubernetes.io/name", "web"},
		{"Team", "core"},
		{"team", "Core"},
		{"team", "a.b"},
		{"9team", "core"},
	} {
		t.Run(c.key+"="+c.value, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("lbl"), 1)
			sp.Labels = map[string]string{c.key: c.value}
			sp.Config = map[string]string{"K": "v"}
			_, err := p.Start(ctx(t), sp)
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "labels."+c.key) {
				t.Fatalf("Start = %v; want invalid_argument at labels.%s", err, c.key)
			}
			if n := f.Calls("CreateSecret") + f.Calls("CreateService"); n != 0 {
				t.Fatalf("%d writes before the refusal", n)
			}
		})
	}
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("lbl"), 1)
	sp.Labels = map[string]string{"team": "core-1", "cost_center": ""}
	mustStart(t, p, sp)
	if got := f.Service(sp.Name).Labels["team"]; got != "core-1" {
		t.Errorf("label team = %q", got)
	}
}

// TestProbeLimits (G5): probe settings outside Cloud Run's limits are
// refused up front (nothing written); limits themselves are accepted.
func TestProbeLimits(t *testing.T) {
	s := func(d time.Duration) workload.Duration { return workload.Duration(d) }
	http := &workload.HTTPCheck{Path: "/healthz", Port: 8080}
	for _, c := range []struct {
		name string
		hc   workload.HealthCheck
		path string // "" = accepted
	}{
		{"timeout above period", workload.HealthCheck{HTTP: http, Interval: s(5 * time.Second), Timeout: s(10 * time.Second)}, "healthCheck.timeout"},
		{"timeout above default period", workload.HealthCheck{HTTP: http, Timeout: s(20 * time.Second)}, "healthCheck.timeout"},
		{"start period above 240s", workload.HealthCheck{HTTP: http, StartPeriod: s(5 * time.Minute)}, "healthCheck.startPeriod"},
		{"interval above 240s", workload.HealthCheck{HTTP: http, Interval: s(300 * time.Second)}, "healthCheck.interval"},
		{"sub-second interval", workload.HealthCheck{HTTP: http, Interval: s(1500 * time.Millisecond)}, "healthCheck.interval"},
		{"timeout equal to period", workload.HealthCheck{HTTP: http, Interval: s(5 * time.Second), Timeout: s(5 * time.Second)}, ""},
		{"limits", workload.HealthCheck{TCP: &workload.TCPCheck{Port: 8080}, Interval: s(240 * time.Second), Timeout: s(240 * time.Second), StartPeriod: s(240 * time.Second)}, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("probe"), 1)
			hc := c.hc
			sp.HealthCheck = &hc
			sp.Config = map[string]string{"K": "v"}
			st, err := p.Start(ctx(t), sp)
			if c.path == "" {
				if err != nil || st.Phase != workload.Running {
					t.Fatalf("Start = %s, %v; want Running", st.Phase, err)
				}
				return
			}
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), c.path) {
				t.Fatalf("Start = %v; want invalid_argument at %s", err, c.path)
			}
			if n := f.Calls("CreateSecret") + f.Calls("CreateService"); n != 0 {
				t.Fatalf("%d writes before the refusal", n)
			}
		})
	}
}

// TestConfigSecretsReadableByRevision (G6): Cloud Run reads secret env
// vars as the revision's service account. With options.serviceAccount the
// provider grants it roles/secretmanager.secretAccessor on each config
// secret; without it, a default account lacking access makes the
// revision fail, reported as the Failed status with Cloud Run's reason.
func TestConfigSecretsReadableByRevision(t *testing.T) {
	t.Run("granted", func(t *testing.T) {
		p, f := openFake(t, nil)
		sp := spec(providertest.Name("iam"), 1)
		sp.Config = map[string]string{"K": "v"}
		mustStart(t, p, sp)
		if f.Service(sp.Name).Template.ServiceAccount != testServiceAccount {
			t.Errorf("template service account = %q", f.Service(sp.Name).Template.ServiceAccount)
		}
		if v, ok, err := f.ReadConfig(sp.Name, "K"); err != nil || !ok || v != "v" {
			t.Fatalf("ReadConfig = %q %v %v", v, ok, err)
		}
		// A key added later is granted too, and granting is idempotent.
		if err := p.ApplyConfig(ctx(t), sp.Name, map[string]string{"K": "v", "L": "w"}); err != nil {
			t.Fatal(err)
		}
		sets := f.Calls("SetIamPolicy")
		if err := p.ApplyConfig(ctx(t), sp.Name, map[string]string{"K": "v", "L": "w"}); err != nil {
			t.Fatal(err)
		}
		if f.Calls("SetIamPolicy") != sets || sets != 2 {
			t.Errorf("SetIamPolicy calls = %d then %d; want 2 then no more", sets, f.Calls("SetIamPolicy"))
		}
	})
	t.Run("default account without access", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"serviceAccount": nil})
		sp := spec(providertest.Name("iam"), 1)
		sp.Config = map[string]string{"K": "v"}
		st, err := p.Start(ctx(t), sp)
		if err != nil || st.Phase != workload.Failed || !strings.Contains(st.Message, "Secret Manager Secret Accessor") {
			t.Fatalf("Start = %s %q, %v; want Failed with the permission message", st.Phase, st.Message, err)
		}
		if f.Calls("SetIamPolicy") != 0 {
			t.Error("granted access without a configured service account")
		}
	})
	t.Run("default account with project access", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"serviceAccount": nil})
		f.ProjectSecretAccessors = []string{"serviceAccount:" + f.DefaultServiceAccount}
		sp := spec(providertest.Name("iam"), 1)
		sp.Config = map[string]string{"K": "v"}
		mustStart(t, p, sp)
	})
}

// TestLogsFollowWithinCloudLoggingQuotas (review G3): a chatty service's
// tail reports suppressed entries in every response; the catch-up reads
// that brings are spaced (at most one per five poll intervals) so that
// the project's 60 read requests a minute (enforced by the fake) are not
// spent; reads use 1000-entry pages; a follow beyond the project's 10
// live-tailing sessions is rate_limited instead of retrying against the
// quota.
func TestLogsFollowWithinCloudLoggingQuotas(t *testing.T) {
	t.Run("suppression storm", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"pollInterval": "200ms"})
		sp := spec(providertest.Name("storm"), 1)
		mustStart(t, p, sp)
		for i := range 120 {
			f.EmitLog(sp.Name, fmt.Sprintf("old %03d", i))
		}
		f.SuppressEvery = true
		sent := 0
		began := time.Now()
		seen := followLogs(t, p, sp.Name, func(seen map[string]int) bool {
			if seen["old 119"] == 1 && sent == 0 {
				go func() {
					for i := range 100 {
						f.EmitLog(sp.Name, fmt.Sprintf("new %03d", i))
						time.Sleep(10 * time.Millisecond)
					}
				}()
				sent = 1
			}
			return seen["new 099"] == 1
		})
		for i := range 100 {
			if seen[fmt.Sprintf("new %03d", i)] != 1 {
				t.Fatalf("new %03d missing", i)
			}
		}
		// The history (one 1000-entry page for 120+ entries), the
		// catch-up after the first response, then at most one per
		// second (5 x 200ms) of suppression (100 responses or so).
		if n, most := f.Calls("ListLogEntries"), 3+int(time.Since(began)/time.Second); n > most {
			t.Errorf("%d ListLogEntries calls in %s of suppression; want at most %d", n, time.Since(began), most)
		}
	})
	t.Run("sessions", func(t *testing.T) {
		p, f := openFake(t, map[string]any{"maxTailSessions": 2})
		sp := spec(providertest.Name("tails"), 1)
		mustStart(t, p, sp)
		c, cancel := context.WithCancel(ctx(t))
		defer cancel()
		for range 2 {
			go func() {
				for range p.Logs(c, sp.Name, provider.LogOptions{Follow: true}) {
				}
			}()
		}
		for f.OpenTails() < 2 {
			time.Sleep(5 * time.Millisecond)
		}
		for _, err := range p.Logs(c, sp.Name, provider.LogOptions{Follow: true}) {
			if workload.CodeOf(err) != workload.RateLimited || !strings.Contains(err.Error(), "live-tailing sessions") {
				t.Fatalf("third follow = %v; want rate_limited naming the session limit", err)
			}
			break
		}
		if f.Calls("TailLogEntries") != 2 {
			t.Errorf("%d TailLogEntries streams opened; want 2", f.Calls("TailLogEntries"))
		}
	})
}

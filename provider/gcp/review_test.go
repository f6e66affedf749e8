package gcp_test

import (
	"context"
	"strings"
	"testing"
	"time"

	logging "cloud.google.com/go/logging/apiv2"
	"cloud.google.com/go/logging/apiv2/loggingpb"
	"google.golang.org/api/option"
	"google.golang.org/genproto/googleapis/api/monitoredres"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/gcp"
	"github.com/alphaswarm/controller/provider/gcp/fakegcp"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

func readConfig(t *testing.T, f *fakegcp.Server, name, key string) (string, bool) {
	t.Helper()
	v, ok, err := f.ReadConfig(name, key)
	if err != nil {
		t.Fatalf("ReadConfig %s: %v", key, err)
	}
	return v, ok
}

// TestStartAppliesConfig: spec.Config is written at Start, through the
// same secrets as ApplyConfig; a nil Config keeps the current config.
func TestStartAppliesConfig(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("scfg"), 1)
	steps := []struct {
		config   map[string]string
		want     map[string]string // key → value; "" absent
		versions int               // AddSecretVersion calls so far
	}{
		{map[string]string{"greeting": "hi", "mode": "a"}, map[string]string{"greeting": "hi", "mode": "a"}, 2},
		{nil, map[string]string{"greeting": "hi", "mode": "a"}, 2},                                              // kept
		{map[string]string{"greeting": "hi", "mode": "a"}, map[string]string{"greeting": "hi", "mode": "a"}, 2}, // unchanged: no version
		{map[string]string{"greeting": "hello"}, map[string]string{"greeting": "hello", "mode": ""}, 3},
	}
	for i, s := range steps {
		sp.Config = s.config
		st, err := p.Start(ctx(t), sp)
		if err != nil || st.Phase != workload.Running {
			t.Fatalf("step %d: Start = %s, %v", i, st.Phase, err)
		}
		for k, want := range s.want {
			got, ok := readConfig(t, f, sp.Name, k)
			if want == "" && ok || want != "" && got != want {
				t.Errorf("step %d: %s = %q (%v), want %q", i, k, got, ok, want)
			}
		}
		if n := f.Calls("AddSecretVersion"); n != s.versions {
			t.Errorf("step %d: %d AddSecretVersion calls, want %d", i, n, s.versions)
		}
	}
}

// TestStartTwiceNoNewRevision: Cloud Run fills defaults into the stored
// template (the fake: cpu "1" → "1000m", port name http1); starting the
// same spec again must still change nothing, a changed spec must roll.
func TestStartTwiceNoNewRevision(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("twice"), 1)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	first := f.Service(sp.Name)
	if first.Template.Containers[0].Resources.Limits["cpu"] != "1000m" || first.Template.Annotations[gcp.AnnotationSpecHash] == "" {
		t.Fatalf("fake did not fill defaults or no spec hash: %v", first.Template)
	}
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	if again := f.Service(sp.Name); again.LatestCreatedRevision != first.LatestCreatedRevision || f.Calls("UpdateService") != 0 {
		t.Fatalf("identical Start rolled %s (UpdateService x%d)", again.LatestCreatedRevision, f.Calls("UpdateService"))
	}
	sp.Env = map[string]string{"NEW": "1"}
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	if again := f.Service(sp.Name); again.LatestCreatedRevision == first.LatestCreatedRevision {
		t.Fatal("changed spec did not roll a revision")
	}
}

// TestApplyConfigIdempotent: applying the same config twice adds no
// version and rolls no revision; changing one key adds one version.
func TestApplyConfigIdempotent(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("idem"), 1)
	if _, err := p.Start(ctx(t), sp); err != nil {
		t.Fatal(err)
	}
	steps := []struct {
		config   map[string]string
		versions int
		rolls    bool
	}{
		{map[string]string{"a": "1", "b": "2"}, 2, true},
		{map[string]string{"a": "1", "b": "2"}, 2, false},
		{map[string]string{"a": "1", "b": "3"}, 3, true},
		{map[string]string{"a": "1"}, 3, true}, // b removed: env changes
		{map[string]string{"a": "1"}, 3, false},
	}
	for i, s := range steps {
		before := f.Service(sp.Name).LatestCreatedRevision
		if err := p.ApplyConfig(ctx(t), sp.Name, s.config); err != nil {
			t.Fatalf("step %d: %v", i, err)
		}
		if n := f.Calls("AddSecretVersion"); n != s.versions {
			t.Errorf("step %d: %d AddSecretVersion calls, want %d", i, n, s.versions)
		}
		if rolled := f.Service(sp.Name).LatestCreatedRevision != before; rolled != s.rolls {
			t.Errorf("step %d: rolled a revision = %v, want %v", i, rolled, s.rolls)
		}
		for k, v := range s.config {
			if got, _ := readConfig(t, f, sp.Name, k); got != v {
				t.Errorf("step %d: %s = %q, want %q", i, k, got, v)
			}
		}
	}
}

// TestApplyConfigErrorAfterChange: once a secret was created or a version
// added, a refusal no longer promises that nothing changed.
func TestApplyConfigErrorAfterChange(t *testing.T) {
	denied := status.Error(codes.PermissionDenied, "injected")
	cases := []struct {
		name      string
		config    map[string]string
		method    string
		skip      int // successful calls of method before the failing one
		want      workload.Code
		unchanged bool
	}{
		{"create refused", map[string]string{"a": "1"}, "CreateSecret", 0, workload.PermissionDenied, true},
		{"version refused after create", map[string]string{"a": "1"}, "AddSecretVersion", 0, workload.ProviderError, false},
		{"second key refused", map[string]string{"a": "1", "b": "2"}, "CreateSecret", 1, workload.ProviderError, false},
		{"update refused", map[string]string{"a": "1"}, "UpdateService", 0, workload.ProviderError, false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("chg"), 1)
			if _, err := p.Start(ctx(t), sp); err != nil {
				t.Fatal(err)
			}
			for range c.skip {
				f.Fail(c.method, nil) // queued nil: that call succeeds
			}
			f.Fail(c.method, denied)
			err := p.ApplyConfig(ctx(t), sp.Name, c.config)
			if workload.CodeOf(err) != c.want || provider.NothingChanged(err) != c.unchanged {
				t.Fatalf("ApplyConfig = %v (%s, nothing changed %v), want %s, nothing changed %v", err, workload.CodeOf(err), provider.NothingChanged(err), c.want, c.unchanged)
			}
		})
	}
}

// TestConfigRefusedBeforeChange: what Secret Manager would refuse is
// invalid_argument with the key's path before anything is written; long
// keys get a valid id.
func TestConfigRefusedBeforeChange(t *testing.T) {
	long := strings.Repeat("k", 250)
	cases := []struct {
		name   string
		config map[string]string
		want   workload.Code
		path   string
	}{
		{"value over 64 KiB", map[string]string{"big": strings.Repeat("x", 64<<10+1)}, workload.InvalidArgument, "config.big"},
		{"value of 64 KiB", map[string]string{"big": strings.Repeat("x", 64<<10)}, "", ""},
		{"long key", map[string]string{long: "v"}, "", ""},
		{"dotted key", map[string]string{"app.mode": "v"}, "", ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("lim"), 1)
			if _, err := p.Start(ctx(t), sp); err != nil {
				t.Fatal(err)
			}
			err := p.ApplyConfig(ctx(t), sp.Name, c.config)
			if workload.CodeOf(err) != c.want || (c.path != "" && !strings.Contains(err.Error(), c.path)) {
				t.Fatalf("ApplyConfig = %v, want code %q with %q", err, c.want, c.path)
			}
			if c.want != "" {
				if f.Calls("CreateSecret")+f.Calls("AddSecretVersion") != 0 {
					t.Fatal("secrets written before the refusal")
				}
				sp.Config = c.config
				if _, err := p.Start(ctx(t), sp); workload.CodeOf(err) != c.want {
					t.Fatalf("Start with the config = %v, want %s", err, c.want)
				}
				return
			}
			for k, v := range c.config {
				if got, _ := readConfig(t, f, sp.Name, k); got != v {
					t.Fatalf("%s: workload sees %d bytes, want %d", k, len(got), len(v))
				}
			}
		})
	}
}

// TestFailedOperationIsFailedStatus: when Cloud Run fails the operation
// because the revision cannot become ready, Start reports the Failed
// status with the condition, and so does Restart (the runtime reports both
// as rollout_failed with that status); ApplyConfig, which has no status to
// answer, a rollout_failed error carrying it.
func TestFailedOperationIsFailedStatus(t *testing.T) {
	const bad = "europe-docker.pkg.dev/demo-project/app/missing:0"
	cases := []struct {
		name string
		run  func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error)
		want workload.Code // "" for a Failed status without error
	}{
		{"create", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			sp.Image = bad
			return p.Start(ctx(t), sp)
		}, ""},
		{"update", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			mustStart(t, p, sp)
			sp.Image = bad
			return p.Start(ctx(t), sp)
		}, ""},
		{"apply config", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			mustStart(t, p, sp)
			f.BadImage(sp.Image, "Image 'missing' not found.")
			return workload.DeploymentStatus{}, p.ApplyConfig(ctx(t), sp.Name, map[string]string{"a": "1"})
		}, workload.RolloutFailed},
		{"restart", func(t *testing.T, p *gcp.Provider, f *fakegcp.Server, sp workload.DeploymentSpec) (workload.DeploymentStatus, error) {
			mustStart(t, p, sp)
			f.BadImage(sp.Image, "Image 'missing' not found.")
			return p.Restart(ctx(t), sp.Name)
		}, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			p, f := openFake(t, nil)
			f.BadImageFailsOperation = true
			f.BadImage(bad, "Image 'missing' not found.")
			st, err := c.run(t, p, f, spec(providertest.Name("lrofail"), 1))
			if c.want == "" {
				if err != nil || st.Phase != workload.Failed || !strings.Contains(st.Message, "CONTAINER_MISSING") {
					t.Fatalf("= %s %q, %v; want Failed with the condition", st.Phase, st.Message, err)
				}
				return
			}
			if workload.CodeOf(err) != c.want || !strings.Contains(err.Error(), "CONTAINER_MISSING") || provider.NothingChanged(err) {
				t.Fatalf("= %v (%s); want %s carrying the condition", err, workload.CodeOf(err), c.want)
			}
		})
	}
}

func mustStart(t *testing.T, p *gcp.Provider, sp workload.DeploymentSpec) {
	t.Helper()
	if st, err := p.Start(ctx(t), sp); err != nil || st.Phase != workload.Running {
		t.Fatalf("Start = %s, %v", st.Phase, err)
	}
}

// TestUserSecretsNamedLikeConfigKept: only this service's config secrets
// are config env; a user's own secret alphaswarm-db stays.
func TestUserSecretsNamedLikeConfigKept(t *testing.T) {
	p, f := openFake(t, nil)
	f.AddSecret("projects/demo-project/secrets/alphaswarm-db", []byte("pw"))
	f.ProjectSecretAccessors = []string{"serviceAccount:" + testServiceAccount}
	sp := spec(providertest.Name("own"), 1)
	sp.Secrets = []workload.SecretRef{{Env: "DB", From: "projects/demo-project/secrets/alphaswarm-db/versions/1"}}
	mustStart(t, p, sp)
	if err := p.ApplyConfig(ctx(t), sp.Name, map[string]string{"a": "1"}); err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range f.Service(sp.Name).Template.Containers[0].Env {
		found = found || e.Name == "DB"
	}
	if !found {
		t.Fatal("ApplyConfig removed the user's secret env DB")
	}
}

// TestPortNames: Cloud Run accepts http1 and h2c only.
func TestPortNames(t *testing.T) {
	cases := []struct{ name, want string }{
		{"", "http1"}, {"http", "http1"}, {"http1", "http1"}, {"h2c", "h2c"}, {"grpc", "h2c"}, {"web", ""},
	}
	for _, c := range cases {
		p, f := openFake(t, nil)
		sp := spec(providertest.Name("port"), 1)
		sp.Ports[0].Name = c.name
		_, err := p.Start(ctx(t), sp)
		if c.want == "" {
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "ports[0].name") || f.Calls("CreateService") != 0 {
				t.Errorf("port name %q: %v, want invalid_argument at ports[0].name before any call", c.name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("port name %q: %v", c.name, err)
			continue
		}
		if got := f.Service(sp.Name).Template.Containers[0].Ports[0].Name; got != c.want {
			t.Errorf("port name %q → %q, want %q", c.name, got, c.want)
		}
	}
}

func TestStreamMetricsValidatesName(t *testing.T) {
	p, f := openFake(t, nil)
	for _, err := range p.StreamMetrics(ctx(t), "Bad_Name") {
		if workload.CodeOf(err) != workload.InvalidArgument {
			t.Fatalf("StreamMetrics(Bad_Name) = %v, want invalid_argument", err)
		}
		break
	}
	if f.Calls("GetService") != 0 {
		t.Fatal("GetService called for an invalid name")
	}
}

// followLogs follows name's logs, calling step after each new distinct
// line with the set seen so far; it stops when step returns true.
func followLogs(t *testing.T, p *gcp.Provider, name string, step func(seen map[string]int) bool) map[string]int {
	t.Helper()
	c, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	seen := map[string]int{}
	for line, err := range p.Logs(c, name, provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatalf("logs: %v", err)
		}
		seen[line.Text]++
		if seen[line.Text] > 1 {
			t.Fatalf("line %q repeated", line.Text)
		}
		if step(seen) {
			return seen
		}
	}
	t.Fatalf("follow ended; saw %v", seen)
	return nil
}

// TestLogsFollowLateEntry: an entry older than the newest one yielded
// (late, out of order) is still yielded.
func TestLogsFollowLateEntry(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("late"), 1)
	mustStart(t, p, sp)
	lc, err := logging.NewClient(context.Background(), option.WithGRPCConn(f.Conn()), option.WithoutAuthentication())
	if err != nil {
		t.Fatal(err)
	}
	write := func(text string, at time.Time) {
		_, err := lc.WriteLogEntries(ctx(t), &loggingpb.WriteLogEntriesRequest{Entries: []*loggingpb.LogEntry{{
			LogName:   "projects/demo-project/logs/run.googleapis.com%2Fstdout",
			Resource:  &monitoredres.MonitoredResource{Type: "cloud_run_revision", Labels: map[string]string{"service_name": sp.Name, "location": "europe-west1"}},
			Timestamp: timestamppb.New(at), Payload: &loggingpb.LogEntry_TextPayload{TextPayload: text},
		}}})
		if err != nil {
			t.Fatal(err)
		}
	}
	done := false
	followLogs(t, p, sp.Name, func(seen map[string]int) bool {
		if seen[startupLine] == 1 && !done {
			done = true
			go func() { // once the tail is open: the tail delivers both
				for f.Calls("TailLogEntries") < 1 {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond)
				write("new", time.Now().Add(time.Second))
				write("late", time.Now().Add(-30*time.Second))
			}()
		}
		return seen["new"] == 1 && seen["late"] == 1
	})
}

// TestLogsTailReconnects: a tail stream that ends or fails transiently is
// reopened, and what was written meanwhile is caught up, once.
func TestLogsTailReconnects(t *testing.T) {
	for _, brk := range []error{nil, status.Error(codes.Unavailable, "server going away"), status.Error(codes.Internal, "stream reset")} {
		t.Run(status.Code(brk).String(), func(t *testing.T) {
			p, f := openFake(t, nil)
			sp := spec(providertest.Name("recon"), 1)
			mustStart(t, p, sp)
			emitWhenTailing := func(n int, text string) {
				go func() {
					for f.Calls("TailLogEntries") < n {
						time.Sleep(5 * time.Millisecond)
					}
					time.Sleep(50 * time.Millisecond)
					f.EmitLog(sp.Name, text)
				}()
			}
			started, broken := false, false
			followLogs(t, p, sp.Name, func(seen map[string]int) bool {
				if seen[startupLine] == 1 && !started {
					started = true
					emitWhenTailing(1, "before")
				}
				if seen["before"] == 1 && !broken {
					broken = true
					f.BreakTails(brk)
					f.EmitLog(sp.Name, "between")
					emitWhenTailing(2, "after")
				}
				return seen["before"] == 1 && seen["between"] == 1 && seen["after"] == 1
			})
			if n := f.Calls("TailLogEntries"); n < 2 {
				t.Fatalf("TailLogEntries opened %d times, want a reconnection", n)
			}
		})
	}
}

// TestLogsGapCaughtUp: entries written between the history read and the
// tail's start are caught up.
func TestLogsGapCaughtUp(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("gap"), 1)
	mustStart(t, p, sp)
	once := false
	f.BeforeTail = func() {
		if !once {
			once = true
			f.EmitLog(sp.Name, "in the gap")
		}
	}
	followLogs(t, p, sp.Name, func(seen map[string]int) bool { return seen["in the gap"] == 1 })
}

// TestLogsTailSuppressionCaughtUp: entries the tail reports as suppressed
// are read back with ListLogEntries.
func TestLogsTailSuppressionCaughtUp(t *testing.T) {
	p, f := openFake(t, nil)
	sp := spec(providertest.Name("supp"), 1)
	mustStart(t, p, sp)
	started, suppressed := false, false
	followLogs(t, p, sp.Name, func(seen map[string]int) bool {
		if seen[startupLine] == 1 && !started {
			started = true
			go func() {
				for f.Calls("TailLogEntries") < 1 {
					time.Sleep(5 * time.Millisecond)
				}
				time.Sleep(50 * time.Millisecond)
				f.EmitLog(sp.Name, "first")
			}()
		}
		if seen["first"] == 1 && !suppressed {
			suppressed = true
			// Once the catch-up after the first response is done (the
			// history read was the first list), a suppressed batch must
			// trigger another catch-up.
			go func() {
				for f.Calls("ListLogEntries") < 2 {
					time.Sleep(5 * time.Millisecond)
				}
				f.SuppressTail()
				f.EmitLog(sp.Name, "suppressed")
			}()
		}
		return seen["suppressed"] == 1
	})
}

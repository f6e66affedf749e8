package azure

import (
	"bytes"
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/azure/aciexec/aciexectest"
	"github.com/alphaswarm/controller/provider/azure/fakeazure"
	"github.com/alphaswarm/controller/workload"
)

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// TestInaccessibleImageRefusedAtOnce (review Z2): ACI refuses an image it
// cannot pull on the create request itself (400 InaccessibleImage), so
// Start is invalid_argument and no group exists; a rolling update to such
// an image leaves the running groups alone.
func TestInaccessibleImageRefusedAtOnce(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{FailingImages: []string{"example.azurecr.io/missing:1"}}, nil)
	sp := spec("broken", 1)
	sp.Image = "example.azurecr.io/missing:1"
	_, err := p.Start(ctxT(t), sp)
	if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "InaccessibleImage") || !provider.NothingChanged(err) {
		t.Fatalf("Start = %v; want invalid_argument InaccessibleImage that changed nothing", err)
	}
	if _, err := p.Status(ctxT(t), "broken"); workload.CodeOf(err) != workload.NotFound {
		t.Fatalf("Status = %v; want not_found (no group was created)", err)
	}
	// A running service keeps running when the new image is refused.
	if _, err := p.Start(ctxT(t), spec("web", 2)); err != nil {
		t.Fatal(err)
	}
	before := f.Observe(testTarget, "web").Running
	bad := spec("web", 2)
	bad.Image = "example.azurecr.io/missing:1"
	if _, err := p.Start(ctxT(t), bad); workload.CodeOf(err) != workload.InvalidArgument {
		t.Fatalf("rolling to an inaccessible image = %v; want invalid_argument", err)
	}
	st, err := p.Status(ctxT(t), "web")
	if err != nil || st.Phase != workload.Running || !slices.Equal(f.Observe(testTarget, "web").Running, before) {
		t.Fatalf("after the refused update: %s %v, running %v (was %v)", st.Phase, err, f.Observe(testTarget, "web").Running, before)
	}
}

func TestStartSameSpecChangesNothingAndNewImageRolls(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("web", 2)); err != nil {
		t.Fatal(err)
	}
	puts := f.Calls("BeginCreateOrUpdate")
	if puts != 2 {
		t.Fatalf("creating 2 replicas took %d create calls", puts)
	}
	st, err := p.Start(ctx, spec("web", 2))
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("second Start = %s, %v", st.Phase, err)
	}
	if got := f.Calls("BeginCreateOrUpdate"); got != puts {
		t.Errorf("starting an unchanged spec made %d create calls", got-puts)
	}
	before := f.Observe(testTarget, "web").Running
	sp := spec("web", 2)
	sp.Image = "mcr.microsoft.com/azuredocs/aci-helloworld:v2"
	st, err = p.Start(ctx, sp)
	if err != nil || st.Phase != workload.Running || st.Image != sp.Image || st.Replicas.Updated != 2 {
		t.Fatalf("Start with a new image = %+v, %v", st, err)
	}
	after := f.Observe(testTarget, "web").Running
	for _, id := range after {
		if slices.Contains(before, id) {
			t.Errorf("run %s survived an image change", id)
		}
	}
	if g, _, _ := f.Group("web-1"); str(g.Properties.Containers[0].Properties.Image) != sp.Image {
		t.Errorf("web-1 runs %s", str(g.Properties.Containers[0].Properties.Image))
	}
}

func TestStopKeepsGroupsAndStartResumes(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("api", 2)); err != nil {
		t.Fatal(err)
	}
	st, err := p.Stop(ctx, "api")
	if err != nil || st.Phase != workload.Stopped || st.Replicas.Desired != 0 {
		t.Fatalf("Stop = %+v, %v", st, err)
	}
	o := f.Observe(testTarget, "api")
	if len(o.Groups) != 2 || len(o.Running) != 0 || f.Calls("Stop") != 2 {
		t.Fatalf("after Stop: groups %v, running %v, stop calls %d; want 2 kept groups, none running, 2 stops", o.Groups, o.Running, f.Calls("Stop"))
	}
	if _, state, _ := f.Group("api-0"); state != "Stopped" {
		t.Errorf("api-0 state %s", state)
	}
	st, err = p.Start(ctx, spec("api", 2))
	if err != nil || st.Phase != workload.Running {
		t.Fatalf("Start after Stop = %s, %v", st.Phase, err)
	}
	if f.Calls("BeginStart") != 2 || f.Calls("BeginCreateOrUpdate") != 2 {
		t.Errorf("Start after Stop: %d start and %d create calls, want 2 and 2 (the groups are started, not recreated)", f.Calls("BeginStart"), f.Calls("BeginCreateOrUpdate"))
	}
	list, err := p.List(ctx)
	if err != nil || len(list) != 1 || list[0].Name != "api" || list[0].Phase != workload.Running {
		t.Fatalf("List = %+v, %v", list, err)
	}
}

func TestForeignGroupIsNotOverwritten(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	// Another target's service of the same name in the same resource
	// group.
	other := *p
	other.target = "other-target"
	if _, err := other.Start(ctx, spec("shared", 1)); err != nil {
		t.Fatal(err)
	}
	_, err := p.Start(ctx, spec("shared", 1))
	if workload.CodeOf(err) != workload.AlreadyExists || !provider.NothingChanged(err) {
		t.Fatalf("Start over another target's group = %v, want already_exists", err)
	}
	if g, _, _ := f.Group("shared-0"); str(g.Tags[TagTarget]) != "other-target" {
		t.Errorf("shared-0 now belongs to %s", str(g.Tags[TagTarget]))
	}
	// The unknown resource group: status not found, stop is no error.
	q, _ := openFake(t, fakeazure.Options{}, map[string]any{"resourceGroup": "missing-rg"})
	if _, err := q.Status(ctx, "web"); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("Status in a missing resource group = %v", err)
	}
	if st, err := q.Stop(ctx, "web"); err != nil || st.Phase != workload.Stopped {
		t.Errorf("Stop in a missing resource group = %+v, %v", st, err)
	}
}

func TestSecretsAndConfig(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	sp := spec("shop", 1)
	sp.Secrets = []workload.SecretRef{{Env: "DB_PASSWORD", From: "env:ALPHASWARM_SECRET_DB"}}
	if _, err := p.Start(ctx, sp); err != nil {
		t.Fatal(err)
	}
	err := p.ApplyConfig(ctx, "shop", map[string]string{"mode": "blue", "secret.API_TOKEN": "tok-123456"})
	if err != nil {
		t.Fatal(err)
	}
	// The store: plain key in App Configuration, secret in Key Vault
	// with a reference to it.
	if v, ct, ok := f.Setting("alphaswarm/shop/mode", testTarget); !ok || v != "blue" || ct != "" {
		t.Errorf("setting mode = %q %q %v", v, ct, ok)
	}
	kvName := "alphaswarm-" + testTarget + "-shop-API-TOKEN"
	if v, ok := f.Secret(kvName); !ok || v != "tok-123456" {
		t.Errorf("Key Vault secret %s = %q %v", kvName, v, ok)
	}
	ref, ct, ok := f.Setting("alphaswarm/shop/secret.API_TOKEN", testTarget)
	if !ok || !strings.HasPrefix(ct, "application/vnd.microsoft.appconfig.keyvaultref+json") || !strings.Contains(ref, fakeazure.VaultURL+"/secrets/"+kvName+"/") {
		t.Errorf("reference setting = %q %q %v", ref, ct, ok)
	}
	// The workload: all three as env; ARM returns no secure values.
	env := f.Env(testTarget, "shop")
	if env["mode"] != "blue" || env["API_TOKEN"] != "tok-123456" || env["DB_PASSWORD"] != "s3cr3t-db-password" {
		t.Fatalf("workload env = %v", env)
	}
	cg, err := p.get(ctx, "shop-0")
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range cg.Properties.Containers[0].Properties.EnvironmentVariables {
		if n := str(e.Name); (n == "API_TOKEN" || n == "DB_PASSWORD") && (e.Value != nil || e.SecureValue != nil) {
			t.Errorf("Get returned a value for secure env %s", n)
		}
	}
	// Scaling up rebuilds groups from shop-0, whose secure values ACI
	// does not return: they come back from the tags and Key Vault.
	if _, err := p.Scale(ctx, "shop", 2); err != nil {
		t.Fatal(err)
	}
	g1, _, _ := f.Group("shop-1")
	got := map[string]string{}
	for _, e := range g1.Properties.Containers[0].Properties.EnvironmentVariables {
		got[str(e.Name)] = str(e.Value) + str(e.SecureValue)
	}
	if got["mode"] != "blue" || got["API_TOKEN"] != "tok-123456" || got["DB_PASSWORD"] != "s3cr3t-db-password" {
		t.Fatalf("scaled-up group env = %v", got)
	}
	// Removing keys removes them from the store and the workload.
	if err := p.ApplyConfig(ctx, "shop", map[string]string{"mode": "green"}); err != nil {
		t.Fatal(err)
	}
	if _, _, ok := f.Setting("alphaswarm/shop/secret.API_TOKEN", testTarget); ok {
		t.Error("the removed secret key is still in App Configuration")
	}
	for _, g := range []string{"shop-0", "shop-1"} {
		cg, _, _ := f.Group(g)
		env := map[string]string{}
		for _, e := range cg.Properties.Containers[0].Properties.EnvironmentVariables {
			env[str(e.Name)] = str(e.Value) + str(e.SecureValue)
		}
		if _, has := env["API_TOKEN"]; has || env["mode"] != "green" || env["DB_PASSWORD"] != "s3cr3t-db-password" {
			t.Errorf("%s env after removal = %v", g, env)
		}
	}
	st, err := p.Status(ctx, "shop")
	if err != nil || st.Phase != workload.Running || st.Replicas.Updated != 2 {
		t.Fatalf("Status = %+v, %v", st, err)
	}
}

func TestConfigValidation(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, map[string]any{"keyVaultURL": nil})
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("cfg", 1)); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name   string
		config map[string]string
		want   string
	}{
		{"secret without vault", map[string]string{"secret.X": "v"}, "keyVaultURL"},
		{"bad key", map[string]string{"not a key": "v"}, "config.not a key"},
		{"same env twice", map[string]string{"X": "1", "secret.X": "2"}, "same environment variable"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			err := p.ApplyConfig(ctx, "cfg", c.config)
			if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("ApplyConfig = %v, want invalid_argument mentioning %q", err, c.want)
			}
		})
	}
	if keys := f.Settings(testTarget); len(keys) != 0 {
		t.Errorf("refused config wrote %v", keys)
	}
	if err := p.ApplyConfig(ctx, "absent", map[string]string{"a": "b"}); workload.CodeOf(err) != workload.NotFound {
		t.Errorf("ApplyConfig of an unknown service = %v", err)
	}
}

func TestInvalidSpecs(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, map[string]any{"keyVaultURL": nil})
	cases := []struct {
		name   string
		mutate func(*workload.DeploymentSpec)
		want   string
	}{
		{"args without command", func(s *workload.DeploymentSpec) { s.Args = []string{"-v"} }, "args"},
		{"tcp probe", func(s *workload.DeploymentSpec) {
			s.HealthCheck = &workload.HealthCheck{TCP: &workload.TCPCheck{Port: 80}}
		}, "healthCheck.tcp"},
		{"host port differs", func(s *workload.DeploymentSpec) { s.Ports = []workload.Port{{Container: 80, Host: 8080}} }, "ports[0].host"},
		{"keyvault without vault", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "keyvault:db"}}
		}, "keyVaultURL"},
		{"unknown secret scheme", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "arn:aws:ssm:x"}}
		}, "secrets[0].from"},
		{"missing env secret", func(s *workload.DeploymentSpec) {
			s.Secrets = []workload.SecretRef{{Env: "X", From: "env:ALPHASWARM_SECRET_NOPE"}}
		}, "ALPHASWARM_SECRET_NOPE"},
		{"label not a tag name", func(s *workload.DeploymentSpec) { s.Labels = map[string]string{"example.com/team": "a"} }, "labels.example.com/team"},
		{"name too long for groups", func(s *workload.DeploymentSpec) { s.Name = strings.Repeat("a", 62); s.Replicas = 10 }, "63"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			sp := spec("bad", 1)
			c.mutate(&sp)
			_, err := p.Start(ctxT(t), sp)
			if workload.CodeOf(err) != workload.InvalidArgument || !provider.NothingChanged(err) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("Start = %v, want invalid_argument mentioning %q", err, c.want)
			}
		})
	}
	if n := f.Calls("BeginCreateOrUpdate"); n != 0 {
		t.Errorf("invalid specs made %d create calls", n)
	}
}

func TestTranslation(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, map[string]any{"subnet": "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/aci"})
	sp := spec("tr", 1)
	sp.Command, sp.Args = []string{"/app/server"}, []string{"--port", "80"}
	sp.Env = map[string]string{"B": "2", "A": "1"}
	sp.Labels = map[string]string{"team": "payments"}
	sp.Resources = workload.Resources{CPU: "1500m", Memory: "700Mi"}
	sp.HealthCheck = &workload.HealthCheck{HTTP: &workload.HTTPCheck{Path: "/healthz", Port: 80}, Interval: workload.Duration(10 * time.Second), Retries: 3}
	if _, err := p.Start(ctxT(t), sp); err != nil {
		t.Fatal(err)
	}
	cg, _, _ := f.Group("tr-0")
	c := cg.Properties.Containers[0].Properties
	checks := []struct {
		what      string
		got, want any
	}{
		{"command", strings.Join(derefAll(c.Command), " "), "/app/server --port 80"},
		{"cpu", *c.Resources.Requests.CPU, 1.5},
		{"memory GB (rounded up)", *c.Resources.Requests.MemoryInGB, 0.7},
		{"env order", str(c.EnvironmentVariables[0].Name) + str(c.EnvironmentVariables[1].Name), "AB"},
		{"probe path", str(c.LivenessProbe.HTTPGet.Path), "/healthz"},
		{"probe period", deref(c.LivenessProbe.PeriodSeconds), int32(10)},
		{"probe failures", deref(c.ReadinessProbe.FailureThreshold), int32(3)},
		{"ip type", string(*cg.Properties.IPAddress.Type), "Private"},
		{"subnet", str(cg.Properties.SubnetIDs[0].ID), "/subscriptions/s/resourceGroups/net/providers/Microsoft.Network/virtualNetworks/v/subnets/aci"},
		{"restart policy", string(*cg.Properties.RestartPolicy), "Always"},
		{"label tag", str(cg.Tags["team"]), "payments"},
		{"service tag", str(cg.Tags[TagService]), "tr"},
		{"target tag", str(cg.Tags[TagTarget]), testTarget},
		{"index tag", str(cg.Tags[TagIndex]), "0"},
		{"location", str(cg.Location), "westeurope"},
	}
	for _, ch := range checks {
		if ch.got != ch.want {
			t.Errorf("%s = %v, want %v", ch.what, ch.got, ch.want)
		}
	}
}

func derefAll(ss []*string) []string {
	var out []string
	for _, s := range ss {
		out = append(out, str(s))
	}
	return out
}

func TestMetricsValues(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	f.SetMetrics(fakeazure.Metrics{CPUMillicores: 300, MemoryBytes: 100 << 20, RxBytesPerSecond: 2000, TxBytesPerSecond: 1000})
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("m", 2)); err != nil {
		t.Fatal(err)
	}
	var prev time.Time
	n := 0
	for s, err := range p.StreamMetrics(ctx, "m") {
		if err != nil {
			t.Fatal(err)
		}
		every := 50 * time.Millisecond
		want := workload.MetricSample{Service: testTarget + "/m", Time: s.Time, Instances: 2, CPUPercent: 60,
			MemoryBytes: 200 << 20, MemoryLimitBytes: 2 * uint64(0.5*(1<<30)),
			NetRxBytes: uint64(2 * 2000 * every.Seconds()), NetTxBytes: uint64(2 * 1000 * every.Seconds()),
			Resolution: workload.Duration(every), Extra: map[string]float64{"netRxBytesPerSecond": 4000, "netTxBytesPerSecond": 2000}}
		if s.Service != want.Service || s.Instances != want.Instances || s.CPUPercent != want.CPUPercent ||
			s.MemoryBytes != want.MemoryBytes || s.MemoryLimitBytes != want.MemoryLimitBytes || s.NetRxBytes != want.NetRxBytes ||
			s.NetTxBytes != want.NetTxBytes || s.Resolution != want.Resolution || s.Extra["netRxBytesPerSecond"] != 4000 {
			t.Fatalf("sample = %+v\nwant     %+v", s, want)
		}
		if !s.Time.After(prev) {
			t.Fatalf("sample time %v not after %v: a point was yielded twice", s.Time, prev)
		}
		prev = s.Time
		if n++; n == 3 {
			break
		}
	}
	if _, err := p.Stop(ctx, "m"); err != nil {
		t.Fatal(err)
	}
	// A stopped service has no running group: the stream yields nothing
	// until its context ends, then ends without error.
	sctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	for s, err := range p.StreamMetrics(sctx, "m") {
		t.Fatalf("stopped service yielded %+v, %v", s, err)
	}
	for _, err := range p.StreamMetrics(ctx, "absent") {
		if workload.CodeOf(err) != workload.NotFound {
			t.Fatalf("metrics of an unknown service: %v", err)
		}
	}
}

func TestLogsNoRepeatNoDrop(t *testing.T) {
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("lg", 1)); err != nil {
		t.Fatal(err)
	}
	ts := time.Now().UTC().Add(time.Second)
	f.AppendLog("lg-0", ts, "same-1")
	f.AppendLog("lg-0", ts, "same-2")
	// Non-follow, Tail 1: only the newest line.
	var tail []string
	for l, err := range p.Logs(ctx, "lg", provider.LogOptions{Tail: 1}) {
		if err != nil {
			t.Fatal(err)
		}
		tail = append(tail, l.Text)
	}
	if !slices.Equal(tail, []string{"same-2"}) {
		t.Fatalf("Tail 1 = %q", tail)
	}
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var got []string
	for l, err := range p.Logs(fctx, "lg", provider.LogOptions{Follow: true, Tail: -1}) {
		if err != nil {
			t.Fatal(err)
		}
		if !strings.HasPrefix(l.Instance, "lg-0@") || l.Stream != "stdout" || l.Time.IsZero() {
			t.Fatalf("line %+v: want instance lg-0@<start>, stream stdout and a time", l)
		}
		got = append(got, l.Text)
		switch len(got) {
		case 3:
			// Written after several polls saw the first three: a fourth
			// line at the same timestamp as the last two, then a later one.
			time.Sleep(30 * time.Millisecond)
			f.AppendLog("lg-0", ts, "same-3")
			f.AppendLog("lg-0", ts.Add(time.Millisecond), "later")
		case 5:
			cancel()
		}
	}
	want := []string{startupLine, "same-1", "same-2", "same-3", "later"}
	if !slices.Equal(got, want) {
		t.Fatalf("followed lines = %q, want %q", got, want)
	}
	// Follow with Tail 0: none of the history, only what is written
	// after several polls.
	fctx, cancel = context.WithCancel(ctx)
	defer cancel()
	go func() {
		time.Sleep(50 * time.Millisecond)
		f.AppendLog("lg-0", time.Now().UTC().Add(2*time.Second), "new")
	}()
	got = nil
	for l, err := range p.Logs(fctx, "lg", provider.LogOptions{Follow: true, Tail: 0}) {
		if err != nil {
			t.Fatal(err)
		}
		got = append(got, l.Text)
		cancel()
	}
	if !slices.Equal(got, []string{"new"}) {
		t.Fatalf("followed lines with tail 0 = %q, want [new]", got)
	}
}

func TestLogCursor(t *testing.T) {
	t0 := time.Date(2026, 11, 27, 2, 45, 0, 0, time.UTC)
	l := func(sec int, text string) logLine {
		return logLine{t: t0.Add(time.Duration(sec) * time.Second), text: text}
	}
	polls := []struct {
		lines []logLine
		want  []string
	}{
		{[]logLine{l(0, "a"), l(1, "b"), l(1, "c")}, []string{"a", "b", "c"}},
		{[]logLine{l(0, "a"), l(1, "b"), l(1, "c")}, nil},
		{[]logLine{l(0, "a"), l(1, "b"), l(1, "c"), l(1, "d"), l(2, "e")}, []string{"d", "e"}},
		// After a restart ACI returns only the new run's log.
		{[]logLine{l(5, "restarted"), l(5, "again")}, []string{"restarted", "again"}},
		{[]logLine{l(5, "restarted"), l(5, "again")}, nil},
	}
	var c logCursor
	for i, p := range polls {
		var got []string
		for _, x := range c.fresh(p.lines) {
			got = append(got, x.text)
		}
		if !slices.Equal(got, p.want) {
			t.Fatalf("poll %d: fresh = %q, want %q", i, got, p.want)
		}
	}
	parsed := parseLogs("2026-11-27T02:45:00.1234567Z hello world\ncontinued\n2026-11-27T02:45:01Z bye\n")
	if len(parsed) != 3 || parsed[0].text != "hello world" || parsed[1].text != "continued" || !parsed[1].t.Equal(parsed[0].t) || parsed[2].text != "bye" {
		t.Fatalf("parseLogs = %+v", parsed)
	}
}

func TestExecDetails(t *testing.T) {
	ignore := goleak.IgnoreCurrent()
	// Registered first, so it runs after every other cleanup.
	t.Cleanup(func() { goleak.VerifyNone(t, ignore) })
	p, f := openFake(t, fakeazure.Options{}, nil)
	ctx := ctxT(t)
	if _, err := p.Start(ctx, spec("sh", 2)); err != nil {
		t.Fatal(err)
	}
	srv := aciexectest.NewServer(t, runExec)
	var gotGroup, gotCommand string
	var gotRows, gotCols int
	f.SetExec(func(group, command string, rows, cols int) (string, string, error) {
		gotGroup, gotCommand, gotRows, gotCols = group, command, rows, cols
		uri, pw := srv.Session(command)
		return uri, pw, nil
	})
	p.execClient = srv.HTTPClient()
	st, _ := p.Status(ctx, "sh")
	target := st.Instances[1].ID
	resize := make(chan provider.TermSize, 1)
	resize <- provider.TermSize{Cols: 132, Rows: 43}
	var out bytes.Buffer
	res, err := p.Exec(ctx, "sh", provider.ExecRequest{Instance: target, Command: []string{"readline"}, TTY: true,
		Stdin: strings.NewReader("typed input\n"), Stdout: &out, Resize: resize})
	if err != nil {
		t.Fatal(err)
	}
	if res.Instance != target || res.ExitCode != 0 || out.String() != "typed input\n" {
		t.Fatalf("Exec = %+v, output %q", res, out.String())
	}
	if gotGroup != "sh-1" || gotCommand != "readline" || gotRows != 43 || gotCols != 132 {
		t.Errorf("executeCommand got group %s command %q size %dx%d; want sh-1 readline 43x132", gotGroup, gotCommand, gotRows, gotCols)
	}
	// Default terminal size without a resize channel.
	out.Reset()
	if _, err := p.Exec(ctx, "sh", provider.ExecRequest{Command: []string{"/bin/hello"}, Stdout: &out}); err != nil {
		t.Fatal(err)
	}
	if gotRows != 24 || gotCols != 80 || gotCommand != "/bin/hello" || out.String() != "hello\n" {
		t.Errorf("default exec: command %q size %dx%d output %q", gotCommand, gotRows, gotCols, out.String())
	}
	// ACI takes no arguments (review Z1): refused before executeCommand.
	calls := f.Calls("ExecuteCommand")
	for _, cmd := range [][]string{{"echo", "hi"}, {"echo hi"}, {"sh", "-c", "ls"}} {
		_, err := p.Exec(ctx, "sh", provider.ExecRequest{Command: cmd, Stdout: &out})
		if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "command") {
			t.Errorf("Exec(%q) = %v; want invalid_argument at command", cmd, err)
		}
	}
	if f.Calls("ExecuteCommand") != calls {
		t.Error("a refused command reached executeCommand")
	}
	_, err = p.Exec(ctx, "sh", provider.ExecRequest{Instance: "sh-7@20260101T000000.000000000Z", Command: []string{"cat"}})
	if workload.CodeOf(err) != workload.NotFound {
		t.Errorf("exec in an unknown instance = %v", err)
	}
	if _, err := p.Stop(ctx, "sh"); err != nil {
		t.Fatal(err)
	}
	_, err = p.Exec(ctx, "sh", provider.ExecRequest{Command: []string{"cat"}})
	if workload.CodeOf(err) != workload.Conflict {
		t.Errorf("exec in a stopped service = %v, want conflict", err)
	}
	srv.Close()
}

func TestStatusPhases(t *testing.T) {
	p := &Provider{target: "edge", now: time.Now}
	started := time.Date(2026, 11, 27, 2, 0, 0, 0, time.UTC)
	mk := func(name, prov, state, cstate string, rev string) group {
		cg := mkGroup(name, prov, state, cstate, started)
		cg.Tags = map[string]*string{TagSpec: to.Ptr(rev), TagConfig: to.Ptr("c")}
		return group{name: name, cg: cg}
	}
	// crashed: the container Waiting or Terminated after restarts, or
	// with ACI's CrashLoopBackOff detail.
	crashed := func(name, cstate, detail string, restarts int32) group {
		g := mk(name, "Succeeded", "Running", cstate, "a")
		iv := g.cg.Properties.Containers[0].Properties.InstanceView
		iv.RestartCount = to.Ptr(restarts)
		iv.CurrentState.DetailStatus = to.Ptr(detail)
		return g
	}
	cases := []struct {
		name   string
		groups []group
		phase  workload.Phase
		r      workload.Replicas
	}{
		{"all running", []group{mk("w-0", "Succeeded", "Running", "Running", "a"), mk("w-1", "Succeeded", "Running", "Running", "a")}, workload.Running, workload.Replicas{Desired: 2, Ready: 2, Updated: 2}},
		{"creating", []group{mk("w-0", "Creating", "Pending", "Waiting", "a")}, workload.Pending, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"one of two", []group{mk("w-0", "Succeeded", "Running", "Running", "a"), mk("w-1", "Creating", "Pending", "Waiting", "a")}, workload.Degraded, workload.Replicas{Desired: 2, Ready: 1, Updated: 2}},
		{"rolling", []group{mk("w-0", "Succeeded", "Running", "Running", "b"), mk("w-1", "Succeeded", "Running", "Running", "a")}, workload.Progressing, workload.Replicas{Desired: 2, Ready: 2, Updated: 1}},
		{"stopped", []group{mk("w-0", "Succeeded", "Stopped", "Terminated", "a")}, workload.Stopped, workload.Replicas{}},
		{"failed", []group{mk("w-0", "Failed", "Failed", "Waiting", "a"), mk("w-1", "Succeeded", "Running", "Running", "a")}, workload.Failed, workload.Replicas{Desired: 2, Ready: 1, Updated: 2}},
		{"container terminated, no restart yet", []group{mk("w-0", "Succeeded", "Running", "Terminated", "a")}, workload.Pending, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"container crashed and restarted", []group{crashed("w-0", "Terminated", "Error", 3)}, workload.Failed, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"container waiting after restarts", []group{crashed("w-0", "Waiting", "", 1)}, workload.Failed, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"crash loop back-off", []group{crashed("w-0", "Waiting", "CrashLoopBackOff", 0)}, workload.Failed, workload.Replicas{Desired: 1, Ready: 0, Updated: 1}},
		{"one of two crash-looping", []group{mk("w-0", "Succeeded", "Running", "Running", "a"), crashed("w-1", "Waiting", "CrashLoopBackOff", 4)}, workload.Degraded, workload.Replicas{Desired: 2, Ready: 1, Updated: 2}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			st := p.statusOf("w", c.groups)
			if st.Phase != c.phase || st.Replicas != c.r {
				t.Fatalf("status = %s %+v (%s), want %s %+v", st.Phase, st.Replicas, st.Message, c.phase, c.r)
			}
			if st.Replicas.Desired != len(st.Instances) {
				t.Errorf("%d instances for %d desired", len(st.Instances), st.Replicas.Desired)
			}
		})
	}
	if id := mk("w-0", "Succeeded", "Running", "Running", "a").instanceID(); id != "w-0@20261127T020000.000000000Z" || groupName(id) != "w-0" {
		t.Errorf("instance id %q", id)
	}
	if id := mk("w-0", "Creating", "Pending", "Waiting", "a").instanceID(); id != "w-0" {
		t.Errorf("instance id before start %q", id)
	}
}

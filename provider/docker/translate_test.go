package docker

import (
	"archive/tar"
	"bytes"
	"io"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

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

// TestSpecToContainer checks what a replica is made of: labels, network,
// env and secrets, ports, limits, health check; and that the published
// port answers.
func TestSpecToContainer(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	name := uniqueName("spec")
	cleanupService(t, p, name)
	ctx := testkit.Context(t, 2*time.Minute)
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

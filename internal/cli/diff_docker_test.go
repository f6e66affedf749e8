package cli_test

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	_ "github.com/alphaswarm/controller/provider/docker" // registers "docker"
	"github.com/alphaswarm/controller/provider/docker/dockertest"
	"github.com/alphaswarm/controller/workload"
)

// TestDiffCLIDocker is `alphaswarm diff` end to end against the real Docker
// Engine (the test workload image built FROM scratch): a service that does
// not exist is a create (exit 1); after `deploy` the same file is no
// change (exit 0); a changed image, env, config and replica count is a
// replace (exit 1) whose lines name the Engine's fields, mark the ones
// that replace replicas and never show a config value; -o json decodes to
// the same diff; --native says docker has no native rendering; a spec the
// target's policy refuses (a privileged host port) exits 3 with the
// refusal after the diff, not checked for a viewer (exit 1). The specs
// carry config values, so an operator runs the diffs and a viewer's is
// refused (exit 2, permission_denied on config); none writes a ledger row,
// and none changes the Engine.
func TestDiffCLIDocker(t *testing.T) {
	var rnd [3]byte
	rand.Read(rnd[:])
	// Skips loudly without an Engine; fails under CI.
	dt := dockertest.NewTarget(testkit.Context(t, 5*time.Minute), t, "cdiff"+hex.EncodeToString(rnd[:]), dockertest.TargetOptions{})
	target, image := dt.Name, dt.Image
	st := testkit.NewStack(t, testkit.Options{Targets: []control.Target{{Name: target, Provider: dt.Provider}}, UserPrefix: "cli"})
	s := &server{url: st.URL, tokens: st.Tokens, led: st.Ledger}

	dir := t.TempDir()
	// The config values are what must never be printed.
	secretish1, secretish2 := "cfg-value-"+hex.EncodeToString(rnd[:])+"-one", "cfg-value-"+hex.EncodeToString(rnd[:])+"-two"
	write := func(name, body string) string {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return path
	}
	v1 := write("v1.yaml", fmt.Sprintf("name: web\nimage: %s\nreplicas: 1\nenv:\n  LOG_LEVEL: info\nconfig:\n  greeting: %s\n", image, secretish1))
	v2 := write("v2.yaml", fmt.Sprintf("name: web\nimage: %s\nreplicas: 2\nenv:\n  LOG_LEVEL: debug\nconfig:\n  greeting: %s\n", image, secretish2))
	noConfigValue := func(t *testing.T, r result) {
		t.Helper()
		for _, v := range []string{secretish1, secretish2} {
			if strings.Contains(r.stdout+r.stderr, v) {
				t.Errorf("a config value is printed:\n%s%s", r.stdout, r.stderr)
			}
		}
	}
	diff := func(t *testing.T, want int, args ...string) result {
		t.Helper()
		r := s.run(t, "operator", append([]string{"diff", "--target", target}, args...)...)
		if r.code != want {
			t.Fatalf("diff %v: exit %d, want %d\nstdout: %s\nstderr: %s", args, r.code, want, r.stdout, r.stderr)
		}
		noConfigValue(t, r)
		return r
	}
	records := func() int {
		page, err := s.led.Query(context.Background(), ledger.Filter{Limit: ledger.MaxLimit})
		if err != nil {
			t.Fatal(err)
		}
		return len(page.Records)
	}

	before := records()
	r := diff(t, 1, "-f", v1)
	if !strings.HasPrefix(r.stdout, target+"/web (docker): create: ") {
		t.Errorf("diff of an absent service:\n%s", r.stdout)
	}
	if r := s.run(t, "viewer", "diff", "--target", target, "-f", v1); r.code != 2 || !strings.Contains(r.stderr, "permission_denied") ||
		!strings.Contains(r.stderr, "config") {
		t.Errorf("a viewer's diff of a spec with config: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if n := records(); n != before {
		t.Errorf("a diff wrote %d ledger rows", n-before)
	}

	if r := s.run(t, "operator", "deploy", "--target", target, "-f", v1); r.code != 0 {
		t.Fatalf("deploy: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	before = records()
	r = diff(t, 0, "-f", v1)
	if r.stdout != target+"/web (docker): none\n" {
		t.Errorf("diff of the deployed spec:\n%s", r.stdout)
	}

	r = diff(t, 1, "-f", v2)
	lines := strings.Split(r.stdout, "\n")
	if !strings.HasPrefix(lines[0], target+"/web (docker): replace: ") {
		t.Errorf("first line %q, want a replace with its reason", lines[0])
	}
	for _, want := range []string{
		"  Config.Env[LOG_LEVEL]: info → debug (replaces)",
		"  replicas: 1 → 2",
	} {
		if !strings.Contains(r.stdout, want+"\n") {
			t.Errorf("diff lacks the line %q:\n%s", want, r.stdout)
		}
	}
	if !strings.Contains(r.stdout, "(set) → (changed)") {
		t.Errorf("the changed config value is not shown as (set) → (changed):\n%s", r.stdout)
	}

	r = diff(t, 1, "-f", v2, "-o", "json")
	var d workload.Diff
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("-o json: %v\n%s", err, r.stdout)
	}
	if d.Target != target || d.Service != "web" || d.Provider != "docker" || d.Action != workload.DiffReplace || !d.Changed() {
		t.Errorf("-o json: %+v", d)
	}

	r = diff(t, 1, "-f", v2, "--native")
	if !strings.Contains(r.stdout, "(the docker provider has no native rendering of this change)") {
		t.Errorf("--native:\n%s", r.stdout)
	}

	if n := records(); n != before {
		t.Errorf("diffs wrote %d ledger rows", n-before)
	}
	// A spec the target's policy refuses (host port 80: the default policy
	// admits 1024-65535): the diff is printed, with the refusal deploy
	// would get, and exits 3; the viewer's diff of it (no config values)
	// is not checked, exits 1 with a note, and names no rule. Nothing is
	// recorded, and deploy then refuses it with the same reason.
	priv := write("priv.yaml", fmt.Sprintf("name: web\nimage: %s\nreplicas: 1\nports:\n  - container: 8080\n    host: 80\n", image))
	r = diff(t, 3, "-f", priv)
	for _, want := range []string{
		"would be refused: permission_denied: outside the policy of target " + target + ": ports[0]: ",
		"(rule ports)\n  ! ports[0]: ",
	} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("the refused diff lacks %q:\n%s", want, r.stdout)
		}
	}
	if !strings.HasPrefix(r.stdout, target+"/web (docker): replace") {
		t.Errorf("the refused diff does not show the diff first:\n%s", r.stdout)
	}
	if r := s.run(t, "operator", "diff", "--target", target, "-f", priv, "-o", "json"); r.code != 3 ||
		!strings.Contains(r.stdout, `"verdict": "refused"`) || !strings.Contains(r.stderr, "would be refused: permission_denied") {
		t.Errorf("-o json of the refused diff: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if r := s.run(t, "viewer", "diff", "--target", target, "-f", priv); r.code != 1 || strings.Contains(r.stdout, "refused") ||
		strings.Contains(r.stdout+r.stderr, "rule ports") || !strings.Contains(r.stderr, "note: admission not checked") {
		t.Errorf("a viewer's diff of the refused spec: exit %d\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
	}
	if n := records(); n != before {
		t.Errorf("diffs wrote %d ledger rows", n-before)
	}
	if r := s.run(t, "operator", "deploy", "--target", target, "-f", priv); r.code == 0 || !strings.Contains(r.stderr, "(rule ports)") {
		t.Errorf("deploy of the spec the diff said would be refused: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	var stNow workload.DeploymentStatus
	r = s.run(t, "viewer", "status", "--target", target, "web", "-o", "json")
	if err := json.Unmarshal([]byte(r.stdout), &stNow); err != nil || stNow.Replicas.Desired != 1 || len(stNow.Instances) != 1 {
		t.Errorf("after the diffs the service is %+v (%v), want 1 replica as deployed", stNow, err)
	}
}

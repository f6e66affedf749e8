package cli_test

import (
	"bytes"
	"context"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

var update = flag.Bool("update", false, "rewrite golden files")

var binary string

func TestMain(m *testing.M) {
	dir, err := os.MkdirTemp("", "alphaswarm-cli")
	if err != nil {
		panic(err)
	}
	binary = filepath.Join(dir, "alphaswarm")
	// The client and, beside it, the server binary `alphaswarm serve` runs.
	out, err := exec.Command("go", "build", "-o", dir+string(os.PathSeparator), "../../cmd/alphaswarm", "../../cmd/alphaswarmd").CombinedOutput()
	if err != nil {
		os.Stderr.Write(out)
		os.RemoveAll(dir)
		os.Exit(2)
	}
	code := m.Run()
	os.RemoveAll(dir)
	os.Exit(code)
}

type server struct {
	url    string
	tokens map[string]string // role -> token
	mem    *providertest.Memory
	led    ledger.Ledger
}

// startServer runs the control plane as serve assembles it (testkit.NewStack)
// over the in-memory provider (the docker end-to-end test is in internal/e2e).
func startServer(t *testing.T) *server {
	t.Helper()
	s := testkit.NewStack(t, testkit.Options{UserPrefix: "cli", MetricsInterval: 20 * time.Millisecond})
	return &server{url: s.URL, tokens: s.Tokens, mem: s.Memory, led: s.Ledger}
}

type result struct {
	stdout, stderr string
	code           int
}

func (s *server) run(t *testing.T, role string, args ...string) result {
	t.Helper()
	cmd := exec.Command(binary, args...)
	cmd.Env = append(os.Environ(), "ALPHASWARM_SERVER="+s.url, "ALPHASWARM_TOKEN="+s.tokens[role], "ALPHASWARM_DATA_DIR="+t.TempDir())
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return result{out.String(), errb.String(), code}
}

func (s *server) mustRun(t *testing.T, role string, args ...string) string {
	t.Helper()
	r := s.run(t, role, args...)
	if r.code != 0 {
		t.Fatalf("alphaswarm %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r.stdout
}

var runID = regexp.MustCompile(`run_[0-9a-f]{24}`)

func golden(t *testing.T, name, got string) {
	t.Helper()
	got = runID.ReplaceAllString(got, "run_<id>")
	path := filepath.Join("testdata", name+".golden")
	if *update {
		os.WriteFile(path, []byte(got), 0o644)
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if got != string(want) {
		t.Fatalf("%s differs from %s:\n--- got\n%s\n--- want\n%s", name, path, got, want)
	}
}

func TestCLIAgainstServer(t *testing.T) {
	s := startServer(t)
	spec := filepath.Join(t.TempDir(), "web.yaml")
	os.WriteFile(spec, []byte("name: web\nimage: example/web:1\nreplicas: 2\n"), 0o644)
	api := filepath.Join(t.TempDir(), "api.json")
	os.WriteFile(api, []byte(`{"name":"api","image":"example/api:1"}`), 0o644)

	golden(t, "deploy", s.mustRun(t, "operator", "deploy", "-f", spec))
	s.mustRun(t, "operator", "deploy", "-f", api)
	golden(t, "status-list", s.mustRun(t, "viewer", "status"))
	golden(t, "scale", s.mustRun(t, "operator", "scale", "web", "3"))
	golden(t, "targets", s.mustRun(t, "viewer", "targets"))
	s.mustRun(t, "operator", "restart", "web")
	s.mustRun(t, "operator", "config", "set", "web", "greeting=hello", "mode=blue")
	if got := s.mem.Config("web"); got["greeting"] != "hello" || got["mode"] != "blue" {
		t.Fatalf("config on the workload: %v", got)
	}
	golden(t, "halt-status", s.mustRun(t, "viewer", "halt", "status"))

	// JSON and YAML outputs decode.
	if out := s.mustRun(t, "viewer", "status", "web", "-o", "json"); !strings.Contains(out, `"phase": "Running"`) {
		t.Fatalf("status -o json: %s", out)
	}
	if out := s.mustRun(t, "viewer", "status", "web", "-o", "yaml"); !strings.Contains(out, "phase: Running") {
		t.Fatalf("status -o yaml: %s", out)
	}

	// exec returns the command's output and exit code.
	if out := s.mustRun(t, "admin", "exec", "web", "--", "echo", "from", "cli"); out != "from cli\n" {
		t.Fatalf("exec stdout %q", out)
	}
	if r := s.run(t, "admin", "exec", "web", "--", "exit", "4"); r.code != 4 {
		t.Fatalf("exec exit code %d, want 4", r.code)
	}
	if r := s.run(t, "admin", "exec", "-i", "web", "--", "echo", "interactive"); r.code != 0 || r.stdout != "interactive\n" {
		t.Fatalf("exec -i: %+v", r)
	}

	// Errors: code and message on stderr, non-zero exit.
	r := s.run(t, "viewer", "scale", "web", "1")
	if r.code == 0 || !strings.Contains(r.stderr, "permission_denied") {
		t.Fatalf("viewer scale: %+v", r)
	}
	r = s.run(t, "operator", "scale", "ghost", "1")
	if r.code == 0 || !strings.Contains(r.stderr, "error: not_found") {
		t.Fatalf("scale unknown: %+v", r)
	}
	r = s.run(t, "operator", "scale", "web", "--", "-3")
	if r.code == 0 || !strings.Contains(r.stderr, "invalid_argument") || !strings.Contains(r.stderr, "replicas") {
		t.Fatalf("scale -3: %+v", r)
	}

	// Metrics and logs.
	if out := s.mustRun(t, "viewer", "metrics", "web"); !strings.Contains(out, "CPU%") {
		t.Fatalf("metrics: %s", out)
	}
	if out := s.mustRun(t, "viewer", "logs", "web", "--tail", "-1"); !strings.Contains(out, "workload started") {
		t.Fatalf("logs: %s", out)
	}

	// The ledger shows the user from each token, and verifies.
	s.mustRun(t, "operator", "stop", "web")
	page, err := s.led.Query(context.Background(), ledger.Filter{Kind: ledger.KindResult, Service: "web", Limit: 100})
	if err != nil {
		t.Fatal(err)
	}
	users := map[string]bool{}
	for _, rec := range page.Records {
		users[rec.UserID] = true
	}
	if !users["cli-operator"] || !users["cli-admin"] || len(users) != 2 {
		t.Fatalf("ledger users %v", users)
	}
	if out := s.mustRun(t, "viewer", "runs", "--service", "web", "--kind", "result", "-o", "json"); !strings.Contains(out, `"userId": "cli-operator"`) {
		t.Fatalf("runs: %s", out)
	}
	if out := s.mustRun(t, "viewer", "ledger", "verify"); !strings.HasPrefix(out, "chain OK") {
		t.Fatalf("ledger verify: %s", out)
	}
	// Tokens: create as admin, use it, revoke it.
	tok := strings.TrimSpace(s.mustRun(t, "admin", "token", "create", "--user", "dave", "--role", "viewer"))
	s.tokens["dave"] = tok
	if out := s.mustRun(t, "dave", "status", "web", "-o", "json"); !strings.Contains(out, `"name": "web"`) {
		t.Fatalf("new token: %s", out)
	}
	list := s.mustRun(t, "admin", "token", "list", "-o", "json")
	if strings.Contains(list, tok) {
		t.Fatal("token list shows a token value")
	}
	_ = workload.Running
}

func TestCLIUsageErrors(t *testing.T) {
	s := startServer(t)
	for _, args := range [][]string{{"scale", "web"}, {"scale", "web", "x"}, {"status", "-o", "xml"}, {"deploy"}} {
		r := s.run(t, "admin", args...)
		if r.code == 0 || r.stderr == "" {
			t.Errorf("%v: exit %d, stderr %q", args, r.code, r.stderr)
		}
	}
	r := s.run(t, "", "status")
	if r.code == 0 || !strings.Contains(r.stderr, "unauthenticated") {
		t.Fatalf("no token: %+v", r)
	}
}

package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestPolicyTest: `alphaswarm policy test` passes the shipped examples
// against the shipped policies (exit 0), reports a mismatching example and
// exits 1, and finds the policies through the config file.
func TestPolicyTest(t *testing.T) {
	const dir = "../../deploy/policies"
	r := runCLI(t, nil, "policy", "test", "--policy", dir, "-f", filepath.Join(dir, "examples.yaml"))
	if r.code != 0 || !strings.Contains(r.stdout, " 0 failed; policy sha256:") || strings.Contains(r.stdout, "FAIL") {
		t.Fatalf("shipped examples: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	tmp := t.TempDir()
	bad := filepath.Join(tmp, "bad.yaml")
	if err := os.WriteFile(bad, []byte(`examples:
  - name: prod may have 30 replicas
    allow: true
    input: {principal: {user: a, role: admin}, action: scale, target: prod, request: {replicas: 30}, time: "2026-12-05T10:00:00Z"}
`), 0o600); err != nil {
		t.Fatal(err)
	}
	abs, err := filepath.Abs(dir)
	if err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(tmp, "alphaswarm.yaml")
	if err := os.WriteFile(cfg, []byte("noLocalTarget: true\npolicy:\n  paths: ["+abs+"]\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	r = runCLI(t, []string{"ALPHASWARM_DATA_DIR=" + tmp}, "policy", "test", "--config", cfg, "-f", bad)
	if r.code != 1 || !strings.Contains(r.stdout, "FAIL  prod may have 30 replicas: expected allow, got deny: at most 20 replicas on target prod") ||
		!strings.Contains(r.stdout, "1 examples, 1 failed") {
		t.Fatalf("mismatching example: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}

	r = runCLI(t, nil, "policy", "test", "--policy", dir, "-f", filepath.Join(tmp, "missing.yaml"))
	if r.code != 1 || !strings.Contains(r.stderr, "missing.yaml") {
		t.Fatalf("missing examples file: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}

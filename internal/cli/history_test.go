package cli_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/api"
)

// TestHistoryRollbackCLI: `history` as a table and as JSON (no config
// value in either), `rollback --to` restoring revision 1, and the refusals
// with their exit code and field.
func TestHistoryRollbackCLI(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	const secretish = "cfg-value-cli-55aa"
	v1 := filepath.Join(dir, "v1.yaml")
	v2 := filepath.Join(dir, "v2.yaml")
	os.WriteFile(v1, []byte("name: web\nimage: example/web:1\nreplicas: 1\nconfig:\n  K: "+secretish+"\n"), 0o644)
	os.WriteFile(v2, []byte("name: web\nimage: example/web:2\nreplicas: 1\nconfig:\n  K: "+secretish+"\n"), 0o644)
	s.mustRun(t, "operator", "deploy", "-f", v1)
	s.mustRun(t, "operator", "scale", "web", "2")
	s.mustRun(t, "operator", "deploy", "-f", v2)

	table := s.mustRun(t, "viewer", "history", "web")
	times := regexp.MustCompile(`\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ`)
	golden(t, "history", times.ReplaceAllString(table, "<time>"))
	js := s.mustRun(t, "viewer", "history", "web", "-o", "json")
	for _, out := range []string{table, js} {
		if strings.Contains(out, secretish) {
			t.Fatalf("history shows a config value:\n%s", out)
		}
	}
	var h api.HistoryResponse
	if err := json.Unmarshal([]byte(js), &h); err != nil || len(h.Revisions) != 3 || h.Revisions[0].Spec.Config["K"] != "(set)" {
		t.Fatalf("history -o json: %v\n%s", err, js)
	}

	for _, c := range []struct {
		role string
		args []string
		want string
	}{
		{"viewer", []string{"rollback", "web", "--to", "1"}, "error: permission_denied"},
		{"operator", []string{"rollback", "web", "--to", "9"}, "error: invalid_argument: to: no revision 9 (the newest is 3)"},
		{"operator", []string{"rollback", "web", "--to", "3"}, "error: invalid_argument: to: revision 3 is the current revision"},
		{"operator", []string{"rollback", "ghost"}, "error: not_found"},
	} {
		r := s.run(t, c.role, c.args...)
		if r.code != 1 || !strings.Contains(r.stderr, c.want) {
			t.Errorf("%s %v: exit %d, stderr %q; want 1 and %q", c.role, c.args, r.code, r.stderr, c.want)
		}
	}

	out := s.mustRun(t, "operator", "rollback", "web", "--to", "1")
	if !strings.Contains(out, "example/web:1") || !strings.Contains(out, "revision 4 recorded") || strings.Contains(out, secretish) {
		t.Fatalf("rollback output:\n%s", out)
	}
	if st, err := s.mem.Status(context.Background(), "web"); err != nil || st.Image != "example/web:1" || st.Replicas.Desired != 1 {
		t.Fatalf("after the rollback the backend runs %s ×%d (%v)", st.Image, st.Replicas.Desired, err)
	}
	// Default: the revision before the current one (3, image 2).
	out = s.mustRun(t, "operator", "rollback", "web", "-o", "yaml")
	if !strings.Contains(out, "revision: 5") || !strings.Contains(out, "example/web:2") {
		t.Fatalf("rollback -o yaml:\n%s", out)
	}
}

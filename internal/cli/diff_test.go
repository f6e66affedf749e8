package cli_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestDiffCLIErrors: every way `alphaswarm diff` can fail exits 2 with the
// error's code (and field path) on stderr and nothing on stdout: usage, a
// spec refused locally or by the server, an unknown target, a provider
// that cannot preview (the in-memory one: unsupported with its reason),
// no token. A viewer may diff (the refusal is the provider's, not the
// role's). Exit 0 and 1 need a previewing provider: TestDiffCLIDocker.
func TestDiffCLIErrors(t *testing.T) {
	s := startServer(t)
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		return p
	}
	good := write("web.yaml", "name: web\nimage: example/web:1\nreplicas: 2\n")
	bad := write("bad.yaml", "name: web\nimage: example/web:1\nreplicas: -2\nports:\n  - container: 0\n")
	unknown := write("unknown.json", `{"name":"web","image":"example/web:1","replica":2}`)
	for _, tc := range []struct {
		name string
		role string
		args []string
		want []string // on stderr
	}{
		{"no file", "viewer", []string{"diff"}, []string{"invalid_argument", "file"}},
		{"bad flag", "viewer", []string{"diff", "-f", good, "--bogus"}, []string{"unknown flag: --bogus"}},
		{"an argument", "viewer", []string{"diff", "-f", good, "web"}, []string{"invalid_argument", "takes no arguments"}},
		{"missing file", "viewer", []string{"diff", "-f", filepath.Join(dir, "none.yaml")}, []string{"no such file"}},
		{"bad spec", "viewer", []string{"diff", "-f", bad}, []string{"invalid_argument", "replicas", "ports[0].container"}},
		{"unknown key", "viewer", []string{"diff", "-f", unknown}, []string{"invalid_argument", "replica"}},
		{"bad output", "viewer", []string{"diff", "-f", good, "-o", "xml"}, []string{"invalid_argument", "output"}},
		{"unknown target", "viewer", []string{"diff", "-f", good, "--target", "mars"}, []string{"error: not_found", `target "mars" is not configured`}},
		{"cannot preview", "viewer", []string{"diff", "-f", good}, []string{"error: unsupported", "does not implement diff"}},
		{"json output, cannot preview", "operator", []string{"diff", "-f", good, "-o", "json"}, []string{"error: unsupported"}},
		{"no token", "", []string{"diff", "-f", good}, []string{"unauthenticated"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.run(t, tc.role, tc.args...)
			if r.code != 2 {
				t.Fatalf("exit %d, want 2\nstdout: %s\nstderr: %s", r.code, r.stdout, r.stderr)
			}
			for _, w := range tc.want {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if r.stdout != "" {
				t.Errorf("stdout on error: %q", r.stdout)
			}
		})
	}
}

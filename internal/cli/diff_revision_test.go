package cli_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestDiffRevisionCLI: `alphaswarm diff SERVICE --revision N` previews what
// `rollback SERVICE --to N` would change (a viewer's read), with the
// revision on the first line and the exit codes of a file's diff;
// --revision 0 is the revision before the current one, as rollback's
// default, and previews exactly what --revision 1 does here. Misuse (no
// service, a file as well, a negative revision) and a revision that does
// not exist exit 2 with the code on stderr. The target is a
// providertest.Differ (the in-memory provider, previewing); the docker
// end-to-end diff is TestDiffCLIDocker.
func TestDiffRevisionCLI(t *testing.T) {
	d := providertest.NewDiffer("local")
	st := testkit.NewStack(t, testkit.Options{Targets: []control.Target{{Name: "local", Provider: d}}, Memory: d.Memory, UserPrefix: "cli"})
	s := &server{url: st.URL, tokens: st.Tokens, mem: d.Memory, led: st.Ledger}
	dir := t.TempDir()
	for i, body := range []string{"name: web\nimage: example/web:1\nreplicas: 1\n", "name: web\nimage: example/web:2\nreplicas: 2\n"} {
		f := filepath.Join(dir, "web.yaml")
		if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
		if r := s.run(t, "operator", "deploy", "-f", f); r.code != 0 {
			t.Fatalf("deploy %d: exit %d\n%s%s", i+1, r.code, r.stdout, r.stderr)
		}
	}
	const toOne = "local/web (memory), revision 1: replace\n  replicas: 2 → 1\n  image: example/web:2 → example/web:1 (replaces)\n"
	for _, tc := range []struct {
		name   string
		args   []string
		code   int
		stdout string   // exactly, when code < 2
		stderr []string // contains, when code 2
	}{
		{"revision 1", []string{"web", "--revision", "1"}, 1, toOne, nil},
		{"revision 0 is the one before the current", []string{"web", "--revision", "0"}, 1, toOne, nil},
		{"the current revision", []string{"web", "--revision=2"}, 0, "local/web (memory), revision 2: none\n", nil},
		{"no such revision", []string{"web", "--revision", "9"}, 2, "", []string{"error: not_found", "no revision 9"}},
		{"no service", []string{"--revision", "1"}, 2, "", []string{"invalid_argument", "diff SERVICE --revision N"}},
		{"two services", []string{"web", "api", "--revision", "1"}, 2, "", []string{"invalid_argument", "args"}},
		{"a file as well", []string{"web", "--revision", "1", "-f", filepath.Join(dir, "web.yaml")}, 2, "", []string{"invalid_argument", "file", "cannot be used with --revision"}},
		{"negative", []string{"web", "--revision", "-1"}, 2, "", []string{"invalid_argument", "revision", "0 for the revision before the current one"}},
		{"not a number", []string{"web", "--revision", "last"}, 2, "", []string{"invalid argument \"last\""}},
		{"a service without --revision", []string{"web"}, 2, "", []string{"invalid_argument", "needs --revision N"}},
		{"unknown service", []string{"ghost", "--revision", "1"}, 2, "", []string{"error: not_found"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := s.run(t, "viewer", append([]string{"diff"}, tc.args...)...)
			if r.code != tc.code {
				t.Fatalf("exit %d, want %d\nstdout: %s\nstderr: %s", r.code, tc.code, r.stdout, r.stderr)
			}
			if tc.code < 2 && r.stdout != tc.stdout {
				t.Errorf("stdout:\n%s\nwant:\n%s", r.stdout, tc.stdout)
			}
			for _, w := range tc.stderr {
				if !strings.Contains(r.stderr, w) {
					t.Errorf("stderr lacks %q:\n%s", w, r.stderr)
				}
			}
			if tc.code == 2 && r.stdout != "" {
				t.Errorf("stdout on error: %q", r.stdout)
			}
		})
	}

	r := s.run(t, "viewer", "diff", "web", "--revision", "0", "-o", "json")
	var got workload.Diff
	if err := json.Unmarshal([]byte(r.stdout), &got); r.code != 1 || err != nil || got.Revision != 1 || got.Action != workload.DiffReplace {
		t.Errorf("-o json of --revision 0: exit %d, %+v (%v), want revision 1, replace\n%s", r.code, got, err, r.stderr)
	}
	help := s.run(t, "", "diff", "--help")
	for _, w := range []string{"diff (-f FILE | SERVICE --revision N)", "--revision int", "alphaswarm diff web --revision 3", "rollback SERVICE --to N"} {
		if !strings.Contains(help.stdout, w) {
			t.Errorf("diff --help lacks %q:\n%s", w, help.stdout)
		}
	}
}

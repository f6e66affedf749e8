package cli

import (
	"bytes"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
)

// TestFlagsAreValidated (review third-party-clients F13, F2): enum flags
// refuse unknown values before anything is asked or opened, and `ledger
// verify --ledger` on a missing file fails and creates nothing.
func TestFlagsAreValidated(t *testing.T) {
	dir := t.TempDir()
	// Everything a serve would touch stays in dir.
	t.Setenv("ALPHASWARM_DATA_DIR", filepath.Join(dir, "data"))
	t.Setenv("XDG_DATA_HOME", filepath.Join(dir, "xdg"))
	t.Setenv("HOME", dir)
	t.Setenv("PATH", dir) // no alphaswarmd: serve must not run one
	missing := filepath.Join(dir, "nonexistent", "x.db")
	notDB := filepath.Join(dir, "notes.txt")
	if err := os.WriteFile(notDB, []byte("not a database"), 0o600); err != nil {
		t.Fatal(err)
	}
	// An unreachable server: a flag that is not checked locally would fail
	// with "cannot reach the server" instead of naming the flag.
	srv := []string{"--server", "http://127.0.0.1:1", "--token", "asw_x"}
	for _, c := range []struct {
		name string
		args []string
		want string
	}{
		{"runs --outcome", append([]string{"runs", "--outcome", "bogus"}, srv...), "--outcome"},
		{"runs --kind", append([]string{"runs", "--kind", "bogus"}, srv...), "--kind"},
		{"runs --action", append([]string{"runs", "--action", "bogus"}, srv...), "--action"},
		// serve's own flags are the server binary's (internal/server
		// tests them); without that binary, serve says how to get it.
		{"serve without alphaswarmd", []string{"serve", "--log-format", "xml", "--listen", "127.0.0.1:0", "--ledger", "sqlite:" + filepath.Join(dir, "s.db")}, "go install github.com/alphaswarm/controller/cmd/..."},
		{"verify a missing ledger", []string{"ledger", "verify", "--ledger", "sqlite:" + missing}, "does not exist"},
		{"verify a file that is not a ledger", []string{"ledger", "verify", "--ledger", "sqlite:" + notDB}, "not a SQLite database"},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			root := newRoot(&out, &errb)
			root.SetArgs(c.args)
			// Bounded: on a build that does not check, serve would serve.
			ctx := testkit.Context(t, 10*time.Second)
			err := root.ExecuteContext(ctx)
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("%v: err %v, want one naming %q (stdout %q)", c.args, err, c.want, out.String())
			}
			if out.Len() != 0 {
				t.Fatalf("printed %q on a refused command", out.String())
			}
		})
	}
	if _, err := os.Stat(filepath.Dir(missing)); !os.IsNotExist(err) {
		t.Fatalf("verify created %s (stat: %v)", filepath.Dir(missing), err)
	}
	if _, err := os.Stat(filepath.Join(dir, "s.db")); !os.IsNotExist(err) {
		t.Fatalf("serve with a bad flag opened its ledger (stat: %v)", err)
	}
	if b, _ := os.ReadFile(notDB); string(b) != "not a database" {
		t.Fatalf("verify changed a file that is not a ledger: %q", b)
	}
}

package cli

import (
	"bytes"
	"encoding/json"
	"runtime/debug"
	"strings"
	"testing"
)

func TestBuildInfoFrom(t *testing.T) {
	stamped := &debug.BuildInfo{
		GoVersion: "go1.26.8",
		Main:      debug.Module{Path: "github.com/alphaswarm/controller", Version: "v1.2.3"},
		Settings: []debug.BuildSetting{
			{Key: "vcs.revision", Value: "1ba60941f2178685b117df17ccdb9ba0cf28c9e4"},
			{Key: "vcs.time", Value: "2026-12-04T22:45:20Z"},
			{Key: "vcs.modified", Value: "true"},
		},
	}
	devel := &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}
	for _, tc := range []struct {
		name         string
		bi           *debug.BuildInfo
		ldV, ldR     string
		want         buildInfo
		wantOneLiner string
	}{
		{"go install @v1.2.3 from a git checkout", stamped, "dev", "",
			buildInfo{Version: "v1.2.3", Revision: "1ba60941f2178685b117df17ccdb9ba0cf28c9e4", Time: "2026-12-04T22:45:20Z", Modified: true, GoVersion: "go1.26.8"},
			"v1.2.3 (rev 1ba60941f2178685b117df17ccdb9ba0cf28c9e4, 2026-12-04T22:45:20Z, modified)"},
		{"ldflags version wins, stamped revision wins over the fallback", stamped, "v9.9.9", "ffff",
			buildInfo{Version: "v9.9.9", Revision: "1ba60941f2178685b117df17ccdb9ba0cf28c9e4", Time: "2026-12-04T22:45:20Z", Modified: true, GoVersion: "go1.26.8"},
			"v9.9.9 (rev 1ba60941f2178685b117df17ccdb9ba0cf28c9e4, 2026-12-04T22:45:20Z, modified)"},
		{"worktree build: no stamp, fallback revision", devel, "dev", "abc123",
			buildInfo{Version: "dev", Revision: "abc123", GoVersion: "go1.26.8"}, "dev (rev abc123)"},
		{"no build info at all", nil, "dev", "",
			buildInfo{Version: "dev"}, "dev"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got := buildInfoFrom(tc.bi, tc.ldV, tc.ldR)
			if got != tc.want {
				t.Fatalf("buildInfoFrom = %+v, want %+v", got, tc.want)
			}
			if s := got.String(); s != tc.wantOneLiner {
				t.Fatalf("String() = %q, want %q", s, tc.wantOneLiner)
			}
		})
	}
}

// TestVersionCommand: the command prints the build info as a line and as
// JSON, and refuses an unknown -o.
func TestVersionCommand(t *testing.T) {
	var out, errb bytes.Buffer
	root := newRoot(&out, &errb)
	root.SetArgs([]string{"version", "-o", "json"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	var bi buildInfo
	if err := json.Unmarshal(out.Bytes(), &bi); err != nil {
		t.Fatalf("version -o json is not JSON: %v\n%s", err, out.String())
	}
	if bi.Version == "" || !strings.HasPrefix(bi.GoVersion, "go") {
		t.Fatalf("version -o json = %+v", bi)
	}
	out.Reset()
	root = newRoot(&out, &errb)
	root.SetArgs([]string{"version"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	if got, want := out.String(), "alphaswarm "+readBuildInfo().String()+"\n"; got != want {
		t.Fatalf("version = %q, want %q", got, want)
	}
	root = newRoot(&out, &errb)
	root.SetArgs([]string{"version", "-o", "xml"})
	if err := root.Execute(); err == nil || !strings.Contains(err.Error(), "output") {
		t.Fatalf("version -o xml: %v", err)
	}
}

package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"

	"github.com/alphaswarm/controller/workload"
)

var updateDiffGolden = flag.Bool("update-diff", false, "rewrite testdata/diff-*.golden")

// TestPrintDiff: the human form of a diff, against golden files: the
// service, provider, revision (a revision's diff), action and reason on
// the first line, one line per
// change with "-" for an absent side and "(replaces)" after a change that
// replaces instances, a value's newlines kept on its line, a refusal of
// the operation after the changes (nothing for an allowed one), and the native
// rendering only with --native (or a sentence saying there is none).
func TestPrintDiff(t *testing.T) {
	replace := workload.Diff{Target: "prod", Service: "web", Provider: "kubernetes", Action: workload.DiffReplace,
		Reason: "the pod template changes: a new ReplicaSet rolls",
		Changes: []workload.Change{
			{Path: "Deployment/web:spec.template.spec.containers[0].image", From: "web:1", To: "web:2", Replaces: true},
			{Path: "Deployment/web:spec.replicas", From: "2", To: "3"},
			{Path: "ConfigMap/web-config:data.greeting", From: "(set)", To: "(changed)", Replaces: true},
			{Path: "Deployment/web:spec.template.spec.containers[0].env[LOG]", To: "debug", Replaces: true},
			{Path: "Deployment/web:spec.template.spec.containers[0].args", From: "a\nb", Replaces: true},
		},
		Native: "--- live\n+++ dry run\n-  image: web:1\n+  image: web:2",
	}
	for _, tc := range []struct {
		name   string
		d      workload.Diff
		native bool
	}{
		{"replace", replace, false},
		{"replace-native", replace, true},
		{"none", workload.Diff{Target: "local", Service: "web", Provider: "docker", Action: workload.DiffNone, Changes: []workload.Change{}}, false},
		{"none-native", workload.Diff{Target: "local", Service: "web", Provider: "docker", Action: workload.DiffNone}, true},
		{"refused", workload.Diff{Target: "local", Service: "web", Provider: "docker", Action: workload.DiffCreate,
			Changes: []workload.Change{{Path: "Config.Image", To: "web:1"}},
			Admission: &workload.Admission{Action: workload.ActionStart, Verdict: workload.AdmissionRefused, Code: workload.PermissionDenied,
				Message: "request outside target local's policy: ports[0].host: 80 is not an admitted host port (rule hostPorts)",
				Fields:  []workload.FieldError{{Path: "ports[0].host", Message: "80 is not an admitted host port (rule hostPorts)"}}}}, false},
		{"allowed", workload.Diff{Target: "local", Service: "web", Provider: "docker", Action: workload.DiffNone, Changes: []workload.Change{},
			Admission: &workload.Admission{Action: workload.ActionStart, Verdict: workload.AdmissionAllowed}}, false},
		{"revision", workload.Diff{Target: "local", Service: "web", Provider: "docker", Action: workload.DiffUpdate, Revision: 3,
			Changes: []workload.Change{{Path: "replicas", From: "2", To: "1"}}}, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			printDiff(&b, tc.d, tc.native)
			path := filepath.Join("testdata", "diff-"+tc.name+".golden")
			if *updateDiffGolden {
				if err := os.WriteFile(path, b.Bytes(), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run with -update-diff to create it)", err)
			}
			if b.String() != string(want) {
				t.Errorf("got:\n%s\nwant (%s):\n%s", b.String(), path, want)
			}
		})
	}
}

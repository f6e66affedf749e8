package client_test

import (
	"os"
	"os/exec"
	"strings"
	"testing"
)

// TestClientSpeaksOnlyTheWireContract: a program using the client links
// the wire packages (api, workload, provider's value types), never the
// runtime or the ledger.
func TestClientSpeaksOnlyTheWireContract(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("CI is set but the go tool is not on PATH: %v", err)
		}
		t.Skipf("SKIPPED LOUDLY: the go tool is not on PATH (%v); cannot list the client's dependencies", err)
	}
	out, err := exec.Command(goBin, "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	const mod = "github.com/alphaswarm/controller/"
	for _, dep := range strings.Fields(string(out)) {
		for _, banned := range []string{"control", "ledger", "internal", "telemetry"} {
			if dep == mod+banned || strings.HasPrefix(dep, mod+banned+"/") {
				t.Errorf("package client depends on %s; it must speak only the wire contract (api, workload)", dep)
			}
		}
	}
}

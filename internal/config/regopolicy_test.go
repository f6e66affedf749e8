package config

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// TestPolicyConfig: policy.paths is read, and a policy block without paths
// or with a bad interval is invalid_argument naming the field.
func TestPolicyConfig(t *testing.T) {
	for _, tc := range []struct{ doc, err string }{
		{"policy:\n  paths: [/etc/alphaswarm/policies]\n  reloadInterval: 5s\n", ""},
		{"policy: {}\n", "policy.paths: is required"},
		{"policy:\n  paths: ['']\n", "policy.paths[0]: must not be empty"},
		{"policy:\n  paths: [x]\n  reloadInterval: -1s\n", "policy.reloadInterval: must be > 0"},
		{"policy:\n  path: [x]\n", "policy.path"},
	} {
		p := filepath.Join(t.TempDir(), "c.yaml")
		if err := os.WriteFile(p, []byte("noLocalTarget: true\n"+tc.doc), 0o600); err != nil {
			t.Fatal(err)
		}
		c, err := Load(p, t.TempDir())
		if tc.err == "" {
			if err != nil || c.Policy == nil || c.Policy.Paths[0] != "/etc/alphaswarm/policies" || c.Policy.ReloadInterval.D() != 5*time.Second {
				t.Errorf("%q: %+v %v", tc.doc, c.Policy, err)
			}
			continue
		}
		if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%q: err %v, want invalid_argument %q", tc.doc, err, tc.err)
		}
	}
}

package server

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/config"
	_ "github.com/alphaswarm/controller/provider/docker"
)

// TestInstanceID: the controller's instance id is created once, private,
// and read back unchanged; a file that does not hold an id is refused.
func TestInstanceID(t *testing.T) {
	dir := t.TempDir()
	id, err := instanceID(dir)
	if err != nil || !instanceIDRE.MatchString(id) {
		t.Fatalf("instanceID: %q %v", id, err)
	}
	st, err := os.Stat(filepath.Join(dir, "instance"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("instance file: %v %v", st.Mode(), err)
	}
	if again, err := instanceID(dir); err != nil || again != id {
		t.Fatalf("second start: %q %v, want %q", again, err, id)
	}
	os.WriteFile(filepath.Join(dir, "instance"), []byte("../../etc\n"), 0o600)
	if _, err := instanceID(dir); err == nil {
		t.Fatal("a bad instance file was accepted")
	}
}

// TestOpenTargetsPassesPolicy: serve hands each target its policy from the
// config, and the automatic local target the defaults.
func TestOpenTargetsPassesPolicy(t *testing.T) {
	cfg, err := config.Parse([]byte("noLocalTarget: true\ntargets:\n  edge:\n    provider: docker\n    policy:\n      maxReplicas: 3\n      compose: {dir: /srv/compose}\n"), t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	targets, closers, err := openTargets(context.Background(), cfg, credentials.FromMap(nil), io.Discard, "abc123")
	for _, c := range closers {
		defer c.Close()
	}
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) != 1 || targets[0].Name != "edge" || targets[0].Policy.MaxReplicas != 3 || targets[0].Policy.Compose.Dir != "/srv/compose" {
		t.Fatalf("targets %+v", targets)
	}
}

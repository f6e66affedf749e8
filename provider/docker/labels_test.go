package docker

import (
	"testing"

	"github.com/alphaswarm/controller/workload"
)

func TestSpecHash(t *testing.T) {
	a := workload.DeploymentSpec{Name: "web", Image: "img", Replicas: 1, Config: map[string]string{"a": "1"}}
	b := a
	b.Replicas = 5
	if specHash(a, "") != specHash(b, "") {
		t.Error("the replica count changed the hash: scaling would roll every replica")
	}
	b.Config = map[string]string{"a": "2"}
	if specHash(a, "") == specHash(b, "") {
		t.Error("a config change left the hash alone: ApplyConfig would not roll")
	}
	if specHash(a, "x") == specHash(a, "y") {
		t.Error("the Compose file hash is ignored")
	}
}

package azure

import (
	"context"
	"fmt"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/workload"
)

// TestRollbackACI is issue 20's rollback test for the azure provider
// (ACI, against fakeazure through the SDK's own pipeline): deploy v1,
// deploy v2, roll back through control.Runtime; the container group the
// fake stores runs v1's image and v1's env value again
// (testkit.RollbackScenario; the docker, kubernetes and ECS runs are in
// internal/e2e/rollback_test.go).
func TestRollbackACI(t *testing.T) {
	f := newFake(t)
	p := openOn(t, f, nil, nil)
	v1 := workload.DeploymentSpec{Name: "web", Image: "mcr.microsoft.com/azuredocs/aci-helloworld:1", Replicas: 1,
		Resources: workload.Resources{CPU: "500m", Memory: "512Mi"},
		Env:       map[string]string{"GREETING": "rollback-env-v1-aci7"}, Config: map[string]string{"mode": "rollback-config-v1-aci2"}}
	v2 := v1
	v2.Image = "mcr.microsoft.com/azuredocs/aci-helloworld:2"
	v2.Env = map[string]string{"GREETING": "rollback-env-v2-aci9"}
	v2.Config = map[string]string{"mode": "rollback-config-v2-aci4"}
	testkit.RollbackScenario{
		Target: control.Target{Name: testTarget, Provider: p}, V1: v1, V2: v2,
		Observe: func(context.Context) (string, error) {
			o := f.Observe(testTarget, "web")
			if len(o.Groups) != 1 {
				return "", fmt.Errorf("groups of web: %v", o.Groups)
			}
			g, state, _ := f.Group(o.Groups[0])
			if state != "Running" {
				return "", fmt.Errorf("group %s is %s", o.Groups[0], state)
			}
			return str(g.Properties.Containers[0].Properties.Image), nil
		},
	}.Run(t)
	if env := f.Env(testTarget, "web"); env["GREETING"] != "rollback-env-v1-aci7" {
		t.Errorf("after the rollback the group's GREETING is %q, want v1's", env["GREETING"])
	}
}

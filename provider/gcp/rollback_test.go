package gcp_test

import (
	"context"
	"fmt"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
)

// TestRollbackCloudRun is issue 20's rollback test for the gcp provider
// (Cloud Run, against fakegcp through the real Cloud clients): deploy v1,
// deploy v2, roll back through control.Runtime; the service the fake
// stores has v1's image in its template again (testkit.RollbackScenario;
// the docker, kubernetes and ECS runs are in internal/e2e/rollback_test.go).
func TestRollbackCloudRun(t *testing.T) {
	p, f := openFake(t, nil)
	v1 := spec("web", 1)
	v1.Target = ""
	v1.Env = map[string]string{"GREETING": "rollback-env-v1-run3"}
	v1.Config = map[string]string{"mode": "rollback-config-v1-run8"}
	v2 := v1
	v2.Image = "europe-docker.pkg.dev/demo-project/app/web:2"
	v2.Env = map[string]string{"GREETING": "rollback-env-v2-run1"}
	v2.Config = map[string]string{"mode": "rollback-config-v2-run5"}
	testkit.RollbackScenario{
		Target: control.Target{Name: "prod", Provider: p}, V1: v1, V2: v2,
		Observe: func(context.Context) (string, error) {
			s := f.Service("web")
			if s == nil || s.Template == nil || len(s.Template.Containers) == 0 {
				return "", fmt.Errorf("fakegcp has no service web with a container")
			}
			return s.Template.Containers[0].Image, nil
		},
	}.Run(t)
}

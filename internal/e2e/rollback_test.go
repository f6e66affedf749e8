package e2e

import (
	"context"
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/aws/fakeaws"
	"github.com/alphaswarm/controller/provider/docker"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/workload"

	_ "github.com/alphaswarm/controller/provider/aws"
)

// Issue 20's rollback test, per provider: deploy v1, deploy v2, roll
// back, and the backend itself shows v1 (testkit.RollbackScenario). The
// azure (ACI) and gcp (Cloud Run) runs are in their packages
// (provider/azure/rollback_test.go, provider/gcp/rollback_test.go): their
// fakes are wired in through package-internal test seams.

// rollbackSpecs are v1 and v2 of one service, with env and config values
// that must stay out of history and the ledger, and come back with v1.
func rollbackSpecs(name, img1, img2 string) (workload.DeploymentSpec, workload.DeploymentSpec) {
	v1 := workload.DeploymentSpec{Name: name, Image: img1, Replicas: 1,
		Env:    map[string]string{"GREETING": "rollback-env-v1-8f3a"},
		Config: map[string]string{"mode": "rollback-config-v1-c41d"}}
	v2 := v1
	v2.Image = img2
	v2.Env = map[string]string{"GREETING": "rollback-env-v2-6b0e"}
	v2.Config = map[string]string{"mode": "rollback-config-v2-0d9a"}
	return v1, v2
}

// TestRollbackDocker runs the scenario on the real Engine: v2 is the test
// image under a second tag; the containers the Engine runs after the
// rollback have v1's image and v1's env value (restored from the sealed
// revision).
func TestRollbackDocker(t *testing.T) {
	requireDocker(t)
	img2 := image + "-v2"
	if out, err := exec.Command("docker", "tag", image, img2).CombinedOutput(); err != nil {
		t.Fatalf("docker tag: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", img2).Run() })
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: target, Provider: "docker",
		Options: map[string]json.RawMessage{"stopTimeout": json.RawMessage(`"2s"`)}}, credentials.FromEnv())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(*docker.Provider).Close() })
	name := "rb" + strings.ToLower(target[len(target)-6:])
	v1, v2 := rollbackSpecs(name, image, img2)
	inspect := func(format string) ([]string, error) {
		ids := dockerPS(t, name)
		if len(ids) == 0 {
			return nil, fmt.Errorf("no running container for %s", name)
		}
		out, err := exec.Command("docker", append([]string{"inspect", "--format", format}, ids...)...).Output()
		return strings.Fields(string(out)), err
	}
	testkit.RollbackScenario{
		Target: control.Target{Name: target, Provider: p}, V1: v1, V2: v2,
		Observe: func(ctx context.Context) (string, error) {
			imgs, err := inspect("{{.Config.Image}}")
			if err != nil {
				return "", err
			}
			for _, i := range imgs[1:] {
				if i != imgs[0] {
					return "", fmt.Errorf("containers run different images: %v", imgs)
				}
			}
			return imgs[0], nil
		},
	}.Run(t)
	env, err := inspect("{{range .Config.Env}}{{println .}}{{end}}")
	if err != nil {
		t.Fatal(err)
	}
	if !contains(env, "GREETING=rollback-env-v1-8f3a") {
		t.Errorf("after the rollback the container's env is %v, want v1's GREETING", env)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// TestRollbackKubernetes runs the scenario on the k8stest tier (a real
// kube-apiserver, kwok nodes): the Deployment's pod template has v1's
// image again after the rollback.
func TestRollbackKubernetes(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	nsJSON, _ := json.Marshal(ns)
	p, err := provider.Open(context.Background(),
		provider.TargetConfig{Name: "kt", Provider: kubernetes.Name, Options: map[string]json.RawMessage{"namespace": nsJSON}},
		credentials.FromMap(map[string]string{"KUBECONFIG": c.Kubeconfig}))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.(*kubernetes.Provider).Close() })
	v1, v2 := rollbackSpecs("web", "registry.example.com/web:1", "registry.example.com/web:2")
	testkit.RollbackScenario{
		Target: control.Target{Name: "kt", Provider: p}, V1: v1, V2: v2,
		Observe: func(ctx context.Context) (string, error) {
			ds, err := c.Client().AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{LabelSelector: kubernetes.LabelService + "=web"})
			if err != nil {
				return "", err
			}
			if len(ds.Items) != 1 {
				return "", fmt.Errorf("%d deployments for web", len(ds.Items))
			}
			return ds.Items[0].Spec.Template.Spec.Containers[0].Image, nil
		},
	}.Run(t)
}

// TestRollbackECS runs the scenario on the aws provider (ECS) against
// fakeaws, through the SDK's own clients: the service's task definition
// names v1's image again after the rollback.
func TestRollbackECS(t *testing.T) {
	f := fakeaws.New(fakeaws.Options{})
	t.Cleanup(f.Close)
	t.Cleanup(func() {
		if v := f.Violations(); len(v) > 0 {
			t.Errorf("requests refused by the SDK's validation: %q", v)
		}
	})
	opts := map[string]any{
		"mode": "ecs", "cluster": "default", "subnets": []string{"subnet-0abc"}, "securityGroups": []string{"sg-0abc"},
		"executionRoleArn": "arn:aws:iam::123456789012:role/ecsTaskExecutionRole",
		"baseEndpoint":     f.URL(), "pollInterval": "20ms", "maxAttempts": 2,
	}
	raw := map[string]json.RawMessage{}
	for k, v := range opts {
		raw[k], _ = json.Marshal(v)
	}
	creds := credentials.FromMap(map[string]string{
		"AWS_ACCESS_KEY_ID": "AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY": "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "AWS_REGION": "us-east-1"})
	p, err := provider.Open(context.Background(), provider.TargetConfig{Name: "ecs", Provider: "aws", Options: raw}, creds)
	if err != nil {
		t.Fatal(err)
	}
	if c, ok := p.(interface{ Close() error }); ok {
		t.Cleanup(func() { c.Close() })
	}
	v1, v2 := rollbackSpecs("web", "public.ecr.aws/docker/library/nginx:1.26", "public.ecr.aws/docker/library/nginx:1.27")
	v1.Resources, v2.Resources = workload.Resources{CPU: "250m", Memory: "512Mi"}, workload.Resources{CPU: "250m", Memory: "512Mi"}
	testkit.RollbackScenario{
		Target: control.Target{Name: "ecs", Provider: p}, V1: v1, V2: v2,
		Observe: func(context.Context) (string, error) {
			st := f.Service("default", "web")
			if !st.Exists {
				return "", fmt.Errorf("fakeaws has no service web")
			}
			td := f.TaskDefinition(st.TaskDef)
			defs, _ := td["containerDefinitions"].([]any)
			if len(defs) == 0 {
				return "", fmt.Errorf("task definition %s has no container", st.TaskDef)
			}
			img, _ := defs[0].(map[string]any)["image"].(string)
			return img, nil
		},
	}.Run(t)
}

// TestRollbackRefusedDocker: on the real Engine, through the HTTP API, a
// rollback to a revision whose image is no longer on the Engine is
// refused with the docker provider's reference check (not_found, field
// image, the image named), leaving one rejected row and the service on
// v2; a viewer's rollback is refused before that (permission_denied);
// the history never shows an env or config value.
func TestRollbackRefusedDocker(t *testing.T) {
	s := newStack(t)
	name := "rr" + strings.ToLower(target[len(target)-6:])
	gone := image + "-gone"
	if out, err := exec.Command("docker", "tag", image, gone).CombinedOutput(); err != nil {
		t.Fatalf("docker tag: %v %s", err, out)
	}
	t.Cleanup(func() { exec.Command("docker", "rmi", gone).Run() })
	s.cleanup(t, name)
	v1, v2 := rollbackSpecs(name, gone, image)
	for _, sp := range []workload.DeploymentSpec{v1, v2} {
		b, _ := json.Marshal(sp)
		if code, env := s.call(t, "operator", "POST", "/v1/targets/"+target+"/services", string(b)); code != 200 {
			t.Fatalf("deploy %s: %d %+v", sp.Image, code, env.Error)
		}
	}
	svc := "/v1/targets/" + target + "/services/" + name
	code, env := s.call(t, "viewer", "GET", svc+"/history", "")
	if code != 200 {
		t.Fatalf("history: %d %+v", code, env.Error)
	}
	for _, v := range []string{"rollback-env-v1-8f3a", "rollback-config-v1-c41d", "rollback-env-v2-6b0e", "rollback-config-v2-0d9a"} {
		if strings.Contains(string(env.Data), v) {
			t.Errorf("the history holds the value %q: %s", v, env.Data)
		}
	}
	if code, env := s.call(t, "viewer", "POST", svc+"/rollback", `{"to":1}`); code != 403 || env.Error.Code != workload.PermissionDenied {
		t.Errorf("a viewer's rollback: %d %+v, want 403 permission_denied", code, env.Error)
	}
	if out, err := exec.Command("docker", "rmi", gone).CombinedOutput(); err != nil {
		t.Fatalf("docker rmi %s: %v %s", gone, err, out)
	}
	code, env = s.call(t, "operator", "POST", svc+"/rollback", `{"to":1}`)
	if code != 404 || env.Error.Code != workload.NotFound || len(env.Error.Fields) == 0 || env.Error.Fields[0].Path != "image" ||
		!strings.Contains(env.Error.Message, "revision 1 of") || !strings.Contains(env.Error.Message, gone) {
		t.Fatalf("rollback to a revision whose image is gone: %d %+v, want 404 not_found on image naming %s", code, env.Error, gone)
	}
	page, err := s.led.Query(context.Background(), ledger.Filter{Service: name, Action: "rollback", Limit: 10})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) != 2 || page.Records[0].Outcome != ledger.OutcomeDenied || page.Records[1].Kind != ledger.KindRejected ||
		page.Records[1].ErrorCode != string(workload.NotFound) {
		t.Errorf("rollback rows: %+v, want the viewer's denied row and one rejected not_found row", page.Records)
	}
	st, err := s.rt.Status(context.Background(), target, name)
	if err != nil || st.Image != image {
		t.Errorf("after the refusal the service runs %q (%v), want v2's %q", st.Image, err, image)
	}
}

package policy_test

import (
	"strings"
	"testing"

	"github.com/alphaswarm/controller/policy"
	"github.com/alphaswarm/controller/workload"
)

func TestDecodeExamplesRefusesUnknownFields(t *testing.T) {
	for _, tc := range []struct{ doc, path string }{
		{`examples: [{name: x, allow: true, input: {action: scale, request: {replica: 3}, time: "2026-12-05T10:00:00Z"}}]`, "examples[0].input.request.replica"},
		{`examples: [{name: x, allow: true, input: {action: scale}}]`, "examples[0].input.time"},
		{`examples: [{allow: true, input: {action: scale, time: "2026-12-05T10:00:00Z"}}]`, "examples[0].name"},
	} {
		_, err := policy.DecodeExamples([]byte(tc.doc))
		if workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), tc.path) {
			t.Errorf("%s: err %v, want invalid_argument naming %s", tc.doc, err, tc.path)
		}
	}
}

// TestStartRequestHasNoValues: a start's input names env and config keys,
// never their values.
func TestStartRequestHasNoValues(t *testing.T) {
	spec := &workload.DeploymentSpec{Name: "web", Image: "x", Replicas: 2,
		Env: map[string]string{"MODE": "value-env"}, Config: map[string]string{"app.yaml": "value-config"}}
	r := policy.StartRequest(spec)
	if r.Spec.Env != nil || r.Spec.Config != nil || r.Replicas != 2 ||
		strings.Join(r.EnvKeys, ",") != "MODE" || strings.Join(r.ConfigKeys, ",") != "app.yaml" {
		t.Fatalf("%+v", r)
	}
	if spec.Env == nil || spec.Config == nil {
		t.Fatal("StartRequest changed the caller's spec")
	}
}

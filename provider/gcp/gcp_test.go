package gcp_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func TestOpenOptions(t *testing.T) {
	open := func(opts map[string]string, env map[string]string) error {
		cfg := provider.TargetConfig{Name: "t", Provider: "gcp", Options: map[string]json.RawMessage{}}
		for k, v := range opts {
			cfg.Options[k] = json.RawMessage(`"` + v + `"`)
		}
		_, err := provider.Open(context.Background(), cfg, credentials.FromMap(env))
		return err
	}
	// gke mode names its region or zone "location" (gke_test.go covers
	// the mode's options).
	if err := open(map[string]string{"mode": "gke", "region": "r", "project": "p", "cluster": "c"}, nil); workload.CodeOf(err) != workload.InvalidArgument || !strings.Contains(err.Error(), "options.location") {
		t.Errorf("gke mode with region instead of location: %v", err)
	}
	if err := open(map[string]string{"region": "r"}, nil); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("no project: %v", err)
	}
	if err := open(map[string]string{"region": "r"}, map[string]string{"GOOGLE_CLOUD_PROJECT": "p"}); workload.CodeOf(err) != workload.Unauthenticated {
		t.Errorf("no credentials: %v", err)
	}
	if err := open(map[string]string{"bogus": "x"}, nil); workload.CodeOf(err) != workload.InvalidArgument {
		t.Errorf("unknown option: %v", err)
	}
}

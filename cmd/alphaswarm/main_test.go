package main

import (
	"os/exec"
	"strings"
	"testing"
)

// TestClientLinksNoServer guards the split between the client and the
// server binary: a client command must not pay for the providers' SDKs,
// the API server or the dashboard (their package initialisation was most
// of a command's start-up time). `alphaswarm serve` runs alphaswarmd.
func TestClientLinksNoServer(t *testing.T) {
	out, err := exec.Command("go", "list", "-deps", ".").CombinedOutput()
	if err != nil {
		t.Fatalf("go list -deps: %v\n%s", err, out)
	}
	forbidden := []string{
		"github.com/alphaswarm/controller/provider/", // every backend (provider itself, the interfaces, is fine)
		"github.com/alphaswarm/controller/internal/server",
		"github.com/alphaswarm/controller/internal/httpapi",
		"github.com/alphaswarm/controller/internal/dashboard",
		"github.com/alphaswarm/controller/internal/config",
		"github.com/aws/", "github.com/Azure/", "cloud.google.com/", "google.golang.org/grpc",
		"k8s.io/", "github.com/moby/", "github.com/compose-spec/",
	}
	for _, pkg := range strings.Fields(string(out)) {
		for _, f := range forbidden {
			if strings.HasPrefix(pkg, f) {
				t.Errorf("the alphaswarm client links %s", pkg)
			}
		}
	}
}

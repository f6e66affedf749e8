package main

import (
	"slices"
	"testing"

	"github.com/alphaswarm/controller/provider"
)

// TestBinaryRegistersEveryBackend guards the blank imports above: a
// backend that is built but not imported is unusable from the binary.
func TestBinaryRegistersEveryBackend(t *testing.T) {
	got := provider.Providers()
	for _, want := range []string{"aws", "azure", "docker", "gcp", "kubernetes"} {
		if !slices.Contains(got, want) {
			t.Errorf("provider %q is not registered in the binary (registered: %v)", want, got)
		}
	}
	if slices.Contains(got, "memory") {
		t.Error("the test-only memory provider is registered in the binary")
	}
}

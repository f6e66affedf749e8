package docker

import (
	"testing"

	"github.com/alphaswarm/controller/provider/providertest"
)

// TestConformance runs the whole providertest suite against the Docker
// Engine of this machine.
func TestConformance(t *testing.T) {
	requireDocker(t)
	t.Parallel()
	p := openProvider(t, nil)
	providertest.Run(t, harness(p))
}

package providertest_test

import (
	"testing"

	"github.com/alphaswarm/controller/provider/providertest"
)

func TestMemoryConformance(t *testing.T) {
	providertest.Run(t, providertest.NewMemory("test").Harness())
}

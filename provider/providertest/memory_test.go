package providertest_test

import (
	"context"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

func TestMemoryConformance(t *testing.T) {
	providertest.Run(t, providertest.NewMemory("test").Harness())
}

// With instances that take time to become ready, the suite (NoWaitConverges
// among it) still passes: waited calls wait, no-wait calls do not.
func TestMemoryConformanceSlowReadiness(t *testing.T) {
	m := providertest.NewMemory("test")
	m.ReadyAfter = 200 * time.Millisecond
	providertest.Run(t, m.Harness())
}

func TestMemoryHonoursWithoutWait(t *testing.T) {
	m := providertest.NewMemory("test")
	m.ReadyAfter = time.Hour
	ctx := testkit.Context(t, 10*time.Second)
	st, err := m.Start(provider.WithoutWait(ctx), providertest.Spec("web", 2))
	if err != nil || st.Phase != workload.Progressing || ctx.Err() != nil {
		t.Fatalf("no-wait start: %s %v", st.Phase, err)
	}
	short, cancel2 := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel2()
	st, err = m.Scale(short, "web", 3)
	if err != nil || st.Phase != workload.Progressing || short.Err() == nil {
		t.Fatalf("waited scale returned before its deadline: %s %v", st.Phase, err)
	}
}

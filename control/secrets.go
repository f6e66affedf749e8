package control

import (
	"context"
	"maps"
	"slices"
	"time"
)

// SecretSource is implemented by a provider that resolves secret values
// itself, from a store of its backend (Azure Key Vault references, for
// example), rather than only from ALPHASWARM_SECRET_* variables, which the
// credentials resolver registers on its own. ManagedSecrets returns every
// such value that the target's managed services reference now. The runtime
// calls it once when it is built and registers the values for redaction, so
// that after a controller restart a workload printing one is redacted
// before anything resolved it again.
type SecretSource interface {
	ManagedSecrets(ctx context.Context) ([]string, error)
}

// secretSourceTimeout bounds each target's ManagedSecrets call at start.
const secretSourceTimeout = 30 * time.Second

// registerManagedSecrets asks every target that is a SecretSource for its
// values. A failure is logged, not fatal: the controller starts, and the
// values are registered again as the provider resolves them.
func (rt *Runtime) registerManagedSecrets(ctx context.Context) {
	for _, name := range slices.Sorted(maps.Keys(rt.targets)) {
		src, ok := rt.targets[name].Provider.(SecretSource)
		if !ok {
			continue
		}
		sctx, cancel := context.WithTimeout(ctx, secretSourceTimeout)
		values, err := src.ManagedSecrets(sctx)
		cancel()
		if err != nil {
			rt.log.Warn("redaction: could not read the target's managed secrets at start; they are redacted once resolved again",
				"target", name, "err", err)
		}
		for _, v := range values {
			rt.creds.Register(v)
		}
	}
}

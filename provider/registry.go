package provider

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"sync"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/workload"
)

// TargetConfig configures one target: a named instance of a provider.
// Options are provider-specific and never hold secrets (those come from the
// environment through the resolver).
type TargetConfig struct {
	Name     string                     `json:"name"`
	Provider string                     `json:"provider"`
	Options  map[string]json.RawMessage `json:"options,omitempty"`
	// Policy is the target's admission policy (targets.<name>.policy). The
	// runtime enforces it; a provider reads the parts only it can check,
	// such as the contents of a Compose file.
	Policy Policy `json:"policy,omitzero"`
	// Instance identifies the controller that opens the target, so that a
	// backend shared by several controllers keeps their services apart
	// (the docker provider labels and filters by it). Empty: no scoping.
	Instance string `json:"instance,omitempty"`
}

// DecodeOptions decodes the target's options into v (a pointer) with
// workload's strict decoder: unknown, case-mismatched and wrongly typed
// options are InvalidArgument errors naming targets.<name>.options.<key>.
func (c TargetConfig) DecodeOptions(v any) error {
	b, err := json.Marshal(c.Options)
	if err != nil {
		return err
	}
	if c.Options == nil {
		b = []byte("{}")
	}
	return workload.DecodeInto(b, v, "targets."+c.Name+".options")
}

// Factory builds a provider for a target. It must not block on the backend
// for long: a target that does not answer is built anyway and reports
// Unavailable from its operations.
type Factory func(ctx context.Context, cfg TargetConfig, creds *credentials.Resolver) (Provider, error)

var (
	mu        sync.RWMutex
	factories = map[string]Factory{}
)

// Register makes a provider available under name. It is called from the
// provider package's init; it panics if factory is nil or name is taken.
func Register(name string, factory Factory) {
	mu.Lock()
	defer mu.Unlock()
	if factory == nil {
		panic("provider: Register factory is nil for " + name)
	}
	if _, dup := factories[name]; dup {
		panic("provider: Register called twice for " + name)
	}
	factories[name] = factory
}

// Providers returns the registered names, sorted.
func Providers() []string {
	mu.RLock()
	defer mu.RUnlock()
	names := make([]string, 0, len(factories))
	for n := range factories {
		names = append(names, n)
	}
	slices.Sort(names)
	return names
}

// Open builds the provider a target names.
func Open(ctx context.Context, cfg TargetConfig, creds *credentials.Resolver) (Provider, error) {
	if err := workload.CheckName("targets.name", cfg.Name); err != nil {
		return nil, err
	}
	mu.RLock()
	f, ok := factories[cfg.Provider]
	mu.RUnlock()
	if !ok {
		registered := strings.Join(Providers(), ", ")
		if registered == "" {
			registered = "none"
		}
		return nil, workload.Invalid(workload.FieldError{
			Path: "targets." + cfg.Name + ".provider",
			Message: fmt.Sprintf("unknown provider %q (registered: %s; is its package imported?)",
				cfg.Provider, registered),
		})
	}
	if creds == nil {
		creds = credentials.FromEnv()
	}
	return f(ctx, cfg, creds)
}

package azure

import (
	"context"
	"errors"
	"maps"
	"slices"
	"strings"
)

// ManagedSecrets returns every Key Vault value the target's container
// groups use now: the keyvault: references recorded in their
// alphaswarm.secret.<ENV> tags and the secret config keys kept in Key
// Vault behind App Configuration references. The runtime registers them
// for redaction when it starts (control.SecretSource), so that a value a
// workload prints after a controller restart is redacted before anything
// resolved it again. env: references are not read here: the credentials
// resolver registers every ALPHASWARM_SECRET_* value itself. Values are
// also registered with the provider's own resolver as they are read.
// A reference that no longer resolves is reported in the error; the
// others are still returned.
func (p *Provider) ManagedSecrets(ctx context.Context) ([]string, error) {
	services, err := p.listTagged(ctx, "")
	if err != nil {
		return nil, err
	}
	var out []string
	var errs []error
	seen := map[string]bool{}
	for _, svc := range slices.Sorted(maps.Keys(services)) {
		for _, g := range services[svc] {
			for k, v := range g.cg.Tags {
				if !strings.HasPrefix(k, tagSecretPrefix) || v == nil || !strings.HasPrefix(*v, "keyvault:") || seen[*v] {
					continue
				}
				seen[*v] = true
				val, err := p.resolveSecret(ctx, *v)
				if err != nil {
					errs = append(errs, err)
					continue
				}
				out = append(out, val)
			}
		}
		entries, err := p.readConfig(ctx, svc)
		if err != nil {
			errs = append(errs, err)
			continue
		}
		for _, e := range entries {
			if e.secure {
				out = append(out, e.value)
			}
		}
	}
	return out, errors.Join(errs...)
}

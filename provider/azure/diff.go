package azure

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/data/azappconfig"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

var (
	_ provider.Differ     = (*Provider)(nil)
	_ provider.RefChecker = (*Provider)(nil)
)

// Diff implements provider.Differ: which container groups deploying spec
// would create, start, update in place (ACI restarts a group's containers
// on every update: "When you update a container group, all running
// containers in the group are restarted in-place", container-instances-update),
// recreate (delete and create: a property ACI cannot update in place
// differs, or the group terminated; see recreateReason) or delete, and the
// ARM fields that differ. The plan is Start's own (prepare, plan,
// recreateReason), computed from reads only: container groups, App
// Configuration settings and, for secret config keys, the Key Vault
// secret Start would compare the value with. Secret env vars appear as
// their references; config values never, only "(set)", "(changed)" or
// "(removed)".
func (p *Provider) Diff(ctx context.Context, spec workload.DeploymentSpec) (workload.Diff, error) {
	if err := spec.Validate(); err != nil {
		return workload.Diff{}, err
	}
	if err := p.permitted(provider.OpStatus); err != nil {
		return workload.Diff{}, err
	}
	// The values of these env vars are config, shown masked.
	fromConfig := map[string]bool{}
	if p.appconfig == nil {
		for k := range spec.Config {
			fromConfig[k] = true
		}
	}
	spec, bp, err := p.prepare(spec)
	if err != nil {
		return workload.Diff{}, err
	}
	groups, err := p.observe(ctx, spec.Name)
	if err != nil {
		return workload.Diff{}, err
	}
	if err := checkShape(groups); err != nil {
		return workload.Diff{}, err
	}
	cfgChanges, cfgTag, err := p.configPlan(ctx, spec.Name, spec.Config)
	if err != nil {
		return workload.Diff{}, err
	}
	// Without a store, config and env share the groups' environment: a
	// live value may be config, so none is shown (the spec's own env
	// values are).
	showEnv := func(name string, live bool) bool {
		if fromConfig[name] {
			return false
		}
		if live {
			return p.appconfig != nil
		}
		_, ok := spec.Env[name]
		return ok
	}
	d := workload.Diff{Service: spec.Name, Provider: Name, Action: workload.DiffNone, Changes: []workload.Change{}}
	rank := map[workload.DiffAction]int{workload.DiffNone: 0, workload.DiffUpdate: 1, workload.DiffReplace: 2, workload.DiffRecreate: 3, workload.DiffCreate: 4}
	raise := func(a workload.DiffAction) {
		if rank[a] > rank[d.Action] {
			d.Action = a
		}
	}
	seen := map[workload.Change]bool{}
	add := func(c workload.Change) {
		if !seen[c] {
			seen[c] = true
			d.Changes = append(d.Changes, c)
		}
	}
	var reasons []string
	byWhy := map[string][]string{}
	var whys []string
	note := func(why, name string) {
		if _, ok := byWhy[why]; !ok {
			whys = append(whys, why)
		}
		byWhy[why] = append(byWhy[why], name)
	}
	want := groupFields(bp)
	for _, s := range plan(spec.Name, groups, bp, cfgTag, spec.Replicas) {
		path := "containerGroups/" + s.name
		switch s.kind {
		case stepCreate:
			add(workload.Change{Path: path, To: "create"})
			note("created", s.name)
			raise(workload.DiffUpdate)
		case stepStart:
			add(workload.Change{Path: path, From: "Stopped", To: "start"})
			note("started (stopped now)", s.name)
			raise(workload.DiffUpdate)
		case stepDelete:
			add(workload.Change{Path: path, To: "delete"})
			note("deleted (above the replica count)", s.name)
			raise(workload.DiffUpdate)
		case stepUpdate, stepRecreate:
			what := "update in place"
			if s.kind == stepRecreate {
				what = "recreate (delete, then create)"
				note(s.why, s.name)
				raise(workload.DiffRecreate)
			} else {
				note("updated in place ("+s.why+"); ACI restarts all of a group's containers on an update (container-instances-update)", s.name)
				raise(workload.DiffReplace)
			}
			add(workload.Change{Path: path, To: what, Replaces: true})
			live, err := blueprintFromGroup(s.cur)
			if err != nil {
				return workload.Diff{}, provider.Wrap(Name, as(workload.ProviderError, err.Error()), err, "Diff "+spec.Name)
			}
			changes := fieldChanges(groupFields(live), want, showEnv)
			if len(changes) == 0 && tag(s.cur, tagSpec) != bp.specTag {
				// The same fields under another digest (a group made
				// by an older version of this provider): Start
				// replaces it all the same.
				changes = []workload.Change{{Path: "tags." + tagSpec, From: tag(s.cur, tagSpec), To: bp.specTag, Replaces: true}}
			}
			for _, c := range changes {
				add(c)
			}
		}
	}
	if spec.Replicas == 0 {
		for _, g := range groups {
			if g.index == 0 && !g.stopped() {
				add(workload.Change{Path: "containerGroups/" + g.name, From: "Running", To: "stop"})
				note("stopped (replicas 0)", g.name)
				raise(workload.DiffUpdate)
			}
		}
	}
	for _, c := range cfgChanges {
		add(c)
		raise(workload.DiffUpdate)
	}
	if len(groups) == 0 {
		d.Action = workload.DiffCreate
		// What every new group holds.
		for _, c := range fieldChanges(map[string]string{}, want, showEnv) {
			c.Replaces = false
			add(c)
		}
	}
	for _, w := range whys {
		reasons = append(reasons, strings.Join(byWhy[w], ", ")+": "+w)
	}
	d.Reason = strings.Join(reasons, "; ")
	return d, nil
}

// groupFields renders a blueprint's group by ARM paths: fixedFields plus
// the app container's image, command, probes, environment variables
// (secure ones as their references) and the user's tags. Config env vars
// are not in a blueprint (configPlan reports config).
func groupFields(bp *blueprint) map[string]string {
	out := fixedFields(&bp.cg)
	if out == nil {
		out = map[string]string{}
	}
	at := containerPath(containerName)
	jsonOf := func(v any) string {
		b, _ := json.Marshal(v)
		return string(b)
	}
	if c := appContainer(&bp.cg); c != nil {
		out[at+".image"] = str(c.Image)
		if len(c.Command) > 0 {
			out[at+".command"] = jsonOf(c.Command)
		}
		if c.LivenessProbe != nil {
			out[at+".livenessProbe"] = jsonOf(c.LivenessProbe)
		}
		if c.ReadinessProbe != nil {
			out[at+".readinessProbe"] = jsonOf(c.ReadinessProbe)
		}
		for _, e := range c.EnvironmentVariables {
			if e != nil && e.SecureValue == nil {
				out[envPath(str(e.Name))] = str(e.Value)
			}
		}
	}
	for env, ref := range bp.secrets {
		out[envPath(env)+".secureValue"] = ref
	}
	for k, v := range bp.cg.Tags {
		out["tags."+k] = str(v)
	}
	return out
}

func envPath(name string) string {
	return containerPath(containerName) + ".environmentVariables[" + name + "]"
}

// fieldChanges lists the fields of want that differ from live, sorted by
// path. Environment variable values show only where show says so
// (otherwise "(set)", "(changed)", "(removed)"); secure values are
// references and always show.
func fieldChanges(live, want map[string]string, show func(name string, live bool) bool) []workload.Change {
	envName := func(path string) (string, bool) {
		rest, ok := strings.CutPrefix(path, containerPath(containerName)+".environmentVariables[")
		if !ok || strings.HasSuffix(path, ".secureValue") {
			return "", false
		}
		n, _, _ := strings.Cut(rest, "]")
		return n, true
	}
	var out []workload.Change
	keys := slices.Sorted(maps.Keys(live))
	for k := range want {
		if _, ok := live[k]; !ok {
			keys = append(keys, k)
		}
	}
	slices.Sort(keys)
	for _, k := range keys {
		from, had := live[k]
		to, has := want[k]
		if had == has && from == to {
			continue
		}
		if n, ok := envName(k); ok {
			if had && !show(n, true) {
				from = "(set)"
			}
			if has && !show(n, false) {
				to = "(changed)"
				if !had {
					to = "(set)"
				}
			}
			if !has && !show(n, true) {
				to = "(removed)"
			}
		}
		out = append(out, workload.Change{Path: k, From: from, To: to, Replaces: true})
	}
	return out
}

// configPlan says what Start would write to the config store for config
// (nil: the store is left as it is) and the config digest the groups
// would carry after it, or a digest no group carries when a secret
// config key gets a new Key Vault version. Values are compared, never
// returned: a change is "(set)", "(changed)" or "(removed)".
func (p *Provider) configPlan(ctx context.Context, service string, config map[string]string) ([]workload.Change, string, error) {
	if p.appconfig == nil {
		return nil, configDigest(nil), nil
	}
	settings, err := p.storedKeys(ctx, service)
	if err != nil {
		return nil, "", err
	}
	prefix := configKeyPrefix + service + "/"
	cur := map[string]azappconfig.Setting{}
	var entries []configEntry
	for _, s := range settings {
		e, _, err := p.entryOf(service, s)
		if err != nil {
			return nil, "", err
		}
		cur[strings.TrimPrefix(str(s.Key), prefix)] = s
		entries = append(entries, e)
	}
	sortEntries := func(es []configEntry) {
		slices.SortFunc(es, func(a, b configEntry) int { return strings.Compare(a.env, b.env) })
	}
	if config == nil {
		sortEntries(entries)
		return nil, configDigest(entries), nil
	}
	var changes []workload.Change
	entries, newVersion := nil, false
	for _, k := range slices.Sorted(maps.Keys(config)) {
		path := "appConfiguration/" + settingKey(service, k)
		o, had := cur[k]
		e := configEntry{env: configEnvName(k), version: config[k]}
		same := had && str(o.ContentType) == "" && str(o.Value) == config[k]
		if strings.HasPrefix(k, SecretConfigPrefix) {
			name := p.secretName(service, k)
			path = "keyVault/" + name
			id, err := p.currentSecret(ctx, name, config[k])
			if err != nil {
				return nil, "", err
			}
			uri, isRef := keyVaultRef(o)
			same = id != "" && had && isRef && uri == id
			if id == "" {
				newVersion = true
			}
			e.version = id
		}
		switch {
		case !had:
			changes = append(changes, workload.Change{Path: path, To: "(set)"})
		case !same:
			changes = append(changes, workload.Change{Path: path, From: "(set)", To: "(changed)"})
		}
		entries = append(entries, e)
	}
	for _, k := range slices.Sorted(maps.Keys(cur)) {
		if _, keep := config[k]; !keep {
			changes = append(changes, workload.Change{Path: "appConfiguration/" + settingKey(service, k), From: "(set)", To: "(removed)"})
		}
	}
	if newVersion {
		return changes, "(a new Key Vault version)", nil
	}
	sortEntries(entries)
	return changes, configDigest(entries), nil
}

// CheckRefs implements provider.RefChecker for the spec's secret
// references: env:NAME must be set in the controller's environment;
// keyvault:NAME[/VERSION] must name a secret (and version) of the target's
// vault that is enabled, which is read from the secret's versions list
// (properties only: "Get Secret Versions ... No values are returned for
// the secrets", Key Vault REST reference; data action
// secrets/readMetadata). Without a version, the reference is the
// secret's newest version (created last), as GetSecret without a version
// reads it. The image is not checked: ACI checks it only when a group is
// created or updated (InaccessibleImage), it has no read that checks an
// image, and the registry may be any registry; Start reports it.
func (p *Provider) CheckRefs(ctx context.Context, spec workload.DeploymentSpec) error {
	for i, s := range spec.Secrets {
		field := fmt.Sprintf("secrets[%d].from", i)
		notFound := func(format string, args ...any) error {
			e := provider.NotFound(Name, format, args...)
			e.Fields = []workload.FieldError{{Path: field, Message: e.Message}}
			return e
		}
		switch {
		case strings.HasPrefix(s.From, "env:"):
			if _, err := p.creds.Secret(s.From); err != nil {
				return notFound("secret reference %s does not resolve: the controller's environment has no such variable, or it may not be referenced", s.From)
			}
		case strings.HasPrefix(s.From, "keyvault:"):
			if p.secrets == nil {
				return workload.Invalid(workload.FieldError{Path: field, Message: "keyvault: references need the target's keyVaultURL option"})
			}
			name, version, _ := strings.Cut(strings.TrimPrefix(s.From, "keyvault:"), "/")
			if !kvName.MatchString(name) {
				return workload.Invalid(workload.FieldError{Path: field, Message: "want keyvault:<secret-name>[/<version>]"})
			}
			why, err := p.secretVersionState(ctx, name, version)
			if err != nil {
				var e *workload.Error
				if errors.As(err, &e) && len(e.Fields) == 0 {
					e.Fields = []workload.FieldError{{Path: field, Message: e.Message}}
				}
				return err
			}
			if why != "" {
				return notFound("secret reference %s does not resolve: %s", s.From, why)
			}
		default:
			return workload.Invalid(workload.FieldError{Path: field, Message: "want env:NAME or keyvault:<secret-name>[/<version>]"})
		}
	}
	return nil
}

// secretVersionState says why a Key Vault secret version does not
// resolve ("" when it does), from its versions list.
func (p *Provider) secretVersionState(ctx context.Context, name, version string) (string, error) {
	pager := p.secrets.NewListSecretPropertiesVersionsPager(name, nil)
	var newest *armSecretProps
	found := false
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if isNotFound(err) {
			return "the vault has no secret " + name, nil
		}
		if err != nil {
			return "", mapErr("list the versions of Key Vault secret "+name, err)
		}
		for _, v := range page.Value {
			if v == nil || v.ID == nil {
				continue
			}
			sp := armSecretProps{version: v.ID.Version()}
			if a := v.Attributes; a != nil {
				sp.enabled = a.Enabled == nil || *a.Enabled
				if a.Created != nil {
					sp.created = a.Created.UnixNano()
				}
			}
			found = true
			if version != "" && sp.version == version {
				if !sp.enabled {
					return "version " + version + " is disabled", nil
				}
				return "", nil
			}
			if newest == nil || sp.created > newest.created {
				newest = &sp
			}
		}
	}
	switch {
	case !found:
		// Key Vault answers 404 SecretNotFound for a secret it does
		// not have; an empty list means the same.
		return "the vault has no secret " + name, nil
	case version != "":
		return "the secret has no version " + version, nil
	case !newest.enabled:
		return "its current version is disabled", nil
	}
	return "", nil
}

// armSecretProps is what CheckRefs needs of one secret version.
type armSecretProps struct {
	version string
	enabled bool
	created int64
}

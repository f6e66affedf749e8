package azure

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Start implements provider.Provider. Groups whose spec or config digest
// differs from the spec's are replaced one at a time (deleted and created
// again when a property ACI cannot update in place changes); missing ones
// are created, stopped ones started, extra ones deleted. Everything that
// can refuse (a foreign group in the way, a secret reference that does
// not resolve) is checked before the first write.
func (p *Provider) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	if err := spec.Validate(); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.permitted(provider.OpStart); err != nil {
		return workload.DeploymentStatus{}, err
	}
	spec, bp, err := p.prepare(spec)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	groups, err := p.observe(ctx, spec.Name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := checkShape(groups); err != nil {
		return workload.DeploymentStatus{}, err
	}
	byIndex := map[int]group{}
	for _, g := range groups {
		byIndex[g.index] = g
	}
	keep := max(spec.Replicas, 1)
	// Refusals before the first write (config included).
	for i := range keep {
		if _, ok := byIndex[i]; !ok {
			if err := p.checkFree(ctx, spec.Name, i); err != nil {
				return workload.DeploymentStatus{}, err
			}
		}
	}
	for _, env := range slices.Sorted(maps.Keys(bp.secrets)) {
		if _, err := p.resolveSecret(ctx, bp.secrets[env]); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	changed := false
	fail := func(err error) (workload.DeploymentStatus, error) {
		if changed {
			err = provider.AfterChange(Name, err, changesApplied)
		}
		if !provider.NothingChanged(err) {
			// A group that was accepted but failed (an image that cannot
			// be pulled) is the Failed status Start reports, not an error.
			if st, serr := p.Status(ctx, spec.Name); serr == nil && st.Phase == workload.Failed {
				return st, nil
			}
		}
		return workload.DeploymentStatus{}, err
	}
	if spec.Config != nil && p.appconfig != nil {
		c, err := p.writeConfig(ctx, spec.Name, spec.Config)
		changed = c
		if err != nil {
			return fail(err)
		}
	}
	cfg, err := p.readConfig(ctx, spec.Name)
	if err != nil {
		return fail(err)
	}
	for _, s := range plan(spec.Name, groups, bp, configDigest(cfg), spec.Replicas) {
		switch s.kind {
		case stepCreate:
			err = p.put(ctx, spec.Name, bp, cfg, s.index)
		case stepUpdate, stepRecreate:
			err = p.recreate(ctx, spec.Name, bp, cfg, s.index, s.cur, s.wait)
		case stepStart:
			err = p.startGroup(ctx, s.name)
		case stepDelete:
			err = p.deleteGroup(ctx, s.name)
		}
		if err != nil {
			return fail(err)
		}
		changed = true
	}
	var st workload.DeploymentStatus
	if spec.Replicas == 0 {
		st, err = p.Stop(ctx, spec.Name)
	} else {
		st, err = p.wait(ctx, spec.Name)
	}
	if err != nil {
		return fail(err)
	}
	return st, nil
}

// prepare turns a validated spec into what Start deploys: without an App
// Configuration store, config is plain environment (folded into Env); the
// blueprint; the config checked against the stores; env: secret
// references resolved. Start and Diff both use it.
func (p *Provider) prepare(spec workload.DeploymentSpec) (workload.DeploymentSpec, *blueprint, error) {
	if p.appconfig == nil && len(spec.Config) > 0 {
		// Without a store, config is plain environment, part of the spec.
		env := maps.Clone(spec.Env)
		if env == nil {
			env = map[string]string{}
		}
		for _, k := range slices.Sorted(maps.Keys(spec.Config)) {
			if strings.HasPrefix(k, SecretConfigPrefix) {
				return spec, nil, workload.Invalid(workload.FieldError{Path: "config." + k,
					Message: "secret keys are stored in Key Vault through App Configuration: set the target's appConfigEndpoint and keyVaultURL options"})
			}
			env[k] = spec.Config[k]
		}
		spec.Env, spec.Config = env, nil
	}
	bp, err := p.blueprintFromSpec(spec)
	if err != nil {
		return spec, nil, err
	}
	if spec.Config != nil {
		if err := p.checkConfig(spec.Name, spec.Config); err != nil {
			return spec, nil, err
		}
	}
	for env, from := range bp.secrets {
		if strings.HasPrefix(from, "env:") {
			if _, err := p.creds.Secret(from); err != nil {
				return spec, nil, workload.Invalid(workload.FieldError{Path: "secrets." + env, Message: err.Error()})
			}
		}
	}
	return spec, bp, nil
}

// stepKind is what Start does to one container group.
type stepKind string

const (
	stepCreate   stepKind = "create"   // no group at this index yet
	stepUpdate   stepKind = "update"   // one PUT: ACI restarts its containers in place
	stepRecreate stepKind = "recreate" // deleted and created again (recreateReason)
	stepStart    stepKind = "start"    // a stopped group started
	stepDelete   stepKind = "delete"   // above the replica count
)

// step is one group's change in a plan.
type step struct {
	kind  stepKind
	index int
	name  string
	cur   *armcontainerinstance.ContainerGroup // the live group, nil for create
	// wait: Start waits for the group to run before the next step.
	wait bool
	// why says why the group changes ("" for create, start, delete).
	why string
}

// plan lists, in order, what Start does to the service's groups to make
// them the spec's blueprint bp carrying config digest cfgTag, with
// replicas running: Start executes it and Diff reports it.
func plan(service string, groups []group, bp *blueprint, cfgTag string, replicas int) []step {
	byIndex := map[int]group{}
	for _, g := range groups {
		byIndex[g.index] = g
	}
	keep := max(replicas, 1)
	var out []step
	for i := range keep {
		g, ok := byIndex[i]
		s := step{index: i, name: fmt.Sprintf("%s-%d", service, i), cur: g.cg}
		switch {
		case !ok:
			s.kind = stepCreate
		case tag(g.cg, tagSpec) != bp.specTag || tag(g.cg, tagConfig) != cfgTag:
			s.kind, s.wait = stepUpdate, !g.stopped() && replicas > 0
			s.why = "the spec changed"
			if tag(g.cg, tagSpec) == bp.specTag {
				s.why = "the config changed"
			}
			if r := recreateReason(g.cg, bp); r != "" {
				s.kind, s.why = stepRecreate, r
			}
		case g.stopped() && replicas > 0:
			s.kind = stepStart
		case g.terminated() && replicas > 0:
			// Review Z7: deployed as new, the only way ACI runs it again.
			s.kind, s.wait, s.why = stepRecreate, true, recreateReason(g.cg, bp)
		default:
			continue
		}
		out = append(out, s)
	}
	for _, g := range groups {
		if g.index >= keep {
			out = append(out, step{kind: stepDelete, index: g.index, name: g.name, cur: g.cg})
		}
	}
	return out
}

// Scale implements provider.Provider: groups <name>-0 … <name>-(n-1)
// run; missing ones are created from group 0's definition, stopped ones
// started, higher ones deleted. Scale(0) stops every group and keeps them.
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if msg := workload.ValidateReplicas(replicas); msg != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: msg})
	}
	if len(name)+1+len(strconv.Itoa(max(replicas-1, 0))) > maxGroupName {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas",
			Message: fmt.Sprintf("must keep the container group names <name>-<index> within ACI's %d characters (%s-%d has %d)",
				maxGroupName, name, replicas-1, len(name)+1+len(strconv.Itoa(replicas-1)))})
	}
	if err := p.permitted(provider.OpScale); err != nil {
		return workload.DeploymentStatus{}, err
	}
	groups, err := p.existing(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := checkShape(groups); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if replicas == 0 {
		return p.stopGroups(ctx, name, groups)
	}
	bp, err := blueprintFromGroup(groups[0].cg)
	if err != nil {
		return workload.DeploymentStatus{}, provider.Wrap(Name, as(workload.ProviderError, err.Error()), err, "Scale "+name)
	}
	var cfg []configEntry
	if p.appconfig != nil {
		if cfg, err = p.readConfig(ctx, name); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	byIndex := map[int]group{}
	for _, g := range groups {
		byIndex[g.index] = g
	}
	for i := range replicas {
		if _, ok := byIndex[i]; !ok {
			if err := p.checkFree(ctx, name, i); err != nil {
				return workload.DeploymentStatus{}, err
			}
		}
	}
	changed := false
	fail := func(err error) (workload.DeploymentStatus, error) {
		if changed {
			return workload.DeploymentStatus{}, provider.AfterChange(Name, err, changesApplied)
		}
		return workload.DeploymentStatus{}, err
	}
	for i := range replicas {
		g, ok := byIndex[i]
		switch {
		case !ok:
			err = p.put(ctx, name, bp, cfg, i)
		case g.stopped():
			// A stopped group may predate an ApplyConfig: bring it to
			// the current config.
			if tag(g.cg, tagConfig) != configDigest(cfg) && p.appconfig != nil {
				err = p.recreate(ctx, name, bp, cfg, i, g.cg, false)
			} else {
				err = p.startGroup(ctx, g.name)
			}
		case g.terminated():
			err = p.recreate(ctx, name, bp, cfg, i, g.cg, false)
		default:
			continue
		}
		if err != nil {
			return fail(err)
		}
		changed = true
	}
	for _, g := range groups {
		if g.index >= replicas {
			if err := p.deleteGroup(ctx, g.name); err != nil {
				return fail(err)
			}
			changed = true
		}
	}
	st, err := p.wait(ctx, name)
	if err != nil {
		return fail(err)
	}
	return st, nil
}

// Stop implements provider.Provider: every group is stopped with the
// container groups' stop operation (compute billing stops; the groups,
// their definitions and IPs' reservations are kept).
func (p *Provider) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.permitted(provider.OpStop); err != nil {
		return workload.DeploymentStatus{}, err
	}
	groups, err := p.observe(ctx, name)
	if workload.CodeOf(err) == workload.NotFound {
		// No resource group: no trace of the service either.
		return p.stoppedStatus(name), nil
	}
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if len(groups) == 0 {
		return p.stoppedStatus(name), nil
	}
	return p.stopGroups(ctx, name, groups)
}

func (p *Provider) stopGroups(ctx context.Context, name string, groups []group) (workload.DeploymentStatus, error) {
	changed := false
	for _, g := range groups {
		if g.stopped() {
			continue
		}
		if _, err := p.groups.Stop(ctx, p.opts.ResourceGroup, g.name, nil); err != nil && !isNotFound(err) {
			err = mapErr("stop container group "+g.name, err)
			if changed {
				err = provider.AfterChange(Name, err, changesApplied)
			}
			return workload.DeploymentStatus{}, err
		}
		changed = true
	}
	st, err := p.wait(ctx, name)
	if workload.CodeOf(err) == workload.NotFound {
		return p.stoppedStatus(name), nil
	}
	if err != nil && changed {
		err = provider.AfterChange(Name, err, changesApplied)
	}
	return st, err
}

// Restart implements provider.Restarter: the running groups are
// restarted with the container groups' restart operation, one at a time,
// each waited for until a new run of its container (a new start time) is
// ready.
func (p *Provider) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.permitted(provider.OpRestart); err != nil {
		return workload.DeploymentStatus{}, err
	}
	groups, err := p.existing(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	changed := false
	for _, g := range groups {
		if g.stopped() {
			continue
		}
		old := g.instanceID()
		poller, err := p.groups.BeginRestart(ctx, p.opts.ResourceGroup, g.name, nil)
		if err != nil {
			err = mapErr("restart container group "+g.name, err)
			if changed {
				err = provider.AfterChange(Name, err, changesApplied)
			}
			return workload.DeploymentStatus{}, err
		}
		changed = true
		if _, err := pollDone(ctx, poller, p.opts.PollInterval.D()); err != nil {
			return workload.DeploymentStatus{}, provider.AfterChange(Name, mapErr("restart container group "+g.name+" (operation)", err), changesApplied)
		}
		if err := p.waitGroup(ctx, g.name, old); err != nil {
			return workload.DeploymentStatus{}, provider.AfterChange(Name, err, changesApplied)
		}
	}
	st, err := p.wait(ctx, name)
	if err != nil && changed {
		err = provider.AfterChange(Name, err, changesApplied)
	}
	return st, err
}

package azure

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// group is one container group of a service, as Get returns it (with its
// instance view).
type group struct {
	name  string
	index int
	cg    *armcontainerinstance.ContainerGroup
}

func (g group) instanceState() string {
	if g.cg.Properties == nil || g.cg.Properties.InstanceView == nil {
		return ""
	}
	return str(g.cg.Properties.InstanceView.State)
}

func (g group) provisioningState() string {
	if g.cg.Properties == nil {
		return ""
	}
	return str(g.cg.Properties.ProvisioningState)
}

// stopped reports a group stopped by the container groups' stop
// operation (Stop, Scale 0): it counts as not desired.
func (g group) stopped() bool { return strings.EqualFold(g.instanceState(), "Stopped") }

// container returns the group's app container, or nil when the group has
// none (a group alphaswarm made always has one; see checkShape).
func (g group) container() *armcontainerinstance.ContainerProperties {
	if g.cg == nil {
		return nil
	}
	return appContainer(g.cg)
}

// appContainer returns the properties of a group's container named
// containerName, or nil. Nil slice elements are skipped.
func appContainer(cg *armcontainerinstance.ContainerGroup) *armcontainerinstance.ContainerProperties {
	if cg.Properties == nil {
		return nil
	}
	for _, c := range cg.Properties.Containers {
		if c != nil && str(c.Name) == containerName && c.Properties != nil {
			return c.Properties
		}
	}
	return nil
}

// checkShape refuses groups without the app container: they cannot be
// recreated, scaled or given config, and would otherwise look Pending
// forever.
func checkShape(groups []group) error {
	for _, g := range groups {
		if g.container() == nil {
			return wrap(workload.ProviderError, "container group "+g.name,
				"has no container named "+containerName+" (every group alphaswarm makes has one): delete the group and start the service again", nil)
		}
	}
	return nil
}

func (g group) current() *armcontainerinstance.ContainerState {
	if c := g.container(); c != nil && c.InstanceView != nil {
		return c.InstanceView.CurrentState
	}
	return nil
}

// ready: provisioned, the group Running and its container Running.
func (g group) ready() bool {
	cs := g.current()
	return strings.EqualFold(g.provisioningState(), "Succeeded") && strings.EqualFold(g.instanceState(), "Running") &&
		cs != nil && strings.EqualFold(str(cs.State), "Running")
}

func (g group) failed() bool {
	return strings.EqualFold(g.provisioningState(), "Failed") || strings.EqualFold(g.instanceState(), "Failed")
}

// crashing reports a container that will not become ready without a
// change: ACI says CrashLoopBackOff, or the container is Waiting or
// Terminated after having restarted (restart policy Always keeps it
// crash-looping). It maps like the kubernetes provider's CrashLoopBackOff.
func (g group) crashing() bool {
	c := g.container()
	if c == nil || c.InstanceView == nil || c.InstanceView.CurrentState == nil || g.stopped() {
		return false
	}
	cs := c.InstanceView.CurrentState
	if strings.EqualFold(str(cs.DetailStatus), "CrashLoopBackOff") {
		return true
	}
	st := str(cs.State)
	return (strings.EqualFold(st, "Waiting") || strings.EqualFold(st, "Terminated")) && deref(c.InstanceView.RestartCount) > 0
}

// instanceID names the current run of the group's container:
// "<group>@<container start time>", so that a restart, which keeps the
// group, yields a new id. Before the container first starts it is the
// group name.
func (g group) instanceID() string {
	if cs := g.current(); cs != nil && cs.StartTime != nil && !strings.EqualFold(str(cs.State), "Waiting") {
		return g.name + "@" + cs.StartTime.UTC().Format("20060102T150405.000000000Z")
	}
	return g.name
}

// groupName splits an instance id back into its group name.
func groupName(instanceID string) string {
	n, _, _ := strings.Cut(instanceID, "@")
	return n
}

func (g group) message() string {
	var parts []string
	if cs := g.current(); cs != nil {
		s := str(cs.State)
		if d := str(cs.DetailStatus); d != "" {
			s += " (" + d + ")"
		}
		if s != "" {
			parts = append(parts, "container "+s)
		}
	}
	if ps := g.provisioningState(); ps != "" && !strings.EqualFold(ps, "Succeeded") {
		parts = append(parts, "provisioning "+ps)
	}
	var events []*armcontainerinstance.Event
	if c := g.container(); c != nil && c.InstanceView != nil {
		events = append(events, c.InstanceView.Events...)
	}
	if g.cg.Properties != nil && g.cg.Properties.InstanceView != nil {
		events = append(events, g.cg.Properties.InstanceView.Events...)
	}
	var last *armcontainerinstance.Event
	for _, e := range events {
		if e == nil || !strings.EqualFold(str(e.Type), "Warning") {
			continue
		}
		if last == nil || (e.LastTimestamp != nil && last.LastTimestamp != nil && e.LastTimestamp.After(*last.LastTimestamp)) {
			last = e
		}
	}
	if last != nil {
		parts = append(parts, fmt.Sprintf("event %s: %s", str(last.Name), str(last.Message)))
	}
	return strings.Join(parts, ", ")
}

func validName(name string) error {
	if msg := workload.ValidateName(name); msg != "" {
		return workload.Invalid(workload.FieldError{Path: "name", Message: msg})
	}
	return nil
}

// listTagged lists the target's container groups (without instance
// views), keyed by service, each slice sorted by index.
func (p *Provider) listTagged(ctx context.Context, service string) (map[string][]group, error) {
	pager := p.groups.NewListByResourceGroupPager(p.opts.ResourceGroup, nil)
	out := map[string][]group{}
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			return nil, mapErr("list container groups in "+p.opts.ResourceGroup, err)
		}
		for _, cg := range page.Value {
			svc := tag(cg, TagService)
			if svc == "" || tag(cg, TagTarget) != p.target || (service != "" && svc != service) {
				continue
			}
			idx, err := strconv.Atoi(tag(cg, TagIndex))
			if err != nil {
				continue
			}
			out[svc] = append(out[svc], group{name: str(cg.Name), index: idx, cg: cg})
		}
	}
	for _, gs := range out {
		slices.SortFunc(gs, func(a, b group) int { return a.index - b.index })
	}
	return out, nil
}

// get returns a group with its instance view, or nil if it does not exist.
func (p *Provider) get(ctx context.Context, name string) (*armcontainerinstance.ContainerGroup, error) {
	resp, err := p.groups.Get(ctx, p.opts.ResourceGroup, name, nil)
	if isNotFound(err) {
		return nil, nil
	}
	if err != nil {
		return nil, mapErr("get container group "+name, err)
	}
	return &resp.ContainerGroup, nil
}

func isNotFound(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusNotFound
}

func isConflict(err error) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == http.StatusConflict
}

// observe returns the service's groups with their instance views.
func (p *Provider) observe(ctx context.Context, service string) ([]group, error) {
	all, err := p.listTagged(ctx, service)
	if err != nil {
		return nil, err
	}
	return p.withViews(ctx, all[service])
}

// withViews reads each listed group's instance view, dropping groups
// deleted meanwhile.
func (p *Provider) withViews(ctx context.Context, groups []group) ([]group, error) {
	var out []group
	for _, g := range groups {
		cg, err := p.get(ctx, g.name)
		if err != nil {
			return nil, err
		}
		if cg != nil {
			g.cg = cg
			out = append(out, g)
		}
	}
	return out, nil
}

// Status implements provider.Provider.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	groups, err := p.observe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if len(groups) == 0 {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
	}
	return p.statusOf(name, groups), nil
}

// List implements provider.Lister.
func (p *Provider) List(ctx context.Context) ([]workload.DeploymentStatus, error) {
	all, err := p.listTagged(ctx, "")
	if err != nil {
		return nil, err
	}
	out := []workload.DeploymentStatus{}
	for _, svc := range slices.Sorted(maps.Keys(all)) {
		groups, err := p.withViews(ctx, all[svc])
		if err != nil {
			return nil, err
		}
		if len(groups) > 0 {
			out = append(out, p.statusOf(svc, groups))
		}
	}
	return out, nil
}

func str(s *string) string {
	if s == nil {
		return ""
	}
	return *s
}

func deref[T any](v *T) T {
	var zero T
	if v == nil {
		return zero
	}
	return *v
}

func (p *Provider) stoppedStatus(name string) workload.DeploymentStatus {
	return workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
		Provider: Name, Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: p.now().UTC()}
}

// statusOf derives the normalised status (the phase table is in the
// package doc). groups is not empty.
func (p *Provider) statusOf(name string, groups []group) workload.DeploymentStatus {
	st := workload.DeploymentStatus{ID: workload.ServiceID(p.target, name), Name: name, Target: p.target,
		Provider: Name, Instances: []workload.Instance{}, ObservedAt: p.now().UTC()}
	ref := groups[0]
	st.Revision = tag(ref.cg, TagSpec) + "." + tag(ref.cg, TagConfig)
	if c := ref.container(); c != nil {
		st.Image = str(c.Image)
	}
	var failed, crashing, msgs []string
	running := 0
	for _, g := range groups {
		if g.stopped() {
			continue
		}
		st.Replicas.Desired++
		ok := g.ready()
		if ok {
			st.Replicas.Ready++
			running++
		}
		if tag(g.cg, TagSpec) == tag(ref.cg, TagSpec) && tag(g.cg, TagConfig) == tag(ref.cg, TagConfig) {
			st.Replicas.Updated++
		}
		in := workload.Instance{ID: g.instanceID(), State: strings.ToLower(g.instanceState()), Healthy: to.Ptr(ok)}
		if in.State == "" {
			in.State = strings.ToLower(g.provisioningState())
		}
		if c := g.container(); c != nil && c.InstanceView != nil {
			in.Restarts = int(deref(c.InstanceView.RestartCount))
			if cs := c.InstanceView.CurrentState; cs != nil && cs.StartTime != nil {
				in.Started = cs.StartTime.UTC()
			}
		}
		if !ok {
			in.Message = g.message()
			msgs = append(msgs, g.name+": "+in.Message)
		}
		switch {
		case g.failed():
			failed = append(failed, g.name+": "+g.message())
		case !ok && g.crashing():
			crashing = append(crashing, g.name+": "+g.message())
		}
		st.Instances = append(st.Instances, in)
	}
	switch {
	case len(failed) > 0 && st.Replicas.Ready < st.Replicas.Desired:
		st.Phase = workload.Failed
		st.Message = strings.Join(failed, "; ")
	case len(crashing) > 0 && st.Replicas.Ready == 0:
		st.Phase = workload.Failed
		st.Message = strings.Join(crashing, "; ")
	case len(crashing) > 0:
		st.Phase = workload.Degraded
		st.Message = strings.Join(msgs, "; ")
	default:
		st.Phase = workload.PhaseFromReplicas(st.Replicas, running)
		st.Message = strings.Join(msgs, "; ")
	}
	return st
}

// wait polls Status until the service is Running, Stopped or Failed, or
// ctx ends (then it returns the last status and no error).
func (p *Provider) wait(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if !provider.Waits(ctx) {
		return p.Status(ctx, name)
	}
	for {
		st, err := p.Status(ctx, name)
		if err != nil {
			return st, err
		}
		switch st.Phase {
		case workload.Running, workload.Stopped, workload.Failed:
			return st, nil
		}
		select {
		case <-ctx.Done():
			return st, nil
		case <-time.After(p.opts.PollInterval.D()):
		}
	}
}

// waitGroup polls one group until it is ready or failed. With notID set
// (the instance id before a restart), a ready view of that same run does
// not count: ACI may still report the old run right after the restart.
func (p *Provider) waitGroup(ctx context.Context, name, notID string) error {
	if !provider.Waits(ctx) {
		return nil
	}
	for {
		cg, err := p.get(ctx, name)
		if err != nil {
			return err
		}
		if cg != nil {
			g := group{name: name, cg: cg}
			if g.ready() && (notID == "" || g.instanceID() != notID) {
				return nil
			}
			if g.failed() || g.crashing() {
				return wrap(workload.RolloutFailed, "container group "+name, "failed: "+g.message(), nil)
			}
		}
		select {
		case <-ctx.Done():
			return wrap(workload.Timeout, "container group "+name, "not running before the deadline", ctx.Err())
		case <-time.After(p.opts.PollInterval.D()):
		}
	}
}

// pollDone polls a long-running operation every interval until it ends.
// (PollUntilDone refuses intervals under a second.)
func pollDone[T any](ctx context.Context, poller *runtime.Poller[T], every time.Duration) (T, error) {
	for !poller.Done() {
		if _, err := poller.Poll(ctx); err != nil {
			var zero T
			return zero, err
		}
		if poller.Done() {
			break
		}
		select {
		case <-ctx.Done():
			var zero T
			return zero, ctx.Err()
		case <-time.After(every):
		}
	}
	return poller.Result(ctx)
}

// checkFree refuses (already_exists) when group index of the service
// exists but alphaswarm did not make it for this service and target
// (another target's service of the same name, or a group made by hand):
// such a group is never overwritten.
func (p *Provider) checkFree(ctx context.Context, service string, index int) error {
	name := fmt.Sprintf("%s-%d", service, index)
	cur, err := p.get(ctx, name)
	if err != nil {
		return err
	}
	if cur != nil && (tag(cur, TagService) != service || tag(cur, TagTarget) != p.target) {
		e := workload.Errorf(workload.AlreadyExists, "container group %s in resource group %s exists and does not belong to service %s (tags service=%q target=%q)",
			name, p.opts.ResourceGroup, workload.ServiceID(p.target, service), tag(cur, TagService), tag(cur, TagTarget))
		e.Provider = Name
		return e
	}
	return nil
}

// put creates or replaces group index of the service and waits for the
// operation. An error after the create-or-update was accepted is
// afterChange.
func (p *Provider) put(ctx context.Context, service string, bp *blueprint, cfg []configEntry, index int) error {
	cg, err := p.materialize(ctx, service, bp, cfg, index)
	if err != nil {
		return err
	}
	name := fmt.Sprintf("%s-%d", service, index)
	if err := p.checkFree(ctx, service, index); err != nil {
		return err
	}
	poller, err := p.groups.BeginCreateOrUpdate(ctx, p.opts.ResourceGroup, name, cg, nil)
	if err != nil {
		return mapErr("create container group "+name, err)
	}
	if _, err := pollDone(ctx, poller, p.opts.PollInterval.D()); err != nil {
		return afterChange(mapErr("create container group "+name+" (operation)", err))
	}
	return nil
}

// recreate replaces a group with new values and, with wait, waits until
// it runs (rolling: the caller does one group at a time). cur is the live
// group (nil if none): when a property ACI cannot update in place differs
// (see fixedProps), the group is deleted and created again instead of
// updated. Every error after the first accepted change is afterChange.
func (p *Provider) recreate(ctx context.Context, service string, bp *blueprint, cfg []configEntry, index int, cur *armcontainerinstance.ContainerGroup, wait bool) error {
	name := fmt.Sprintf("%s-%d", service, index)
	changed := false
	if cur != nil && fixedProps(cur) != fixedProps(&bp.cg) {
		// Resolve everything that can refuse before deleting.
		if _, err := p.materialize(ctx, service, bp, cfg, index); err != nil {
			return err
		}
		if err := p.deleteGroup(ctx, name); err != nil {
			return err
		}
		changed = true
	}
	if err := p.put(ctx, service, bp, cfg, index); err != nil {
		if changed {
			err = afterChange(err)
		}
		return err
	}
	if !wait {
		return nil
	}
	if err := p.waitGroup(ctx, name, ""); err != nil {
		return afterChange(err)
	}
	return nil
}

// fixedProps digests the properties ACI does not update in place (a PUT
// changing them is refused: "delete it first and then create a new one"):
// OS type, restart policy, subnets, IP address type and ports, and the
// containers' CPU, memory and ports. Defaults are normalised so that a
// live group (Get) and the blueprint it was made from agree.
func fixedProps(cg *armcontainerinstance.ContainerGroup) string {
	if cg == nil || cg.Properties == nil {
		return ""
	}
	pr := cg.Properties
	lower := func(s string) string { return strings.ToLower(s) }
	proto := func(s string) string {
		if s == "" {
			return "tcp"
		}
		return lower(s)
	}
	parts := []string{"os=" + lower(string(deref(pr.OSType))), "restart=" + lower(string(deref(pr.RestartPolicy)))}
	for _, s := range pr.SubnetIDs {
		if s != nil {
			parts = append(parts, "subnet="+lower(str(s.ID)))
		}
	}
	if ip := pr.IPAddress; ip != nil {
		parts = append(parts, "ip="+lower(string(deref(ip.Type))))
		var ports []string
		for _, pt := range ip.Ports {
			if pt != nil {
				ports = append(ports, fmt.Sprintf("%d/%s", deref(pt.Port), proto(string(deref(pt.Protocol)))))
			}
		}
		slices.Sort(ports)
		parts = append(parts, "ipports="+strings.Join(ports, ","))
	}
	for _, c := range pr.Containers {
		if c == nil || c.Properties == nil {
			continue
		}
		cp := c.Properties
		var cpu, mem float64
		if r := cp.Resources; r != nil && r.Requests != nil {
			cpu, mem = deref(r.Requests.CPU), deref(r.Requests.MemoryInGB)
		}
		var ports []string
		for _, pt := range cp.Ports {
			if pt != nil {
				ports = append(ports, fmt.Sprintf("%d/%s", deref(pt.Port), proto(string(deref(pt.Protocol)))))
			}
		}
		slices.Sort(ports)
		parts = append(parts, fmt.Sprintf("container=%s cpu=%g mem=%g ports=%s", str(c.Name), cpu, mem, strings.Join(ports, ",")))
	}
	return digest(parts)
}

func (p *Provider) startGroup(ctx context.Context, name string) error {
	poller, err := p.groups.BeginStart(ctx, p.opts.ResourceGroup, name, nil)
	if err != nil {
		return mapErr("start container group "+name, err)
	}
	if _, err := pollDone(ctx, poller, p.opts.PollInterval.D()); err != nil {
		return afterChange(mapErr("start container group "+name+" (operation)", err))
	}
	return nil
}

func (p *Provider) deleteGroup(ctx context.Context, name string) error {
	poller, err := p.groups.BeginDelete(ctx, p.opts.ResourceGroup, name, nil)
	if isNotFound(err) {
		return nil
	}
	if err != nil {
		return mapErr("delete container group "+name, err)
	}
	if _, err := pollDone(ctx, poller, p.opts.PollInterval.D()); err != nil && !isNotFound(err) {
		return afterChange(mapErr("delete container group "+name+" (operation)", err))
	}
	return nil
}

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
	if p.appconfig == nil && len(spec.Config) > 0 {
		// Without a store, config is plain environment, part of the spec.
		env := maps.Clone(spec.Env)
		if env == nil {
			env = map[string]string{}
		}
		for _, k := range slices.Sorted(maps.Keys(spec.Config)) {
			if strings.HasPrefix(k, SecretConfigPrefix) {
				return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "config." + k,
					Message: "secret keys are stored in Key Vault through App Configuration: set the target's appConfigEndpoint and keyVaultURL options"})
			}
			env[k] = spec.Config[k]
		}
		spec.Env, spec.Config = env, nil
	}
	bp, err := p.blueprintFromSpec(spec)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if spec.Config != nil {
		if err := p.checkConfig(spec.Name, spec.Config); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	for env, from := range bp.secrets {
		if strings.HasPrefix(from, "env:") {
			if _, err := p.creds.Secret(from); err != nil {
				return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "secrets." + env, Message: err.Error()})
			}
		}
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
			err = afterChange(err)
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
	cfgTag := configDigest(cfg)
	for i := range keep {
		g, ok := byIndex[i]
		switch {
		case !ok:
			err = p.put(ctx, spec.Name, bp, cfg, i)
		case tag(g.cg, TagSpec) != bp.specTag || tag(g.cg, TagConfig) != cfgTag:
			err = p.recreate(ctx, spec.Name, bp, cfg, i, g.cg, !g.stopped() && spec.Replicas > 0)
		case g.stopped() && spec.Replicas > 0:
			err = p.startGroup(ctx, g.name)
		default:
			continue
		}
		if err != nil {
			return fail(err)
		}
		changed = true
	}
	for _, g := range groups {
		if g.index >= keep {
			if err := p.deleteGroup(ctx, g.name); err != nil {
				return fail(err)
			}
			changed = true
		}
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

// Scale implements provider.Provider: groups <name>-0 … <name>-(n-1)
// run; missing ones are created from group 0's definition, stopped ones
// started, higher ones deleted. Scale(0) stops every group and keeps them.
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	if err := validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if msg := workload.ValidateReplicas(replicas); msg != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: msg})
	}
	if len(name)+1+len(strconv.Itoa(max(replicas-1, 0))) > maxGroupName {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas",
			Message: fmt.Sprintf("group names %s-<index> would exceed ACI's %d characters", name, maxGroupName)})
	}
	groups, err := p.observe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if len(groups) == 0 {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
	}
	if err := checkShape(groups); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if replicas == 0 {
		return p.stopGroups(ctx, name, groups)
	}
	bp, err := blueprintFromGroup(groups[0].cg)
	if err != nil {
		return workload.DeploymentStatus{}, wrap(workload.ProviderError, "Scale "+name, err.Error(), err)
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
			return workload.DeploymentStatus{}, afterChange(err)
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
			if tag(g.cg, TagConfig) != configDigest(cfg) && p.appconfig != nil {
				err = p.recreate(ctx, name, bp, cfg, i, g.cg, false)
			} else {
				err = p.startGroup(ctx, g.name)
			}
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
	if err := validName(name); err != nil {
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
				err = afterChange(err)
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
		err = afterChange(err)
	}
	return st, err
}

// Restart implements provider.Restarter: the running groups are
// restarted with the container groups' restart operation, one at a time,
// each waited for until a new run of its container (a new start time) is
// ready.
func (p *Provider) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := validName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	groups, err := p.observe(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if len(groups) == 0 {
		return workload.DeploymentStatus{}, notFound(workload.ServiceID(p.target, name))
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
				err = afterChange(err)
			}
			return workload.DeploymentStatus{}, err
		}
		changed = true
		if _, err := pollDone(ctx, poller, p.opts.PollInterval.D()); err != nil {
			return workload.DeploymentStatus{}, afterChange(mapErr("restart container group "+g.name+" (operation)", err))
		}
		if err := p.waitGroup(ctx, g.name, old); err != nil {
			return workload.DeploymentStatus{}, afterChange(err)
		}
	}
	st, err := p.wait(ctx, name)
	if err != nil && changed {
		err = afterChange(err)
	}
	return st, err
}

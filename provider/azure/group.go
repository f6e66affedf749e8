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
			return provider.Errorf(Name, workload.ProviderError, "container group %s: %s", g.name,
				"has no container named "+containerName+" (every group alphaswarm makes has one): delete the group and start the service again")
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

// terminated reports a group that ran to an end (instance view state
// Failed or Succeeded). ACI does not update such a group: "Terminated or
// deleted container groups can't be updated. Once a container group has
// terminated (is in either a Succeeded or Failed state) ... the group must
// be deployed as new" (container-instances-update, learn.microsoft.com).
// With restart policy Always a group reaches Failed only after an
// infrastructure failure ("Azure Container Instances states").
func (g group) terminated() bool {
	s := g.instanceState()
	return strings.EqualFold(s, "Failed") || strings.EqualFold(s, "Succeeded")
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
			svc := tag(cg, tagService)
			if svc == "" || tag(cg, tagTarget) != p.target || (service != "" && svc != service) {
				continue
			}
			idx, err := strconv.Atoi(tag(cg, tagIndex))
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

// existing is observe for an operation that needs the service to exist:
// no container group is NotFound.
func (p *Provider) existing(ctx context.Context, name string) ([]group, error) {
	groups, err := p.observe(ctx, name)
	if err == nil && len(groups) == 0 {
		err = provider.NotFound(Name, "service %q has no container groups", workload.ServiceID(p.target, name))
	}
	return groups, err
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
				return provider.Errorf(Name, workload.RolloutFailed, "%s: %s", "container group "+name, "failed: "+g.message())
			}
		}
		select {
		case <-ctx.Done():
			return provider.Wrap(Name, as(workload.Timeout, "not running before the deadline"), ctx.Err(), "container group "+name)
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
	if cur != nil && (tag(cur, tagService) != service || tag(cur, tagTarget) != p.target) {
		return provider.Errorf(Name, workload.AlreadyExists, "container group %s in resource group %s exists and does not belong to service %s (tags service=%q target=%q)",
			name, p.opts.ResourceGroup, workload.ServiceID(p.target, service), tag(cur, tagService), tag(cur, tagTarget))
	}
	return nil
}

// put creates or replaces group index of the service and waits for the
// operation. An error after the create-or-update was accepted goes
// through provider.AfterChange.
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
		return provider.AfterChange(Name, mapErr("create container group "+name+" (operation)", err), changesApplied)
	}
	return nil
}

// recreate replaces a group with new values and, with wait, waits until
// it runs (rolling: the caller does one group at a time). cur is the live
// group (nil if none): when a property ACI cannot update in place differs
// (see fixedFields), or the group has terminated (see terminated), the
// group is deleted and created again instead of updated. Every error
// after the first accepted change goes through provider.AfterChange.
func (p *Provider) recreate(ctx context.Context, service string, bp *blueprint, cfg []configEntry, index int, cur *armcontainerinstance.ContainerGroup, wait bool) error {
	name := fmt.Sprintf("%s-%d", service, index)
	changed := false
	if recreateReason(cur, bp) != "" {
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
			err = provider.AfterChange(Name, err, changesApplied)
		}
		return err
	}
	if !wait {
		return nil
	}
	if err := p.waitGroup(ctx, name, ""); err != nil {
		return provider.AfterChange(Name, err, changesApplied)
	}
	return nil
}

// fixedFields renders the properties ACI does not update in place, by
// their ARM paths: OS type, restart policy, subnets, IP address type and
// ports, and each container's CPU, memory and ports. "Not all container
// group properties support updates. To change some properties of a
// container group, you must first delete, then redeploy the group": OS
// type, CPU, memory or GPU resources, restart policy, network profile
// ("Update containers in Azure Container Instances", Limitations,
// learn.microsoft.com/azure/container-instances/container-instances-update;
// the ARM reference, Container Groups - Create Or Update, takes the whole
// group in one PUT). Ports and the IP address type are treated as network
// properties too. Defaults are normalised so that a live group (Get) and
// the blueprint it was made from agree.
func fixedFields(cg *armcontainerinstance.ContainerGroup) map[string]string {
	if cg == nil || cg.Properties == nil {
		return nil
	}
	pr := cg.Properties
	lower := func(s string) string { return strings.ToLower(s) }
	proto := func(s string) string {
		if s == "" {
			return "tcp"
		}
		return lower(s)
	}
	out := map[string]string{
		"properties.osType":        lower(string(deref(pr.OSType))),
		"properties.restartPolicy": lower(string(deref(pr.RestartPolicy))),
	}
	var subnets []string
	for _, s := range pr.SubnetIDs {
		if s != nil {
			subnets = append(subnets, lower(str(s.ID)))
		}
	}
	if len(subnets) > 0 {
		out["properties.subnetIds"] = strings.Join(subnets, ",")
	}
	if ip := pr.IPAddress; ip != nil {
		out["properties.ipAddress.type"] = lower(string(deref(ip.Type)))
		var ports []string
		for _, pt := range ip.Ports {
			if pt != nil {
				ports = append(ports, fmt.Sprintf("%d/%s", deref(pt.Port), proto(string(deref(pt.Protocol)))))
			}
		}
		slices.Sort(ports)
		out["properties.ipAddress.ports"] = strings.Join(ports, ",")
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
		at := containerPath(str(c.Name))
		out[at+".resources.requests.cpu"] = fmt.Sprintf("%g", cpu)
		out[at+".resources.requests.memoryInGB"] = fmt.Sprintf("%g", mem)
		out[at+".ports"] = strings.Join(ports, ",")
	}
	return out
}

// containerPath is the ARM path of a container's properties.
func containerPath(name string) string { return "properties.containers[" + name + "].properties" }

// fixedProps digests fixedFields: groups whose digests differ cannot be
// updated in place.
func fixedProps(cg *armcontainerinstance.ContainerGroup) string {
	f := fixedFields(cg)
	if f == nil {
		return ""
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(f)) {
		parts = append(parts, k+"="+f[k])
	}
	return digest(parts)
}

// recreateReason says why ACI would refuse to update the live group cur
// in place with bp ("" when it would not): a property of fixedFields
// differs, or the group has terminated. recreate acts on it and Diff
// reports it, so that the two cannot disagree.
func recreateReason(cur *armcontainerinstance.ContainerGroup, bp *blueprint) string {
	if cur == nil {
		return ""
	}
	if fixedProps(cur) != fixedProps(&bp.cg) {
		a, b := fixedFields(cur), fixedFields(&bp.cg)
		var diff []string
		for _, k := range slices.Sorted(maps.Keys(a)) {
			if a[k] != b[k] {
				diff = append(diff, k)
			}
		}
		for _, k := range slices.Sorted(maps.Keys(b)) {
			if _, ok := a[k]; !ok {
				diff = append(diff, k)
			}
		}
		return "ACI cannot update " + strings.Join(diff, ", ") + " of an existing container group in place (container-instances-update, Limitations): it is deleted and created again"
	}
	if (group{cg: cur}).terminated() {
		return "the container group has terminated (" + (group{cg: cur}).instanceState() + "); ACI updates no terminated group, it must be deployed as new (container-instances-update)"
	}
	return ""
}

func (p *Provider) startGroup(ctx context.Context, name string) error {
	poller, err := p.groups.BeginStart(ctx, p.opts.ResourceGroup, name, nil)
	if err != nil {
		return mapErr("start container group "+name, err)
	}
	if _, err := pollDone(ctx, poller, p.opts.PollInterval.D()); err != nil {
		return provider.AfterChange(Name, mapErr("start container group "+name+" (operation)", err), changesApplied)
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
		return provider.AfterChange(Name, mapErr("delete container group "+name+" (operation)", err), changesApplied)
	}
	return nil
}

package aws

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/ecs"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	"github.com/aws/aws-sdk-go-v2/service/ssm"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Diff implements provider.Differ: what Start of spec would do, from
// read-only calls (DescribeServices, DescribeTaskDefinition and, for a
// spec with config, GetParametersByPath on the service's own parameters).
//
// The task definition Start would register is rendered by Start's own
// render and compared field by field with the one the service runs;
// Changes are named by their paths in the task definition
// ("containerDefinitions[0].image", "cpu") or the service ("desiredCount",
// "enableExecuteCommand"). Any task-definition change Replaces: Start
// registers a new revision and the service rolls a deployment. Secrets
// appear as their valueFrom references; config values never do, only
// "(set)", "(changed)" or "(removed)" on the parameter's path
// ("ssm:/alphaswarm/<target>/<service>/<key>"). Start's own test decides
// the action (the spec hash in the task definition's labels and the exec
// options), so Diff says replace exactly when Start would register.
func (p *Provider) Diff(ctx context.Context, spec workload.DeploymentSpec) (workload.Diff, error) {
	d := workload.Diff{Service: spec.Name, Provider: Name, Changes: []workload.Change{}}
	if err := p.checkSpec(&spec); err != nil {
		return workload.Diff{}, err
	}
	if err := p.permitted(provider.OpStatus, false); err != nil { // access.go
		return workload.Diff{}, err
	}
	svc, err := p.describe(ctx, spec.Name)
	if err != nil {
		return workload.Diff{}, err
	}
	current, err := p.taskDefinitionOf(ctx, svc)
	if err != nil {
		return workload.Diff{}, err
	}
	want, err := p.render(spec, current)
	if err != nil {
		return workload.Diff{}, err
	}
	if svc == nil {
		d.Action = workload.DiffCreate
		d.Reason = fmt.Sprintf("ECS service %s does not exist on cluster %s: deploy registers task definition family %s and creates the service",
			spec.Name, p.opts.Cluster, p.family(spec.Name))
		d.Changes = append(d.Changes, taskDefChanges(nil, want, false)...)
		d.Changes = append(d.Changes, p.configChanges(spec, nil)...)
		d.Changes = append(d.Changes, workload.Change{Path: "desiredCount", To: strconv.Itoa(spec.Replicas)})
		if p.opts.EnableExecuteCommand {
			d.Changes = append(d.Changes, workload.Change{Path: "enableExecuteCommand", To: "true"})
		}
		return d, nil
	}
	count := workload.Change{Path: "desiredCount", From: strconv.Itoa(int(svc.DesiredCount)), To: strconv.Itoa(spec.Replicas)}
	if p.unchanged(spec, svc, current) {
		d.Action = workload.DiffNone
		if count.From != count.To {
			d.Action = workload.DiffUpdate
			d.Reason = "only the desired count changes: UpdateService keeps the running tasks and starts or stops tasks to match"
			d.Changes = append(d.Changes, count)
		}
		if drift := taskDefChanges(current, want, true); len(drift) > 0 {
			var paths []string
			for _, c := range drift {
				paths = append(paths, c.Path)
			}
			d.Reason = strings.TrimPrefix(d.Reason+"; ", "; ") + fmt.Sprintf("the running task definition differs from what the target's options give now (%s), "+
				"but deploy registers a new revision only when the spec or the exec options change", strings.Join(paths, ", "))
		}
		return d, nil
	}
	d.Action = workload.DiffReplace
	d.Changes = append(d.Changes, taskDefChanges(current, want, true)...)
	if spec.Config != nil {
		have, err := p.configValues(ctx, spec.Name)
		if err != nil {
			return workload.Diff{}, err
		}
		d.Changes = append(d.Changes, p.configChanges(spec, have)...)
	}
	if svc.EnableExecuteCommand != p.opts.EnableExecuteCommand {
		d.Changes = append(d.Changes, workload.Change{Path: "enableExecuteCommand",
			From: strconv.FormatBool(svc.EnableExecuteCommand), To: strconv.FormatBool(p.opts.EnableExecuteCommand), Replaces: true})
	}
	if len(d.Changes) == 0 {
		// The spec hash differs, yet nothing ECS runs does: the spec
		// changed only in what ECS does not use (ports' host and hostIP,
		// extensions). Start still registers a revision; say so rather
		// than show an empty replace. The hash itself is not shown: it
		// covers the config values.
		d.Changes = append(d.Changes, workload.Change{Path: "containerDefinitions[0].dockerLabels[" + labelSpecHash + "]",
			From: "(set)", To: "(changed)", Replaces: true})
		d.Reason = "the spec changed only in fields ECS does not use; "
	}
	if count.From != count.To {
		d.Changes = append(d.Changes, count)
	}
	d.Reason += fmt.Sprintf("deploy registers a new revision of task definition family %s (the service runs revision %d) "+
		"and the service rolls a deployment to it: its tasks are replaced", p.family(spec.Name), current.Revision)
	return d, nil
}

// tdField is one flattened task-definition field: its path and value.
type tdField struct{ path, value string }

// taskDefChanges compares the fields Start sets (taskDefinitionInput) of
// current (nil: none) and want. The spec-hash label is left out: it
// covers config values. Every change replaces tasks when replaces.
func taskDefChanges(current *ecstypes.TaskDefinition, want *ecs.RegisterTaskDefinitionInput, replaces bool) []workload.Change {
	var have []tdField
	if current != nil {
		have = flattenTD(current.Cpu, current.Memory, current.NetworkMode, current.RequiresCompatibilities,
			current.ExecutionRoleArn, current.TaskRoleArn, current.ContainerDefinitions)
	}
	next := flattenTD(want.Cpu, want.Memory, want.NetworkMode, want.RequiresCompatibilities,
		want.ExecutionRoleArn, want.TaskRoleArn, want.ContainerDefinitions)
	old := map[string]string{}
	for _, f := range have {
		old[f.path] = f.value
	}
	seen := map[string]bool{}
	var out []workload.Change
	for _, f := range next {
		seen[f.path] = true
		if v, ok := old[f.path]; !ok || v != f.value {
			out = append(out, workload.Change{Path: f.path, From: v, To: f.value, Replaces: replaces})
		}
	}
	for _, f := range have {
		if !seen[f.path] {
			out = append(out, workload.Change{Path: f.path, From: f.value, Replaces: replaces})
		}
	}
	return out
}

// flattenTD lists the fields taskDefinitionInput sets, by their paths in
// the task definition, skipping what is empty. Fields ECS fills in on
// registration (hostPort under awsvpc, a container's cpu 0, empty
// lists) are not among them.
func flattenTD(cpu, memory *string, mode ecstypes.NetworkMode, compat []ecstypes.Compatibility,
	execRole, taskRole *string, cds []ecstypes.ContainerDefinition) []tdField {
	var out []tdField
	add := func(path, v string) {
		if v != "" {
			out = append(out, tdField{path, v})
		}
	}
	add("cpu", sdkaws.ToString(cpu))
	add("memory", sdkaws.ToString(memory))
	add("networkMode", string(mode))
	var cs []string
	for _, c := range compat {
		cs = append(cs, string(c))
	}
	slices.Sort(cs)
	add("requiresCompatibilities", strings.Join(cs, ","))
	add("executionRoleArn", sdkaws.ToString(execRole))
	add("taskRoleArn", sdkaws.ToString(taskRole))
	for i, c := range cds {
		pre := fmt.Sprintf("containerDefinitions[%d].", i)
		add(pre+"name", sdkaws.ToString(c.Name))
		add(pre+"image", sdkaws.ToString(c.Image))
		add(pre+"essential", boolString(c.Essential))
		add(pre+"entryPoint", jsonList(c.EntryPoint))
		add(pre+"command", jsonList(c.Command))
		for _, kv := range sortedBy(c.Environment, func(kv ecstypes.KeyValuePair) string { return sdkaws.ToString(kv.Name) }) {
			add(pre+"environment["+sdkaws.ToString(kv.Name)+"]", sdkaws.ToString(kv.Value))
		}
		for _, s := range sortedBy(c.Secrets, func(s ecstypes.Secret) string { return sdkaws.ToString(s.Name) }) {
			add(pre+"secrets["+sdkaws.ToString(s.Name)+"].valueFrom", sdkaws.ToString(s.ValueFrom))
		}
		var ports []string
		for _, pm := range c.PortMappings {
			p := strconv.Itoa(int(sdkaws.ToInt32(pm.ContainerPort))) + "/" + strings.ToLower(string(pm.Protocol))
			if n := sdkaws.ToString(pm.Name); n != "" {
				p += " (" + n + ")"
			}
			ports = append(ports, p)
		}
		slices.Sort(ports)
		add(pre+"portMappings", strings.Join(ports, ", "))
		if h := c.HealthCheck; h != nil {
			add(pre+"healthCheck.command", jsonList(h.Command))
			add(pre+"healthCheck.interval", int32String(h.Interval))
			add(pre+"healthCheck.timeout", int32String(h.Timeout))
			add(pre+"healthCheck.retries", int32String(h.Retries))
			add(pre+"healthCheck.startPeriod", int32String(h.StartPeriod))
		}
		for _, k := range sortedKeys(c.DockerLabels) {
			if k != labelSpecHash {
				add(pre+"dockerLabels["+k+"]", c.DockerLabels[k])
			}
		}
		if lc := c.LogConfiguration; lc != nil {
			add(pre+"logConfiguration.logDriver", string(lc.LogDriver))
			for _, k := range sortedKeys(lc.Options) {
				add(pre+"logConfiguration.options["+k+"]", lc.Options[k])
			}
		}
		if lp := c.LinuxParameters; lp != nil && sdkaws.ToBool(lp.InitProcessEnabled) {
			add(pre+"linuxParameters.initProcessEnabled", "true")
		}
	}
	return out
}

func sortedBy[T any](l []T, key func(T) string) []T {
	l = slices.Clone(l)
	slices.SortStableFunc(l, func(a, b T) int { return strings.Compare(key(a), key(b)) })
	return l
}

func jsonList(l []string) string {
	if len(l) == 0 {
		return ""
	}
	b, _ := json.Marshal(l)
	return string(b)
}

func boolString(b *bool) string {
	if b == nil {
		return ""
	}
	return strconv.FormatBool(*b)
}

func int32String(n *int32) string {
	if n == nil {
		return ""
	}
	return strconv.Itoa(int(*n))
}

// configValues reads the service's config parameters (name -> value),
// decrypted, for comparison only: a value never leaves this package's
// comparison, and no error carries one. A parameter that is not one of
// the service's keys is ignored.
func (p *Provider) configValues(ctx context.Context, service string) (map[string]string, error) {
	path := p.paramPath(service)
	out := map[string]string{}
	pg := ssm.NewGetParametersByPathPaginator(p.ssm, &ssm.GetParametersByPathInput{
		Path: sdkaws.String(strings.TrimSuffix(path, "/")), Recursive: sdkaws.Bool(false), WithDecryption: sdkaws.Bool(true)})
	for pg.HasMorePages() {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return nil, mapErr("GetParametersByPath "+path, err)
		}
		for _, prm := range page.Parameters {
			out[strings.TrimPrefix(sdkaws.ToString(prm.Name), path)] = sdkaws.ToString(prm.Value)
		}
	}
	return out, nil
}

// configChanges compares the spec's config with have (key -> value; nil
// for a new service), as "(set)", "(changed)" and "(removed)" on each
// parameter's path: a config change rolls new tasks (they read SSM when
// they start).
func (p *Provider) configChanges(spec workload.DeploymentSpec, have map[string]string) []workload.Change {
	var out []workload.Change
	path := "ssm:" + p.paramPath(spec.Name)
	for _, k := range sortedKeys(spec.Config) {
		old, ok := have[k]
		switch {
		case !ok:
			out = append(out, workload.Change{Path: path + k, To: "(set)", Replaces: have != nil})
		case old != spec.Config[k]:
			out = append(out, workload.Change{Path: path + k, From: "(set)", To: "(changed)", Replaces: true})
		}
	}
	for _, k := range sortedKeys(have) {
		if _, ok := spec.Config[k]; !ok {
			out = append(out, workload.Change{Path: path + k, From: "(set)", To: "(removed)", Replaces: true})
		}
	}
	return out
}

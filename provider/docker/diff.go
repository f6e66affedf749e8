package docker

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"

	"github.com/moby/moby/api/types/container"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

var _ provider.Differ = (*Provider)(nil)

// Diff implements provider.Differ: what Start of spec would change, read
// from the Engine (the anchor's record and the replica list) and changing
// nothing. It decides with Start's own functions: check (validation),
// switchesKind, specChanged (the spec hash and the replica count) and
// planReplicas (which replicas apply would create, replace or remove), so
// the two cannot disagree. The changes are named by the Engine's fields of
// the replica container Start would create (replicaContainer), compared
// with those of the record last applied: Config.Image, Config.Env[K],
// Config.Labels[K], Config.Healthcheck, HostConfig.PortBindings[P],
// HostConfig.NanoCpus, HostConfig.Memory..., plus the replica count and
// the config files (Archive[<configDir>/<key>], values never shown).
//
// Secrets are not resolved (an env var from a secret shows its reference)
// and the image is not looked up: CheckRefs does that. A Compose spec is
// Unsupported: what `compose up` recreates is decided by Compose from the
// interpolated file, which needs the secrets' values.
func (p *Provider) Diff(ctx context.Context, spec workload.DeploymentSpec) (workload.Diff, error) {
	spec, _, err := p.check(spec)
	if err != nil {
		return workload.Diff{}, err
	}
	name := spec.Name
	next := &record{Spec: spec}
	cur, _, err := p.readRecord(ctx, name)
	if err != nil {
		return workload.Diff{}, err
	}
	if err := switchesKind(cur, next); err != nil {
		return workload.Diff{}, err
	}
	if spec.Compose != nil {
		return workload.Diff{}, provider.ErrUnsupported(Name, "diff",
			"diff of a Compose profile: `compose up` decides per Compose service what it recreates, from the file interpolated with the spec's secrets, which a diff does not resolve; deploy it, or compare the file yourself")
	}
	reps, err := p.listReplicas(ctx, name)
	if err != nil {
		return workload.Diff{}, err
	}
	reps = slices.DeleteFunc(reps, func(r replica) bool { return p.cache.isTerminating(r.id) })
	pl := planReplicas(reps, spec.Replicas, next.hash(), false, p.peekUnrolled(name))
	newSpec, newCount := specChanged(cur, next)

	d := workload.Diff{Service: name, Provider: Name, Changes: []workload.Change{}}
	replaces := newSpec && len(pl.roll) > 0
	var from map[string]field
	if cur != nil {
		if from, err = p.engineFields(cur); err != nil {
			return workload.Diff{}, err
		}
	}
	to, err := p.engineFields(next)
	if err != nil {
		return workload.Diff{}, err
	}
	if newSpec {
		fc := compareFields(from, to, replaces)
		if len(fc) == 0 && cur != nil {
			// The hash covers the whole spec; some of it never reaches
			// the container (a port's name, how a quantity is written).
			fc = append(fc, workload.Change{Path: "Config.Labels[" + labelSpecHash + "]", From: "(set)", To: "(changed)", Replaces: replaces})
			d.Reason = "the spec differs only in fields that do not reach the container (such as a port's name or how a quantity is written); Start compares spec hashes, so it still rolls the replicas. "
		}
		d.Changes = append(d.Changes, fc...)
	}
	oldCount := 0
	if cur != nil {
		oldCount = cur.Spec.Replicas
	}
	if newCount {
		c := workload.Change{Path: "replicas", To: strconv.Itoa(spec.Replicas)}
		if cur != nil {
			c.From = strconv.Itoa(oldCount)
		}
		d.Changes = append(d.Changes, c)
	}
	d.Changes = append(d.Changes, replicaChanges(pl, reps, oldCount, newSpec, next.hash())...)

	running := 0
	for _, r := range reps {
		if r.state == container.StateRunning {
			running++
		}
	}
	switch {
	case cur == nil && len(reps) == 0:
		d.Action = workload.DiffCreate
		d.Reason = fmt.Sprintf("service %s does not exist on docker target %s: deploy creates its network, its spec anchor and %d replica(s)", name, p.target, spec.Replicas)
	case len(pl.roll) > 0:
		d.Action = workload.DiffReplace
		how := "each new replica starts and is ready before its old one stops"
		if hasHostPorts(spec) {
			how = "each old replica stops first to free its fixed host port, then its successor starts"
		}
		d.Reason += fmt.Sprintf("%d of %d running replica(s) are replaced, one at a time: %s", len(pl.roll), running, how)
	case pl.changed() || newSpec || newCount:
		d.Action = workload.DiffUpdate
		d.Reason += updateReason(pl, newSpec, running)
	default:
		d.Action = workload.DiffNone
	}
	if cur == nil && len(reps) > 0 {
		d.Reason = fmt.Sprintf("the spec anchor of %s is gone (removed by hand?): deploy writes it again and adopts the %d replica container(s) found; ", name, len(reps)) + d.Reason
	}
	d.Reason = strings.TrimSpace(d.Reason)
	return d, nil
}

// updateReason says what an update does to the replicas: none replaced.
func updateReason(pl plan, newSpec bool, running int) string {
	removed := 0
	for _, r := range pl.extra {
		if r.state == container.StateRunning {
			removed++
		}
	}
	var parts []string
	if newSpec && running == 0 {
		parts = append(parts, "no replica runs: the new spec is stored, and replicas created later run it")
	}
	if kept := running - removed; kept > 0 {
		parts = append(parts, fmt.Sprintf("%d running replica(s) are kept as they are", kept))
	}
	if removed > 0 {
		parts = append(parts, fmt.Sprintf("%d running replica(s) beyond the new count are stopped and removed, highest index first", removed))
	}
	if n := len(pl.fresh); n > 0 {
		parts = append(parts, fmt.Sprintf("%d replica(s) are created", n))
	}
	return strings.Join(parts, "; ")
}

// replicaChanges names what pl does to single replicas beyond what the
// spec's fields and the count already say: a missing or dead replica
// within the current count created again, a stray container removed, a
// running replica of an older spec (a rollout that stopped short) or one a
// superseded restart did not reach replaced.
func replicaChanges(pl plan, reps []replica, oldCount int, newSpec bool, hash string) []workload.Change {
	var out []workload.Change
	at := func(idx int) string { return fmt.Sprintf("replicas[%d]", idx) }
	for _, idx := range pl.fresh {
		if idx >= oldCount {
			continue // the count says it
		}
		state := "(missing)"
		for _, r := range pl.dead {
			if r.index == idx {
				state = string(r.state)
				break
			}
		}
		out = append(out, workload.Change{Path: at(idx), From: state, To: "(created)"})
	}
	for _, r := range pl.dead {
		if slices.Contains(pl.fresh, r.index) {
			continue
		}
		out = append(out, workload.Change{Path: at(r.index), From: string(r.state) + " container " + shortID(r.id), To: "(removed)"})
	}
	for _, r := range pl.extra {
		if r.index >= 0 && r.index < oldCount {
			continue // the count says it
		}
		out = append(out, workload.Change{Path: at(r.index), From: string(r.state) + " container " + shortID(r.id), To: "(removed)"})
	}
	if !newSpec {
		for _, s := range pl.roll {
			why := "(left by a superseded restart)"
			for _, r := range reps {
				if r.id == s.old && r.hash != hash {
					why = "(an older spec)"
				}
			}
			out = append(out, workload.Change{Path: at(s.index), From: why, To: "(replaced)", Replaces: true})
		}
	}
	return out
}

// peekUnrolled is takeUnrolled without forgetting: Diff only reads.
func (p *Provider) peekUnrolled(name string) map[string]bool {
	p.locksMu.Lock()
	defer p.locksMu.Unlock()
	if l := p.locks[name]; l != nil {
		return maps.Clone(l.unrolled)
	}
	return nil
}

// field is one Engine field of a replica container: show is what a Diff
// may print, cmp what is compared. A hidden field (a config file) is
// compared by content and shown only as "(set)", "(changed)" or
// "(removed)".
type field struct {
	show, cmp string
	hidden    bool
}

// ownLabels are the labels the provider sets on a replica; the spec's own
// labels are the rest.
var ownLabels = []string{labelService, labelTarget, labelInstance, labelRole, labelReplica, labelSpecHash}

// engineFields translates rec as Start would (replicaContainer, with each
// secret's reference in place of its value) and names each field the spec
// decides by its Engine path. Values pass through the resolver's
// redaction.
func (p *Provider) engineFields(rec *record) (map[string]field, error) {
	spec := &rec.Spec
	env := make([]string, 0, len(spec.Env)+len(spec.Secrets))
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	for _, s := range spec.Secrets {
		env = append(env, s.Env+"="+secretShown(s.From))
	}
	opts, err := p.replicaContainer(rec, env, "", 0)
	if err != nil {
		return nil, err
	}
	out := map[string]field{}
	set := func(path, v string) {
		v = p.creds.Redact(v)
		out[path] = field{show: v, cmp: v}
	}
	cfg, host := opts.Config, opts.HostConfig
	set("Config.Image", cfg.Image)
	if len(cfg.Entrypoint) > 0 {
		set("Config.Entrypoint", quoteList(cfg.Entrypoint))
	}
	if len(cfg.Cmd) > 0 {
		set("Config.Cmd", quoteList(cfg.Cmd))
	}
	for _, kv := range cfg.Env {
		k, v, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, "ALPHASWARM_") { // the provider's own, the same for every spec
			set("Config.Env["+k+"]", v)
		}
	}
	for k, v := range cfg.Labels {
		if !slices.Contains(ownLabels, k) {
			set("Config.Labels["+k+"]", v)
		}
	}
	if hc := cfg.Healthcheck; hc != nil {
		set("Config.Healthcheck", fmt.Sprintf("%s interval=%s timeout=%s retries=%d startPeriod=%s",
			quoteList(hc.Test), hc.Interval, hc.Timeout, hc.Retries, hc.StartPeriod))
	}
	if cfg.StopSignal != "" {
		set("Config.StopSignal", cfg.StopSignal)
	}
	if cfg.User != "" {
		set("Config.User", cfg.User)
	}
	for port, bs := range host.PortBindings {
		var parts []string
		for _, b := range bs {
			hp := b.HostPort
			if hp == "" {
				hp = "(any)"
			}
			parts = append(parts, b.HostIP.String()+":"+hp)
		}
		set("HostConfig.PortBindings["+port.String()+"]", strings.Join(parts, ", "))
	}
	if host.NanoCPUs > 0 {
		set("HostConfig.NanoCpus", strconv.FormatInt(host.NanoCPUs, 10))
	}
	if host.Memory > 0 {
		set("HostConfig.Memory", strconv.FormatInt(host.Memory, 10))
	}
	for k, v := range spec.Config {
		out["Archive["+p.opts.ConfigDir+"/"+k+"]"] = field{show: "(set)", cmp: v, hidden: true}
	}
	if ext, _ := decodeExtension(spec); ext.Pull != "" {
		set("extensions.docker.pull", ext.Pull)
	}
	return out, nil
}

// secretShown is how a Diff shows the variable a secret fills: its
// reference, when it has the only form this provider resolves
// (env:ALPHASWARM_SECRET_*); otherwise nothing of it, since a user may
// have pasted a value where the reference belongs.
func secretShown(from string) string {
	if name, ok := strings.CutPrefix(from, "env:"); ok && strings.HasPrefix(name, credentials.SecretEnvPrefix) && !strings.ContainsAny(name, " \t\n=") {
		return "(secret " + from + ")"
	}
	return "(secret: a reference this provider does not resolve, not shown)"
}

func quoteList(l []string) string {
	q := make([]string, len(l))
	for i, s := range l {
		q[i] = strconv.Quote(s)
	}
	return "[" + strings.Join(q, " ") + "]"
}

// compareFields lists the fields that differ between from (nil: a new
// service) and to, sorted by path. A config file shows only "(set)",
// "(changed)" or "(removed)".
func compareFields(from, to map[string]field, replaces bool) []workload.Change {
	var out []workload.Change
	for _, path := range slices.Sorted(maps.Keys(to)) {
		t := to[path]
		f, had := from[path]
		switch {
		case !had:
			out = append(out, workload.Change{Path: path, To: t.show, Replaces: replaces})
		case f.cmp != t.cmp:
			c := workload.Change{Path: path, From: f.show, To: t.show, Replaces: replaces}
			if t.hidden {
				c.From, c.To = "(set)", "(changed)"
			}
			out = append(out, c)
		}
	}
	for _, path := range slices.Sorted(maps.Keys(from)) {
		if _, ok := to[path]; !ok {
			c := workload.Change{Path: path, From: from[path].show, Replaces: replaces}
			if from[path].hidden {
				c.From, c.To = "(set)", "(removed)"
			}
			out = append(out, c)
		}
	}
	slices.SortStableFunc(out, func(a, b workload.Change) int { return strings.Compare(a.Path, b.Path) })
	return out
}

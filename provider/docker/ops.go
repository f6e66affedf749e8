package docker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// prepared is a spec checked and resolved, ready to apply.
type prepared struct {
	rec *record
	env []string
	ext dockerExtension
}

// prepare checks spec and resolves everything Start needs before it
// changes anything: validation, secrets, the image. Every error it returns
// guarantees the Engine was not changed.
func (p *Provider) prepare(ctx context.Context, spec workload.DeploymentSpec) (*prepared, error) {
	spec, ext, err := p.check(spec)
	if err != nil {
		return nil, err
	}
	rec := &record{Spec: spec}
	env, err := p.resolveEnv(rec)
	if err != nil {
		return nil, err
	}
	if err := p.cache.waitReady(ctx); err != nil {
		return nil, err
	}
	if spec.Compose == nil {
		pull := p.opts.Pull
		if ext.Pull != "" {
			pull = ext.Pull
		}
		if err := p.ensureImage(ctx, spec.Image, pull); err != nil {
			return nil, err
		}
	}
	return &prepared{rec: rec, env: env, ext: ext}, nil
}

// check validates spec for this target and decodes its docker extension,
// without looking anything up: the first step of Start, and all of Diff's
// validation. The spec it returns is the one Start persists and hashes
// (its target filled in).
func (p *Provider) check(spec workload.DeploymentSpec) (workload.DeploymentSpec, dockerExtension, error) {
	if spec.Target == "" {
		spec.Target = p.target
	}
	if err := spec.Validate(); err != nil {
		return spec, dockerExtension{}, provider.Wrap(Name, p.classifier, err, "")
	}
	if spec.Target != p.target {
		return spec, dockerExtension{}, workload.Invalid(workload.FieldError{Path: "target", Message: fmt.Sprintf("this provider serves target %q, not %q", p.target, spec.Target)})
	}
	ext, err := decodeExtension(&spec)
	return spec, ext, err
}

// resolveEnv builds the replica environment: the spec's env, its secrets
// resolved through the credentials resolver (which registers the values
// for redaction), and the ALPHASWARM_ variables.
func (p *Provider) resolveEnv(rec *record) ([]string, error) {
	spec := &rec.Spec
	env := make([]string, 0, len(spec.Env)+len(spec.Secrets)+4)
	for k, v := range spec.Env {
		env = append(env, k+"="+v)
	}
	for i, s := range spec.Secrets {
		v, err := p.creds.Secret(s.From)
		if err != nil {
			e := workload.AsError(err)
			e.Fields = []workload.FieldError{{Path: fmt.Sprintf("secrets[%d].from", i), Message: e.Message}}
			return nil, e.WithProvider(Name)
		}
		env = append(env, s.Env+"="+v)
	}
	sort.Strings(env)
	env = append(env,
		"ALPHASWARM_SERVICE="+spec.Name,
		"ALPHASWARM_TARGET="+p.target,
		"ALPHASWARM_CONFIG_DIR="+p.opts.ConfigDir,
	)
	return env, nil
}

func (p *Provider) ensureImage(ctx context.Context, image, pull string) error {
	if pull != "always" {
		_, err := p.eng.ImageInspect(ctx, image)
		if err == nil {
			return nil
		}
		if classify(err) != workload.NotFound {
			return provider.Wrap(Name, p.classifier, err, "inspect image "+image)
		}
		if pull == "never" {
			return provider.NotFound(Name, "image %s is not present on the docker engine (pull policy: never)", image)
		}
	}
	resp, err := p.eng.ImagePull(ctx, image, client.ImagePullOptions{})
	if err == nil {
		err = resp.Wait(ctx)
		resp.Close()
	}
	if err != nil {
		code := classify(err)
		if code == workload.ProviderError || code == workload.NotFound || code == workload.PermissionDenied || code == workload.Unauthenticated {
			// The image is not there and cannot be had: nothing changed.
			return provider.NotFound(Name, "image %s is not present on the docker engine and pulling it failed: %v", image, err)
		}
		return provider.Wrap(Name, p.classifier, err, "pull image "+image)
	}
	return nil
}

// Start implements provider.Provider. A new service gets its network, its
// spec anchor and its replicas (created in parallel); an existing one is
// rolled to spec one replica at a time. It waits until every replica is
// ready or ctx ends; under provider.WithoutWait it waits for nothing and a
// rollout goes on in the background (rollBehind).
func (p *Provider) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	prep, err := p.prepare(ctx, spec)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	name := prep.rec.Spec.Name
	defer p.lock(name)()
	cur, anchors, err := p.readRecord(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := switchesKind(cur, prep.rec); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if prep.rec.Spec.Compose != nil {
		return p.startCompose(ctx, prep, anchors)
	}
	// Starting an unchanged spec again only heals missing or dead
	// replicas (Diff reads the same two answers).
	newSpec, newCount := specChanged(cur, prep.rec)
	persist := newSpec || newCount
	p.cache.setBusy(name, "start", 1)
	settle := time.Duration(0)
	if newSpec {
		settle = p.opts.MinReady.D()
	}
	res, err := p.apply(ctx, "start", prep.rec, prep.env, anchors, false, persist, settle)
	p.cache.setBusy(name, "", -1)
	return p.finish(ctx, name, res, err)
}

// switchesKind refuses a Start that would turn a service running an image
// into one running a Compose file, or back.
func switchesKind(cur, next *record) error {
	if cur != nil && (cur.Spec.Compose == nil) != (next.Spec.Compose == nil) {
		return workload.Invalid(workload.FieldError{Path: "compose",
			Message: fmt.Sprintf("service %s already runs %s; stop it before switching between an image and a Compose file", next.Spec.Name, kindOf(cur))})
	}
	return nil
}

// specChanged compares the record Start would persist, next, with the
// service's current one (nil: none): whether replicas are made from
// another spec (its hash differs; the service is new), and whether the
// desired count differs.
func specChanged(cur, next *record) (spec, count bool) {
	if cur == nil {
		return true, true
	}
	return cur.hash() != next.hash(), cur.Spec.Replicas != next.Spec.Replicas
}

func kindOf(r *record) string {
	if r.Spec.Compose != nil {
		return "a Compose file"
	}
	return "an image"
}

// readRecord reads the service's persisted record from its newest anchor,
// straight from the Engine. It returns nil if the service has no anchor,
// and the ids of every anchor found.
func (p *Provider) readRecord(ctx context.Context, name string) (*record, []string, error) {
	f := p.scopeFilter().Add("label", labelService+"="+name, labelRole+"="+roleAnchor)
	list, err := p.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, nil, provider.Wrap(Name, p.classifier, err, "list anchors of "+name)
	}
	var best *anchorEntry
	var ids []string
	for _, c := range list.Items {
		if !p.ours(c.Labels) {
			continue
		}
		ids = append(ids, c.ID)
		a := parseAnchor(c.ID, c.Labels, 0)
		if a.rec != nil && (best == nil || a.gen > best.gen) {
			best = a
		}
	}
	if best == nil {
		return nil, ids, nil
	}
	return best.rec, ids, nil
}

// writeAnchor persists rec in a new anchor container (created, never
// started, no network) and removes the older anchors. Container labels are
// immutable, so each change of spec, replica count or config writes a new
// anchor with the next generation; readers take the highest.
func (p *Provider) writeAnchor(ctx context.Context, rec *record, image string, old []string) error {
	gen := int64(0)
	for _, id := range old {
		if r, err := p.eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{}); err == nil && r.Container.Config != nil {
			if g, _ := strconv.ParseInt(r.Container.Config.Labels[labelGeneration], 10, 64); g > gen {
				gen = g
			}
		}
	}
	gen++
	b, err := json.Marshal(rec)
	if err != nil {
		return workload.Errorf(workload.Internal, "encode spec: %v", err)
	}
	labels := p.baseLabels(rec.Spec.Name)
	labels[labelRole] = roleAnchor
	labels[labelGeneration] = strconv.FormatInt(gen, 10)
	labels[labelDesired] = strconv.Itoa(rec.Spec.Replicas)
	labels[labelSpecHash] = rec.hash()
	labels[labelSpec] = string(b)
	_, err = p.eng.ContainerCreate(ctx, client.ContainerCreateOptions{
		Name: fmt.Sprintf("%s%s-anchor-%d", p.opts.NamePrefix, rec.Spec.Name, gen),
		Config: &container.Config{
			Image:      image,
			Entrypoint: []string{"/.alphaswarm-anchor"},
			Labels:     labels,
		},
		HostConfig: &container.HostConfig{NetworkMode: "none"},
	})
	if err != nil {
		return provider.Wrap(Name, p.classifier, err, "persist the spec of "+rec.Spec.Name)
	}
	for _, id := range old {
		_, _ = p.eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true})
	}
	return nil
}

func (p *Provider) ensureNetwork(ctx context.Context, service string) (string, error) {
	name := p.networkName(service)
	list, err := p.eng.NetworkList(ctx, client.NetworkListOptions{Filters: make(client.Filters).Add("name", name)})
	if err != nil {
		return "", provider.Wrap(Name, p.classifier, err, "list networks")
	}
	for _, n := range list.Items {
		if n.Name == name {
			return name, nil
		}
	}
	labels := p.baseLabels(service)
	_, err = p.eng.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil && classify(err) != workload.AlreadyExists {
		return "", provider.Wrap(Name, p.classifier, err, "create network "+name)
	}
	return name, nil
}

// replica is one replica container as listed by the Engine.
type replica struct {
	id, name string
	index    int
	hash     string
	state    container.ContainerState
	created  int64
}

func (p *Provider) listReplicas(ctx context.Context, service string) ([]replica, error) {
	f := p.scopeFilter().Add("label", labelService+"="+service, labelRole+"="+roleReplica)
	list, err := p.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return nil, provider.Wrap(Name, p.classifier, err, "list replicas of "+service)
	}
	out := make([]replica, 0, len(list.Items))
	for _, c := range list.Items {
		if !p.ours(c.Labels) {
			continue
		}
		name := ""
		if len(c.Names) > 0 {
			name = strings.TrimPrefix(c.Names[0], "/")
		}
		out = append(out, replica{id: c.ID, name: name, index: replicaIndex(c.Labels), hash: c.Labels[labelSpecHash], state: c.State, created: c.Created})
	}
	return out, nil
}

// pullPolicy is the pull policy for rec's image.
func (p *Provider) pullPolicy(rec *record) string {
	if ext, _ := decodeExtension(&rec.Spec); ext.Pull != "" {
		return ext.Pull
	}
	return p.opts.Pull
}

// finish refreshes the service in the cache and turns an apply result into
// the status the operation answers.
func (p *Provider) finish(ctx context.Context, name string, res result, err error) (workload.DeploymentStatus, error) {
	if err != nil && workload.CodeOf(err) == workload.Timeout && errors.Is(ctx.Err(), context.DeadlineExceeded) {
		// The operation's deadline passed mid-way: answer what the
		// service looks like now, Progressing, as for a slow replica.
		res.timedOut, err = true, nil
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	rerr := p.cache.resync(rctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	st, ok := p.cache.status(name)
	if !ok {
		if rerr != nil {
			return workload.DeploymentStatus{}, provider.Wrap(Name, p.classifier, rerr, "read back "+name)
		}
		st = p.stoppedStatus(name)
	}
	switch {
	case len(res.failed) > 0:
		st.Phase = workload.Failed
		st.Message = strings.Join(res.failed, "; ")
	case res.timedOut && st.Phase != workload.Running:
		st.Phase = workload.Progressing
		st.Message = "replicas not ready before the operation's deadline: " + st.Message
	}
	return st, nil
}

// loadForMutation reads the service's record for Scale, Restart and
// ApplyConfig: NotFound if the service was never started (or was stopped).
func (p *Provider) loadForMutation(ctx context.Context, name string) (*record, []string, error) {
	if err := workload.CheckName("name", name); err != nil {
		return nil, nil, err
	}
	if err := p.cache.waitReady(ctx); err != nil {
		return nil, nil, err
	}
	rec, anchors, err := p.readRecord(ctx, name)
	if err != nil {
		return nil, nil, err
	}
	if rec == nil {
		if reps, lerr := p.listReplicas(ctx, name); lerr == nil && len(reps) > 0 {
			return nil, nil, provider.NotFound(Name, "service %s has replicas but its spec anchor is gone; Start it again", name)
		}
		return nil, nil, provider.NotFound(Name, "service %s not found on docker target %s", name, p.target)
	}
	return rec, anchors, nil
}

// Scale implements provider.Provider. Scaling down removes the highest
// indices first; scaling to 0 keeps the anchor, so the service stays known
// (Stopped, desired 0) and can be scaled up again, also by a controller
// started later.
func (p *Provider) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	if m := workload.ValidateReplicas(replicas); m != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: m})
	}
	defer p.lock(name)()
	rec, anchors, err := p.loadForMutation(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	next := *rec
	next.Spec.Replicas = replicas
	if rec.Spec.Compose != nil {
		return p.scaleCompose(ctx, &next, anchors)
	}
	env, err := p.resolveEnv(&next)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if replicas > 0 {
		if err := p.ensureImage(ctx, next.Spec.Image, p.pullPolicy(&next)); err != nil {
			return workload.DeploymentStatus{}, err
		}
	}
	p.cache.setBusy(name, "scale", 1)
	res, err := p.apply(ctx, "scale", &next, env, anchors, false, true, 0)
	p.cache.setBusy(name, "", -1)
	return p.finish(ctx, name, res, err)
}

// Restart implements provider.Restarter: every replica is replaced by a
// new container (new id, new start time), one at a time.
func (p *Provider) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	defer p.lock(name)()
	rec, anchors, err := p.loadForMutation(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if rec.Spec.Compose != nil {
		return p.restartCompose(ctx, rec, anchors)
	}
	env, err := p.resolveEnv(rec)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.ensureImage(ctx, rec.Spec.Image, p.pullPolicy(rec)); err != nil {
		return workload.DeploymentStatus{}, err
	}
	p.cache.setBusy(name, "restart", 1)
	res, err := p.apply(ctx, "restart", rec, env, anchors, true, false, 0)
	p.cache.setBusy(name, "", -1)
	return p.finish(ctx, name, res, err)
}

// ApplyConfig implements provider.Provider. The config is persisted in the
// anchor and delivered as files, one per key, in Options.ConfigDir
// (default /etc/alphaswarm/config; ALPHASWARM_CONFIG_DIR names it), copied
// into each new replica before it starts; the replicas are rolled so every
// process starts with the new files. Replicas added later get them too.
func (p *Provider) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	defer p.lock(name)()
	rec, anchors, err := p.loadForMutation(ctx, name)
	if err != nil {
		return err
	}
	if rec.Spec.Compose != nil {
		return provider.Errorf(Name, workload.Unsupported, "apply_config: service %s runs a Compose file, which carries its own configuration; edit the file and Start again", name)
	}
	next := *rec
	next.Spec.Config = config
	env, err := p.resolveEnv(&next)
	if err != nil {
		return err
	}
	if err := p.ensureImage(ctx, next.Spec.Image, p.pullPolicy(&next)); err != nil {
		return err
	}
	p.cache.setBusy(name, "apply_config", 1)
	res, err := p.apply(ctx, "apply_config", &next, env, anchors, false, true, p.opts.MinReady.D())
	p.cache.setBusy(name, "", -1)
	st, err := p.finish(ctx, name, res, err)
	if err != nil {
		return err
	}
	var e *workload.Error
	switch {
	case len(res.failed) > 0:
		e = provider.Errorf(Name, workload.RolloutFailed, "config of %s applied, but the rollout failed: %s", name, st.Message)
	case res.timedOut:
		e = provider.Errorf(Name, workload.Timeout, "config of %s applied; the rollout did not finish before the deadline: %s", name, st.Message)
	default:
		return nil
	}
	e.Status = &st
	return e
}

// Stop implements provider.Provider: the replicas are stopped gracefully
// and removed, then the anchor and the network. A second Stop, or a Stop
// of an unknown service, finds nothing and answers Stopped.
func (p *Provider) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.cache.waitReady(ctx); err != nil {
		return workload.DeploymentStatus{}, err
	}
	defer p.lock(name)()
	rec, anchors, err := p.readRecord(ctx, name)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	p.cache.setBusy(name, "stop", 1)
	err = p.stopAll(ctx, name, rec, anchors)
	p.cache.setBusy(name, "", -1)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = p.cache.resync(rctx, name)
	return p.stoppedStatus(name), nil
}

func (p *Provider) stopAll(ctx context.Context, name string, rec *record, anchors []string) error {
	if rec != nil && rec.Spec.Compose != nil {
		if err := p.composeDown(ctx, rec); err != nil {
			return err
		}
	}
	reps, err := p.listReplicas(ctx, name)
	if err != nil {
		return err
	}
	if err := p.parallel(ctx, len(reps), func(i int) error { return p.removeReplica(ctx, reps[i].id) }); err != nil {
		return err
	}
	for _, id := range anchors {
		if _, err := p.eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil && classify(err) != workload.NotFound {
			return provider.Wrap(Name, p.classifier, err, "remove the spec anchor of "+name)
		}
	}
	net := p.networkName(name)
	if _, err := p.eng.NetworkRemove(ctx, net, client.NetworkRemoveOptions{}); err != nil && classify(err) != workload.NotFound {
		return provider.Wrap(Name, p.classifier, err, "remove network "+net)
	}
	return nil
}

package docker

import (
	"archive/tar"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/netip"
	"path"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/network"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// dockerExtension is spec.extensions.docker.
type dockerExtension struct {
	// Pull overrides the target's pull policy for this service.
	Pull string `json:"pull,omitempty"`
	// StopSignal replaces SIGTERM.
	StopSignal string `json:"stopSignal,omitempty"`
	// User runs the workload as this user ("1000", "app:app").
	User string `json:"user,omitempty"`
}

func decodeExtension(spec *workload.DeploymentSpec) (dockerExtension, error) {
	var ext dockerExtension
	raw, ok := spec.Extensions[Name]
	if !ok {
		return ext, nil
	}
	var generic any
	if err := json.Unmarshal(raw, &generic); err != nil {
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.docker", Message: "not valid JSON"})
	}
	if unknown := workload.UnknownFields(reflect.TypeFor[dockerExtension](), generic, "extensions.docker"); len(unknown) > 0 {
		return ext, workload.Invalid(unknown...)
	}
	if err := json.Unmarshal(raw, &ext); err != nil {
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.docker", Message: err.Error()})
	}
	switch ext.Pull {
	case "", "missing", "never", "always":
	default:
		return ext, workload.Invalid(workload.FieldError{Path: "extensions.docker.pull", Message: `must be "missing", "never" or "always"`})
	}
	return ext, nil
}

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
	if spec.Target == "" {
		spec.Target = p.target
	}
	if err := spec.Validate(); err != nil {
		return nil, p.wrap(err, "")
	}
	if spec.Target != p.target {
		return nil, workload.Invalid(workload.FieldError{Path: "target", Message: fmt.Sprintf("this provider serves target %q, not %q", p.target, spec.Target)})
	}
	ext, err := decodeExtension(&spec)
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
			return p.wrap(err, "inspect image "+image)
		}
		if pull == "never" {
			return notFound("image %s is not present on the docker engine (pull policy: never)", image)
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
			return notFound("image %s is not present on the docker engine and pulling it failed: %v", image, err)
		}
		return p.wrap(err, "pull image "+image)
	}
	return nil
}

// Start implements provider.Provider. A new service gets its network, its
// spec anchor and its replicas (created in parallel); an existing one is
// rolled to spec one replica at a time. It waits until every replica is
// ready or ctx ends.
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
	if cur != nil && (cur.Spec.Compose == nil) != (prep.rec.Spec.Compose == nil) {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "compose",
			Message: fmt.Sprintf("service %s already runs %s; stop it before switching between an image and a Compose file", name, kindOf(cur))})
	}
	if prep.rec.Spec.Compose != nil {
		return p.startCompose(ctx, prep, anchors)
	}
	// Starting an unchanged spec again only heals missing or dead replicas.
	persist := cur == nil || cur.hash() != prep.rec.hash() || cur.Spec.Replicas != prep.rec.Spec.Replicas
	p.cache.setBusy(name, "start", 1)
	settle := time.Duration(0)
	if cur == nil || cur.hash() != prep.rec.hash() {
		settle = p.opts.MinReady.D()
	}
	res, err := p.apply(ctx, prep.rec, prep.env, anchors, false, persist, settle)
	p.cache.setBusy(name, "", -1)
	return p.finish(ctx, name, res, err)
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
		return nil, nil, p.wrap(err, "list anchors of "+name)
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
		return p.wrap(err, "persist the spec of "+rec.Spec.Name)
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
		return "", p.wrap(err, "list networks")
	}
	for _, n := range list.Items {
		if n.Name == name {
			return name, nil
		}
	}
	labels := p.baseLabels(service)
	_, err = p.eng.NetworkCreate(ctx, name, client.NetworkCreateOptions{Driver: "bridge", Labels: labels})
	if err != nil && classify(err) != workload.AlreadyExists {
		return "", p.wrap(err, "create network "+name)
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
		return nil, p.wrap(err, "list replicas of "+service)
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

// result is how an apply ended.
type result struct {
	failed   []string // replicas that exited or failed their health check
	timedOut bool     // ctx ended before every replica was ready
}

// apply persists rec and converges the service's replicas to it: replicas
// beyond the desired count are removed highest index first, missing or
// dead ones are created in parallel, and running ones with another spec
// (or all of them, with force) are replaced one at a time. persist=false
// skips writing the anchor (rec is what the anchor already holds); the
// anchor is written while the replicas are created.
//
// Replicas that are replaced or scaled away drain in the background
// (graceful stop, then removal, highest index first): the operation
// answers as soon as the desired replicas are ready, the cache shows the
// draining ones as "terminating" and counts them nowhere, and later
// operations ignore them. Services with fixed host ports drain in line,
// since the old replica must free its port first. Stop never drains: it
// returns once every container is gone.
func (p *Provider) apply(ctx context.Context, rec *record, env []string, anchors []string, force, persist bool, settle time.Duration) (res result, err error) {
	name := rec.Spec.Name
	defer func() { err = p.changed(err) }()
	if persist {
		anchorDone := make(chan error, 1)
		go func() { anchorDone <- p.writeAnchor(ctx, rec, rec.Spec.Image, anchors) }()
		defer func() {
			if aerr := <-anchorDone; aerr != nil && err == nil {
				err = aerr
			}
		}()
	}
	reps, err := p.listReplicas(ctx, name)
	if err != nil {
		return result{}, err
	}
	reps = slices.DeleteFunc(reps, func(r replica) bool { return p.cache.isTerminating(r.id) })
	var net string
	if rec.Spec.Replicas > 0 {
		if net, err = p.ensureNetwork(ctx, name); err != nil {
			return result{}, err
		}
	}
	hash := rec.hash()
	async := !hasHostPorts(rec.Spec)
	byIndex := map[int][]replica{}
	for _, r := range reps {
		byIndex[r.index] = append(byIndex[r.index], r)
	}
	// 1. Replicas beyond the desired count, highest index first.
	var extra []int
	for idx := range byIndex {
		if idx >= rec.Spec.Replicas || idx < 0 {
			extra = append(extra, idx)
		}
	}
	slices.Sort(extra)
	slices.Reverse(extra)
	var extraIDs []string
	for _, idx := range extra {
		for _, r := range byIndex[idx] {
			extraIDs = append(extraIDs, r.id)
		}
	}
	if err := p.retire(ctx, extraIDs, async); err != nil {
		return result{}, err
	}
	// 2. Classify the wanted indices.
	var fresh, roll []int
	var dead []string // stopped replicas and duplicates, removed before the fresh ones start
	old := map[int]string{}
	for idx := range rec.Spec.Replicas {
		rs := byIndex[idx]
		slices.SortFunc(rs, func(a, b replica) int { return int(b.created - a.created) })
		var keep *replica
		for i := range rs {
			r := &rs[i]
			if keep == nil && r.state == container.StateRunning {
				keep = r
				continue
			}
			dead = append(dead, r.id)
		}
		switch {
		case keep == nil:
			fresh = append(fresh, idx)
		case force || keep.hash != hash:
			roll = append(roll, idx)
			old[idx] = keep.id
		}
	}
	if err := p.parallel(ctx, len(dead), func(i int) error { return p.removeReplica(ctx, dead[i]) }); err != nil {
		return result{}, err
	}
	// 3. Fresh replicas, in parallel.
	if len(fresh) > 0 {
		ids := make([]string, len(fresh))
		err := p.parallel(ctx, len(fresh), func(i int) error {
			id, err := p.runReplica(ctx, rec, env, net, fresh[i])
			ids[i] = id
			return err
		})
		if err != nil {
			return result{}, err
		}
		if provider.Waits(ctx) { // without: started, not waited for (provider.WithoutWait)
			res = p.waitReplicas(ctx, ids, settle)
			if len(res.failed) > 0 || res.timedOut {
				return res, nil
			}
		}
	}
	// 4. Rolling replacement, one replica at a time. Without fixed host
	// ports the new replica starts before the old one stops (no capacity
	// dip); with them the old one must free the port first.
	for _, idx := range roll {
		if !async {
			if err := p.removeReplica(ctx, old[idx]); err != nil {
				return result{}, err
			}
		}
		id, err := p.runReplica(ctx, rec, env, net, idx)
		if err != nil {
			return result{}, err
		}
		r := p.waitReplicas(ctx, []string{id}, settle)
		if len(r.failed) > 0 && async {
			// Keep the old replica serving; drop the failed new one.
			cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
			_ = p.removeReplica(cctx, id)
			cancel()
			r.failed = append(r.failed, fmt.Sprintf("rollout stopped at replica %d; the previous replicas keep serving", idx))
		}
		if len(r.failed) > 0 || r.timedOut {
			return r, nil
		}
		if async {
			p.drain([]string{old[idx]})
		}
	}
	return res, nil
}

// changed is for errors met after the first mutating call: the Engine may
// have been changed, so a code that promises otherwise (NotFound for an
// image removed meanwhile, AlreadyExists...) becomes ProviderError.
func (p *Provider) changed(err error) error {
	return provider.AfterChange(Name, err, "")
}

// pullPolicy is the pull policy for rec's image.
func (p *Provider) pullPolicy(rec *record) string {
	if ext, _ := decodeExtension(&rec.Spec); ext.Pull != "" {
		return ext.Pull
	}
	return p.opts.Pull
}

// retire removes replicas that are no longer wanted, in order: in the
// background if async, else before returning.
func (p *Provider) retire(ctx context.Context, ids []string, async bool) error {
	if async {
		p.drain(ids)
		return nil
	}
	for _, id := range ids {
		if err := p.removeReplica(ctx, id); err != nil {
			return err
		}
	}
	return nil
}

// drain stops and removes containers one after the other in the
// background; the cache shows them terminating until they are gone. Close
// waits for drains to finish.
func (p *Provider) drain(ids []string) {
	if len(ids) == 0 {
		return
	}
	p.cache.setTerminating(ids, true)
	p.drains.Add(1)
	go func() {
		defer p.drains.Done()
		for _, id := range ids {
			ctx, cancel := context.WithTimeout(context.Background(), p.opts.StopTimeout.D()+30*time.Second)
			if err := p.removeReplica(ctx, id); err != nil {
				slog.Warn("docker: draining a replaced replica failed; the next operation on the service removes it", "container", shortID(id), "err", err)
			}
			cancel()
			p.cache.setTerminating([]string{id}, false)
		}
	}()
}

func hasHostPorts(spec workload.DeploymentSpec) bool {
	for _, pt := range spec.Ports {
		if pt.Host != 0 {
			return true
		}
	}
	return false
}

// parallel runs f(0..n-1) with at most Options.Parallel at once and
// returns the first error.
func (p *Provider) parallel(ctx context.Context, n int, f func(i int) error) error {
	if n == 0 {
		return nil
	}
	sem := make(chan struct{}, p.opts.Parallel)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// runReplica creates replica index of rec, copies its config files in and
// starts it.
func (p *Provider) runReplica(ctx context.Context, rec *record, env []string, net string, index int) (string, error) {
	spec := &rec.Spec
	ext, _ := decodeExtension(spec)
	cname := fmt.Sprintf("%s%s-%d-%s", p.opts.NamePrefix, spec.Name, index, randHex(3))
	stopSecs := p.stopTimeoutSeconds()
	cfg := &container.Config{
		Image:       spec.Image,
		Hostname:    fmt.Sprintf("%s-%d", spec.Name, index),
		Env:         append(slices.Clip(env), "ALPHASWARM_REPLICA="+strconv.Itoa(index)),
		Labels:      p.replicaLabels(rec, index),
		Healthcheck: healthConfig(spec.HealthCheck),
		StopTimeout: &stopSecs,
		StopSignal:  ext.StopSignal,
		User:        ext.User,
	}
	if len(spec.Command) > 0 {
		cfg.Entrypoint = spec.Command
	}
	if len(spec.Args) > 0 {
		cfg.Cmd = spec.Args
	}
	host := &container.HostConfig{
		NetworkMode:   container.NetworkMode(net),
		RestartPolicy: container.RestartPolicy{Name: container.RestartPolicyMode(p.opts.RestartPolicy)},
		Init:          p.opts.Init,
	}
	if len(spec.Ports) > 0 {
		cfg.ExposedPorts = network.PortSet{}
		host.PortBindings = network.PortMap{}
		for _, pt := range spec.Ports {
			proto := network.IPProtocol(pt.Protocol)
			if proto == "" {
				proto = "tcp"
			}
			port, ok := network.PortFrom(uint16(pt.Container), proto)
			if !ok {
				return "", workload.Errorf(workload.InvalidArgument, "port %d/%s", pt.Container, proto)
			}
			cfg.ExposedPorts[port] = struct{}{}
			hp := ""
			if pt.Host > 0 {
				hp = strconv.Itoa(pt.Host)
			}
			// The bind address: the spec's, else the target policy's
			// default (loopback unless the admin says otherwise).
			addr, err := netip.ParseAddr(p.policy.BindAddress(pt.HostIP))
			if err != nil {
				return "", workload.Invalid(workload.FieldError{Path: "ports.hostIP", Message: "must be an IP address"})
			}
			host.PortBindings[port] = append(host.PortBindings[port], network.PortBinding{HostIP: addr, HostPort: hp})
		}
	}
	if m, _ := spec.Resources.MilliCPU(); m > 0 {
		host.Resources.NanoCPUs = m * 1_000_000
	}
	if b, _ := spec.Resources.MemoryBytes(); b > 0 {
		host.Resources.Memory = b
	}
	var nc *network.NetworkingConfig
	if net != "" {
		nc = &network.NetworkingConfig{EndpointsConfig: map[string]*network.EndpointSettings{
			net: {Aliases: []string{spec.Name, fmt.Sprintf("%s-%d", spec.Name, index)}},
		}}
	}
	created, err := p.eng.ContainerCreate(ctx, client.ContainerCreateOptions{Name: cname, Config: cfg, HostConfig: host, NetworkingConfig: nc})
	if err != nil {
		return "", p.wrap(err, fmt.Sprintf("create replica %d of %s", index, spec.Name))
	}
	if len(spec.Config) > 0 {
		tarball, err := configTar(p.opts.ConfigDir, spec.Config)
		if err != nil {
			return created.ID, err
		}
		if _, err := p.eng.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: bytes.NewReader(tarball)}); err != nil {
			return created.ID, p.wrap(err, fmt.Sprintf("write the config of replica %d of %s", index, spec.Name))
		}
	}
	if _, err := p.eng.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return created.ID, p.wrap(err, fmt.Sprintf("start replica %d of %s", index, spec.Name))
	}
	return created.ID, nil
}

// configTar is the archive ApplyConfig's files travel in: dir and its
// parents, then one file per key (keys are validated to be safe file
// names), readable by every user.
func configTar(dir string, config map[string]string) ([]byte, error) {
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	now := time.Now()
	parts := strings.Split(strings.Trim(dir, "/"), "/")
	for i := range parts {
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeDir, Name: path.Join(parts[:i+1]...) + "/", Mode: 0o755, ModTime: now}); err != nil {
			return nil, err
		}
	}
	keys := make([]string, 0, len(config))
	for k := range config {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	for _, k := range keys {
		v := config[k]
		if err := tw.WriteHeader(&tar.Header{Typeflag: tar.TypeReg, Name: path.Join(strings.Trim(dir, "/"), k), Mode: 0o644, Size: int64(len(v)), ModTime: now}); err != nil {
			return nil, err
		}
		if _, err := io.WriteString(tw, v); err != nil {
			return nil, err
		}
	}
	if err := tw.Close(); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

// healthConfig translates a health check into a Docker health check. HTTP
// and TCP checks run inside the container, so they need a shell and wget,
// curl or nc in the image; images without them (FROM scratch) use an exec
// check.
func healthConfig(hc *workload.HealthCheck) *container.HealthConfig {
	if hc == nil {
		return nil
	}
	out := &container.HealthConfig{
		Interval:    hc.Interval.D(),
		Timeout:     hc.Timeout.D(),
		Retries:     hc.Retries,
		StartPeriod: hc.StartPeriod.D(),
	}
	// Docker's own default interval is 30s, far too slow to report a
	// fresh replica ready.
	if out.Interval == 0 {
		out.Interval = 2 * time.Second
	}
	if out.Timeout == 0 {
		out.Timeout = 5 * time.Second
	}
	if out.Retries == 0 {
		out.Retries = 3
	}
	switch {
	case len(hc.Exec) > 0:
		out.Test = append([]string{"CMD"}, hc.Exec...)
	case hc.HTTP != nil:
		u := shellQuote(fmt.Sprintf("http://127.0.0.1:%d%s", hc.HTTP.Port, hc.HTTP.Path))
		out.Test = []string{"CMD-SHELL", fmt.Sprintf("wget -q -O /dev/null %s || curl -fsS -o /dev/null %s || exit 1", u, u)}
	case hc.TCP != nil:
		out.Test = []string{"CMD-SHELL", fmt.Sprintf("nc -z 127.0.0.1 %d || exit 1", hc.TCP.Port)}
	}
	return out
}

func shellQuote(s string) string { return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'" }

// waitReplicas waits until every container in ids is running (and healthy,
// if it has a health check; running for settle, if not), or one has
// failed, or ctx ends.
func (p *Provider) waitReplicas(ctx context.Context, ids []string, settle time.Duration) result {
	var res result
	pending := slices.Clone(ids)
	firstRunning := map[string]time.Time{}
	delay := 10 * time.Millisecond
	for len(pending) > 0 {
		next := pending[:0]
		wait := delay
		for _, id := range pending {
			r, err := p.eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
			if err != nil {
				if ctx.Err() != nil {
					res.timedOut = true
					return res
				}
				if classify(err) == workload.NotFound {
					res.failed = append(res.failed, shortID(id)+" was removed")
					continue
				}
				next = append(next, id)
				continue
			}
			st := r.Container.State
			name := strings.TrimPrefix(r.Container.Name, "/")
			switch {
			case st == nil:
				next = append(next, id)
			case st.Status == container.StateExited || st.Status == container.StateDead:
				msg := fmt.Sprintf("%s exited with code %d", name, st.ExitCode)
				if st.OOMKilled {
					msg += " (out of memory)"
				}
				if st.Error != "" {
					msg += ": " + st.Error
				}
				if tail := p.lastLogs(ctx, id, 5); tail != "" {
					msg += "; last output: " + tail
				}
				res.failed = append(res.failed, msg)
			case st.Status == container.StateRunning && (st.Health == nil || st.Health.Status == container.NoHealthcheck):
				if settle > 0 {
					first, ok := firstRunning[id]
					if !ok {
						first = time.Now()
						firstRunning[id] = first
					}
					if left := settle - time.Since(first); left > 0 {
						next = append(next, id)
						wait = min(wait, left)
					}
				}
			case st.Status == container.StateRunning && st.Health.Status == container.Healthy:
			case st.Status == container.StateRunning && st.Health.Status == container.Unhealthy:
				msg := name + " failed its health check"
				if n := len(st.Health.Log); n > 0 {
					msg += ": " + strings.TrimSpace(st.Health.Log[n-1].Output)
				}
				res.failed = append(res.failed, msg)
			default:
				next = append(next, id)
			}
		}
		pending = next
		if len(res.failed) > 0 || len(pending) == 0 {
			return res
		}
		select {
		case <-ctx.Done():
			res.timedOut = true
			return res
		case <-time.After(wait):
		}
		delay = min(2*delay, 250*time.Millisecond)
	}
	return res
}

// lastLogs returns a container's last n lines of output, joined.
func (p *Provider) lastLogs(ctx context.Context, id string, n int) string {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	rc, err := p.eng.ContainerLogs(ctx, id, client.ContainerLogsOptions{ShowStdout: true, ShowStderr: true, Tail: strconv.Itoa(n)})
	if err != nil {
		return ""
	}
	defer rc.Close()
	var out bytes.Buffer
	if _, err := stdcopy.StdCopy(&out, &out, io.LimitReader(rc, 8<<10)); err != nil {
		return ""
	}
	lines := strings.Fields(strings.ReplaceAll(strings.TrimSpace(out.String()), "\n", " | "))
	return p.creds.Redact(strings.Join(lines, " "))
}

// removeReplica stops a container gracefully (SIGTERM, then SIGKILL after
// the stop timeout) and removes it. A container already gone is fine.
func (p *Provider) removeReplica(ctx context.Context, id string) error {
	t := p.stopTimeoutSeconds()
	if _, err := p.eng.ContainerStop(ctx, id, client.ContainerStopOptions{Timeout: &t}); err != nil && classify(err) != workload.NotFound {
		if classify(err) == workload.Unavailable || classify(err) == workload.Timeout {
			return p.wrap(err, "stop container "+shortID(id))
		}
	}
	if _, err := p.eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
		switch {
		case classify(err) == workload.NotFound:
		case classify(err) == workload.Conflict && strings.Contains(err.Error(), "already in progress"):
		default:
			return p.wrap(err, "remove container "+shortID(id))
		}
	}
	return nil
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
			return workload.DeploymentStatus{}, p.wrap(rerr, "read back "+name)
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

func (p *Provider) stoppedStatus(name string) workload.DeploymentStatus {
	return workload.DeploymentStatus{
		ID: p.serviceID(name), Name: name, Target: p.target, Provider: Name,
		Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: time.Now().UTC(),
	}
}

// loadForMutation reads the service's record for Scale, Restart and
// ApplyConfig: NotFound if the service was never started (or was stopped).
func (p *Provider) loadForMutation(ctx context.Context, name string) (*record, []string, error) {
	if err := checkName(name); err != nil {
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
			return nil, nil, notFound("service %s has replicas but its spec anchor is gone; Start it again", name)
		}
		return nil, nil, notFound("service %s not found on docker target %s", name, p.target)
	}
	return rec, anchors, nil
}

// Scale implements provider.Provider. Scaling down removes the highest
// indices first; scaling to 0 keeps the anchor, so the service stays known
// (Stopped, desired 0) and can be scaled up again, also by a controller
// started later.
func (p *Provider) Scale(ctx context.Context, serviceID string, replicas int) (workload.DeploymentStatus, error) {
	if m := workload.ValidateReplicas(replicas); m != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: m})
	}
	defer p.lock(serviceID)()
	rec, anchors, err := p.loadForMutation(ctx, serviceID)
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
	p.cache.setBusy(serviceID, "scale", 1)
	res, err := p.apply(ctx, &next, env, anchors, false, true, 0)
	p.cache.setBusy(serviceID, "", -1)
	return p.finish(ctx, serviceID, res, err)
}

// Restart implements provider.Restarter: every replica is replaced by a
// new container (new id, new start time), one at a time.
func (p *Provider) Restart(ctx context.Context, serviceID string) (workload.DeploymentStatus, error) {
	defer p.lock(serviceID)()
	rec, anchors, err := p.loadForMutation(ctx, serviceID)
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
	p.cache.setBusy(serviceID, "restart", 1)
	res, err := p.apply(ctx, rec, env, anchors, true, false, 0)
	p.cache.setBusy(serviceID, "", -1)
	return p.finish(ctx, serviceID, res, err)
}

// ApplyConfig implements provider.Provider. The config is persisted in the
// anchor and delivered as files, one per key, in Options.ConfigDir
// (default /etc/alphaswarm/config; ALPHASWARM_CONFIG_DIR names it), copied
// into each new replica before it starts; the replicas are rolled so every
// process starts with the new files. Replicas added later get them too.
func (p *Provider) ApplyConfig(ctx context.Context, serviceID string, config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	defer p.lock(serviceID)()
	rec, anchors, err := p.loadForMutation(ctx, serviceID)
	if err != nil {
		return err
	}
	if rec.Spec.Compose != nil {
		return errorf(workload.Unsupported, "apply_config: service %s runs a Compose file, which carries its own configuration; edit the file and Start again", serviceID)
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
	p.cache.setBusy(serviceID, "apply_config", 1)
	res, err := p.apply(ctx, &next, env, anchors, false, true, p.opts.MinReady.D())
	p.cache.setBusy(serviceID, "", -1)
	st, err := p.finish(ctx, serviceID, res, err)
	if err != nil {
		return err
	}
	var e *workload.Error
	switch {
	case len(res.failed) > 0:
		e = workload.Errorf(workload.RolloutFailed, "config of %s applied, but the rollout failed: %s", serviceID, st.Message)
	case res.timedOut:
		e = workload.Errorf(workload.Timeout, "config of %s applied; the rollout did not finish before the deadline: %s", serviceID, st.Message)
	default:
		return nil
	}
	e.Provider, e.Status = Name, &st
	return e
}

// Stop implements provider.Provider: the replicas are stopped gracefully
// and removed, then the anchor and the network. A second Stop, or a Stop
// of an unknown service, finds nothing and answers Stopped.
func (p *Provider) Stop(ctx context.Context, serviceID string) (workload.DeploymentStatus, error) {
	if err := checkName(serviceID); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.cache.waitReady(ctx); err != nil {
		return workload.DeploymentStatus{}, err
	}
	defer p.lock(serviceID)()
	rec, anchors, err := p.readRecord(ctx, serviceID)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	p.cache.setBusy(serviceID, "stop", 1)
	err = p.stopAll(ctx, serviceID, rec, anchors)
	p.cache.setBusy(serviceID, "", -1)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	rctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
	defer cancel()
	_ = p.cache.resync(rctx, serviceID)
	return p.stoppedStatus(serviceID), nil
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
			return p.wrap(err, "remove the spec anchor of "+name)
		}
	}
	net := p.networkName(name)
	if _, err := p.eng.NetworkRemove(ctx, net, client.NetworkRemoveOptions{}); err != nil && classify(err) != workload.NotFound {
		return p.wrap(err, "remove network "+net)
	}
	return nil
}

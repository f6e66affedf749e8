package docker

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/pkg/stdcopy"
	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

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
func (p *Provider) apply(ctx context.Context, op string, rec *record, env []string, anchors []string, force, persist bool, settle time.Duration) (res result, err error) {
	name := rec.Spec.Name
	// Errors met after the first change must not promise that nothing
	// changed (NotFound for an image removed meanwhile, AlreadyExists...).
	defer func() { err = provider.AfterChange(Name, err, "") }()
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
	unrolled := p.takeUnrolled(name) // replicas a superseded background restart did not reach
	pl := planReplicas(reps, rec.Spec.Replicas, hash, force, unrolled)
	// 1. Replicas beyond the desired count, highest index first.
	if err := p.retire(ctx, replicaIDs(pl.extra), async); err != nil {
		return result{}, err
	}
	// 2. Stopped replicas and duplicates, removed before the fresh ones start.
	dead, fresh := replicaIDs(pl.dead), pl.fresh
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
			res = p.waitReplicas(ctx, name, ids, settle)
			if len(res.failed) > 0 || res.timedOut {
				return res, nil
			}
		}
	}
	// 4. Rolling replacement, one replica at a time.
	if len(pl.roll) == 0 {
		return res, nil
	}
	rl := &rolling{rec: rec, env: env, net: net, settle: settle, async: async, force: force, steps: pl.roll}
	if !provider.Waits(ctx) {
		return res, p.rollBehind(ctx, op, rl)
	}
	return p.roll(ctx, rl)
}

// plan is what apply does to a service's replicas to converge them to a
// spec: computed from the listed replicas alone, so Diff (diff.go) and
// apply decide the same way.
type plan struct {
	extra []replica  // beyond the desired count (or without an index), highest index first
	dead  []replica  // not running, or a running duplicate of an index: removed
	fresh []int      // wanted indices with no running replica: created
	roll  []rollStep // running replicas of another spec (all of them, forced): replaced
}

// changed reports whether apply would touch any container.
func (pl plan) changed() bool {
	return len(pl.extra)+len(pl.dead)+len(pl.fresh)+len(pl.roll) > 0
}

// planReplicas plans the convergence of reps (the service's replicas,
// draining ones left out) to desired replicas of the spec whose hash is
// hash. At each wanted index the newest running replica is kept, or
// replaced when it runs another spec, when force is set, or when a
// superseded background restart did not reach it (unrolled).
func planReplicas(reps []replica, desired int, hash string, force bool, unrolled map[string]bool) plan {
	var pl plan
	byIndex := map[int][]replica{}
	for _, r := range reps {
		byIndex[r.index] = append(byIndex[r.index], r)
	}
	var extra []int
	for idx := range byIndex {
		if idx >= desired || idx < 0 {
			extra = append(extra, idx)
		}
	}
	slices.Sort(extra)
	slices.Reverse(extra)
	for _, idx := range extra {
		pl.extra = append(pl.extra, byIndex[idx]...)
	}
	for idx := range desired {
		rs := byIndex[idx]
		slices.SortFunc(rs, func(a, b replica) int { return int(b.created - a.created) })
		var keep *replica
		for i := range rs {
			r := &rs[i]
			if keep == nil && r.state == container.StateRunning {
				keep = r
				continue
			}
			pl.dead = append(pl.dead, *r)
		}
		switch {
		case keep == nil:
			pl.fresh = append(pl.fresh, idx)
		case force || keep.hash != hash || unrolled[keep.id]:
			pl.roll = append(pl.roll, rollStep{index: idx, old: keep.id})
		}
	}
	return pl
}

func replicaIDs(reps []replica) []string {
	out := make([]string, len(reps))
	for i, r := range reps {
		out[i] = r.id
	}
	return out
}

// rolling is a rolling replacement: each step replaces the running replica
// at one index with a new container. Without fixed host ports (async) the
// new replica starts before the old one stops, so there is no capacity
// dip; with them the old one must free the port first.
type rolling struct {
	rec    *record
	env    []string
	net    string
	settle time.Duration
	async  bool
	force  bool // a restart: the replaced replicas may run the same spec
	steps  []rollStep
}

type rollStep struct {
	index int
	old   string // the running replica the step replaces
}

// startStep begins step s: the old replica goes first where it holds fixed
// host ports, then the new one is created and started.
func (p *Provider) startStep(ctx context.Context, rl *rolling, s rollStep) (string, error) {
	if !rl.async {
		if err := p.removeReplica(ctx, s.old); err != nil {
			return "", err
		}
	}
	return p.runReplica(ctx, rl.rec, rl.env, rl.net, s.index)
}

// finishStep waits under ctx for id, the new replica of step s. Once it is
// ready the old one drains; if it fails (async) it is removed and the old
// one keeps serving. If ctx ends first, both stay as they are.
func (p *Provider) finishStep(ctx context.Context, rl *rolling, s rollStep, id string) result {
	r := p.waitReplicas(ctx, rl.rec.Spec.Name, []string{id}, rl.settle)
	switch {
	case len(r.failed) > 0 && rl.async:
		cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
		_ = p.removeReplica(cctx, id)
		cancel()
		r.failed = append(r.failed, fmt.Sprintf("rollout stopped at replica %d; the previous replicas keep serving", s.index))
	case len(r.failed) == 0 && !r.timedOut && rl.async:
		p.drain([]string{s.old})
	}
	return r
}

// roll carries out rl one step at a time, each new replica waited for
// before the next step.
func (p *Provider) roll(ctx context.Context, rl *rolling) (result, error) {
	for _, s := range rl.steps {
		id, err := p.startStep(ctx, rl, s)
		if err != nil {
			return result{}, err
		}
		if r := p.finishStep(ctx, rl, s, id); len(r.failed) > 0 || r.timedOut {
			return r, nil
		}
	}
	return result{}, nil
}

// rollout is a rolling replacement that goes on in the background after a
// no-wait operation answered (provider.WithoutWait). The next operation on
// the service supersedes it: lock cancels it and waits until it has
// stopped, so operations on one service stay serialised. Close cancels it
// too.
type rollout struct {
	cancel context.CancelFunc
	done   chan struct{} // closed once the rollout has stopped
}

// rollBehind starts the first step of rl under ctx (so the operation's
// answer reflects a started replacement, and an Engine error is the
// operation's) and hands the rest to a goroutine: it waits for each new
// replica with the same replace-then-retire order as roll, then starts the
// next. The service reads Progressing (busy op) until the rollout ends.
func (p *Provider) rollBehind(ctx context.Context, op string, rl *rolling) error {
	name := rl.rec.Spec.Name
	first, err := p.startStep(ctx, rl, rl.steps[0])
	if err != nil {
		return err
	}
	rctx, cancel := context.WithCancel(p.rollCtx)
	ro := &rollout{cancel: cancel, done: make(chan struct{})}
	p.locksMu.Lock()
	p.locks[name].roll = ro
	p.locksMu.Unlock()
	p.cache.setBusy(name, op, 1)
	p.rolls.Add(1)
	go p.rollOn(rctx, ro, rl, first)
	return nil
}

// rollOn is the background part of rollBehind; id is the new replica of
// the first step. When it is superseded (ctx cancelled) while a new
// replica is not yet ready, that replica drains and the old one keeps
// serving; a restart records the replicas it did not reach, so the
// superseding operation replaces them too (takeUnrolled).
func (p *Provider) rollOn(ctx context.Context, ro *rollout, rl *rolling, id string) {
	name := rl.rec.Spec.Name
	var left []rollStep
	var note string
	defer func() {
		p.locksMu.Lock()
		if l := p.locks[name]; l.roll == ro {
			l.roll = nil
			if rl.force && len(left) > 0 {
				l.unrolled = map[string]bool{}
				for _, s := range left {
					l.unrolled[s.old] = true
				}
			}
		}
		p.locksMu.Unlock()
		p.cache.endRollout(name, note)
		ro.cancel()
		close(ro.done)
		p.rolls.Done()
	}()
	for i, s := range rl.steps {
		if i > 0 {
			if ctx.Err() != nil {
				left = rl.steps[i:]
				return
			}
			sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), p.opts.StopTimeout.D()+time.Minute)
			var err error
			id, err = p.startStep(sctx, rl, s)
			cancel()
			if err != nil {
				note = fmt.Sprintf("rollout stopped at replica %d: %v", s.index, err)
				slog.Warn("docker: a background rollout stopped", "service", name, "replica", s.index, "err", err)
				return
			}
		}
		r := p.finishStep(ctx, rl, s, id)
		switch {
		case len(r.failed) > 0:
			note = strings.Join(r.failed, "; ")
			return
		case r.timedOut: // superseded, or the provider is closing
			if rl.async {
				p.drain([]string{id})
				left = rl.steps[i:]
			} else {
				left = rl.steps[i+1:]
			}
			return
		}
	}
}

// takeUnrolled returns (and forgets) the replicas of name that a superseded
// background restart did not replace.
func (p *Provider) takeUnrolled(name string) map[string]bool {
	p.locksMu.Lock()
	defer p.locksMu.Unlock()
	l := p.locks[name]
	if l == nil {
		return nil
	}
	u := l.unrolled
	l.unrolled = nil
	return u
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
	opts, err := p.replicaContainer(rec, env, net, index)
	if err != nil {
		return "", err
	}
	created, err := p.eng.ContainerCreate(ctx, opts)
	if err != nil {
		return "", provider.Wrap(Name, p.classifier, err, fmt.Sprintf("create replica %d of %s", index, spec.Name))
	}
	if len(spec.Config) > 0 {
		tarball, err := configTar(p.opts.ConfigDir, spec.Config)
		if err != nil {
			return created.ID, err
		}
		if _, err := p.eng.CopyToContainer(ctx, created.ID, client.CopyToContainerOptions{DestinationPath: "/", Content: bytes.NewReader(tarball)}); err != nil {
			return created.ID, provider.Wrap(Name, p.classifier, err, fmt.Sprintf("write the config of replica %d of %s", index, spec.Name))
		}
	}
	if _, err := p.eng.ContainerStart(ctx, created.ID, client.ContainerStartOptions{}); err != nil {
		return created.ID, provider.Wrap(Name, p.classifier, err, fmt.Sprintf("start replica %d of %s", index, spec.Name))
	}
	return created.ID, nil
}

// waitReplicas waits until every container in ids (replicas of service
// name) is running (and healthy, if it has a health check; running for
// settle, if not), or one has failed, or ctx ends. It inspects them again
// as soon as the cache sees a change of the service (the Engine's start,
// die and health_status events), and at least on a backoff from 10ms to
// 250ms should an event be missed.
func (p *Provider) waitReplicas(ctx context.Context, name string, ids []string, settle time.Duration) result {
	var res result
	sub, unsubscribe := p.cache.subs.Subscribe(name)
	defer unsubscribe()
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
		timer := time.NewTimer(wait)
		select {
		case <-ctx.Done():
			timer.Stop()
			res.timedOut = true
			return res
		case <-sub.Wake():
			sub.Take()
		case <-timer.C:
		}
		timer.Stop()
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
			return provider.Wrap(Name, p.classifier, err, "stop container "+shortID(id))
		}
	}
	if _, err := p.eng.ContainerRemove(ctx, id, client.ContainerRemoveOptions{Force: true}); err != nil {
		switch {
		case classify(err) == workload.NotFound:
		case classify(err) == workload.Conflict && strings.Contains(err.Error(), "already in progress"):
		default:
			return provider.Wrap(Name, p.classifier, err, "remove container "+shortID(id))
		}
	}
	return nil
}

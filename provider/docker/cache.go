package docker

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/moby/moby/api/types/container"
	"github.com/moby/moby/api/types/events"
	"github.com/moby/moby/client"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// instance is the cache's view of one replica container.
type instance struct {
	id         string
	name       string
	index      int
	hash       string
	composeSvc string
	state      container.ContainerState
	health     container.HealthStatus // "" without a health check
	exitCode   int
	oomKilled  bool
	errMsg     string
	created    time.Time
	started    time.Time
	finished   time.Time
	restarts   int
	tty        bool
	// inspected is set once an inspection has filled in what events do not
	// say (whether there is a health check, start time, restart count);
	// until then the replica counts as pending, never ready.
	inspected bool
	hasHealth bool
	// terminating is set on snapshot copies of replicas being drained.
	terminating bool
	// seq is the cache sequence number of the last event or inspection
	// that set this entry; an inspection that began before a later event
	// does not overwrite what the event said.
	seq uint64
}

func (in *instance) running() bool {
	return in.state == container.StateRunning || in.state == container.StateRestarting || in.state == container.StatePaused
}

func (in *instance) ready() bool {
	return in.inspected && in.state == container.StateRunning && (!in.hasHealth || in.health == container.Healthy)
}

// pending: not ready yet, but on its way there.
func (in *instance) pending() bool {
	return in.state == container.StateCreated || in.state == container.StateRestarting ||
		(in.state == container.StateRunning && (!in.inspected || (in.hasHealth && (in.health == "" || in.health == container.Starting))))
}

type anchorEntry struct {
	id  string
	gen int64
	rec *record
	seq uint64
}

type serviceEntry struct {
	name     string
	anchors  map[string]*anchorEntry
	replicas map[string]*instance
	busy     int
	busyOp   string
	// note says why the last background rollout stopped short; cleared
	// when the next operation starts.
	note string
}

func (s *serviceEntry) anchor() *anchorEntry {
	var best *anchorEntry
	for _, a := range s.anchors {
		if a.rec != nil && (best == nil || a.gen > best.gen) {
			best = a
		}
	}
	return best
}

// cache is the provider's picture of its target: every container labelled
// with the target, grouped by service. It is rebuilt from labels when the
// event stream (re)connects and then kept current by the stream; every
// mutation also refreshes its service before returning, so a caller reads
// its own writes.
type cache struct {
	p *Provider

	startOnce sync.Once

	mu        sync.RWMutex
	svcs      map[string]*serviceEntry
	byID      map[string]string // container id -> service
	seq       uint64
	gone      map[string]uint64 // destroyed container ids (tombstones)
	connected bool
	// terminating holds replicas the provider is draining.
	terminating map[string]bool
	attempts    int
	lastErr     error
	changed     chan struct{} // closed and replaced when connection state changes

	subs provider.Subscribers // told of every change, by service

	dirtyMu sync.Mutex
	dirty   map[string]struct{}
	wake    chan struct{}
}

func newCache(p *Provider) *cache {
	return &cache{
		p:           p,
		svcs:        map[string]*serviceEntry{},
		byID:        map[string]string{},
		gone:        map[string]uint64{},
		changed:     make(chan struct{}),
		terminating: map[string]bool{},
		dirty:       map[string]struct{}{},
		wake:        make(chan struct{}, 1),
	}
}

// start launches the event loop and the inspection workers, once.
func (c *cache) start() {
	c.startOnce.Do(func() {
		c.p.wg.Add(3)
		go c.run()
		go c.inspector()
		go c.inspector()
	})
}

// waitReady starts the cache if needed and waits until it is in sync with
// the Engine. If the Engine cannot be reached it returns the reason
// (Unavailable) as soon as one attempt has failed.
func (c *cache) waitReady(ctx context.Context) error {
	if err := c.p.alive(); err != nil {
		return err
	}
	c.start()
	for {
		c.mu.RLock()
		connected, attempts, lastErr, ch := c.connected, c.attempts, c.lastErr, c.changed
		c.mu.RUnlock()
		if connected {
			return nil
		}
		if attempts > 0 && lastErr != nil {
			return c.p.syncError(lastErr)
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return provider.Wrap(Name, c.p.classifier, ctx.Err(), "wait for the docker event stream")
		case <-c.p.ctx.Done():
			return provider.Wrap(Name, c.p.classifier, errClosed, "")
		}
	}
}

func (c *cache) setConn(connected bool, err error) {
	c.mu.Lock()
	c.connected = connected
	if !connected {
		c.attempts++
		c.lastErr = err
	} else {
		c.lastErr = nil
	}
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *cache) run() {
	defer c.p.wg.Done()
	backoff := 100 * time.Millisecond
	for c.p.ctx.Err() == nil {
		began := time.Now()
		err := c.session()
		if c.p.ctx.Err() != nil {
			break
		}
		c.setConn(false, err)
		if time.Since(began) > 10*time.Second {
			backoff = 100 * time.Millisecond
		}
		select {
		case <-time.After(backoff):
		case <-c.p.ctx.Done():
		}
		backoff = min(2*backoff, 2*time.Second)
	}
	c.setConn(false, errClosed)
}

// session subscribes to the Engine's container events for this target,
// rebuilds the cache from labels, then applies events until the stream
// breaks. Subscribing first means no change between the rebuild and the
// stream is lost.
func (c *cache) session() error {
	ctx, cancel := context.WithCancel(c.p.ctx)
	defer cancel()
	f := c.p.scopeFilter().Add("type", "container")
	ev := c.p.eng.Events(ctx, client.EventsListOptions{Filters: f})
	if err := c.resync(ctx, ""); err != nil {
		return err
	}
	select {
	case err := <-ev.Err:
		return err
	default:
	}
	c.setConn(true, nil)
	c.p.warnUnscoped(ctx)
	for {
		select {
		case m := <-ev.Messages:
			c.onEvent(m)
		case err := <-ev.Err:
			if err == nil {
				err = fmt.Errorf("event stream closed")
			}
			return err
		case <-ctx.Done():
			return ctx.Err()
		}
	}
}

// resync lists the target's containers (of one service, if service is set)
// and inspects each, replacing what the cache holds for them.
func (c *cache) resync(ctx context.Context, service string) error {
	c.mu.RLock()
	startSeq := c.seq
	c.mu.RUnlock()
	f := c.p.scopeFilter()
	if service != "" {
		f.Add("label", labelService+"="+service)
	} else {
		f.Add("label", labelService)
	}
	list, err := c.p.eng.ContainerList(ctx, client.ContainerListOptions{All: true, Filters: f})
	if err != nil {
		return err
	}
	results := make([]*container.InspectResponse, len(list.Items))
	// Replicas being drained that the cache knows show as "terminating"
	// whatever their state, and inspecting one while the Engine stops it
	// can wait on the stop: they are not inspected again.
	draining := map[string]bool{}
	c.mu.RLock()
	for _, s := range list.Items {
		if _, known := c.byID[s.ID]; known && c.terminating[s.ID] {
			draining[s.ID] = true
		}
	}
	c.mu.RUnlock()
	sem := make(chan struct{}, 8)
	var wg sync.WaitGroup
	for i, s := range list.Items {
		if draining[s.ID] {
			continue
		}
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-sem }()
			r, err := c.p.eng.ContainerInspect(ctx, s.ID, client.ContainerInspectOptions{})
			if err == nil {
				results[i] = &r.Container
			}
		}()
	}
	wg.Wait()
	if err := ctx.Err(); err != nil {
		return err
	}
	seen := draining
	c.mu.Lock()
	defer c.mu.Unlock()
	for _, r := range results {
		if r == nil {
			continue // removed between list and inspect
		}
		seen[r.ID] = true
		c.applyInspectLocked(r, startSeq)
	}
	for id, svc := range c.byID {
		if seen[id] || (service != "" && svc != service) {
			continue
		}
		s := c.svcs[svc]
		if s == nil {
			continue
		}
		if in := s.replicas[id]; in != nil && in.seq <= startSeq {
			c.removeLocked(id)
		} else if a := s.anchors[id]; a != nil && a.seq <= startSeq {
			c.removeLocked(id)
		}
	}
	if len(c.gone) > 4096 {
		for id, seq := range c.gone {
			if seq <= startSeq {
				delete(c.gone, id)
			}
		}
	}
	return nil
}

func (c *cache) entryLocked(name string) *serviceEntry {
	s := c.svcs[name]
	if s == nil {
		s = &serviceEntry{name: name, anchors: map[string]*anchorEntry{}, replicas: map[string]*instance{}}
		c.svcs[name] = s
	}
	return s
}

func (c *cache) removeLocked(id string) {
	name, ok := c.byID[id]
	if !ok {
		return
	}
	delete(c.byID, id)
	if s := c.svcs[name]; s != nil {
		delete(s.replicas, id)
		delete(s.anchors, id)
		c.gcLocked(s)
	}
	c.subs.Notify(name)
}

func (c *cache) gcLocked(s *serviceEntry) {
	if len(s.replicas) == 0 && len(s.anchors) == 0 && s.busy == 0 {
		delete(c.svcs, s.name)
	}
}

func parseAnchor(id string, labels map[string]string, seq uint64) *anchorEntry {
	a := &anchorEntry{id: id, seq: seq}
	a.gen, _ = strconv.ParseInt(labels[labelGeneration], 10, 64)
	var rec record
	if err := json.Unmarshal([]byte(labels[labelSpec]), &rec); err == nil {
		a.rec = &rec
	}
	return a
}

func replicaIndex(labels map[string]string) int {
	if v, err := strconv.Atoi(labels[labelReplica]); err == nil {
		return v
	}
	if v, err := strconv.Atoi(labels[composeNumber]); err == nil {
		return v - 1
	}
	return 0
}

func parseTime(s string) time.Time {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil || t.Year() < 2000 {
		return time.Time{}
	}
	return t
}

func (c *cache) applyInspectLocked(r *container.InspectResponse, seq uint64) {
	if r.Config == nil || r.State == nil {
		return
	}
	labels := r.Config.Labels
	name := labels[labelService]
	if name == "" || !c.p.ours(labels) {
		return
	}
	if _, gone := c.gone[r.ID]; gone {
		return
	}
	s := c.entryLocked(name)
	c.byID[r.ID] = name
	if labels[labelRole] == roleAnchor {
		if a := s.anchors[r.ID]; a == nil || a.seq <= seq {
			s.anchors[r.ID] = parseAnchor(r.ID, labels, seq)
		}
		c.subs.Notify(name)
		return
	}
	hasHealth := r.State.Health != nil && r.State.Health.Status != container.NoHealthcheck ||
		r.Config.Healthcheck != nil && len(r.Config.Healthcheck.Test) > 0 && r.Config.Healthcheck.Test[0] != "NONE"
	if old := s.replicas[r.ID]; old != nil && old.seq > seq {
		// An event newer than this inspection already set the state; keep
		// it, and take only what events never say.
		old.inspected, old.hasHealth = true, hasHealth
		old.restarts, old.tty = r.RestartCount, r.Config.Tty
		if old.created.IsZero() {
			old.created = parseTime(r.Created)
		}
		if hasHealth && old.health == "" && r.State.Health != nil {
			old.health = r.State.Health.Status
		}
		c.subs.Notify(name)
		return
	}
	in := &instance{
		id:         r.ID,
		name:       strings.TrimPrefix(r.Name, "/"),
		index:      replicaIndex(labels),
		hash:       labels[labelSpecHash],
		composeSvc: labels[labelCompose],
		state:      r.State.Status,
		exitCode:   r.State.ExitCode,
		oomKilled:  r.State.OOMKilled,
		errMsg:     r.State.Error,
		created:    parseTime(r.Created),
		started:    parseTime(r.State.StartedAt),
		finished:   parseTime(r.State.FinishedAt),
		restarts:   r.RestartCount,
		tty:        r.Config.Tty,
		inspected:  true,
		hasHealth:  hasHealth,
		seq:        seq,
	}
	if hasHealth {
		in.health = container.Starting
		if r.State.Health != nil && r.State.Health.Status != container.NoHealthcheck {
			in.health = r.State.Health.Status
		}
	}
	s.replicas[r.ID] = in
	c.subs.Notify(name)
}

// onEvent applies one container event at once (so a kill shows within
// milliseconds) and queues an inspection to fill in the details.
func (c *cache) onEvent(m events.Message) {
	id := m.Actor.ID
	attrs := m.Actor.Attributes
	name := attrs[labelService]
	if id == "" || name == "" || !c.p.ours(attrs) {
		return
	}
	when := time.Unix(0, m.TimeNano)
	if m.TimeNano == 0 {
		when = time.Unix(m.Time, 0)
	}
	action := string(m.Action)
	switch {
	case m.Action == events.ActionCreate, m.Action == events.ActionStart, m.Action == events.ActionRestart,
		m.Action == events.ActionUnPause, m.Action == events.ActionPause, m.Action == events.ActionDie,
		m.Action == events.ActionOOM, m.Action == events.ActionRename, m.Action == events.ActionDestroy,
		strings.HasPrefix(action, string(events.ActionHealthStatus)):
	default:
		// exec_*, attach, resize, kill, stop, top...: no state change of
		// their own (a kill or stop is followed by die). Health checks
		// alone make two exec events per interval per replica.
		return
	}
	c.mu.Lock()
	c.seq++
	seq := c.seq
	if m.Action == events.ActionDestroy {
		c.gone[id] = seq
		c.removeLocked(id)
		c.mu.Unlock()
		return
	}
	if _, gone := c.gone[id]; gone {
		c.mu.Unlock()
		return
	}
	s := c.entryLocked(name)
	c.byID[id] = name
	if attrs[labelRole] == roleAnchor {
		if _, ok := s.anchors[id]; !ok {
			s.anchors[id] = parseAnchor(id, attrs, seq)
		}
		c.subs.Notify(name)
		c.mu.Unlock()
		return
	}
	in := s.replicas[id]
	if in == nil {
		in = &instance{id: id, name: attrs["name"], index: replicaIndex(attrs), hash: attrs[labelSpecHash],
			composeSvc: attrs[labelCompose], state: container.StateCreated, created: when}
		s.replicas[id] = in
	}
	inspect := true
	switch {
	case m.Action == events.ActionCreate:
		in.state = container.StateCreated
	case m.Action == events.ActionStart || m.Action == events.ActionRestart:
		in.state, in.started = container.StateRunning, when
		if in.hasHealth {
			in.health = container.Starting
		}
	case m.Action == events.ActionUnPause:
		in.state = container.StateRunning
	case m.Action == events.ActionPause:
		in.state = container.StatePaused
	case m.Action == events.ActionDie:
		in.state, in.finished = container.StateExited, when
		in.exitCode, _ = strconv.Atoi(attrs["exitCode"])
	case m.Action == events.ActionOOM:
		in.oomKilled = true
	case strings.HasPrefix(action, string(events.ActionHealthStatus)):
		in.health = container.HealthStatus(strings.TrimSpace(strings.TrimPrefix(action, string(events.ActionHealthStatus)+":")))
	case m.Action == events.ActionRename:
		in.name = strings.TrimPrefix(attrs["name"], "/")
		inspect = false
	}
	in.seq = seq
	c.subs.Notify(name)
	c.mu.Unlock()
	if inspect {
		c.markDirty(id)
	}
}

func (c *cache) markDirty(id string) {
	c.dirtyMu.Lock()
	c.dirty[id] = struct{}{}
	c.dirtyMu.Unlock()
	select {
	case c.wake <- struct{}{}:
	default:
	}
}

// inspector inspects containers that events marked dirty.
func (c *cache) inspector() {
	defer c.p.wg.Done()
	for {
		select {
		case <-c.p.ctx.Done():
			return
		case <-c.wake:
		}
		for {
			c.dirtyMu.Lock()
			var id string
			for k := range c.dirty {
				id = k
				break
			}
			delete(c.dirty, id)
			more := len(c.dirty) > 0
			c.dirtyMu.Unlock()
			if id == "" {
				break
			}
			if more {
				select {
				case c.wake <- struct{}{}: // let the other worker help
				default:
				}
			}
			c.inspectOne(id)
		}
	}
}

func (c *cache) inspectOne(id string) {
	c.mu.RLock()
	startSeq := c.seq
	c.mu.RUnlock()
	ctx, cancel := context.WithTimeout(c.p.ctx, 10*time.Second)
	defer cancel()
	r, err := c.p.eng.ContainerInspect(ctx, id, client.ContainerInspectOptions{})
	if err != nil {
		if classify(err) == workload.NotFound {
			c.mu.Lock()
			if name, ok := c.byID[id]; ok {
				if s := c.svcs[name]; s != nil {
					if in := s.replicas[id]; in != nil && in.seq <= startSeq {
						c.removeLocked(id)
					}
				}
			}
			c.mu.Unlock()
		} else if c.p.ctx.Err() == nil {
			slog.Debug("docker: inspect after event failed", "container", id, "err", err)
		}
		return
	}
	c.mu.Lock()
	c.applyInspectLocked(&r.Container, startSeq)
	c.mu.Unlock()
}

// setTerminating marks containers as draining (or no longer).
func (c *cache) setTerminating(ids []string, on bool) {
	c.mu.Lock()
	for _, id := range ids {
		if on {
			c.terminating[id] = true
		} else {
			delete(c.terminating, id)
		}
		if name, ok := c.byID[id]; ok {
			c.subs.Notify(name)
		}
	}
	c.mu.Unlock()
}

func (c *cache) isTerminating(id string) bool {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.terminating[id]
}

// endRollout marks a background rollout of name done (setBusy -1), with
// note saying why it stopped short ("" if it did not).
func (c *cache) endRollout(name, note string) {
	c.mu.Lock()
	if note != "" {
		c.entryLocked(name).note = note
	}
	c.mu.Unlock()
	c.setBusy(name, "", -1)
}

// setBusy marks a mutation of name in progress (the service reads
// Progressing meanwhile) or, with delta -1, done.
func (c *cache) setBusy(name, op string, delta int) {
	c.mu.Lock()
	s := c.entryLocked(name)
	s.busy += delta
	if delta > 0 {
		s.busyOp = op
		s.note = ""
	}
	if s.busy <= 0 {
		s.busy, s.busyOp = 0, ""
		c.gcLocked(s)
	}
	c.subs.Notify(name)
	c.mu.Unlock()
}

package kubernetes

import (
	"context"
	"iter"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/resourceversion"
	"k8s.io/client-go/informers"
	toolscache "k8s.io/client-go/tools/cache"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// syncWait bounds how long a call waits for the informers' first list
// when no list error has been seen yet.
const syncWait = 15 * time.Second

// serviceIndex indexes cached objects by their alphaswarm.service label.
const serviceIndex = "service"

// cache holds the target's Deployments, ReplicaSets and Pods, as shared
// informers filtered by the alphaswarm.target label keep them, and tells
// waiters and watchers when a service's objects change.
type cache struct {
	p       *Provider
	factory informers.SharedInformerFactory
	deps    toolscache.SharedIndexInformer
	rss     toolscache.SharedIndexInformer
	pods    toolscache.SharedIndexInformer

	subs provider.Subscribers // told of every change, by service

	mu      sync.Mutex
	changed map[string]chan struct{} // per service; closed at its next change
	lastErr error                    // the latest list/watch error, until the caches sync
}

func newCache(p *Provider) *cache {
	c := &cache{p: p, changed: map[string]chan struct{}{}}
	sel := labels.Set{LabelTarget: p.target}.AsSelector().String()
	c.factory = informers.NewSharedInformerFactoryWithOptions(p.kube, 0,
		informers.WithNamespace(p.opts.Namespace),
		informers.WithTweakListOptions(func(o *metav1.ListOptions) { o.LabelSelector = sel }),
		informers.WithTransform(stripManagedFields),
	)
	c.deps = c.factory.Apps().V1().Deployments().Informer()
	c.rss = c.factory.Apps().V1().ReplicaSets().Informer()
	c.pods = c.factory.Core().V1().Pods().Informer()
	for _, inf := range []toolscache.SharedIndexInformer{c.deps, c.rss, c.pods} {
		_ = inf.AddIndexers(toolscache.Indexers{serviceIndex: indexByService})
		_, _ = inf.AddEventHandler(toolscache.ResourceEventHandlerFuncs{
			AddFunc:    func(obj any) { c.notify(serviceOf(obj)) },
			UpdateFunc: func(_, obj any) { c.notify(serviceOf(obj)) },
			DeleteFunc: func(obj any) { c.notify(serviceOf(obj)) },
		})
		_ = inf.SetWatchErrorHandlerWithContext(func(_ context.Context, _ *toolscache.Reflector, err error) {
			c.mu.Lock()
			c.lastErr = err
			c.mu.Unlock()
		})
	}
	return c
}

func (c *cache) start(ctx context.Context) { c.factory.StartWithContext(ctx) }

func (c *cache) shutdown() { c.factory.Shutdown() }

// stripManagedFields drops what the cache never reads, to keep it small.
func stripManagedFields(obj any) (any, error) {
	if a, err := meta.Accessor(obj); err == nil {
		a.SetManagedFields(nil)
	}
	return obj, nil
}

func indexByService(obj any) ([]string, error) {
	if n := serviceOf(obj); n != "" {
		return []string{n}, nil
	}
	return nil, nil
}

func serviceOf(obj any) string {
	if d, ok := obj.(toolscache.DeletedFinalStateUnknown); ok {
		obj = d.Obj
	}
	a, err := meta.Accessor(obj)
	if err != nil {
		return ""
	}
	return a.GetLabels()[LabelService]
}

func (c *cache) notify(name string) {
	if name == "" {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if ch, ok := c.changed[name]; ok {
		close(ch)
		delete(c.changed, name)
	}
	c.subs.Notify(name)
}

// changedCh returns a channel closed at the next change of name's objects.
// Take it before reading the cache, so no change is missed.
func (c *cache) changedCh(name string) <-chan struct{} {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch, ok := c.changed[name]
	if !ok {
		ch = make(chan struct{})
		c.changed[name] = ch
	}
	return ch
}

func (c *cache) hasSynced() bool {
	return c.deps.HasSynced() && c.rss.HasSynced() && c.pods.HasSynced()
}

// waitSynced waits until the informers hold a first full list. If they
// do not have one after a moment, it asks the API server directly (a list
// of one Deployment), so an unreachable server or refused credentials are
// reported at once (Unavailable, Unauthenticated, PermissionDenied) rather
// than after the informers' back-off; otherwise it waits up to syncWait.
func (c *cache) waitSynced(ctx context.Context) error {
	if err := c.p.alive(); err != nil {
		return err
	}
	if c.hasSynced() {
		return nil
	}
	deadline := time.NewTimer(syncWait)
	defer deadline.Stop()
	probe := time.NewTimer(200 * time.Millisecond)
	defer probe.Stop()
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return provider.Wrap(Name, c.p.classified, ctx.Err(), "read the cluster's state")
		case <-deadline.C:
			c.mu.Lock()
			err := c.lastErr
			c.mu.Unlock()
			if err != nil {
				return c.syncError(err)
			}
			return provider.Errorf(Name, workload.Unavailable, "kubernetes API at %s: the first list of Deployments, ReplicaSets and Pods did not finish within %s", c.p.host, syncWait)
		case <-probe.C:
			if err := c.probe(ctx); err != nil && !c.hasSynced() {
				return c.syncError(err)
			}
			probe.Reset(2 * time.Second)
		case <-tick.C:
		}
		if c.hasSynced() {
			return nil
		}
	}
}

// probe lists at most one of the target's Deployments.
func (c *cache) probe(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	_, err := c.p.kube.AppsV1().Deployments(c.p.opts.Namespace).List(ctx, metav1.ListOptions{
		LabelSelector: labels.Set{LabelTarget: c.p.target}.AsSelector().String(), Limit: 1})
	return err
}

// syncError reports why the cache could not be filled. Whatever the API
// server said, the service's state could not be read: Unavailable, unless
// credentials were refused.
func (c *cache) syncError(err error) error {
	switch classify(err) {
	case workload.Unauthenticated, workload.PermissionDenied:
		return provider.Wrap(Name, c.p.classified, err, "list Deployments, ReplicaSets and Pods in namespace "+c.p.opts.Namespace)
	}
	e := provider.Errorf(Name, workload.Unavailable, "kubernetes API at %s: cannot list the target's objects: %v", c.p.host, err)
	e.Err = err
	return e
}

// deployment returns the cached Deployment of a service.
func (c *cache) deployment(name string) (*appsv1.Deployment, bool) {
	obj, ok, err := c.deps.GetIndexer().GetByKey(c.p.opts.Namespace + "/" + name)
	if err != nil || !ok {
		return nil, false
	}
	d, ok := obj.(*appsv1.Deployment)
	if !ok || d.Labels[LabelService] != name {
		return nil, false
	}
	return d, true
}

// podsOf returns the cached pods of a service.
func (c *cache) podsOf(name string) []*corev1.Pod {
	objs, _ := c.pods.GetIndexer().ByIndex(serviceIndex, name)
	out := make([]*corev1.Pod, 0, len(objs))
	for _, o := range objs {
		if pod, ok := o.(*corev1.Pod); ok {
			out = append(out, pod)
		}
	}
	slices.SortFunc(out, func(a, b *corev1.Pod) int { return strings.Compare(a.Name, b.Name) })
	return out
}

func (c *cache) replicaSetsOf(name string) []*appsv1.ReplicaSet {
	objs, _ := c.rss.GetIndexer().ByIndex(serviceIndex, name)
	out := make([]*appsv1.ReplicaSet, 0, len(objs))
	for _, o := range objs {
		if rs, ok := o.(*appsv1.ReplicaSet); ok {
			out = append(out, rs)
		}
	}
	return out
}

// derive computes a service's status from the cache; ok is false when the
// target has no Deployment for it.
func (c *cache) derive(name string) (derived, *appsv1.Deployment, bool) {
	dep, ok := c.deployment(name)
	if !ok {
		return derived{}, nil, false
	}
	d := derive(dep, c.replicaSetsOf(name), c.podsOf(name))
	c.p.fill(&d.status)
	return d, dep, true
}

// fill sets the fields every status of this target carries.
func (p *Provider) fill(st *workload.DeploymentStatus) {
	st.ID = workload.ServiceID(p.target, st.Name)
	st.Target = p.target
	st.Provider = Name
	st.ObservedAt = time.Now().UTC()
	if st.Instances == nil {
		st.Instances = []workload.Instance{}
	}
}

// stoppedStatus is the status of a service the target has no trace of.
func (p *Provider) stoppedStatus(name string) workload.DeploymentStatus {
	st := workload.DeploymentStatus{Name: name, Phase: workload.Stopped}
	p.fill(&st)
	return st
}

// rvAtLeast reports whether resource version have is want or newer. Resource
// versions are compared as the integers the API server makes them; if
// either is not one, the comparison cannot be made and the answer is true.
func rvAtLeast(have, want string) bool {
	if want == "" || have == want {
		return true
	}
	cmp, err := resourceversion.CompareResourceVersion(have, want)
	return err != nil || cmp >= 0
}

// Status implements provider.Provider. It reads the informer cache: no
// request reaches the API server.
func (p *Provider) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := workload.CheckName("name", name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.permitted(provider.OpStatus); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return workload.DeploymentStatus{}, err
	}
	d, _, ok := p.cache.derive(name)
	if !ok {
		return workload.DeploymentStatus{}, notFound(name)
	}
	return d.status, nil
}

// List implements provider.Lister: every Deployment of the target, by
// name, from the informer cache.
func (p *Provider) List(ctx context.Context) ([]workload.DeploymentStatus, error) {
	if err := p.permitted(provider.OpStatus); err != nil {
		return nil, err
	}
	if err := p.cache.waitSynced(ctx); err != nil {
		return nil, err
	}
	var names []string
	for _, obj := range p.cache.deps.GetIndexer().List() {
		if d, ok := obj.(*appsv1.Deployment); ok && d.Labels[LabelService] == d.Name {
			names = append(names, d.Name)
		}
	}
	slices.Sort(names)
	out := make([]workload.DeploymentStatus, 0, len(names))
	for _, n := range names {
		if d, _, ok := p.cache.derive(n); ok {
			out = append(out, d.status)
		}
	}
	return out, nil
}

// Watch implements provider.Watcher: a status each time a service's
// Deployment, ReplicaSets or Pods change (bursts are coalesced); a service
// whose Deployment is gone is reported Stopped. The stream ends with ctx,
// or with an error if the cache cannot be filled.
func (p *Provider) Watch(ctx context.Context) iter.Seq2[workload.DeploymentStatus, error] {
	return func(yield func(workload.DeploymentStatus, error) bool) {
		sub, cancel := p.cache.subs.Subscribe("")
		defer cancel()
		if err := p.cache.waitSynced(ctx); err != nil {
			yield(workload.DeploymentStatus{}, err)
			return
		}
		for {
			select {
			case <-ctx.Done():
				return
			case <-p.ctx.Done():
				yield(workload.DeploymentStatus{}, provider.Wrap(Name, p.classified, errClosed, ""))
				return
			case <-sub.Wake():
				for _, n := range sub.Take() {
					d, _, ok := p.cache.derive(n)
					st := d.status
					if !ok {
						st = p.stoppedStatus(n)
					}
					if !yield(st, nil) {
						return
					}
				}
			}
		}
	}
}

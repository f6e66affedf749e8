package kubernetes

import (
	"context"
	"errors"
	"fmt"
	"iter"
	"sync"
	"time"

	"k8s.io/client-go/rest"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// ManagedConfig describes a managed cluster (EKS, AKS, GKE) that a cloud
// provider reaches through its own API.
type ManagedConfig struct {
	// Provider is the cloud provider's name: statuses and errors of the
	// kubernetes provider are reported under it.
	Provider string
	// Target is the target's name.
	Target string
	// Cluster names the cluster in messages, e.g. `EKS cluster "prod" in
	// eu-west-1`.
	Cluster string
	// Options are the kubernetes provider's options; NewManaged checks
	// them.
	Options Options
	// Resolve asks the cloud's API for the cluster and returns the client
	// configuration of its API server, with credentials that refresh
	// themselves (a rest.Config.Wrap transport, an exec plugin...). Its
	// errors are the cloud provider's own.
	Resolve func(ctx context.Context) (*rest.Config, error)
	// ResolveTimeout bounds one attempt at Resolve; default 30s.
	ResolveTimeout time.Duration
	// Eager starts resolving in the background at once, instead of at the
	// first operation.
	Eager bool
	// OnClose, if set, runs once at Close, after the kubernetes provider
	// is closed (to close the cloud API's client).
	OnClose func() error
}

// Managed is the kubernetes provider of a managed cluster, under the cloud
// provider's name. The cluster is resolved by the first operation that
// needs it (or in the background from NewManaged on, with Eager), not when
// the target is opened: an unreachable cloud API does not stop the
// controller from starting. Operations wait for the attempt in flight, or
// their context; an attempt runs under its own deadline, so one caller's
// short context does not fail it for the others. A failed attempt is
// retried by the next operation; a successful one is kept until the
// cluster turns out to have changed under it: when an operation fails
// because the API server's certificate no longer verifies (a CA
// rotation), its address no longer answers (a new endpoint) or it refuses
// the credentials (rotated client certificates), the kubernetes provider
// is dropped and the next operation resolves the cluster again (at most
// every 30 s).
//
// A bad service name or spec is refused before the cluster is resolved,
// so InvalidArgument never depends on the cloud answering. Until the
// cluster is resolved UnsupportedReason knows nothing and reports every
// operation supported.
//
// Its methods may be called concurrently. Operations after Close return
// Unavailable.
type Managed struct {
	cfg     ManagedConfig
	baseCtx context.Context // the provider's lifetime; cancelled by Close
	cancel  context.CancelFunc
	wg      sync.WaitGroup

	mu      sync.Mutex
	kube    *Provider       // nil until resolved
	attempt *managedAttempt // the attempt in flight, if any
	closed  bool
	dropped time.Time // when a stale kube was last dropped
}

// staleEvery bounds how often a cluster found stale is resolved again.
const staleEvery = 30 * time.Second

// managedAttempt is one attempt at resolving the cluster; done is closed
// when kube or err is set.
type managedAttempt struct {
	done chan struct{}
	kube *Provider
	err  error
}

// Interface guard: a managed cluster offers what the kubernetes provider
// does.
var _ Capabilities = (*Managed)(nil)

// NewManaged checks the configuration and the kubernetes options and
// returns the provider. It does not call Resolve unless cfg.Eager is set.
func NewManaged(cfg ManagedConfig) (*Managed, error) {
	if m := workload.ValidateName(cfg.Target); m != "" {
		return nil, workload.Invalid(workload.FieldError{Path: "targets.name", Message: m})
	}
	if cfg.Provider == "" || cfg.Resolve == nil {
		return nil, errors.New("kubernetes.NewManaged: Provider and Resolve are required")
	}
	o := cfg.Options
	if err := o.defaults(cfg.Target); err != nil {
		return nil, err
	}
	if cfg.ResolveTimeout <= 0 {
		cfg.ResolveTimeout = 30 * time.Second
	}
	if cfg.Cluster == "" {
		cfg.Cluster = "the cluster"
	}
	m := &Managed{cfg: cfg}
	m.baseCtx, m.cancel = context.WithCancel(context.Background())
	if cfg.Eager {
		m.mu.Lock()
		m.startLocked()
		m.mu.Unlock()
	}
	return m, nil
}

// ProviderName implements provider.Named: the cloud provider's name.
func (m *Managed) ProviderName() string { return m.cfg.Provider }

// ExtensionNames says which spec.extensions block a managed cluster reads:
// the kubernetes provider's, not the cloud provider's.
func (m *Managed) ExtensionNames() []string { return []string{Name} }

// Namespace returns the namespace the target's services live in.
func (m *Managed) Namespace() string {
	if m.cfg.Options.Namespace == "" {
		return "default"
	}
	return m.cfg.Options.Namespace
}

// Resolved reports whether the cluster has been reached.
func (m *Managed) Resolved() bool {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.kube != nil
}

func (m *Managed) errClosed() error {
	e := workload.Errorf(workload.Unavailable, "target %s (%s) is closed", m.cfg.Target, m.cfg.Cluster)
	e.Provider = m.cfg.Provider
	return e
}

// startLocked starts an attempt at resolving the cluster; m.mu is held.
func (m *Managed) startLocked() *managedAttempt {
	a := &managedAttempt{done: make(chan struct{})}
	m.attempt = a
	m.wg.Add(1)
	go func() {
		defer m.wg.Done()
		ctx, cancel := context.WithTimeout(m.baseCtx, m.cfg.ResolveTimeout)
		kube, err := m.resolve(ctx)
		cancel()
		var orphan *Provider
		m.mu.Lock()
		m.attempt = nil
		switch {
		case m.closed:
			// Close cancelled the attempt, or it succeeded too late:
			// either way its waiters learn that the target is closed.
			orphan, kube, err = kube, nil, m.errClosed()
		case err == nil:
			m.kube = kube
		}
		m.mu.Unlock()
		if orphan != nil {
			_ = orphan.Close()
		}
		a.kube, a.err = kube, err
		close(a.done)
	}()
	return a
}

// resolve asks the cloud for the cluster and builds its kubernetes provider.
func (m *Managed) resolve(ctx context.Context) (*Provider, error) {
	rc, err := m.cfg.Resolve(ctx)
	if err != nil && ctx.Err() != nil && errors.Is(err, ctx.Err()) {
		// The attempt's own deadline: say what was being waited for.
		err = workload.Errorf(workload.Timeout, "resolving %s took longer than %v: %w", m.cfg.Cluster, m.cfg.ResolveTimeout, err)
	}
	if err != nil {
		if we := workload.AsError(err); we.Provider == "" {
			return nil, we.WithProvider(m.cfg.Provider)
		}
		return nil, err
	}
	kube, err := New(m.baseCtx, m.cfg.Target, rc, m.cfg.Options)
	if err != nil {
		return nil, m.own(err)
	}
	return kube, nil
}

// delegate returns the kubernetes provider of the cluster, waiting for the
// attempt in flight, or starting one, until ctx ends.
func (m *Managed) delegate(ctx context.Context) (*Provider, error) {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil, m.errClosed()
	}
	if m.kube != nil {
		kube := m.kube
		m.mu.Unlock()
		return kube, nil
	}
	a := m.attempt
	if a == nil {
		a = m.startLocked()
	}
	m.mu.Unlock()
	select {
	case <-a.done:
		return a.kube, a.err
	case <-ctx.Done():
		e := workload.AsError(fmt.Errorf("waiting for %s: %w", m.cfg.Cluster, ctx.Err()))
		return nil, e.WithProvider(m.cfg.Provider)
	}
}

// Close stops the kubernetes provider (its informers and streams) and any
// attempt at resolving the cluster, then runs OnClose. It is safe to call
// twice.
func (m *Managed) Close() error {
	m.mu.Lock()
	if m.closed {
		m.mu.Unlock()
		return nil
	}
	m.closed = true
	kube := m.kube
	m.mu.Unlock()
	m.cancel()
	m.wg.Wait()
	var errs []error
	if kube != nil {
		errs = append(errs, kube.Close())
	}
	if m.cfg.OnClose != nil {
		errs = append(errs, m.cfg.OnClose())
	}
	return errors.Join(errs...)
}

// stale reports whether err says the cluster changed under the resolved
// configuration: its certificate no longer verifies, its address no
// longer answers, or it refuses the credentials.
func stale(err error) bool {
	return err != nil && (isCertError(err) || isDialError(err) || workload.CodeOf(err) == workload.Unauthenticated)
}

// after is what every delegated operation returns: err under the cloud
// provider's name, the kubernetes provider dropped first if err says the
// cluster changed (the next operation resolves it again).
func (m *Managed) after(kube *Provider, err error) error {
	if stale(err) {
		m.mu.Lock()
		if m.kube == kube && !m.closed && time.Since(m.dropped) >= staleEvery {
			m.kube, m.dropped = nil, time.Now()
			m.wg.Add(1)
			go func() { defer m.wg.Done(); _ = kube.Close() }()
		}
		m.mu.Unlock()
	}
	return m.own(err)
}

// own makes an error of the kubernetes provider name the cloud provider.
func (m *Managed) own(err error) error {
	var we *workload.Error
	if errors.As(err, &we) && we.Provider == Name && error(we) == err {
		return we.WithProvider(m.cfg.Provider)
	}
	return err
}

func (m *Managed) ownStatus(st workload.DeploymentStatus) workload.DeploymentStatus {
	if st.Provider == Name {
		st.Provider = m.cfg.Provider
	}
	return st
}

func checkServiceName(name string) error {
	if msg := workload.ValidateName(name); msg != "" {
		return workload.Invalid(workload.FieldError{Path: "name", Message: msg})
	}
	return nil
}

// Start implements provider.Provider.
func (m *Managed) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	if err := spec.Validate(); err != nil {
		return workload.DeploymentStatus{}, err
	}
	kube, err := m.delegate(ctx)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	st, err := kube.Start(ctx, spec)
	return m.ownStatus(st), m.after(kube, err)
}

// Diff implements provider.Differ: the kubernetes provider's dry run, on
// the resolved cluster, under the cloud provider's name.
func (m *Managed) Diff(ctx context.Context, spec workload.DeploymentSpec) (workload.Diff, error) {
	if err := spec.Validate(); err != nil {
		return workload.Diff{}, err
	}
	kube, err := m.delegate(ctx)
	if err != nil {
		return workload.Diff{}, err
	}
	d, err := kube.Diff(ctx, spec)
	if d.Provider == Name {
		d.Provider = m.cfg.Provider
	}
	return d, m.after(kube, err)
}

// CheckRefs implements provider.RefChecker on the resolved cluster.
func (m *Managed) CheckRefs(ctx context.Context, spec workload.DeploymentSpec) error {
	kube, err := m.delegate(ctx)
	if err != nil {
		return err
	}
	return m.after(kube, kube.CheckRefs(ctx, spec))
}

// statusOp runs one of the operations on a service that return a status.
func (m *Managed) statusOp(ctx context.Context, name string, op func(*Provider) (workload.DeploymentStatus, error)) (workload.DeploymentStatus, error) {
	if err := checkServiceName(name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	kube, err := m.delegate(ctx)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	st, err := op(kube)
	return m.ownStatus(st), m.after(kube, err)
}

// Stop implements provider.Provider.
func (m *Managed) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	return m.statusOp(ctx, name, func(k *Provider) (workload.DeploymentStatus, error) { return k.Stop(ctx, name) })
}

// Scale implements provider.Provider.
func (m *Managed) Scale(ctx context.Context, name string, replicas int) (workload.DeploymentStatus, error) {
	return m.statusOp(ctx, name, func(k *Provider) (workload.DeploymentStatus, error) { return k.Scale(ctx, name, replicas) })
}

// Status implements provider.Provider.
func (m *Managed) Status(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	return m.statusOp(ctx, name, func(k *Provider) (workload.DeploymentStatus, error) { return k.Status(ctx, name) })
}

// Restart implements provider.Restarter.
func (m *Managed) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	return m.statusOp(ctx, name, func(k *Provider) (workload.DeploymentStatus, error) { return k.Restart(ctx, name) })
}

// ApplyConfig implements provider.Provider.
func (m *Managed) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if err := checkServiceName(name); err != nil {
		return err
	}
	kube, err := m.delegate(ctx)
	if err != nil {
		return err
	}
	return m.after(kube, kube.ApplyConfig(ctx, name, config))
}

// delegateSeq yields the sequence of the kubernetes provider, or the error
// that kept it from starting, with errors under the cloud provider's name.
func delegateSeq[T any](ctx context.Context, m *Managed, name string, seq func(*Provider) iter.Seq2[T, error]) iter.Seq2[T, error] {
	return func(yield func(T, error) bool) {
		var zero T
		if name != "" {
			if err := checkServiceName(name); err != nil {
				yield(zero, err)
				return
			}
		}
		kube, err := m.delegate(ctx)
		if err != nil {
			yield(zero, err)
			return
		}
		for v, err := range seq(kube) {
			if !yield(v, m.after(kube, err)) {
				return
			}
		}
	}
}

// StreamMetrics implements provider.Provider.
func (m *Managed) StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error] {
	return delegateSeq(ctx, m, name, func(k *Provider) iter.Seq2[workload.MetricSample, error] { return k.StreamMetrics(ctx, name) })
}

// Logs implements provider.LogTailer.
func (m *Managed) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return delegateSeq(ctx, m, name, func(k *Provider) iter.Seq2[workload.LogLine, error] { return k.Logs(ctx, name, opts) })
}

// Exec implements provider.Execer.
func (m *Managed) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	if err := checkServiceName(name); err != nil {
		return provider.ExecResult{}, err
	}
	kube, err := m.delegate(ctx)
	if err != nil {
		return provider.ExecResult{}, err
	}
	res, err := kube.Exec(ctx, name, req)
	return res, m.after(kube, err)
}

// List implements provider.Lister.
func (m *Managed) List(ctx context.Context) ([]workload.DeploymentStatus, error) {
	kube, err := m.delegate(ctx)
	if err != nil {
		return nil, err
	}
	list, err := kube.List(ctx)
	for i := range list {
		list[i] = m.ownStatus(list[i])
	}
	return list, m.after(kube, err)
}

// Watch implements provider.Watcher.
func (m *Managed) Watch(ctx context.Context) iter.Seq2[workload.DeploymentStatus, error] {
	return func(yield func(workload.DeploymentStatus, error) bool) {
		for st, err := range delegateSeq(ctx, m, "", func(k *Provider) iter.Seq2[workload.DeploymentStatus, error] { return k.Watch(ctx) }) {
			if !yield(m.ownStatus(st), err) {
				return
			}
		}
	}
}

// Ping implements provider.Pinger: it resolves the cluster if need be and
// asks its API server for its version.
func (m *Managed) Ping(ctx context.Context) error {
	kube, err := m.delegate(ctx)
	if err != nil {
		return err
	}
	return m.after(kube, kube.Ping(ctx))
}

// MissingPermission implements provider.PermissionExplainer: what the
// kubernetes provider's access check found missing for op ("" until the
// cluster is reached).
func (m *Managed) MissingPermission(op provider.Operation) string {
	m.mu.Lock()
	kube := m.kube
	m.mu.Unlock()
	if kube == nil {
		return ""
	}
	return kube.MissingPermission(op)
}

// UnsupportedReason implements provider.Explainer with the kubernetes
// provider's answer once the cluster is resolved ("" before).
func (m *Managed) UnsupportedReason(op provider.Operation) string {
	m.mu.Lock()
	kube := m.kube
	m.mu.Unlock()
	if kube == nil {
		return ""
	}
	return kube.UnsupportedReason(op)
}

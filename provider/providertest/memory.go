package providertest

import (
	"context"
	"fmt"
	"iter"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Memory is an in-memory provider for tests of the layers above providers
// (control, the HTTP API, the CLI). Its "backend" is a map; its metrics are
// a counter, not measurements. It implements every optional interface.
//
// Enter, when set, is called at the start of every mutating method, before
// any change; an error it returns fails the call with nothing changed. Exit
// is called when a mutating method returns. Delay makes every mutating
// method take that long (ending early with the context).
type Memory struct {
	Name   string
	Target string
	Delay  time.Duration
	Enter  func(ctx context.Context, op provider.Operation, service string) error
	Exit   func(op provider.Operation, service string)
	// MetricsInterval is the period of StreamMetrics; default 10ms.
	MetricsInterval time.Duration
	// ReadyAfter is how long a new instance takes to become ready. Start,
	// Scale, Restart and ApplyConfig wait for their instances (until ctx's
	// deadline, then answer Progressing), unless ctx comes from
	// provider.WithoutWait: then they answer at once.
	ReadyAfter time.Duration
	// Fail, when set, is asked after every Start, Scale, Restart and
	// ApplyConfig; a non-empty answer makes the service Failed with that
	// message (its instances never become ready), as an image that does
	// not pull would.
	Fail func(op provider.Operation, service string) string

	mu       sync.Mutex
	services map[string]*memService
	nextID   atomic.Int64
	// MetricStreams counts StreamMetrics calls, for fan-out tests.
	MetricStreams atomic.Int64
}

type memService struct {
	spec      workload.DeploymentSpec
	desired   int
	instances []workload.Instance
	config    map[string]string
	logs      []workload.LogLine
	revision  int
	readyAt   map[string]time.Time // instance id -> when it becomes ready
	failed    string               // why the service is Failed ("" if not)
}

var (
	_ provider.Provider  = (*Memory)(nil)
	_ provider.Restarter = (*Memory)(nil)
	_ provider.LogTailer = (*Memory)(nil)
	_ provider.Execer    = (*Memory)(nil)
	_ provider.Lister    = (*Memory)(nil)
	_ provider.Named     = (*Memory)(nil)
)

// NewMemory returns an empty Memory provider for target.
func NewMemory(target string) *Memory {
	return &Memory{Name: "memory", Target: target, services: map[string]*memService{}}
}

// RegisterMemory registers Memory as provider "memory". Tests call it once
// (it panics if called twice, like provider.Register); the binary never does.
func RegisterMemory() {
	provider.Register("memory", func(_ context.Context, cfg provider.TargetConfig, _ *credentials.Resolver) (provider.Provider, error) {
		return NewMemory(cfg.Name), nil
	})
}

// ProviderName implements provider.Named.
func (m *Memory) ProviderName() string { return m.Name }

func (m *Memory) enter(ctx context.Context, op provider.Operation, service string) error {
	if m.Enter != nil {
		if err := m.Enter(ctx, op, service); err != nil {
			return err
		}
	}
	if m.Delay > 0 {
		t := time.NewTimer(m.Delay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return workload.Errorf(workload.Timeout, "%s %s: %w", op, service, ctx.Err())
		}
	}
	return nil
}

func (m *Memory) exit(op provider.Operation, service string) {
	if m.Exit != nil {
		m.Exit(op, service)
	}
}

func (m *Memory) newInstance(name string) workload.Instance {
	ok := true
	return workload.Instance{
		ID:      fmt.Sprintf("%s-%d", name, m.nextID.Add(1)),
		State:   "running",
		Healthy: &ok,
		Started: time.Now().UTC(),
	}
}

func (m *Memory) status(name string, s *memService) workload.DeploymentStatus {
	now := time.Now()
	ready, coming := 0, 0
	insts := slices.Clone(s.instances)
	for i := range insts {
		switch at, ok := s.readyAt[insts[i].ID]; {
		case s.failed != "":
			insts[i].State, insts[i].Healthy = "failed", new(bool)
		case ok && at.After(now):
			insts[i].State, insts[i].Healthy = "starting", new(bool)
			coming++
		default:
			ready++
		}
	}
	r := workload.Replicas{Desired: s.desired, Ready: ready, Updated: len(s.instances)}
	phase, msg := workload.PhaseFromReplicas(r, len(s.instances)), ""
	switch {
	case s.failed != "" && s.desired > 0:
		phase, msg = workload.Failed, s.failed
	case coming > 0:
		phase, msg = workload.Progressing, fmt.Sprintf("%d of %d instances starting", coming, len(s.instances))
	}
	return workload.DeploymentStatus{
		ID: workload.ServiceID(m.Target, name), Name: name, Target: m.Target, Provider: m.Name,
		Phase: phase, Replicas: r, Image: s.spec.Image, Message: msg,
		Revision: fmt.Sprint(s.revision), Instances: insts, ObservedAt: time.Now().UTC(),
	}
}

// changed records the end of a mutating call's change: Fail is asked,
// new instances get their ready time.
func (m *Memory) changed(op provider.Operation, name string, s *memService) {
	s.failed = ""
	if m.Fail != nil {
		s.failed = m.Fail(op, name)
	}
}

// settle waits, unless ctx says not to, until the instances of name are
// ready or ctx ends, and answers the status then. It is called without
// m.mu held.
func (m *Memory) settle(ctx context.Context, name string, st workload.DeploymentStatus) workload.DeploymentStatus {
	if !provider.Waits(ctx) || st.Phase != workload.Progressing {
		return st
	}
	for {
		select {
		case <-ctx.Done():
		case <-time.After(5 * time.Millisecond):
		}
		m.mu.Lock()
		s, ok := m.services[name]
		if ok {
			st = m.status(name, s)
		}
		m.mu.Unlock()
		if !ok || st.Phase != workload.Progressing || ctx.Err() != nil {
			return st
		}
	}
}

func notFound(name string) error {
	return workload.Errorf(workload.NotFound, "service %q does not exist", name)
}

func (m *Memory) resize(name string, s *memService, n int) {
	for len(s.instances) < n {
		in := m.newInstance(name)
		if m.ReadyAfter > 0 {
			if s.readyAt == nil {
				s.readyAt = map[string]time.Time{}
			}
			s.readyAt[in.ID] = time.Now().Add(m.ReadyAfter)
		}
		s.instances = append(s.instances, in)
		s.logs = append(s.logs, workload.LogLine{Time: time.Now().UTC(), Instance: in.ID, Stream: "stdout", Text: "workload started"})
	}
	s.instances = s.instances[:n]
	s.desired = n
}

// Start implements provider.Provider.
func (m *Memory) Start(ctx context.Context, spec workload.DeploymentSpec) (workload.DeploymentStatus, error) {
	if err := spec.Validate(); err != nil {
		return workload.DeploymentStatus{}, err
	}
	if err := m.enter(ctx, provider.OpStart, spec.Name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	defer m.exit(provider.OpStart, spec.Name)
	m.mu.Lock()
	s, ok := m.services[spec.Name]
	if !ok {
		s = &memService{config: maps.Clone(spec.Config)}
		m.services[spec.Name] = s
	}
	s.spec = spec
	s.revision++
	m.resize(spec.Name, s, spec.Replicas)
	m.changed(provider.OpStart, spec.Name, s)
	st := m.status(spec.Name, s)
	m.mu.Unlock()
	return m.settle(ctx, spec.Name, st), nil
}

// Stop implements provider.Provider.
func (m *Memory) Stop(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	if err := m.enter(ctx, provider.OpStop, name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	defer m.exit(provider.OpStop, name)
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.services[name]
	if !ok {
		return workload.DeploymentStatus{ID: workload.ServiceID(m.Target, name), Name: name, Target: m.Target,
			Provider: m.Name, Phase: workload.Stopped, Instances: []workload.Instance{}, ObservedAt: time.Now().UTC()}, nil
	}
	m.resize(name, s, 0)
	return m.status(name, s), nil
}

// Scale implements provider.Provider.
func (m *Memory) Scale(ctx context.Context, name string, n int) (workload.DeploymentStatus, error) {
	if msg := workload.ValidateReplicas(n); msg != "" {
		return workload.DeploymentStatus{}, workload.Invalid(workload.FieldError{Path: "replicas", Message: msg})
	}
	return m.mutate(ctx, provider.OpScale, name, func(s *memService) { m.resize(name, s, n) })
}

// Restart implements provider.Restarter.
func (m *Memory) Restart(ctx context.Context, name string) (workload.DeploymentStatus, error) {
	return m.mutate(ctx, provider.OpRestart, name, func(s *memService) { m.roll(name, s) })
}

// mutate applies change to the existing service name under the lock,
// between enter and exit, and waits for the result to settle as the
// call's context asks (NotFound if there is no such service).
func (m *Memory) mutate(ctx context.Context, op provider.Operation, name string, change func(s *memService)) (workload.DeploymentStatus, error) {
	if err := m.enter(ctx, op, name); err != nil {
		return workload.DeploymentStatus{}, err
	}
	defer m.exit(op, name)
	m.mu.Lock()
	s, ok := m.services[name]
	if !ok {
		m.mu.Unlock()
		return workload.DeploymentStatus{}, notFound(name)
	}
	change(s)
	m.changed(op, name, s)
	st := m.status(name, s)
	m.mu.Unlock()
	return m.settle(ctx, name, st), nil
}

// roll replaces every instance of s with a new one, as a new revision.
func (m *Memory) roll(name string, s *memService) {
	n := len(s.instances)
	m.resize(name, s, 0)
	m.resize(name, s, n)
	s.revision++
}

// Status implements provider.Provider.
func (m *Memory) Status(_ context.Context, name string) (workload.DeploymentStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.services[name]
	if !ok {
		return workload.DeploymentStatus{}, notFound(name)
	}
	return m.status(name, s), nil
}

// List implements provider.Lister.
func (m *Memory) List(context.Context) ([]workload.DeploymentStatus, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	out := []workload.DeploymentStatus{}
	for _, name := range slices.Sorted(maps.Keys(m.services)) {
		out = append(out, m.status(name, m.services[name]))
	}
	return out, nil
}

// ApplyConfig implements provider.Provider.
func (m *Memory) ApplyConfig(ctx context.Context, name string, config map[string]string) error {
	if errs := workload.ValidateConfig("config", config); len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	_, err := m.mutate(ctx, provider.OpApplyConfig, name, func(s *memService) {
		s.config = maps.Clone(config)
		m.roll(name, s)
	})
	return err
}

// Config returns what the workload sees as its config (the harness's
// independent view).
func (m *Memory) Config(name string) map[string]string {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.services[name]; ok {
		return maps.Clone(s.config)
	}
	return nil
}

// Running returns the instance ids the "backend" runs for name.
func (m *Memory) Running(name string) []string {
	m.mu.Lock()
	defer m.mu.Unlock()
	s, ok := m.services[name]
	if !ok {
		return nil
	}
	var ids []string
	for _, in := range s.instances {
		ids = append(ids, in.ID)
	}
	return ids
}

// StreamMetrics implements provider.Provider with a counter: sample i has
// CPUPercent i. Its numbers measure nothing.
func (m *Memory) StreamMetrics(ctx context.Context, name string) iter.Seq2[workload.MetricSample, error] {
	return func(yield func(workload.MetricSample, error) bool) {
		m.MetricStreams.Add(1)
		every := m.MetricsInterval
		if every == 0 {
			every = 10 * time.Millisecond
		}
		tick := time.NewTicker(every)
		defer tick.Stop()
		for i := 0; ; i++ {
			m.mu.Lock()
			s, ok := m.services[name]
			n := 0
			if ok {
				n = len(s.instances)
			}
			m.mu.Unlock()
			if !ok {
				yield(workload.MetricSample{}, notFound(name))
				return
			}
			if !yield(workload.MetricSample{Service: workload.ServiceID(m.Target, name), Time: time.Now().UTC(),
				Instances: n, CPUPercent: float64(i), Resolution: workload.Duration(every)}, nil) {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
		}
	}
}

// Logs implements provider.LogTailer. Follow keeps the stream open until
// ctx ends, yielding lines as Emit adds them.
func (m *Memory) Logs(ctx context.Context, name string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		sent := 0
		for first := true; ; first = false {
			m.mu.Lock()
			s, ok := m.services[name]
			var lines []workload.LogLine
			if ok {
				lines = slices.Clone(s.logs[sent:])
				sent = len(s.logs)
			}
			m.mu.Unlock()
			if first && opts.Tail >= 0 {
				lines = lastPerInstance(lines, opts.Tail)
			}
			if !ok {
				yield(workload.LogLine{}, notFound(name))
				return
			}
			for _, l := range lines {
				if !opts.Since.IsZero() && l.Time.Before(opts.Since) {
					continue
				}
				if !yield(l, nil) {
					return
				}
			}
			if !opts.Follow {
				return
			}
			select {
			case <-ctx.Done():
				return
			case <-time.After(5 * time.Millisecond):
			}
		}
	}
}

// lastPerInstance keeps the last n lines of each instance, in order.
func lastPerInstance(lines []workload.LogLine, n int) []workload.LogLine {
	count := map[string]int{}
	for _, l := range lines {
		count[l.Instance]++
	}
	var out []workload.LogLine
	for _, l := range lines {
		if count[l.Instance] <= n {
			out = append(out, l)
		}
		count[l.Instance]--
	}
	return out
}

// Emit makes every instance of name print text.
func (m *Memory) Emit(name, text string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if s, ok := m.services[name]; ok {
		for _, in := range s.instances {
			s.logs = append(s.logs, workload.LogLine{Time: time.Now().UTC(), Instance: in.ID, Stream: "stdout", Text: text})
		}
	}
}

// Exec implements provider.Execer: "echo ARGS" prints ARGS, "exit N" exits
// N, "env" prints the config; anything else exits 127.
func (m *Memory) Exec(ctx context.Context, name string, req provider.ExecRequest) (provider.ExecResult, error) {
	if len(req.Command) == 0 {
		return provider.ExecResult{}, workload.Invalid(workload.FieldError{Path: "command", Message: "is required"})
	}
	if err := m.enter(ctx, provider.OpExec, name); err != nil {
		return provider.ExecResult{}, err
	}
	defer m.exit(provider.OpExec, name)
	m.mu.Lock()
	s, ok := m.services[name]
	var inst string
	if ok && len(s.instances) > 0 {
		inst = s.instances[0].ID
	}
	m.mu.Unlock()
	if !ok {
		return provider.ExecResult{}, notFound(name)
	}
	if inst == "" {
		return provider.ExecResult{}, workload.Errorf(workload.Conflict, "service %q has no running instance", name)
	}
	res := provider.ExecResult{Instance: inst}
	switch req.Command[0] {
	case "echo":
		if req.Stdout != nil {
			fmt.Fprintln(req.Stdout, strings.Join(req.Command[1:], " "))
		}
	case "exit":
		if len(req.Command) > 1 {
			fmt.Sscanf(req.Command[1], "%d", &res.ExitCode)
		}
	default:
		if req.Stderr != nil {
			fmt.Fprintf(req.Stderr, "%s: not found\n", req.Command[0])
		}
		res.ExitCode = 127
	}
	return res, nil
}

// Harness returns a conformance harness over m.
func (m *Memory) Harness() Harness {
	return Harness{
		Provider: m,
		Target:   m.Target,
		Spec:     Spec,
		Observe: func(_ context.Context, name string) (Observation, error) {
			ids := m.Running(name)
			return Observation{Running: len(ids), InstanceIDs: ids}, nil
		},
		ReadConfig: func(_ context.Context, name, key string) (string, bool, error) {
			v, ok := m.Config(name)[key]
			return v, ok, nil
		},
		EmitLog:      func(_ context.Context, name, text string) error { m.Emit(name, text); return nil },
		StartupLine:  "workload started",
		ExecCommand:  []string{"echo", "hello"},
		ExecOutput:   "hello",
		ExecFail:     []string{"exit", "3"},
		ExecFailCode: 3,
		Timeout:      10 * time.Second,
	}
}

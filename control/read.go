package control

import (
	"context"
	"errors"
	"iter"
	"maps"
	"slices"
	"strings"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// The reads: targets, status, list, metrics, logs, runs, verify, halts.
// None writes to the ledger.

// TargetInfo describes a target for listings (the wire type api.TargetInfo).
type TargetInfo = api.TargetInfo

// Targets lists the configured targets.
func (rt *Runtime) Targets(ctx context.Context) ([]TargetInfo, error) {
	halts, err := rt.ledger.Halts(ctx)
	if err != nil {
		return nil, workload.Errorf(workload.Unavailable, "ledger: %w", err)
	}
	out := make([]TargetInfo, 0, len(rt.targets))
	for _, t := range rt.targets {
		out = append(out, TargetInfo{Name: t.Name, Provider: provider.NameOf(t.Provider),
			Capabilities: provider.Capabilities(t.Provider), Halted: halts[ledger.GlobalScope] || halts[t.Name]})
	}
	slices.SortFunc(out, func(a, b TargetInfo) int { return strings.Compare(a.Name, b.Name) })
	return out, nil
}

func (rt *Runtime) target(name string) (Target, error) {
	t, ok := rt.targets[name]
	if !ok {
		return Target{}, workload.Errorf(workload.NotFound, "target %q is not configured (configured: %s)", name, rt.targetList())
	}
	return t, nil
}

// service checks a read's target (configured) and service name; it never
// asks the provider.
func (rt *Runtime) service(target, service string) (Target, error) {
	t, err := rt.target(target)
	if err != nil {
		return Target{}, err
	}
	if err := workload.CheckName("service", service); err != nil {
		return Target{}, err
	}
	return t, nil
}

// Status reads one service's status.
func (rt *Runtime) Status(ctx context.Context, target, service string) (workload.DeploymentStatus, error) {
	t, err := rt.service(target, service)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	st, err := t.Provider.Status(ctx, service)
	if err != nil {
		return workload.DeploymentStatus{}, err
	}
	return *rt.normalise(target, st), nil
}

// List lists the services of one target, or of every target when target is
// empty. Targets whose provider is not a Lister are reported Unsupported.
func (rt *Runtime) List(ctx context.Context, target string) ([]workload.DeploymentStatus, error) {
	var ts []Target
	if target != "" {
		t, err := rt.target(target)
		if err != nil {
			return nil, err
		}
		ts = []Target{t}
	} else {
		for _, n := range slices.Sorted(maps.Keys(rt.targets)) {
			ts = append(ts, rt.targets[n])
		}
	}
	out := []workload.DeploymentStatus{}
	for _, t := range ts {
		l, ok := t.Provider.(provider.Lister)
		if !ok {
			if target != "" {
				return nil, provider.ErrUnsupported(provider.NameOf(t.Provider), provider.OpStatus, "the provider cannot list services")
			}
			continue
		}
		sts, err := l.List(ctx)
		if err != nil {
			return nil, err
		}
		for _, st := range sts {
			out = append(out, *rt.normalise(t.Name, st))
		}
	}
	return out, nil
}

// StreamMetrics subscribes to a service's metrics. However many callers
// watch one service, the provider streams it once.
//
// Only the target and the name are checked here (the hub's open func needs
// a configured target); whether the service exists is the provider's
// answer, which the stream yields as its first error (NotFound), once for
// all its subscribers.
func (rt *Runtime) StreamMetrics(ctx context.Context, target, service string) iter.Seq2[workload.MetricSample, error] {
	if _, err := rt.service(target, service); err != nil {
		return func(yield func(workload.MetricSample, error) bool) { yield(workload.MetricSample{}, err) }
	}
	return rt.metrics.Subscribe(ctx, serviceKey{target: target, name: service})
}

// serviceKey names one service of one target: the metrics hub's key.
type serviceKey struct{ target, name string }

// MetricsUpstreams is the number of provider metric streams open.
func (rt *Runtime) MetricsUpstreams() int { return rt.metrics.Upstreams() }

// Logs streams a service's output, every registered secret redacted.
func (rt *Runtime) Logs(ctx context.Context, target, service string, opts provider.LogOptions) iter.Seq2[workload.LogLine, error] {
	t, err := rt.service(target, service)
	if err != nil {
		return func(yield func(workload.LogLine, error) bool) { yield(workload.LogLine{}, err) }
	}
	return redactLogs(rt.creds, provider.Logs(ctx, t.Provider, service, opts))
}

// redactLogs scrubs every registered secret from each line's text and from
// errors. A line is redacted whole: a secret is caught unless the provider
// itself split it across two lines (Docker splits lines longer than 16 KiB).
func redactLogs(creds *credentials.Resolver, seq iter.Seq2[workload.LogLine, error]) iter.Seq2[workload.LogLine, error] {
	return func(yield func(workload.LogLine, error) bool) {
		for l, err := range seq {
			l.Text = creds.Redact(l.Text)
			if err != nil {
				e := workload.AsError(err)
				if red := creds.Redact(e.Message); red != e.Message {
					c := *e
					c.Message, c.Err = red, nil
					err = &c
				}
			}
			if !yield(l, err) {
				return
			}
		}
	}
}

// Runs queries the ledger.
func (rt *Runtime) Runs(ctx context.Context, f ledger.Filter) (ledger.Page, error) {
	page, err := rt.ledger.Query(ctx, f)
	if errors.Is(err, ledger.ErrInvalidFilter) {
		return page, workload.Errorf(workload.InvalidArgument, "%v", err)
	}
	if err != nil {
		return page, workload.Errorf(workload.Unavailable, "ledger: %w", err)
	}
	return page, nil
}

// Verify checks the ledger's hash chain.
func (rt *Runtime) Verify(ctx context.Context) (ledger.VerifyResult, error) {
	res, err := rt.ledger.Verify(ctx)
	if err != nil {
		return res, workload.Errorf(workload.Unavailable, "ledger: %w", err)
	}
	return res, nil
}

// Halts reports which halt switches are on ("*" is global).
func (rt *Runtime) Halts(ctx context.Context) (map[string]bool, error) {
	h, err := rt.ledger.Halts(ctx)
	if err != nil {
		return nil, workload.Errorf(workload.Unavailable, "ledger: %w", err)
	}
	return h, nil
}

package provider

import (
	"context"
	"fmt"
	"iter"

	"github.com/alphaswarm/controller/workload"
)

// Operation names one of the nine workload operations.
type Operation string

// The operations, in the order capability matrices show them.
const (
	OpStart         Operation = "start"
	OpStop          Operation = "stop"
	OpScale         Operation = "scale"
	OpRestart       Operation = "restart"
	OpStatus        Operation = "status"
	OpApplyConfig   Operation = "apply_config"
	OpStreamMetrics Operation = "stream_metrics"
	OpExec          Operation = "exec"
	OpLogs          Operation = "logs"
)

// Operations lists the nine operations.
var Operations = []Operation{OpStart, OpStop, OpScale, OpRestart, OpStatus, OpApplyConfig, OpStreamMetrics, OpExec, OpLogs}

// Capability says whether a target supports an operation, and why not.
type Capability struct {
	Op        Operation `json:"op"`
	Supported bool      `json:"supported"`
	Reason    string    `json:"reason,omitempty"`
}

// Capabilities derives p's capability matrix from the interfaces it
// implements, refined by Explainer: an op whose interface p lacks is
// unsupported, with p's own reason if it gives one.
func Capabilities(p Provider) []Capability {
	out := make([]Capability, 0, len(Operations))
	for _, op := range Operations {
		c := Capability{Op: op, Supported: true}
		if r := unsupportedReason(p, op); r != "" {
			c.Supported, c.Reason = false, r
		}
		if pe, ok := p.(PermissionExplainer); ok {
			if r := pe.MissingPermission(op); r != "" {
				c.Supported, c.Reason = false, r
			}
		}
		out = append(out, c)
	}
	return out
}

func unsupportedReason(p Provider, op Operation) string {
	var ok = true
	switch op {
	case OpRestart:
		_, ok = p.(Restarter)
	case OpExec:
		_, ok = p.(Execer)
	case OpLogs:
		_, ok = p.(LogTailer)
	}
	var reason string
	if e, is := p.(Explainer); is {
		reason = e.UnsupportedReason(op)
	}
	if !ok && reason == "" {
		reason = fmt.Sprintf("the %s provider does not implement %s", NameOf(p), op)
	}
	return reason
}

// PermissionExplainer is implemented by providers that check up front
// which permissions their backend credentials lack (Kubernetes RBAC).
// MissingPermission returns "" when op has what it needs, else a sentence
// naming each missing permission. Capabilities reports such an op as not
// supported with that reason; the provider itself answers the op with
// PermissionDenied naming the same permissions.
type PermissionExplainer interface {
	MissingPermission(op Operation) string
}

// Named is implemented by providers that know their registered name.
type Named interface{ ProviderName() string }

// NameOf returns p's registered name, or its Go type if it does not say.
func NameOf(p Provider) string {
	if n, ok := p.(Named); ok {
		return n.ProviderName()
	}
	return fmt.Sprintf("%T", p)
}

// Restart restarts through p's Restarter, or returns Unsupported.
func Restart(ctx context.Context, p Provider, name string) (workload.DeploymentStatus, error) {
	if r := unsupportedReason(p, OpRestart); r != "" {
		return workload.DeploymentStatus{}, ErrUnsupported(NameOf(p), OpRestart, r)
	}
	return p.(Restarter).Restart(ctx, name)
}

// Exec runs through p's Execer, or returns Unsupported.
func Exec(ctx context.Context, p Provider, name string, req ExecRequest) (ExecResult, error) {
	if r := unsupportedReason(p, OpExec); r != "" {
		return ExecResult{}, ErrUnsupported(NameOf(p), OpExec, r)
	}
	return p.(Execer).Exec(ctx, name, req)
}

// Logs tails through p's LogTailer, or yields one Unsupported error.
func Logs(ctx context.Context, p Provider, name string, opts LogOptions) iter.Seq2[workload.LogLine, error] {
	if r := unsupportedReason(p, OpLogs); r != "" {
		err := ErrUnsupported(NameOf(p), OpLogs, r)
		return func(yield func(workload.LogLine, error) bool) { yield(workload.LogLine{}, err) }
	}
	return p.(LogTailer).Logs(ctx, name, opts)
}

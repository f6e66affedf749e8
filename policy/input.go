// Package policy is policy as code's contract: what a policy is asked
// (Input), what it answers (Decision), the Evaluator control consults after
// a request is validated and before its intent is written, and the
// examples files `alphaswarm policy test` runs. The Rego evaluator is
// package policy/opa; this package does not link OPA, so that importing
// the contract costs nothing.
//
// # The contract a policy implements
//
// Every module is in package alphaswarm and may add reasons to the set
// rule deny:
//
//	package alphaswarm
//
//	deny contains msg if {
//		input.action == "scale"
//		input.request.replicas > 20
//		msg := sprintf("at most 20 replicas, asked for %d", [input.request.replicas])
//	}
//
// A request is allowed when deny is empty, and refused otherwise with its
// reasons (sorted) as a permission_denied error and a rejected ledger row.
// Either way the row carries the bundle's digest. The input is Input as
// JSON: the principal and its role on the target, the action, target,
// provider and service, the request (a start's spec without env and config
// values, replicas, config and env keys, an exec's program and argument
// count), the service's current status (null when it does not exist) and
// the time (RFC 3339, UTC). Examples of each are in deploy/policies.
package policy

import (
	"context"
	"maps"
	"slices"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// Package is the Rego package every policy module is in.
const Package = "alphaswarm"

// Evaluator decides requests. Implementations are safe for concurrent use.
type Evaluator interface {
	Evaluate(ctx context.Context, in Input) (Decision, error)
	// Digest identifies the bundle in force.
	Digest() string
}

// StatusReader is implemented by evaluators that know whether their
// policies read the service's status; when NeedsStatus is false the caller
// may leave Input.Status nil instead of asking the backend (a status call
// costs a provider round trip on every request).
type StatusReader interface {
	NeedsStatus() bool
}

// Decision is a policy's answer.
type Decision struct {
	Allow bool
	// Reasons are the deny set's messages, sorted; empty when Allow.
	Reasons []string
	// Digest identifies the bundle that decided.
	Digest string
}

// Input is what a policy sees as input. It never holds a secret or a
// config or env value: only their keys.
type Input struct {
	Principal Principal `json:"principal"`
	// Action is a mutating workload.Action ("start", "scale", "exec"...).
	Action   string  `json:"action"`
	Target   string  `json:"target"`
	Provider string  `json:"provider"`
	Service  string  `json:"service"`
	Request  Request `json:"request"`
	// Status is the service's current status, redacted; nil when the
	// service does not exist or its status could not be read (then
	// StatusError says why), or when no policy reads it
	// (StatusReader).
	Status      *workload.DeploymentStatus `json:"status"`
	StatusError string                     `json:"statusError,omitempty"`
	// Time is when the request was evaluated (UTC).
	Time time.Time `json:"time"`
}

// Principal is the caller.
type Principal struct {
	User string `json:"user"`
	Name string `json:"name,omitempty"`
	Auth string `json:"auth,omitempty"`
	// Role is the caller's role on the request's target ("viewer",
	// "operator", "admin").
	Role string `json:"role"`
}

// Request is the operation asked for.
type Request struct {
	// Spec is a start's deployment without its env and config values
	// (EnvKeys and ConfigKeys name them).
	Spec *workload.DeploymentSpec `json:"spec,omitempty"`
	// Replicas is the count asked for: a scale's, or a start's spec's.
	Replicas int `json:"replicas,omitempty"`
	// ConfigKeys are the keys of an apply_config, or of a start's config.
	ConfigKeys []string `json:"configKeys,omitempty"`
	// EnvKeys are the keys of a start's plain environment.
	EnvKeys []string `json:"envKeys,omitempty"`
	// Exec describes an exec's command as the ledger does: the program
	// and the argument count, never the arguments.
	Exec *Exec `json:"exec,omitempty"`
	// HaltOn is a halt's switch position.
	HaltOn *bool `json:"haltOn,omitempty"`
	NoWait bool  `json:"noWait,omitempty"`
}

// Exec is an exec's command, as far as a policy sees it.
type Exec struct {
	Argv0 string `json:"argv0"`
	Argc  int    `json:"argc"`
	TTY   bool   `json:"tty,omitempty"`
}

// StartRequest is the Request of a start of spec, with its env and config
// values left out.
func StartRequest(spec *workload.DeploymentSpec) Request {
	s := *spec
	s.Env, s.Config = nil, nil
	return Request{Spec: &s, Replicas: spec.Replicas,
		ConfigKeys: slices.Sorted(maps.Keys(spec.Config)), EnvKeys: slices.Sorted(maps.Keys(spec.Env))}
}

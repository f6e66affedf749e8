package control

import (
	"fmt"
	"maps"
	"slices"
	"strings"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Admission is one step of Do, after validation and the halt switch and
// before the service lock: it applies the target's static policy
// (provider.Policy, from the config file's targets.<name>.policy) to the
// request. A request outside the policy is PermissionDenied, with every
// rule it broke named in the message and in Fields; an extension block
// that the target's provider does not read is InvalidArgument. Either way
// Do records one rejected ledger row and the provider is not called.
//
// The policy is static and the check is pure: no I/O, no lock. What only
// a provider can see (the contents of a Compose file) the provider checks
// against the same policy.

// extensionReader is implemented by providers that read extension blocks
// besides the one under their own name (a managed Kubernetes cluster of a
// cloud provider reads extensions.kubernetes).
type extensionReader interface {
	ExtensionNames() []string
}

// hostPortPublisher is implemented by providers whose ports[].host is a
// port on a host (docker), as opposed to a Service or load-balancer port
// (kubernetes, the clouds): the policy's host ports and bind addresses
// apply only to them.
type hostPortPublisher interface {
	PublishesHostPorts() bool
}

func publishesHostPorts(p provider.Provider) bool {
	h, ok := p.(hostPortPublisher)
	return ok && h.PublishesHostPorts()
}

// extensionNames are the spec.extensions blocks the target's provider
// reads.
func extensionNames(p provider.Provider) []string {
	if r, ok := p.(extensionReader); ok {
		return r.ExtensionNames()
	}
	return []string{provider.NameOf(p)}
}

// admit applies t's policy to r; r has passed validation.
func admit(t Target, r *Request) error {
	pol := &t.Policy
	var denied []workload.FieldError
	deny := func(path, rule, format string, args ...any) {
		denied = append(denied, workload.FieldError{Path: path, Message: fmt.Sprintf(format, args...) + " (rule " + rule + ")"})
	}
	switch r.Action {
	case workload.ActionScale:
		if r.Replicas > pol.Replicas() {
			deny("replicas", "maxReplicas", "%d is more than target %s admits (%d)", r.Replicas, t.Name, pol.Replicas())
		}
	case workload.ActionStart, workload.ActionRollback:
		s := r.Spec
		if known := extensionNames(t.Provider); len(s.Extensions) > 0 {
			var bad []workload.FieldError
			for _, k := range slices.Sorted(maps.Keys(s.Extensions)) {
				if !slices.Contains(known, k) {
					bad = append(bad, workload.FieldError{Path: "extensions." + k,
						Message: fmt.Sprintf("target %s runs provider %s, which reads only extensions.%s; a block for another provider is refused, not ignored",
							t.Name, provider.NameOf(t.Provider), strings.Join(known, ", extensions."))})
				}
			}
			if len(bad) > 0 {
				return workload.Invalid(bad...)
			}
		}
		if s.Replicas > pol.Replicas() {
			deny("replicas", "maxReplicas", "%d is more than target %s admits (%d)", s.Replicas, t.Name, pol.Replicas())
		}
		if s.Image != "" && !pol.AllowsImage(s.Image) {
			deny("image", "images", "%s is not among the images target %s admits %v", s.Image, t.Name, pol.Images)
		}
		for i, p := range s.Ports {
			if !publishesHostPorts(t.Provider) {
				if p.HostIP != "" {
					return workload.Invalid(workload.FieldError{Path: fmt.Sprintf("ports[%d].hostIP", i),
						Message: fmt.Sprintf("target %s runs provider %s, which publishes no host ports; hostIP is refused, not ignored", t.Name, provider.NameOf(t.Provider))})
				}
				continue
			}
			if why := pol.CheckPort(p.HostIP, p.Host); why != "" {
				deny(fmt.Sprintf("ports[%d]", i), "ports", "%s", why)
			}
		}
		for i, sec := range s.Secrets {
			if !pol.AllowsSecret(s.Name, sec.From) {
				deny(fmt.Sprintf("secrets[%d].from", i), "secrets", "target %s grants service %s no secret %s; an admin grants it under targets.%s.policy.secrets",
					t.Name, s.Name, sec.From, t.Name)
			}
		}
		if s.Compose != nil && pol.Compose.Dir == "" {
			deny("compose", "compose.dir", "Compose is off for target %s; an admin turns it on by naming a directory in targets.%s.policy.compose.dir", t.Name, t.Name)
		}
	}
	if len(denied) == 0 {
		return nil
	}
	msgs := make([]string, len(denied))
	for i, f := range denied {
		msgs[i] = f.String()
	}
	return &workload.Error{Code: workload.PermissionDenied, Fields: denied,
		Message: fmt.Sprintf("outside the policy of target %s: %s", t.Name, strings.Join(msgs, "; "))}
}

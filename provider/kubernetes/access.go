package kubernetes

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// permission is one verb on one resource of the target's namespace that
// the provider uses, and the operations that use it. The list is the Role
// of the package documentation and of deploy/kubernetes/role.yaml; a test
// on the API server tier runs the conformance suite with exactly it.
type permission struct {
	group, resource, subresource, verb string
	ops                                []provider.Operation
	deleteOnStop                       bool // needed only with Options.DeleteOnStop
}

func (m permission) String() string {
	r := m.resource
	if m.subresource != "" {
		r += "/" + m.subresource
	}
	if m.group != "" {
		r += "." + m.group
	}
	return m.verb + " " + r
}

var (
	mutating = []provider.Operation{provider.OpStart, provider.OpStop, provider.OpScale, provider.OpRestart, provider.OpApplyConfig}
	// every operation reads the informer cache of Deployments,
	// ReplicaSets and pods.
	allOps = provider.Operations
)

// permissions is what the provider needs, found by removing one verb at a
// time from a working Role (review kubernetes-newcomer §4).
var permissions = []permission{
	{"apps", "deployments", "", "get", mutating, false},
	{"apps", "deployments", "", "list", allOps, false},
	{"apps", "deployments", "", "watch", allOps, false},
	{"apps", "deployments", "", "create", []provider.Operation{provider.OpStart}, false},
	{"apps", "deployments", "", "patch", []provider.Operation{provider.OpStart, provider.OpRestart, provider.OpApplyConfig}, false},
	{"apps", "deployments", "scale", "update", []provider.Operation{provider.OpScale, provider.OpStop}, false},
	{"apps", "replicasets", "", "list", allOps, false},
	{"apps", "replicasets", "", "watch", allOps, false},
	{"", "pods", "", "list", allOps, false},
	{"", "pods", "", "watch", allOps, false},
	{"", "configmaps", "", "get", []provider.Operation{provider.OpStart}, false},
	{"", "configmaps", "", "create", []provider.Operation{provider.OpStart}, false},
	{"", "configmaps", "", "patch", []provider.Operation{provider.OpStart, provider.OpApplyConfig}, false},
	{"", "services", "", "get", []provider.Operation{provider.OpStart}, false},
	{"", "services", "", "create", []provider.Operation{provider.OpStart}, false},
	{"", "services", "", "patch", []provider.Operation{provider.OpStart}, false},
	{"", "services", "", "delete", []provider.Operation{provider.OpStart}, false},
	{"", "pods", "log", "get", []provider.Operation{provider.OpLogs}, false},
	{"", "pods", "exec", "get", []provider.Operation{provider.OpExec}, false},
	{"", "pods", "exec", "create", []provider.Operation{provider.OpExec}, false},
	{"metrics.k8s.io", "pods", "", "list", []provider.Operation{provider.OpStreamMetrics}, false},
	{"apps", "deployments", "", "delete", []provider.Operation{provider.OpStop}, true},
	{"", "configmaps", "", "delete", []provider.Operation{provider.OpStop}, true},
}

// firstAccessWait bounds how long an operation waits for the first
// access check of a target that just opened.
const firstAccessWait = 5 * time.Second

// accessState is what the last check found.
type accessState struct {
	checked   bool
	missing   []permission
	namespace string // why the namespace cannot be used ("" if it can)
	user      string // who the API server says the credentials are ("" if unknown)
}

// checkAccess asks the API server, with one SelfSubjectAccessReview per
// permission, which of them the target's credentials lack, and checks with
// a server-side dry run that the namespace exists. An answer it cannot get
// (the API server is unreachable) leaves the last state as it was.
func (p *Provider) checkAccess(ctx context.Context) {
	if p.kube.Discovery().RESTClient() == nil {
		return // the client-go fake answers every review "not allowed"
	}
	ctx, cancel := context.WithTimeout(ctx, 20*time.Second)
	defer cancel()
	var st accessState
	for _, m := range permissions {
		if m.deleteOnStop && !p.opts.DeleteOnStop {
			continue
		}
		r, err := p.kube.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: p.opts.Namespace, Verb: m.verb, Group: m.group, Resource: m.resource, Subresource: m.subresource}}},
			metav1.CreateOptions{})
		if err != nil {
			return
		}
		if !r.Status.Allowed {
			st.missing = append(st.missing, m)
		}
	}
	// A dry-run create is the one namespaced way to learn that the
	// namespace does not exist (reading Namespaces is cluster-scoped).
	probe := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "alphaswarm-namespace-probe", Namespace: p.opts.Namespace}}
	_, err := p.kube.CoreV1().ConfigMaps(p.opts.Namespace).Create(ctx, probe, metav1.CreateOptions{DryRun: dryRunAll})
	if classify(err) == workload.NotFound {
		st.namespace = fmt.Sprintf("namespace %s does not exist in the cluster at %s (create it, or set options.namespace): %v", p.opts.Namespace, p.host, err)
	}
	// Name the identity in the messages (a SelfSubjectReview needs no
	// permission; an API server that does not serve it leaves it out).
	if r, err := p.kube.AuthenticationV1().SelfSubjectReviews().Create(ctx, &authnv1.SelfSubjectReview{}, metav1.CreateOptions{}); err == nil {
		st.user = r.Status.UserInfo.Username
	}
	st.checked = true
	p.accessMu.Lock()
	changed := fmt.Sprint(p.access) != fmt.Sprint(st)
	p.access = st
	p.accessMu.Unlock()
	if changed && (len(st.missing) > 0 || st.namespace != "") {
		var verbs []string
		for _, m := range st.missing {
			verbs = append(verbs, m.String())
		}
		slog.Warn("kubernetes target lacks what it needs", "target", p.target, "namespace", p.opts.Namespace,
			"missing_permissions", strings.Join(verbs, ", "), "namespace_problem", st.namespace)
	}
}

// missingFor says what op cannot do for lack of a permission or of the
// namespace; "" if nothing is known to be missing.
func (p *Provider) missingFor(op provider.Operation) string {
	p.accessMu.Lock()
	st := p.access
	p.accessMu.Unlock()
	if st.namespace != "" {
		return st.namespace
	}
	var verbs []string
	for _, m := range st.missing {
		for _, o := range m.ops {
			if o == op {
				verbs = append(verbs, "cannot "+m.String())
			}
		}
	}
	if len(verbs) == 0 {
		return ""
	}
	who := "the target's credentials"
	if st.user != "" {
		who += fmt.Sprintf(" (user %q)", st.user)
	}
	return fmt.Sprintf("%s %s in namespace %s (SelfSubjectAccessReview at open; the Role the provider needs is in deploy/kubernetes/role.yaml)",
		who, strings.Join(verbs, ", "), p.opts.Namespace)
}

// permitted fails fast with PermissionDenied (or NotFound for a missing
// namespace) naming what op lacks, before any call that would fail on it
// or hang waiting for a watch that is refused.
func (p *Provider) permitted(op provider.Operation) error {
	return p.permittedAs(op, string(op))
}

// permittedAs is permitted for a request that needs op's permissions
// (diff is a dry run of start), named what in the error.
func (p *Provider) permittedAs(op provider.Operation, what string) error {
	// Right after the target opened, let the first check finish (it is a
	// few quick requests; bounded, so an API server that does not answer
	// leaves the operation to report that itself).
	select {
	case <-p.accessFirst:
	case <-time.After(firstAccessWait):
	}
	why := p.missingFor(op)
	if why == "" {
		return nil
	}
	p.accessMu.Lock()
	nsMissing := p.access.namespace != ""
	p.accessMu.Unlock()
	if nsMissing {
		return provider.Errorf(Name, workload.NotFound, "%s: %s", what, why)
	}
	return provider.Errorf(Name, workload.PermissionDenied, "%s: %s", what, why)
}

// MissingPermission implements provider.PermissionExplainer.
func (p *Provider) MissingPermission(op provider.Operation) string { return p.missingFor(op) }

// accessProblem is what Ping reports: a namespace that does not exist, or
// a missing verb every operation needs (the informers' list and watch).
func (p *Provider) accessProblem() error {
	p.accessMu.Lock()
	st := p.access
	p.accessMu.Unlock()
	if st.namespace != "" {
		return provider.Errorf(Name, workload.NotFound, "%s", st.namespace)
	}
	if why := p.missingFor(provider.OpStatus); why != "" {
		return provider.Errorf(Name, workload.PermissionDenied, "%s", why)
	}
	return nil
}

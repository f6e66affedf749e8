package kubernetes_test

import (
	"context"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authorization/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"sigs.k8s.io/yaml"

	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// readRole reads the Role users copy, deploy/kubernetes/role.yaml.
func readRole(t *testing.T) *rbacv1.Role {
	t.Helper()
	b, err := os.ReadFile("../../deploy/kubernetes/role.yaml")
	if err != nil {
		t.Fatal(err)
	}
	var r rbacv1.Role
	if err := yaml.UnmarshalStrict(b, &r); err != nil {
		t.Fatalf("role.yaml: %v", err)
	}
	return &r
}

// bindRole creates role in ns, binds it to a user that a bearer token
// (through the control plane's token webhook) authenticates as, waits
// until RBAC grants it, and returns a rest.Config with that token and no
// other identity.
func bindRole(t *testing.T, c *k8stest.Cluster, ns string, role *rbacv1.Role) *rest.Config {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	user := "alphaswarm-" + ns
	token := "role-test-" + ns
	c.AddTokenAuthenticator(t, func(_ context.Context, tok string) (string, []string, bool) {
		return user, nil, tok == token
	})
	role = role.DeepCopy()
	role.Namespace = ns
	if _, err := c.Client().RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: role.Name, Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "User", APIGroup: "rbac.authorization.k8s.io", Name: user}}}
	if _, err := c.Client().RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rc := rest.CopyConfig(c.RESTConfig)
	rc.Impersonate = rest.ImpersonationConfig{}
	rc.CertFile, rc.KeyFile, rc.CertData, rc.KeyData = "", "", nil, nil
	rc.Username, rc.Password = "", ""
	rc.BearerTokenFile, rc.BearerToken = "", token
	cs, err := clientset.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	// The authorizer learns of new bindings through its informers.
	for {
		r, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: ns, Verb: "list", Group: "apps", Resource: "replicasets"}}}, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			return rc
		}
		select {
		case <-ctx.Done():
			t.Fatalf("the Role's binding never took effect: %v", err)
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// Item 7: the conformance suite passes with a token bound to exactly the
// Role of deploy/kubernetes/role.yaml, and the access check finds nothing
// missing.
func TestConformanceWithTheDocumentedRole(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	rc := bindRole(t, c, ns, readRole(t))
	p := openWith(t, rc, ns, kubernetes.Options{DeleteOnStop: true})
	for _, op := range provider.Operations {
		if why := p.MissingPermission(op); why != "" {
			t.Errorf("%s: %s", op, why)
		}
	}
	providertest.Run(t, kubetest.Harness(c, ns, "kt", p))
}

// D6, D8, S5: a Role that lacks a verb is named up front, in the
// capability matrix and by the operation (permission_denied naming the
// verb, at once), not suffered as a slow or odd failure.
func TestMissingVerbsAreNamed(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	role := readRole(t)
	for i := range role.Rules {
		r := &role.Rules[i]
		switch {
		case slices.Equal(r.Resources, []string{"pods/exec"}):
			r.Verbs = []string{"get"} // no create
		case slices.Equal(r.Resources, []string{"replicasets"}):
			r.Verbs = []string{"list"} // no watch
		case r.APIGroups[0] == "metrics.k8s.io":
			r.Verbs = []string{"get"} // no list
		}
	}
	rc := bindRole(t, c, ns, role)
	p := openWith(t, rc, ns, kubernetes.Options{})
	caps := map[provider.Operation]provider.Capability{}
	for _, c := range provider.Capabilities(p) {
		caps[c.Op] = c
	}
	if c := caps[provider.OpExec]; c.Supported || !strings.Contains(c.Reason, "create pods/exec") {
		t.Errorf("exec capability %+v", c)
	}
	if c := caps[provider.OpStreamMetrics]; c.Supported || !strings.Contains(c.Reason, "list pods.metrics.k8s.io") {
		t.Errorf("stream_metrics capability %+v (the matrix must give the reason metrics answers)", c)
	}
	if c := caps[provider.OpStart]; c.Supported || !strings.Contains(c.Reason, "watch replicasets.apps") {
		t.Errorf("start capability %+v", c)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	// Without the up-front check Start waited for informers that never
	// sync and ended with ctx (a timeout), not with the missing verb.
	_, err := p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: kubetest.Image, Replicas: 1})
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "watch replicasets.apps") || !provider.NothingChanged(err) {
		t.Fatalf("start: %v", err)
	}
	_, err = p.Exec(ctx, "web", provider.ExecRequest{Command: []string{"true"}})
	if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "create pods/exec") ||
		!strings.Contains(err.Error(), `user "alphaswarm-`+ns+`"`) {
		t.Fatalf("exec: %v", err)
	}
	for _, err := range p.StreamMetrics(ctx, "web") {
		if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "list pods.metrics.k8s.io") {
			t.Fatalf("metrics: %v", err)
		}
		break
	}
	if err := p.Ping(ctx); workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "watch replicasets.apps") {
		t.Fatalf("ping (readyz): %v", err)
	}
	// Right after a target opens, an operation waits for the first check
	// instead of racing it.
	fresh, err := kubernetes.New(context.Background(), "kt2", rc, kubernetes.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { fresh.Close() })
	if _, err := fresh.Exec(ctx, "web", provider.ExecRequest{Command: []string{"true"}}); workload.CodeOf(err) != workload.PermissionDenied ||
		!strings.Contains(err.Error(), "create pods/exec") {
		t.Fatalf("exec right after open: %v", err)
	}
}

// S6: a target whose namespace does not exist is reported when it opens:
// Ping (readyz) and every operation say so.
func TestMissingNamespaceReportedAtOpen(t *testing.T) {
	c := k8stest.Start(t)
	p := openWith(t, c.RESTConfig, "no-such-namespace-"+strings.ToLower(providertest.Name("ns")), kubernetes.Options{})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Ping(ctx); workload.CodeOf(err) != workload.NotFound || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("ping: %v", err)
	}
	if _, err := p.List(ctx); workload.CodeOf(err) != workload.NotFound || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("list: %v", err)
	}
	if c := provider.Capabilities(p)[0]; c.Supported || !strings.Contains(c.Reason, "does not exist") {
		t.Fatalf("capability %+v", c)
	}
}

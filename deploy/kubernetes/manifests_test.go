package manifests

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	authv1 "k8s.io/api/authentication/v1"
	authzv1 "k8s.io/api/authorization/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/alphaswarm/controller/internal/k8stest"
	kprov "github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/workload"
)

func TestMain(m *testing.M) { k8stest.Main(m) }

// render runs `kubectl kustomize` on an overlay that puts this directory's
// base in namespace ns, as a user's overlay would.
func render(t *testing.T, c *k8stest.Cluster, ns string) string {
	t.Helper()
	base, err := filepath.Abs(".")
	if err != nil {
		t.Fatal(err)
	}
	overlay := t.TempDir()
	base, err = filepath.Rel(overlay, base) // kustomize takes only relative bases
	if err != nil {
		t.Fatal(err)
	}
	kust := fmt.Sprintf("apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources: [%q]\n", ns, base)
	if err := os.WriteFile(filepath.Join(overlay, "kustomization.yaml"), []byte(kust), 0o644); err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(overlay, "rendered.yaml")
	if err := os.WriteFile(out, []byte(c.Kubectl(t, "kustomize", overlay)), 0o644); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestManifestsApply: the rendered manifests pass the real API server's
// validation and admission (`kubectl apply --dry-run=server`), then apply
// for real in a namespace enforcing the restricted Pod Security Standard;
// the Deployment's 2 replicas become ready on the fake nodes.
func TestManifestsApply(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	// The pods must pass the "restricted" Pod Security Standard: the
	// securityContext matches the image (non-root UID, no capabilities...).
	c.Kubectl(t, "label", "namespace", ns, "pod-security.kubernetes.io/enforce=restricted")
	file := render(t, c, ns)
	out := c.Kubectl(t, "apply", "--dry-run=server", "-f", file)
	t.Logf("kubectl apply --dry-run=server:\n%s", out)
	for _, want := range []string{"serviceaccount/alphaswarm", "role.rbac.authorization.k8s.io/alphaswarm",
		"rolebinding.rbac.authorization.k8s.io/alphaswarm", "configmap/alphaswarm-config", "service/alphaswarm",
		"deployment.apps/alphaswarm", "poddisruptionbudget.policy/alphaswarm", "networkpolicy.networking.k8s.io/alphaswarm"} {
		if !strings.Contains(out, want+" created (server dry run)") {
			t.Errorf("dry run lacks %q", want)
		}
	}
	if n := strings.Count(out, "(server dry run)"); n != 8 {
		t.Errorf("%d objects in the dry run, want 8", n)
	}
	c.Kubectl(t, "apply", "-f", file)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	for {
		d, err := c.Client().AppsV1().Deployments(ns).Get(ctx, "alphaswarm", metav1.GetOptions{})
		if err == nil && d.Status.ReadyReplicas == 2 {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the Deployment never had 2 ready replicas: %v %+v", err, d.Status)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// TestServiceAccountIsSufficientAndMinimal: with the manifests applied, a
// token minted for the alphaswarm ServiceAccount (TokenRequest) is granted
// every rule of the Role in its namespace and nothing in another one: the
// kubernetes provider deploys and reads a service with only that token, and
// the same provider pointed at another namespace is refused with
// permission_denied naming the verb.
func TestServiceAccountIsSufficientAndMinimal(t *testing.T) {
	c := k8stest.Start(t)
	ns, other := c.Namespace(t), c.Namespace(t)
	c.Kubectl(t, "apply", "-f", render(t, c, ns))
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	tr, err := c.Client().CoreV1().ServiceAccounts(ns).CreateToken(ctx, "alphaswarm",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: ptr(int64(600))}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	rc := rest.CopyConfig(c.RESTConfig)
	rc.Impersonate = rest.ImpersonationConfig{}
	rc.CertFile, rc.KeyFile, rc.CertData, rc.KeyData = "", "", nil, nil
	rc.Username, rc.Password = "", ""
	rc.BearerTokenFile, rc.BearerToken = "", tr.Status.Token
	sa, err := kubernetes.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	allowed := func(ns, verb, group, resource, sub string) bool {
		t.Helper()
		r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authzv1.SelfSubjectAccessReview{
			Spec: authzv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authzv1.ResourceAttributes{
				Namespace: ns, Verb: verb, Group: group, Resource: resource, Subresource: sub}}}, metav1.CreateOptions{})
		if err != nil {
			t.Fatalf("SelfSubjectAccessReview with the ServiceAccount token: %v", err)
		}
		return r.Status.Allowed
	}
	// RBAC learns of the binding through its informers.
	for !allowed(ns, "list", "apps", "replicasets", "") {
		if ctx.Err() != nil {
			t.Fatal("the RoleBinding never took effect")
		}
		time.Sleep(100 * time.Millisecond)
	}
	role, err := c.Client().RbacV1().Roles(ns).Get(ctx, "alphaswarm", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, rule := range role.Rules {
		for _, res := range rule.Resources {
			resource, sub, _ := strings.Cut(res, "/")
			for _, verb := range rule.Verbs {
				if !allowed(ns, verb, rule.APIGroups[0], resource, sub) {
					t.Errorf("%s %s/%s in %s: refused to the ServiceAccount", verb, rule.APIGroups[0], res, ns)
				}
				if allowed(other, verb, rule.APIGroups[0], resource, sub) {
					t.Errorf("%s %s/%s in another namespace: granted to the ServiceAccount", verb, rule.APIGroups[0], res)
				}
			}
		}
	}
	for _, verb := range []string{"*", "escalate", "bind"} {
		if allowed(ns, verb, "rbac.authorization.k8s.io", "roles", "") {
			t.Errorf("%s roles: granted to the ServiceAccount", verb)
		}
	}
	if allowed(ns, "get", "", "secrets", "") {
		t.Error("get secrets: granted to the ServiceAccount")
	}

	// The provider with only the ServiceAccount's token.
	p, err := kprov.New(ctx, "incluster", rc, kprov.Options{Namespace: ns})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	st, err := p.Start(ctx, workload.DeploymentSpec{Name: "web", Image: "registry.example/web:1", Replicas: 1})
	if err != nil {
		t.Fatalf("start with the ServiceAccount token: %v", err)
	}
	if st, err = p.Status(ctx, "web"); err != nil || st.Replicas.Desired != 1 {
		t.Fatalf("status with the ServiceAccount token: %+v %v", st, err)
	}
	q, err := kprov.New(ctx, "elsewhere", rc, kprov.Options{Namespace: other})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { q.Close() })
	_, err = q.Start(ctx, workload.DeploymentSpec{Name: "web", Image: "registry.example/web:1", Replicas: 1})
	var we *workload.Error
	if !errors.As(err, &we) || we.Code != workload.PermissionDenied || !strings.Contains(we.Message, "cannot list") {
		t.Fatalf("start in another namespace: %v, want permission_denied naming the verb", err)
	}
	t.Logf("start in another namespace: %v", err)
}

func ptr[T any](v T) *T { return &v }

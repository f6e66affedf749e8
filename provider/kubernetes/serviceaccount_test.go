package kubernetes_test

import (
	"context"
	"testing"
	"time"

	authnv1 "k8s.io/api/authentication/v1"
	authv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	clientset "k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/provider/providertest"
)

// TestConformanceWithServiceAccountToken is the in-cluster set-up of
// deploy/kubernetes: a ServiceAccount bound to role.yaml, and a token minted
// for it with TokenRequest (what the kubelet projects into the pod) as the
// provider's only identity. The whole conformance suite passes with it.
func TestConformanceWithServiceAccountToken(t *testing.T) {
	c := k8stest.Start(t)
	ns := c.Namespace(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cs := c.Client()
	if _, err := cs.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: "alphaswarm"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	role := readRole(t)
	role.Namespace = ns
	if _, err := cs.RbacV1().Roles(ns).Create(ctx, role, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	rb := &rbacv1.RoleBinding{ObjectMeta: metav1.ObjectMeta{Name: "alphaswarm", Namespace: ns},
		RoleRef:  rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: role.Name},
		Subjects: []rbacv1.Subject{{Kind: "ServiceAccount", Name: "alphaswarm", Namespace: ns}}}
	if _, err := cs.RbacV1().RoleBindings(ns).Create(ctx, rb, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(ns).CreateToken(ctx, "alphaswarm",
		&authnv1.TokenRequest{Spec: authnv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatalf("TokenRequest: %v", err)
	}
	rc := rest.CopyConfig(c.RESTConfig)
	rc.Impersonate = rest.ImpersonationConfig{}
	rc.CertFile, rc.KeyFile, rc.CertData, rc.KeyData = "", "", nil, nil
	rc.Username, rc.Password = "", ""
	rc.BearerTokenFile, rc.BearerToken = "", tr.Status.Token
	sa, err := clientset.NewForConfig(rc)
	if err != nil {
		t.Fatal(err)
	}
	for { // RBAC learns of the binding through its informers
		r, err := sa.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, &authv1.SelfSubjectAccessReview{
			Spec: authv1.SelfSubjectAccessReviewSpec{ResourceAttributes: &authv1.ResourceAttributes{
				Namespace: ns, Verb: "list", Group: "apps", Resource: "replicasets"}}}, metav1.CreateOptions{})
		if err == nil && r.Status.Allowed {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("the RoleBinding never took effect: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	p := openWith(t, rc, ns, kubernetes.Options{DeleteOnStop: true})
	for _, op := range provider.Operations {
		if why := p.MissingPermission(op); why != "" {
			t.Errorf("%s: %s", op, why)
		}
	}
	providertest.Run(t, kubetest.Harness(c, ns, "kt", p))
}

package kubernetes_test

import (
	"context"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alphaswarm/controller/internal/k8stest"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/kubernetes"
	"github.com/alphaswarm/controller/provider/kubernetes/kubetest"
	"github.com/alphaswarm/controller/workload"
)

// TestDiffAndCheckRefsUnderRBAC: with exactly the documented Role, Diff
// works (its dry runs need no verb start does not) and CheckRefs cannot
// tell about Secrets (get secrets is not in the Role) and passes; a Role
// without patch on deployments makes Diff answer permission_denied naming
// that verb, as start and the capability matrix do; get secrets limited
// to one Secret by resourceNames checks that one (a key it lacks is
// not_found) and cannot tell about the others.
func TestDiffAndCheckRefsUnderRBAC(t *testing.T) {
	c := k8stest.Start(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	spec := workload.DeploymentSpec{Name: "web", Image: kubetest.Image, Replicas: 1,
		Secrets: []workload.SecretRef{{Env: "PASSWORD", From: "db/password"}}}
	secret := func(ns, name string) {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, StringData: map[string]string{"password": "not-shown-anywhere"}}
		if _, err := c.Client().CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
			t.Fatal(err)
		}
	}

	t.Run("documented role", func(t *testing.T) {
		ns := c.Namespace(t)
		secret(ns, "db")
		p := openWith(t, bindRole(t, c, ns, readRole(t)), ns, kubernetes.Options{})
		d, err := p.Diff(ctx, spec)
		if err != nil || d.Action != workload.DiffCreate {
			t.Fatalf("diff: %+v, %v", d, err)
		}
		if _, err := p.Start(provider.WithoutWait(ctx), spec); err != nil {
			t.Fatal(err)
		}
		if d, err := p.Diff(ctx, spec); err != nil || d.Action != workload.DiffNone {
			t.Fatalf("diff after start: %+v, %v", d, err)
		}
		if err := p.CheckRefs(ctx, spec); err != nil {
			t.Fatalf("check refs without get secrets: %v, want nil (cannot tell)", err)
		}
	})

	t.Run("no patch on deployments", func(t *testing.T) {
		ns := c.Namespace(t)
		role := readRole(t)
		for i, r := range role.Rules {
			if slices.Equal(r.Resources, []string{"deployments"}) && slices.Contains(r.Verbs, "patch") {
				role.Rules[i].Verbs = slices.DeleteFunc(slices.Clone(r.Verbs), func(v string) bool { return v == "patch" })
			}
		}
		p := openWith(t, bindRole(t, c, ns, role), ns, kubernetes.Options{})
		_, err := p.Diff(ctx, spec)
		if workload.CodeOf(err) != workload.PermissionDenied || !strings.Contains(err.Error(), "diff (a server-side dry run of start") ||
			!strings.Contains(err.Error(), "cannot patch deployments.apps") {
			t.Fatalf("diff: %v", err)
		}
		if why := p.MissingPermission(provider.OpStart); !strings.Contains(why, "cannot patch deployments.apps") {
			t.Fatalf("the capability matrix says %q", why)
		}
	})

	t.Run("get secrets for one Secret", func(t *testing.T) {
		ns := c.Namespace(t)
		secret(ns, "db")
		secret(ns, "other")
		role := readRole(t)
		role.Rules = append(role.Rules, rbacv1.PolicyRule{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"get"}, ResourceNames: []string{"db"}})
		p := openWith(t, bindRole(t, c, ns, role), ns, kubernetes.Options{})
		if err := p.CheckRefs(ctx, spec); err != nil {
			t.Fatalf("check refs: %v", err)
		}
		other := spec
		other.Secrets = []workload.SecretRef{{Env: "A", From: "db/password"}, {Env: "B", From: "other/password"}}
		if err := p.CheckRefs(ctx, other); err != nil {
			t.Fatalf("check refs of a Secret outside resourceNames: %v, want nil (cannot tell)", err)
		}
		other.Secrets = []workload.SecretRef{{Env: "B", From: "other/password"}, {Env: "A", From: "db/nokey"}}
		err := p.CheckRefs(ctx, other)
		if workload.CodeOf(err) != workload.NotFound || workload.AsError(err).Fields[0].Path != "secrets[1].from" ||
			!strings.Contains(err.Error(), `Secret db in namespace `+ns+` has no key "nokey"`) {
			t.Fatalf("check refs: %v", err)
		}
		if strings.Contains(err.Error(), "not-shown-anywhere") {
			t.Fatal("the error shows the value")
		}
	})
}

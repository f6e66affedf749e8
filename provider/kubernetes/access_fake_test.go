package kubernetes

import (
	"errors"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	metricsfake "k8s.io/metrics/pkg/client/clientset/versioned/fake"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// D7: a deploy that drops every port deletes the service's Service; a Role
// without "delete services" refuses that at the dry run, before the
// Deployment (or anything) changed. The old code deleted after applying
// the Deployment and failed there.
func TestFakeServiceDeleteIsDryRunFirst(t *testing.T) {
	svc := &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "apps", Labels: ownLabels("prod", "web")},
		Spec: corev1.ServiceSpec{Ports: []corev1.ServicePort{{Name: "http", Port: 8080}}}}
	p, cs, _ := fakeProviderWith(t, func(cs *fake.Clientset, _ *metricsfake.Clientset) {
		cs.PrependReactor("delete", "services", func(a k8stesting.Action) (bool, runtime.Object, error) {
			return true, nil, apierrors.NewForbidden(schema.GroupResource{Resource: "services"}, "web",
				errors.New(`User "bob" cannot delete resource "services"`))
		})
	}, svc)
	_, err := p.Start(ctxT(t, 5*time.Second), workload.DeploymentSpec{Name: "web", Image: "nginx", Replicas: 1})
	if workload.CodeOf(err) != workload.PermissionDenied || !provider.NothingChanged(err) || !strings.Contains(err.Error(), "delete service web (dry run)") {
		t.Fatalf("Start refused by RBAC: %v", err)
	}
	for _, a := range cs.Actions() {
		switch a := a.(type) {
		case k8stesting.PatchActionImpl:
			if len(a.PatchOptions.DryRun) == 0 {
				t.Fatalf("a real write (%s %s) before the refusal", a.GetResource().Resource, a.Name)
			}
		case k8stesting.DeleteActionImpl:
			if len(a.DeleteOptions.DryRun) == 0 {
				t.Fatalf("a real delete of %s %s", a.GetResource().Resource, a.Name)
			}
		}
	}
}

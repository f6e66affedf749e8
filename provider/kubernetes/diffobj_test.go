package kubernetes

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/alphaswarm/controller/workload"
)

func deploymentWith(f func(d *appsv1.Deployment)) *appsv1.Deployment {
	d := &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "ns", ResourceVersion: "7", Generation: 3, UID: "u-1",
			Labels:        map[string]string{LabelService: "web"},
			Annotations:   map[string]string{revisionAnnotaton: "3"},
			ManagedFields: []metav1.ManagedFieldsEntry{{Manager: FieldManager, Operation: metav1.ManagedFieldsOperationApply}}},
		Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{AnnotationConfigChecksum: "0123abcd"}},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "web", Image: "a:1",
				Env: []corev1.EnvVar{{Name: "B", Value: "1"}, {Name: "C", Value: "2"}}}}}}},
		Status: appsv1.DeploymentStatus{ReadyReplicas: 2, ObservedGeneration: 3},
	}
	f(d)
	return d
}

// TestObjectPairDiff: paths in the API server's own notation, named lists
// matched by name, what the server maintains ignored, and values a diff
// must not show redacted in both the changes and the unified diff.
func TestObjectPairDiff(t *testing.T) {
	secret := func(data map[string]string) *corev1.Secret {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"}, Data: map[string][]byte{}}
		for k, v := range data {
			s.Data[k] = []byte(v)
		}
		return s
	}
	type change = workload.Change
	for _, tc := range []struct {
		name         string
		kind         string
		live, merged runtime.Object
		want         []change
		hidden       []string // never in the changes or the unified diff
	}{
		{name: "server fields only", kind: "Deployment",
			live: deploymentWith(func(*appsv1.Deployment) {}),
			merged: deploymentWith(func(d *appsv1.Deployment) {
				d.ResourceVersion, d.Generation, d.Status.ReadyReplicas = "8", 4, 0
				d.Annotations[revisionAnnotaton] = "4"
				d.ManagedFields = nil
			})},
		{name: "env inserted, one changed", kind: "Deployment",
			live: deploymentWith(func(*appsv1.Deployment) {}),
			merged: deploymentWith(func(d *appsv1.Deployment) {
				c := &d.Spec.Template.Spec.Containers[0]
				c.Env = []corev1.EnvVar{{Name: "A", Value: "0"}, {Name: "B", Value: "1"}, {Name: "C", Value: "3"}}
				c.Resources.Limits = corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("500m")}
			}),
			want: []change{
				{Path: "Deployment/web: spec.template.spec.containers[0].env[0]", To: `{"name":"A","value":"0"}`, Replaces: true},
				{Path: "Deployment/web: spec.template.spec.containers[0].env[2].value", From: "2", To: "3", Replaces: true},
				{Path: "Deployment/web: spec.template.spec.containers[0].resources.limits[cpu]", To: "500m", Replaces: true}}},
		{name: "config checksum", kind: "Deployment",
			live: deploymentWith(func(*appsv1.Deployment) {}),
			merged: deploymentWith(func(d *appsv1.Deployment) {
				d.Spec.Template.Annotations[AnnotationConfigChecksum] = "4567ef"
				d.Labels["team"] = "a"
			}),
			want: []change{
				{Path: "Deployment/web: metadata.labels[team]", To: "a"},
				{Path: "Deployment/web: spec.template.metadata.annotations[alphaswarm.config-checksum]", From: "(set)", To: "(changed)", Replaces: true}},
			hidden: []string{"0123abcd", "4567ef"}},
		{name: "secret data", kind: "Secret",
			live:   secret(map[string]string{"same": "v-same", "old": "v-old", "edit": "v-edit-1"}),
			merged: secret(map[string]string{"same": "v-same", "new": "v-new", "edit": "v-edit-2"}),
			want: []change{
				{Path: "Secret/db: data[edit]", From: "(set)", To: "(changed)"},
				{Path: "Secret/db: data[new]", To: "(set)"},
				{Path: "Secret/db: data[old]", From: "(set)", To: "(removed)"}},
			// The values and their base64 forms.
			hidden: []string{"v-same", "v-old", "v-edit", "v-new", "di1zYW1l", "di1vbGQ", "di1lZGl0", "di1uZXc"}},
		{name: "secret created", kind: "Secret",
			merged: secret(map[string]string{"k": "v-created"}),
			want:   []change{{Path: "Secret/db", To: "(created)"}},
			hidden: []string{"v-created", "di1jcmVhdGVk"}},
		{name: "configmap deleted", kind: "ConfigMap",
			live:   &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "ns"}, Data: map[string]string{"K": "v-config"}},
			want:   []change{{Path: "ConfigMap/db", From: "(exists)", To: "(deleted)"}},
			hidden: []string{"v-config"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			op := objectPair{kind: tc.kind, apiVersion: "v1", name: nameOf(tc.live, tc.merged), live: tc.live, merged: tc.merged}
			changes, native, err := op.diff("ns")
			if err != nil {
				t.Fatal(err)
			}
			if !slices.Equal(changes, tc.want) {
				t.Errorf("changes\n got %+v\nwant %+v", changes, tc.want)
			}
			if (len(tc.want) == 0) != (native == "") {
				t.Errorf("native diff %q for changes %v", native, tc.want)
			}
			b, _ := json.Marshal(changes)
			for _, h := range tc.hidden {
				if strings.Contains(native, h) || strings.Contains(string(b), h) {
					t.Errorf("%q shown:\n%s\n%s", h, b, native)
				}
			}
			for _, server := range []string{"resourceVersion", "managedFields", "generation", "uid:", "status:", revisionAnnotaton} {
				if strings.Contains(native, server) {
					t.Errorf("native diff shows %s:\n%s", server, native)
				}
			}
			t.Logf("native:\n%s", native)
		})
	}
}

func nameOf(objs ...runtime.Object) string {
	for _, o := range objs {
		if m, ok := o.(metav1.Object); ok && o != nil {
			return m.GetName()
		}
	}
	return ""
}

package kubernetes

import (
	"context"
	"encoding/json"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// Values that must never appear in a diff.
const (
	secretValue  = "s3cr3t-Value-of-db-password"
	configValue1 = "config-value-one-LOG"
	configValue2 = "config-value-two-LOG"
)

// resourceVersions are the resource versions of a service's objects (and
// of the Secret it references), "" for one that does not exist.
func (e *env) resourceVersions(t *testing.T, ctx context.Context, name string) map[string]string {
	t.Helper()
	rv := map[string]string{}
	if d, err := e.raw.AppsV1().Deployments(e.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		rv["Deployment"] = d.ResourceVersion
	}
	if c, err := e.raw.CoreV1().ConfigMaps(e.ns).Get(ctx, configMapName(name), metav1.GetOptions{}); err == nil {
		rv["ConfigMap"] = c.ResourceVersion
	}
	if s, err := e.raw.CoreV1().Services(e.ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
		rv["Service"] = s.ResourceVersion
	}
	if s, err := e.raw.CoreV1().Secrets(e.ns).Get(ctx, "db", metav1.GetOptions{}); err == nil {
		rv["Secret"] = s.ResourceVersion
	}
	return rv
}

func (e *env) createSecret(t *testing.T, ctx context.Context, name string, data map[string]string) {
	t.Helper()
	s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: e.ns}, StringData: data}
	if _, err := e.raw.CoreV1().Secrets(e.ns).Create(ctx, s, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

// TestDiffAgainstTheAPIServer previews a sequence of deploys of one
// service on the real API server. Each case diffs a spec against what the
// previous cases left, checks the action and the changes, that the diff
// wrote nothing (every resourceVersion unchanged) and showed no secret or
// config value, and then starts the spec: a diff of the same spec right
// after is none, so Diff and Start agree on what a start writes.
func TestDiffAgainstTheAPIServer(t *testing.T) {
	e := newEnv(t, nil)
	ctx := e.ctx(t)
	e.createSecret(t, ctx, "db", map[string]string{"password": secretValue})
	spec := workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 2,
		Env:     map[string]string{"MODE": "blue"},
		Ports:   []workload.Port{{Container: 8080}},
		Config:  map[string]string{"LOG_LEVEL": configValue1},
		Secrets: []workload.SecretRef{{Env: "DB_PASSWORD", From: "db/password"}}}
	type change struct {
		path, from, to string
		replaces       bool
	}
	for _, tc := range []struct {
		name   string
		change func(s *workload.DeploymentSpec) // to the spec of the case before
		action workload.DiffAction
		want   []change // exactly these, in order
		native []string // lines the unified diff has
		// kubectl: `kubectl diff --server-side` of the Deployment Start
		// applies changes the same lines as native.
		kubectl bool
	}{
		{name: "create", action: workload.DiffCreate,
			want: []change{{path: "Deployment/web", to: "(created)"}, {path: "ConfigMap/web-config", to: "(created)"}, {path: "Service/web", to: "(created)"}},
			native: []string{"--- /dev/null", "+++ merged/apps.v1.Deployment." + e.ns + ".web", "+        image: " + testImage,
				"+  LOG_LEVEL: (set)", "+        alphaswarm.config-checksum: (set)", "+              key: password", "+++ merged/v1.Service." + e.ns + ".web"}},
		{name: "none", action: workload.DiffNone},
		{name: "replicas only", change: func(s *workload.DeploymentSpec) { s.Replicas = 4 }, action: workload.DiffUpdate,
			want:   []change{{path: "Deployment/web: spec.replicas", from: "2", to: "4"}},
			native: []string{"--- live/apps.v1.Deployment." + e.ns + ".web", "-  replicas: 2", "+  replicas: 4"}, kubectl: true},
		{name: "image", change: func(s *workload.DeploymentSpec) { s.Image = "registry.k8s.io/pause:3.9" }, action: workload.DiffReplace,
			want:   []change{{path: "Deployment/web: spec.template.spec.containers[0].image", from: testImage, to: "registry.k8s.io/pause:3.9", replaces: true}},
			native: []string{"-        image: " + testImage, "+        image: registry.k8s.io/pause:3.9"}, kubectl: true},
		{name: "config value", change: func(s *workload.DeploymentSpec) { s.Config = map[string]string{"LOG_LEVEL": configValue2} }, action: workload.DiffReplace,
			want: []change{
				{path: "Deployment/web: spec.template.metadata.annotations[alphaswarm.config-checksum]", from: "(set)", to: "(changed)", replaces: true},
				{path: "ConfigMap/web-config: data[LOG_LEVEL]", from: "(set)", to: "(changed)"}},
			native: []string{"-  LOG_LEVEL: (set)", "+  LOG_LEVEL: (changed)"}},
		{name: "config key removed", change: func(s *workload.DeploymentSpec) { s.Config = nil }, action: workload.DiffReplace,
			want: []change{
				{path: "Deployment/web: spec.template.metadata.annotations[alphaswarm.config-checksum]", from: "(set)", to: "(changed)", replaces: true},
				{path: "ConfigMap/web-config: data[LOG_LEVEL]", from: "(set)", to: "(removed)"}}},
		{name: "env added before the others", change: func(s *workload.DeploymentSpec) { s.Env = map[string]string{"AAA": "first", "MODE": "blue"} }, action: workload.DiffReplace,
			want:    []change{{path: "Deployment/web: spec.template.spec.containers[0].env[0]", to: `{"name":"AAA","value":"first"}`, replaces: true}},
			kubectl: true},
		{name: "progress deadline", change: func(s *workload.DeploymentSpec) {
			s.Extensions = ext(map[string]any{"progressDeadline": "2m"})
		}, action: workload.DiffUpdate,
			want: []change{{path: "Deployment/web: spec.progressDeadlineSeconds", from: "600", to: "120"}}},
		{name: "ports dropped", change: func(s *workload.DeploymentSpec) { s.Ports = nil }, action: workload.DiffReplace,
			want: []change{
				{path: "Deployment/web: spec.template.spec.containers[0].ports", from: `[{"containerPort":8080,"name":"tcp-8080","protocol":"TCP"}]`, replaces: true},
				{path: "Service/web", from: "(exists)", to: "(deleted)"}},
			native: []string{"--- live/v1.Service." + e.ns + ".web", "+++ /dev/null"}},
	} {
		if tc.change != nil {
			tc.change(&spec)
		}
		t.Run(tc.name, func(t *testing.T) {
			before := e.quiet(t, ctx, "web")
			d, err := e.p.Diff(ctx, spec)
			if err != nil {
				t.Fatal(err)
			}
			if after := e.resourceVersions(t, ctx, "web"); !maps.Equal(before, after) {
				t.Errorf("the diff wrote: resource versions %v before, %v after", before, after)
			}
			if d.Action != tc.action || d.Service != "web" || d.Provider != Name || d.Changed() != (tc.action != workload.DiffNone) {
				t.Errorf("diff %s/%s action %q (%s), want %q", d.Provider, d.Service, d.Action, d.Reason, tc.action)
			}
			var got []change
			for _, c := range d.Changes {
				got = append(got, change{c.Path, c.From, c.To, c.Replaces})
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("changes\n got %+v\nwant %+v", got, tc.want)
			}
			lines := strings.Split(d.Native, "\n")
			for _, l := range tc.native {
				if !slices.Contains(lines, l) {
					t.Errorf("native diff has no line %q:\n%s", l, d.Native)
				}
			}
			if tc.action == workload.DiffNone && d.Native != "" {
				t.Errorf("native diff of no change:\n%s", d.Native)
			}
			b, _ := json.Marshal(d)
			for _, v := range []string{secretValue, configValue1, configValue2, configChecksum(map[string]string{"LOG_LEVEL": configValue1}),
				configChecksum(map[string]string{"LOG_LEVEL": configValue2})} {
				if strings.Contains(string(b), v) {
					t.Errorf("the diff shows %q:\n%s", v, b)
				}
			}
			if tc.kubectl {
				if ours, theirs := changedLines(d.Native), e.kubectlDiff(t, ctx, spec); !slices.Equal(ours, theirs) {
					t.Errorf("kubectl diff --server-side changes\n%s\nthe native diff\n%s", strings.Join(theirs, "\n"), strings.Join(ours, "\n"))
				}
			}
			if t.Failed() {
				t.Logf("native:\n%s", d.Native)
			}
			// Start what was previewed; a second diff finds nothing.
			if st, err := e.p.Start(ctx, spec); err != nil || st.Phase != workload.Running {
				t.Fatalf("start: %v (%+v)", err, st)
			}
			if d, err := e.p.Diff(ctx, spec); err != nil || d.Action != workload.DiffNone || len(d.Changes) != 0 {
				t.Fatalf("diff after start: %+v, %v", d, err)
			}
		})
	}
}

// quiet waits until no object of a service changes for a second (the
// Deployment controller writes status after a rollout) and returns their
// resource versions.
func (e *env) quiet(t *testing.T, ctx context.Context, name string) map[string]string {
	t.Helper()
	last := e.resourceVersions(t, ctx, name)
	for {
		select {
		case <-ctx.Done():
			t.Fatalf("the objects of %s never stopped changing", name)
		case <-time.After(time.Second):
		}
		rv := e.resourceVersions(t, ctx, name)
		if maps.Equal(rv, last) {
			return rv
		}
		last = rv
	}
}

// kubectlDiff runs `kubectl diff --server-side` on the Deployment Start
// would apply for spec and returns its changed lines.
func (e *env) kubectlDiff(t testing.TB, ctx context.Context, spec workload.DeploymentSpec) []string {
	t.Helper()
	live, err := e.raw.AppsV1().Deployments(e.ns).Get(ctx, spec.Name, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	objs, err := translate(e.target, e.p.opts, spec, live.UID)
	if err != nil {
		t.Fatal(err)
	}
	b, err := json.Marshal(objs.deployment)
	if err != nil {
		t.Fatal(err)
	}
	file := filepath.Join(t.TempDir(), "deployment.json")
	if err := os.WriteFile(file, b, 0o600); err != nil {
		t.Fatal(err)
	}
	// Exit status 1 means "differences found".
	out, err := e.c.TryKubectl("diff", "--server-side", "--force-conflicts", "--field-manager="+FieldManager, "-f", file)
	if err != nil && out == "" {
		t.Fatal(err)
	}
	return changedLines(out)
}

// changedLines are the added and removed lines of a unified diff, sorted,
// without the file headers and metadata.generation (which kubectl diff
// shows and Diff leaves out as the server's).
func changedLines(diff string) []string {
	var out []string
	for _, l := range strings.Split(diff, "\n") {
		if strings.HasPrefix(l, "+++ ") || strings.HasPrefix(l, "--- ") || strings.Contains(l, "  generation: ") {
			continue
		}
		if strings.HasPrefix(l, "+") || strings.HasPrefix(l, "-") {
			out = append(out, l)
		}
	}
	slices.Sort(out)
	return out
}

// TestDiffRefusesWhatStartRefuses: a spec Start would refuse is refused by
// Diff with the same error, before any dry run.
func TestDiffRefusesWhatStartRefuses(t *testing.T) {
	e := newEnv(t, nil)
	ctx := e.ctx(t)
	foreign := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: configMapName("api"), Namespace: e.ns}}
	if _, err := e.raw.CoreV1().ConfigMaps(e.ns).Create(ctx, foreign, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		spec workload.DeploymentSpec
		code workload.Code
		want string
	}{
		{"env reference", workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 1,
			Secrets: []workload.SecretRef{{Env: "X", From: "env:X"}}}, workload.InvalidArgument, "secrets[0].from"},
		{"another target", workload.DeploymentSpec{Name: "web", Target: "other", Image: testImage, Replicas: 1}, workload.InvalidArgument, "target"},
		{"foreign configmap", workload.DeploymentSpec{Name: "api", Image: testImage, Replicas: 1}, workload.AlreadyExists, "will not take it over"},
		{"invalid quantity", workload.DeploymentSpec{Name: "web", Image: testImage, Replicas: 1,
			Resources: workload.Resources{CPU: "lots"}}, workload.InvalidArgument, "resources.cpu"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, derr := e.p.Diff(ctx, tc.spec)
			_, serr := e.p.Start(provider.WithoutWait(ctx), tc.spec)
			if workload.CodeOf(derr) != tc.code || !strings.Contains(derr.Error()+fieldsOf(derr), tc.want) {
				t.Errorf("diff: %v (fields %s)", derr, fieldsOf(derr))
			}
			if workload.CodeOf(serr) != workload.CodeOf(derr) {
				t.Errorf("start: %v; diff: %v", serr, derr)
			}
		})
	}
}

func fieldsOf(err error) string {
	var s []string
	for _, f := range workload.AsError(err).Fields {
		s = append(s, f.Path)
	}
	return strings.Join(s, ",")
}

// TestCheckRefs: secret references that resolve, a Secret that does not
// exist, a key the Secret lacks, and an image pull Secret that does not
// exist; no message holds a value.
func TestCheckRefs(t *testing.T) {
	e := newEnv(t, nil)
	ctx := e.ctx(t)
	e.createSecret(t, ctx, "db", map[string]string{"password": secretValue, "user": "app"})
	spec := func(ext map[string]any, refs ...string) workload.DeploymentSpec {
		s := workload.DeploymentSpec{Name: "web", Image: "registry.invalid/does-not-exist:never", Replicas: 1}
		for i, r := range refs {
			s.Secrets = append(s.Secrets, workload.SecretRef{Env: "S" + itoa(i), From: r})
		}
		if ext != nil {
			s.Extensions = map[string]json.RawMessage{Name: mustJSON(ext)}
		}
		return s
	}
	for _, tc := range []struct {
		name  string
		spec  workload.DeploymentSpec
		code  workload.Code
		field string
		msg   string
	}{
		// The image is not checked (it cannot be without pulling it).
		{name: "present", spec: spec(nil, "db/password", "db/user")},
		{name: "no secret", spec: spec(nil, "db/password", "gone/password"), code: workload.NotFound, field: "secrets[1].from",
			msg: "Secret gone does not exist in namespace " + e.ns},
		{name: "no key", spec: spec(nil, "db/token"), code: workload.NotFound, field: "secrets[0].from",
			msg: `Secret db in namespace ` + e.ns + ` has no key "token"`},
		{name: "no image pull secret", spec: spec(map[string]any{"imagePullSecrets": []string{"db", "regcred"}}, "db/password"),
			code: workload.NotFound, field: "extensions.kubernetes.imagePullSecrets[1]", msg: "Secret regcred does not exist"},
		{name: "not a reference", spec: spec(nil, "env:DB"), code: workload.InvalidArgument, field: "secrets[0].from"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := e.p.CheckRefs(ctx, tc.spec)
			if tc.code == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if workload.CodeOf(err) != tc.code || fieldsOf(err) != tc.field || !strings.Contains(err.Error(), tc.msg) {
				t.Fatalf("got %v (fields %q), want %s on %s: %q", err, fieldsOf(err), tc.code, tc.field, tc.msg)
			}
			b, _ := json.Marshal(workload.AsError(err))
			if strings.Contains(string(b)+err.Error(), secretValue) {
				t.Fatalf("the error shows the secret's value: %s", b)
			}
		})
	}
}

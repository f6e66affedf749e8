package kubernetes

import (
	"encoding/json"
	"fmt"
	"maps"
	"reflect"
	"regexp"
	"slices"
	"strings"

	"github.com/pmezard/go-difflib/difflib"
	"k8s.io/apimachinery/pkg/runtime"
	"sigs.k8s.io/yaml"

	"github.com/alphaswarm/controller/workload"
)

// What a diff shows in place of a value it must not show (workload.Diff's
// rule for config values; kubectl diff's Masker does the same for Secret
// data with "***").
const (
	maskSet     = "(set)"
	maskChanged = "(changed)"
	maskRemoved = "(removed)"
)

// serverMetadata are the metadata fields the API server maintains: never
// part of what a deploy changes.
var serverMetadata = []string{"managedFields", "resourceVersion", "generation", "uid", "creationTimestamp", "selfLink"}

// serverAnnotations are the annotations the API server or a controller
// adds to the objects Start writes.
var serverAnnotations = []string{revisionAnnotaton}

// mapFields are the fields whose keys are data, not field names: a path
// names their keys in brackets, as the API server's validation errors do
// ("metadata.labels[app.kubernetes.io/name]", "resources.limits[cpu]").
var mapFields = map[string]bool{"labels": true, "annotations": true, "data": true, "stringData": true, "binaryData": true,
	"nodeSelector": true, "matchLabels": true, "limits": true, "requests": true, "selector": true}

var fieldNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9]*$`)

// objectPair is one object Start writes: live (nil when absent) and as
// the dry run would store it (nil when it would not exist).
type objectPair struct {
	kind, apiVersion, name string
	live, merged           runtime.Object
}

// diff returns the pair's changes, named "Kind/name: field path", and its
// unified diff (kubectl diff's format: live against merged), both
// redacted.
func (op objectPair) diff(ns string) ([]workload.Change, string, error) {
	from, err := op.normalized(op.live)
	if err != nil {
		return nil, "", err
	}
	to, err := op.normalized(op.merged)
	if err != nil {
		return nil, "", err
	}
	redact(op.kind, from, to)
	prefix := op.kind + "/" + op.name
	var changes []workload.Change
	switch {
	case from == nil && to == nil:
		return nil, "", nil
	case from == nil:
		changes = append(changes, workload.Change{Path: prefix, To: "(created)"})
	case to == nil:
		changes = append(changes, workload.Change{Path: prefix, From: "(exists)", To: "(deleted)"})
	default:
		walk("", "", from, to, func(path string, f, t any) {
			c := workload.Change{Path: prefix + ": " + path, From: render(f), To: render(t)}
			if t == nil && f == maskSet {
				c.To = maskRemoved
			}
			c.Replaces = op.kind == "Deployment" && (path == "spec.template" || strings.HasPrefix(path, "spec.template."))
			changes = append(changes, c)
		})
	}
	if len(changes) == 0 {
		return nil, "", nil
	}
	native, err := unified(op, ns, from, to)
	return changes, native, err
}

// normalized is obj as a map, with its kind and apiVersion (typed clients
// leave them empty) and without what the server maintains; nil for nil.
func (op objectPair) normalized(obj runtime.Object) (map[string]any, error) {
	if obj == nil {
		return nil, nil
	}
	m, err := runtime.DefaultUnstructuredConverter.ToUnstructured(obj.DeepCopyObject())
	if err != nil {
		return nil, err
	}
	m["apiVersion"], m["kind"] = op.apiVersion, op.kind
	delete(m, "status")
	// The typed pod template's empty creationTimestamp ("null").
	if tm := nested(m, "spec", "template", "metadata"); tm != nil && tm["creationTimestamp"] == nil {
		delete(tm, "creationTimestamp")
	}
	if meta, ok := m["metadata"].(map[string]any); ok {
		for _, k := range serverMetadata {
			delete(meta, k)
		}
		if ann, ok := meta["annotations"].(map[string]any); ok {
			for _, k := range serverAnnotations {
				delete(ann, k)
			}
			if len(ann) == 0 {
				delete(meta, "annotations")
			}
		}
	}
	return m, nil
}

// redact replaces, in both sides of a pair, the values a diff must never
// show: every value of a ConfigMap's data (the service's config) and of a
// Secret's data and stringData, and the pod template's config checksum (a
// hash of a short value can be guessed). A value becomes "(set)" on the
// live side; on the merged side "(set)" when it is new or the same, and
// "(changed)" when it differs, so the change stays visible.
func redact(kind string, from, to map[string]any) {
	switch kind {
	case "ConfigMap":
		redactKeys(nested(from, "data"), nested(to, "data"), "")
		redactKeys(nested(from, "binaryData"), nested(to, "binaryData"), "")
	case "Secret":
		redactKeys(nested(from, "data"), nested(to, "data"), "")
		redactKeys(nested(from, "stringData"), nested(to, "stringData"), "")
	case "Deployment":
		path := []string{"spec", "template", "metadata", "annotations"}
		redactKeys(nested(from, path...), nested(to, path...), AnnotationConfigChecksum)
	}
}

// redactKeys masks the values of from and to (either may be nil); only
// the key only when it is not "".
func redactKeys(from, to map[string]any, only string) {
	for k, v := range from {
		if only != "" && k != only {
			continue
		}
		if t, ok := to[k]; ok {
			if reflect.DeepEqual(v, t) {
				to[k] = maskSet
			} else {
				to[k] = maskChanged
			}
		}
		from[k] = maskSet
	}
	for k := range to {
		if only != "" && k != only {
			continue
		}
		if _, ok := from[k]; !ok {
			to[k] = maskSet
		}
	}
}

// nested is the map at path in m (not a copy), or nil.
func nested(m map[string]any, path ...string) map[string]any {
	for _, k := range path {
		next, ok := m[k].(map[string]any)
		if !ok {
			return nil
		}
		m = next
	}
	return m
}

// walk calls change for every leaf that differs between from and to, with
// its path: maps key by key, lists of named objects (containers, env,
// ports, volumes) by name, other lists of objects by index, and lists of
// values (command, args) as one value. parent is the name of the field
// holding from and to.
func walk(path, parent string, from, to any, change func(path string, from, to any)) {
	switch f := from.(type) {
	case map[string]any:
		t, ok := to.(map[string]any)
		if !ok {
			break
		}
		keys := slices.Sorted(maps.Keys(f))
		for k := range t {
			if _, ok := f[k]; !ok {
				keys = append(keys, k)
			}
		}
		slices.Sort(keys)
		for _, k := range keys {
			child := childPath(path, parent, k)
			fv, inF := f[k]
			tv, inT := t[k]
			// A map of data added or removed whole is shown key by
			// key, so its values stay redacted one by one.
			if _, isMap := fv.(map[string]any); isMap && !inT && mapFields[k] {
				tv, inT = map[string]any{}, true
			}
			if _, isMap := tv.(map[string]any); isMap && !inF && mapFields[k] {
				fv, inF = map[string]any{}, true
			}
			switch {
			case !inF:
				change(child, nil, tv)
			case !inT:
				change(child, fv, nil)
			default:
				walk(child, k, fv, tv, change)
			}
		}
		return
	case []any:
		t, ok := to.([]any)
		if !ok || !allObjects(f) || !allObjects(t) {
			break
		}
		fn, tn := names(f), names(t)
		if fn == nil || tn == nil {
			for i := range max(len(f), len(t)) {
				p := fmt.Sprintf("%s[%d]", path, i)
				switch {
				case i >= len(f):
					change(p, nil, t[i])
				case i >= len(t):
					change(p, f[i], nil)
				default:
					walk(p, "", f[i], t[i], change)
				}
			}
			return
		}
		fi := map[string]int{}
		for i, n := range fn {
			fi[n] = i
		}
		for j, te := range t {
			p := fmt.Sprintf("%s[%d]", path, j)
			if i, ok := fi[tn[j]]; ok {
				walk(p, "", f[i], te, change)
			} else {
				change(p, nil, te)
			}
		}
		for i, fe := range f {
			if !slices.Contains(tn, fn[i]) {
				change(fmt.Sprintf("%s[%d]", path, i), fe, nil)
			}
		}
		return
	}
	if !reflect.DeepEqual(from, to) {
		change(path, from, to)
	}
}

// childPath names field k of the object at path.
func childPath(path, parent, k string) string {
	if mapFields[parent] || !fieldNameRE.MatchString(k) {
		return path + "[" + k + "]"
	}
	if path == "" {
		return k
	}
	return path + "." + k
}

func allObjects(l []any) bool {
	for _, e := range l {
		if _, ok := e.(map[string]any); !ok {
			return false
		}
	}
	return true
}

// names are the "name" fields of a list of objects; nil when one has
// none or two share one.
func names(l []any) []string {
	n := make([]string, 0, len(l))
	for _, e := range l {
		name, ok := e.(map[string]any)["name"].(string)
		if !ok || slices.Contains(n, name) {
			return nil
		}
		n = append(n, name)
	}
	return n
}

// render shows a value in a Change: strings as they are, anything else as
// compact JSON; "" for nothing.
func render(v any) string {
	switch v := v.(type) {
	case nil:
		return ""
	case string:
		return v
	}
	b, err := json.Marshal(v)
	if err != nil {
		return fmt.Sprint(v)
	}
	return string(b)
}

// unified is the pair's unified diff, as kubectl diff shows it: YAML,
// three lines of context, files named group.version.kind.namespace.name
// under live/ and merged/ (/dev/null for an object that is not there).
func unified(op objectPair, ns string, from, to map[string]any) (string, error) {
	file := strings.ReplaceAll(op.apiVersion, "/", ".") + "." + op.kind + "." + ns + "." + op.name
	a, err := yamlLines(from)
	if err != nil {
		return "", err
	}
	b, err := yamlLines(to)
	if err != nil {
		return "", err
	}
	ud := difflib.UnifiedDiff{A: a, B: b, FromFile: "live/" + file, ToFile: "merged/" + file, Context: 3}
	if from == nil {
		ud.FromFile = "/dev/null"
	}
	if to == nil {
		ud.ToFile = "/dev/null"
	}
	text, err := difflib.GetUnifiedDiffString(ud)
	if text != "" && !strings.HasSuffix(text, "\n") {
		text += "\n" // the objects' last lines have none
	}
	return text, err
}

func yamlLines(m map[string]any) ([]string, error) {
	if m == nil {
		return nil, nil
	}
	b, err := yaml.Marshal(m)
	if err != nil {
		return nil, err
	}
	return difflib.SplitLines(strings.TrimSuffix(string(b), "\n")), nil
}

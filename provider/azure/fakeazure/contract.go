package fakeazure

import (
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"unicode"
)

// The request contract is the SDK's, not our reading of the API. The
// servers are the Azure SDK's generated fakes (armcontainerinstance/fake,
// armmonitor/fake, azsecrets/fake): each request body is decoded by the
// SDK's own model types, so a body the service's model cannot hold is
// refused as it would be. On top of that, the models mark the properties
// the service computes ("READ-ONLY;" in the generated doc comments of
// models.go, from readOnly in the azure-rest-api-specs definitions); a
// request that sets one is refused with 400 InvalidRequestContent and
// recorded (Violations). The marks are read from the generated source of
// the module this build uses (the Go module cache), at the first check.

// modelSources are the generated model files whose READ-ONLY marks apply.
var modelSources = []struct{ module, file string }{
	{"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/containerinstance/armcontainerinstance/v2", "models.go"},
	{"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets", "models.go"},
}

var (
	readOnlyOnce sync.Once
	readOnly     map[string]map[string]bool // "pkg.Type" → field names
	readOnlyErr  error
)

// ReadOnlyFields returns the READ-ONLY fields of the SDK model types
// ("armcontainerinstance.ContainerGroupProperties" → field names), read
// from the module sources of this build.
func ReadOnlyFields() (map[string]map[string]bool, error) {
	readOnlyOnce.Do(func() { readOnly, readOnlyErr = loadReadOnly() })
	return readOnly, readOnlyErr
}

func loadReadOnly() (map[string]map[string]bool, error) {
	out := map[string]map[string]bool{}
	for _, src := range modelSources {
		dir, err := moduleDir(src.module)
		if err != nil {
			return nil, err
		}
		path := filepath.Join(dir, src.file)
		fset := token.NewFileSet()
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments)
		if err != nil {
			return nil, fmt.Errorf("read the SDK's model definitions: %w", err)
		}
		pkg := f.Name.Name
		for _, d := range f.Decls {
			gd, ok := d.(*ast.GenDecl)
			if !ok || gd.Tok != token.TYPE {
				continue
			}
			for _, s := range gd.Specs {
				ts := s.(*ast.TypeSpec)
				st, ok := ts.Type.(*ast.StructType)
				if !ok {
					continue
				}
				for _, fld := range st.Fields.List {
					if fld.Doc == nil || !strings.HasPrefix(strings.TrimSpace(fld.Doc.Text()), "READ-ONLY") {
						continue
					}
					for _, n := range fld.Names {
						key := pkg + "." + ts.Name.Name
						if out[key] == nil {
							out[key] = map[string]bool{}
						}
						out[key][n.Name] = true
					}
				}
			}
		}
	}
	return out, nil
}

// moduleDir finds the source of module as this build uses it: the
// binary's build information and the module cache, or (test binaries
// carry no dependency list) `go list -m` in the main module.
func moduleDir(module string) (string, error) {
	if bi, ok := debug.ReadBuildInfo(); ok {
		if i := slices.IndexFunc(bi.Deps, func(m *debug.Module) bool { return m.Path == module }); i >= 0 {
			dep := bi.Deps[i]
			if dep.Replace != nil {
				dep = dep.Replace
			}
			cache := os.Getenv("GOMODCACHE")
			if cache == "" {
				if out, err := exec.Command("go", "env", "GOMODCACHE").Output(); err == nil {
					cache = strings.TrimSpace(string(out))
				}
			}
			if dir := filepath.Join(cache, escapeModule(dep.Path)+"@"+dep.Version); cache != "" {
				if _, err := os.Stat(dir); err == nil {
					return dir, nil
				}
			}
		}
	}
	out, err := exec.Command("go", "list", "-m", "-f", "{{.Dir}}", module).Output()
	if err != nil {
		return "", fmt.Errorf("locate module %s: %w", module, err)
	}
	dir := strings.TrimSpace(string(out))
	if dir == "" {
		return "", fmt.Errorf("module %s has no source in the module cache", module)
	}
	return dir, nil
}

// escapeModule is the module cache's case encoding ("!a" for "A").
func escapeModule(p string) string {
	var b strings.Builder
	for _, r := range p {
		if unicode.IsUpper(r) {
			b.WriteByte('!')
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// readOnlySet returns the path of the first READ-ONLY field set in v (a
// model value or pointer to one), or "".
func readOnlySet(v reflect.Value, path string, ro map[string]map[string]bool) string {
	for v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface {
		if v.IsNil() {
			return ""
		}
		v = v.Elem()
	}
	switch v.Kind() {
	case reflect.Struct:
		t := v.Type()
		name := t.String() // "armcontainerinstance.ContainerGroup"
		for i := 0; i < t.NumField(); i++ {
			sf := t.Field(i)
			if !sf.IsExported() {
				continue
			}
			fv := v.Field(i)
			p := path + "." + sf.Name
			if ro[name][sf.Name] && !fv.IsZero() {
				return p
			}
			if r := readOnlySet(fv, p, ro); r != "" {
				return r
			}
		}
	case reflect.Slice:
		for i := 0; i < v.Len(); i++ {
			if r := readOnlySet(v.Index(i), fmt.Sprintf("%s[%d]", path, i), ro); r != "" {
				return r
			}
		}
	case reflect.Map:
		for _, k := range v.MapKeys() {
			if r := readOnlySet(v.MapIndex(k), fmt.Sprintf("%s[%v]", path, k), ro); r != "" {
				return r
			}
		}
	}
	return ""
}

// checkReadOnly refuses a request model that sets a READ-ONLY property;
// f.mu must be held. It returns the refusal's message, or "".
func (f *Fake) checkReadOnly(op string, model any) string {
	ro, err := ReadOnlyFields()
	if err != nil {
		msg := op + ": the SDK's model definitions could not be read: " + err.Error()
		f.violations = append(f.violations, msg)
		return msg
	}
	if p := readOnlySet(reflect.ValueOf(model), reflect.TypeOf(model).Name(), ro); p != "" {
		msg := op + ": " + p + " is read-only (READ-ONLY in the SDK's models) and must not be sent"
		f.violations = append(f.violations, msg)
		return msg
	}
	return ""
}

// Violations lists the requests the contract check refused.
func (f *Fake) Violations() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return slices.Clone(f.violations)
}

package workload

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"reflect"
	"slices"
	"strings"
)

// MaxSpecBytes bounds the size of an encoded spec.
const MaxSpecBytes = 1 << 20

// DecodeSpecJSON decodes a DeploymentSpec from JSON. Unknown fields are
// errors, each named by its path, and so are keys that differ from a
// field's name only in case and keys repeated in one object; Replicas is 1
// when absent. The spec is not validated: call Validate. Every failure is an InvalidArgument *Error.
func DecodeSpecJSON(b []byte) (DeploymentSpec, error) {
	spec := DeploymentSpec{Replicas: 1}
	if len(b) > MaxSpecBytes {
		return spec, Invalid(FieldError{"spec", fmt.Sprintf("must be at most %d bytes", MaxSpecBytes)})
	}
	err := decodeStrict(b, &spec, "spec", "")
	return spec, err
}

// DecodeStrict decodes the JSON object b, found at path in a larger
// document ("targets.web.options", "extensions.docker"), into a T. It is
// the one strict decoder of every request, file and option set: unknown
// keys, keys that differ from a field's name only in case, and keys
// repeated in one object are errors, each named by its full path
// ("extensions.docker.pul"); so are values of the wrong type
// ("extensions.docker.pull: must be a string, not number"). Errors about
// b as a whole (not JSON, not an object, trailing data) are reported at
// path. Every failure is an InvalidArgument *Error.
func DecodeStrict[T any](b []byte, path string) (T, error) {
	var v T
	err := decodeStrict(b, &v, path, path)
	return v, err
}

// DecodeInto is DecodeStrict into v, a pointer that may hold defaults,
// for callers that know the type only at run time.
func DecodeInto(b []byte, v any, path string) error {
	return decodeStrict(b, v, path, path)
}

// DecodeDocument is DecodeStrict for a whole document (a request body, a
// spec, the config file): its fields' paths start at its keys
// ("ports[1].container"), and errors about the document itself are
// reported at name ("body", "spec", "config").
func DecodeDocument[T any](b []byte, name string) (T, error) {
	var v T
	err := decodeStrict(b, &v, name, "")
	return v, err
}

// decodeStrict decodes b into v (a pointer, possibly already holding
// defaults): errors about b as a whole are reported at name, fields under
// prefix.
func decodeStrict(b []byte, v any, name, prefix string) error {
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return Invalid(FieldError{name, "not valid JSON: " + err.Error()})
	}
	if _, ok := generic.(map[string]any); !ok {
		return Invalid(FieldError{name, "must be an object"})
	}
	unknown := UnknownFields(reflect.TypeOf(v), generic, prefix)
	if unknown = append(unknown, DuplicateKeys(b, prefix)...); len(unknown) > 0 {
		return Invalid(unknown...)
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return Invalid(jsonFieldError(err, name, prefix))
	}
	if dec.More() {
		return Invalid(FieldError{name, "trailing data after the object"})
	}
	return nil
}

func jsonFieldError(err error, name, prefix string) FieldError {
	var te *json.UnmarshalTypeError
	if errors.As(err, &te) {
		path := name
		if te.Field != "" {
			path = joinPath(prefix, te.Field)
		}
		return FieldError{path, fmt.Sprintf("must be %s, not %s", kindName(te.Type), te.Value)}
	}
	msg := err.Error()
	// Errors from a field's own UnmarshalJSON ("duration ...") carry no
	// path in encoding/json v1; keep the message.
	return FieldError{name, strings.TrimPrefix(msg, "json: ")}
}

func kindName(t reflect.Type) string {
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Int, reflect.Int64, reflect.Int32:
		return "an integer"
	case reflect.Float64:
		return "a number"
	case reflect.Bool:
		return "a boolean"
	case reflect.Slice:
		return "a list"
	case reflect.Map, reflect.Struct:
		return "an object"
	}
	return t.String()
}

var rawMessage = reflect.TypeFor[json.RawMessage]()
var unmarshaler = reflect.TypeFor[json.Unmarshaler]()

// UnknownFields walks a generically decoded JSON value v against the Go type
// t (following json tags) and returns one FieldError for every key that t
// does not have, with its full path ("ports[1].contianer"). Keys must match
// a field's name exactly (encoding/json alone ignores case). It is exported
// for the API's other request decoders; DuplicateKeys checks what a
// generic decode cannot see.
func UnknownFields(t reflect.Type, v any, path string) []FieldError {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if t == rawMessage || reflect.PointerTo(t).Implements(unmarshaler) {
		return nil
	}
	join := func(k string) string {
		if path == "" {
			return k
		}
		return path + "." + k
	}
	var errs []FieldError
	switch t.Kind() {
	case reflect.Struct:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		fields := jsonFields(t)
		keys := make([]string, 0, len(obj))
		for k := range obj {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		for _, k := range keys {
			ft, ok := fields[k]
			if !ok {
				// encoding/json would match the key case-insensitively;
				// keys are exact here, so "Replicas" is not "replicas".
				msg := "unknown field"
				for _, name := range slices.Sorted(maps.Keys(fields)) {
					if strings.EqualFold(name, k) {
						msg = fmt.Sprintf("unknown field (keys are case-sensitive: did you mean %q?)", name)
						break
					}
				}
				errs = append(errs, FieldError{join(k), msg})
				continue
			}
			errs = append(errs, UnknownFields(ft, obj[k], join(k))...)
		}
	case reflect.Slice:
		arr, ok := v.([]any)
		if !ok {
			return nil
		}
		for i, e := range arr {
			errs = append(errs, UnknownFields(t.Elem(), e, fmt.Sprintf("%s[%d]", path, i))...)
		}
	case reflect.Map:
		obj, ok := v.(map[string]any)
		if !ok {
			return nil
		}
		for _, k := range sortedKeys(obj) {
			errs = append(errs, UnknownFields(t.Elem(), obj[k], join(k))...)
		}
	}
	return errs
}

func jsonFields(t reflect.Type) map[string]reflect.Type {
	out := map[string]reflect.Type{}
	for i := 0; i < t.NumField(); i++ {
		f := t.Field(i)
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, _, _ := strings.Cut(tag, ",")
		if name == "" {
			if f.Anonymous {
				for k, v := range jsonFields(f.Type) {
					out[k] = v
				}
				continue
			}
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/alphaswarm/controller/workload"
)

// decodeStrict decodes a JSON request body into T: unknown fields (keys
// are case-sensitive), keys repeated in one object, wrong types and
// trailing data are InvalidArgument errors with field paths.
func decodeStrict[T any](b []byte) (T, error) {
	var v T
	if len(bytes.TrimSpace(b)) == 0 {
		return v, workload.Invalid(workload.FieldError{Path: "body", Message: "is required (a JSON object)"})
	}
	var generic any
	if err := json.Unmarshal(b, &generic); err != nil {
		return v, workload.Invalid(workload.FieldError{Path: "body", Message: "not valid JSON: " + err.Error()})
	}
	if _, ok := generic.(map[string]any); !ok {
		return v, workload.Invalid(workload.FieldError{Path: "body", Message: "must be a JSON object"})
	}
	unknown := workload.UnknownFields(reflect.TypeFor[T](), generic, "")
	if unknown = append(unknown, workload.DuplicateKeys(b, "")...); len(unknown) > 0 {
		return v, workload.Invalid(unknown...)
	}
	if err := json.Unmarshal(b, &v); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return v, workload.Invalid(workload.FieldError{Path: te.Field, Message: fmt.Sprintf("must not be %s", te.Value)})
		}
		return v, workload.Invalid(workload.FieldError{Path: "body", Message: err.Error()})
	}
	return v, nil
}

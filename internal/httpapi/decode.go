package httpapi

import (
	"bytes"

	"github.com/alphaswarm/controller/workload"
)

// decodeStrict decodes a JSON request body into T with the one strict
// decoder (workload.DecodeDocument: unknown, case-mismatched and repeated
// keys, wrong types and trailing data are InvalidArgument errors naming
// each field's path); an empty body is reported as missing.
func decodeStrict[T any](b []byte) (T, error) {
	if len(bytes.TrimSpace(b)) == 0 {
		var zero T
		return zero, workload.Invalid(workload.FieldError{Path: "body", Message: "is required (a JSON object)"})
	}
	return workload.DecodeDocument[T](b, "body")
}

package cli

import (
	"slices"
	"strings"

	"github.com/alphaswarm/controller/workload"
)

// oneOf checks an enum flag's value: empty (unset) or one of allowed. An
// unknown value is invalid_argument naming the flag, never a silently
// empty answer.
func oneOf[T ~string](flag string, v T, allowed []T) error {
	if v == "" || slices.Contains(allowed, v) {
		return nil
	}
	names := make([]string, len(allowed))
	for i, a := range allowed {
		names[i] = string(a)
	}
	return workload.Invalid(workload.FieldError{Path: "--" + flag, Message: "must be one of " + strings.Join(names, ", ")})
}

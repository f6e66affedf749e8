package httpapi

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"

	"github.com/alphaswarm/controller/workload"
)

// ScaleRequest is the body of POST .../scale.
type ScaleRequest struct {
	Replicas *int `json:"replicas"`
}

// ConfigRequest is the body of PUT .../config.
type ConfigRequest struct {
	Config map[string]string `json:"config"`
}

// HaltRequest is the body of PUT /v1/halt.
type HaltRequest struct {
	On *bool `json:"on"`
	// Target is the target to halt; empty or "*" for all.
	Target string `json:"target,omitempty"`
}

// ExecRequest is the body of POST .../exec (the non-interactive form).
type ExecRequest struct {
	Command  []string `json:"command"`
	Instance string   `json:"instance,omitempty"`
	// Stdin is written to the command's standard input, then closed.
	Stdin string `json:"stdin,omitempty"`
}

// ExecResponse is the answer of POST .../exec.
type ExecResponse struct {
	RunID    string `json:"runId"`
	Instance string `json:"instance"`
	ExitCode int    `json:"exitCode"`
	Stdout   string `json:"stdout"`
	Stderr   string `json:"stderr"`
	// Truncated is set when output exceeded the response limit.
	Truncated bool `json:"truncated,omitempty"`
}

// TokenRequest is the body of POST /v1/tokens.
type TokenRequest struct {
	User string            `json:"user"`
	Role string            `json:"role"`
	TTL  workload.Duration `json:"ttl,omitzero"`
}

// TokenResponse answers POST /v1/tokens; Token is shown this once.
type TokenResponse struct {
	Token string    `json:"token"`
	Info  TokenInfo `json:"info"`
}

// DecodeStrict decodes a JSON request body into T: unknown fields, wrong
// types and trailing data are InvalidArgument errors with field paths.
func DecodeStrict[T any](b []byte) (T, error) {
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
	if unknown := workload.UnknownFields(reflect.TypeFor[T](), generic, ""); len(unknown) > 0 {
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

package workload

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
)

// Code classifies an error at the edges of the system. The set is closed:
// every error that leaves the control plane carries exactly one of these.
type Code string

// The error codes, as they appear in envelopes.
const (
	InvalidArgument  Code = "invalid_argument"
	NotFound         Code = "not_found"
	AlreadyExists    Code = "already_exists"
	Conflict         Code = "conflict"
	Unauthenticated  Code = "unauthenticated"
	PermissionDenied Code = "permission_denied"
	Halted           Code = "halted"
	Unsupported      Code = "unsupported"
	RateLimited      Code = "rate_limited"
	Timeout          Code = "timeout"
	Unavailable      Code = "unavailable"
	ProviderError    Code = "provider_error"
	Internal         Code = "internal"
	// RolloutFailed: the backend took the change, but the service it
	// describes ended Failed (or stuck Degraded) instead of reaching the
	// state asked for: an image that does not pull, a crash loop, a
	// failing health check. The error carries the status reached.
	// Repeating the request unchanged fails the same way.
	RolloutFailed Code = "rollout_failed"
)

// Codes lists every Code in a stable order.
var Codes = []Code{
	InvalidArgument, NotFound, AlreadyExists, Conflict, Unauthenticated,
	PermissionDenied, Halted, Unsupported, RateLimited, Timeout, Unavailable,
	ProviderError, Internal, RolloutFailed,
}

// Valid reports whether c is one of the defined codes.
func (c Code) Valid() bool {
	for _, k := range Codes {
		if c == k {
			return true
		}
	}
	return false
}

// HTTPStatus is the HTTP status code an envelope carrying c is served with.
func (c Code) HTTPStatus() int {
	switch c {
	case InvalidArgument:
		return http.StatusBadRequest
	case NotFound:
		return http.StatusNotFound
	case AlreadyExists, Conflict:
		return http.StatusConflict
	case Unauthenticated:
		return http.StatusUnauthorized
	case PermissionDenied:
		return http.StatusForbidden
	case Halted:
		return http.StatusLocked
	case Unsupported:
		return http.StatusNotImplemented
	case RateLimited:
		return http.StatusTooManyRequests
	case Timeout:
		return http.StatusGatewayTimeout
	case Unavailable:
		return http.StatusServiceUnavailable
	case ProviderError:
		return http.StatusBadGateway
	case RolloutFailed:
		// The request was understood and carried out; the workload it
		// describes cannot run as asked (RFC 9110 §15.5.21).
		return http.StatusUnprocessableEntity
	default:
		return http.StatusInternalServerError
	}
}

// Retryable reports whether an operation that failed with c may succeed if
// repeated unchanged. It says nothing about whether repeating is safe; see
// provider.NothingChanged for that.
func (c Code) Retryable() bool {
	switch c {
	case RateLimited, Timeout, Unavailable, Conflict:
		return true
	}
	return false
}

// FieldError names one bad field of a request by its path
// ("ports[1].container") and says what is wrong with it.
type FieldError struct {
	Path    string `json:"path"`
	Message string `json:"message"`
}

func (f FieldError) String() string { return f.Path + ": " + f.Message }

// Error is the structured error every edge of the system speaks. Providers
// return it (or wrap it) so that the runtime and the API can classify a
// failure without parsing strings.
type Error struct {
	Code      Code         `json:"code"`
	Message   string       `json:"message"`
	Provider  string       `json:"provider,omitempty"`
	Retryable bool         `json:"retryable"`
	Fields    []FieldError `json:"fields,omitempty"`
	// Status is the service's status when the operation ended, for
	// errors of operations that waited for it (RolloutFailed, Timeout):
	// what failed, or what was still under way.
	Status *DeploymentStatus `json:"status,omitempty"`
	// Err is the underlying cause. It is never serialised: causes may hold
	// backend details that do not belong in an envelope.
	Err error `json:"-"`
}

// Errorf returns an *Error with code c and a formatted message. A %w verb
// wraps its operand as the cause, as with fmt.Errorf.
func Errorf(c Code, format string, args ...any) *Error {
	wrapped := fmt.Errorf(format, args...)
	e := &Error{Code: c, Message: wrapped.Error(), Retryable: c.Retryable()}
	if u := errors.Unwrap(wrapped); u != nil {
		e.Err = u
	} else if uu, ok := wrapped.(interface{ Unwrap() []error }); ok && len(uu.Unwrap()) > 0 {
		e.Err = errors.Join(uu.Unwrap()...)
	}
	return e
}

// Invalid returns an InvalidArgument error listing every bad field.
func Invalid(fields ...FieldError) *Error {
	msgs := make([]string, len(fields))
	for i, f := range fields {
		msgs[i] = f.String()
	}
	return &Error{Code: InvalidArgument, Message: strings.Join(msgs, "; "), Fields: fields}
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString(string(e.Code))
	if e.Provider != "" {
		b.WriteString(" (" + e.Provider + ")")
	}
	if e.Message != "" {
		b.WriteString(": " + e.Message)
	}
	return b.String()
}

// Unwrap returns the cause.
func (e *Error) Unwrap() error { return e.Err }

// Is makes errors.Is(err, errors.ErrUnsupported) true for Unsupported errors
// and errors.Is(err, context.DeadlineExceeded) true for Timeout errors, and
// matches another *Error by code.
func (e *Error) Is(target error) bool {
	switch target {
	case errors.ErrUnsupported:
		return e.Code == Unsupported
	case context.DeadlineExceeded:
		return e.Code == Timeout
	}
	if t, ok := target.(*Error); ok {
		return t.Code == e.Code && (t.Message == "" || t.Message == e.Message)
	}
	return false
}

// WithProvider returns a copy of e naming the provider it came from.
func (e *Error) WithProvider(name string) *Error {
	c := *e
	c.Provider = name
	return &c
}

// AsError converts any error into an *Error: an *Error found in the chain is
// returned as is; context errors become Timeout; errors.ErrUnsupported
// becomes Unsupported; anything else is Internal with the error's text.
func AsError(err error) *Error {
	if err == nil {
		return nil
	}
	var e *Error
	if errors.As(err, &e) {
		return e
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return &Error{Code: Timeout, Message: err.Error(), Retryable: true, Err: err}
	case errors.Is(err, context.Canceled):
		return &Error{Code: Unavailable, Message: "request cancelled: " + err.Error(), Err: err}
	case errors.Is(err, errors.ErrUnsupported):
		return &Error{Code: Unsupported, Message: err.Error(), Err: err}
	}
	return &Error{Code: Internal, Message: err.Error(), Err: err}
}

// CodeOf returns the Code of err, as AsError would classify it; "" for nil.
func CodeOf(err error) Code {
	if err == nil {
		return ""
	}
	return AsError(err).Code
}

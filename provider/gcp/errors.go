package gcp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"

	"cloud.google.com/go/auth"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// codeFor maps gRPC status codes to workload codes. Codes not listed are
// ProviderError.
var codeFor = map[codes.Code]workload.Code{
	codes.InvalidArgument:    workload.InvalidArgument,
	codes.OutOfRange:         workload.InvalidArgument,
	codes.NotFound:           workload.NotFound,
	codes.AlreadyExists:      workload.AlreadyExists,
	codes.PermissionDenied:   workload.PermissionDenied,
	codes.Unauthenticated:    workload.Unauthenticated,
	codes.ResourceExhausted:  workload.RateLimited,
	codes.FailedPrecondition: workload.Conflict,
	codes.Aborted:            workload.Conflict,
	codes.Unavailable:        workload.Unavailable,
	codes.DeadlineExceeded:   workload.Timeout,
	codes.Unimplemented:      workload.Unsupported,
	codes.Internal:           workload.ProviderError,
	codes.Unknown:            workload.ProviderError,
	codes.Canceled:           workload.Unavailable,
}

// mapErr turns a client error (a gRPC status, possibly carried by a failed
// long-running operation) into a *workload.Error. what says what was being
// done ("UpdateService web").
func mapErr(what string, err error) error {
	if err == nil {
		return nil
	}
	var we *workload.Error
	if errors.As(err, &we) {
		return err
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return wrap(workload.Timeout, what, "deadline exceeded", err)
	}
	if errors.Is(err, context.Canceled) {
		return wrap(workload.Unavailable, what, "cancelled", err)
	}
	if st, ok := status.FromError(err); ok {
		code, known := codeFor[st.Code()]
		if !known {
			code = workload.ProviderError
		}
		return wrap(code, what, fmt.Sprintf("%s: %s", st.Code(), st.Message()), err)
	}
	return wrap(workload.ProviderError, what, err.Error(), err)
}

// mapTokenErr turns a failure to obtain an access token (GKE mode's
// cluster token) into a *workload.Error. The token endpoint refusing the
// credentials (HTTP 400, 401, 403: invalid_grant, unauthorized_client...)
// and credentials that cannot make a request at all (a bad key, a missing
// subject-token file) are unauthenticated; HTTP 429 is rate_limited; the
// endpoint failing (5xx) or unreachable is unavailable.
func mapTokenErr(err error) error {
	const what = "get an access token for the GKE cluster"
	var ae *auth.Error
	if errors.As(err, &ae) && ae.Response != nil {
		code := workload.ProviderError
		switch sc := ae.Response.StatusCode; {
		case sc == http.StatusBadRequest || sc == http.StatusUnauthorized || sc == http.StatusForbidden:
			code = workload.Unauthenticated
		case sc == http.StatusTooManyRequests:
			code = workload.RateLimited
		case sc >= 500:
			code = workload.Unavailable
		}
		msg := fmt.Sprintf("the token endpoint answered HTTP %d", ae.Response.StatusCode)
		var body struct {
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		if json.Unmarshal(ae.Body, &body) == nil && body.Error != "" {
			msg += ": " + body.Error
			if body.Description != "" {
				msg += ": " + body.Description
			}
		}
		return wrap(code, what, msg, err)
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return wrap(workload.Timeout, what, "deadline exceeded", err)
	case errors.Is(err, context.Canceled):
		return wrap(workload.Unavailable, what, "cancelled", err)
	case errors.As(err, &oe), errors.As(err, &ne):
		return wrap(workload.Unavailable, what, "token endpoint unreachable: "+err.Error(), err)
	}
	return wrap(workload.Unauthenticated, what, err.Error(), err)
}

func wrap(code workload.Code, what, msg string, cause error) *workload.Error {
	e := workload.Errorf(code, "%s: %s", what, msg)
	e.Provider = Name
	e.Err = cause
	return e
}

func notFound(serviceID string) *workload.Error {
	e := workload.Errorf(workload.NotFound, "Cloud Run service %q not found", serviceID)
	e.Provider = Name
	return e
}

// afterChange reclassifies an error that follows an earlier successful
// mutation (a secret version added, a revision created): a refusal code
// would promise that nothing changed, so it becomes ProviderError.
func afterChange(err error) error {
	return provider.AfterChange(Name, err, "earlier changes were applied")
}

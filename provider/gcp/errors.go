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

// classify maps a client error (a gRPC status, possibly carried by a
// failed long-running operation) to a workload code and message.
func classify(err error) (workload.Code, string) {
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return workload.Timeout, "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return workload.Unavailable, "cancelled"
	}
	if st, ok := status.FromError(err); ok {
		code, known := codeFor[st.Code()]
		if !known {
			code = workload.ProviderError
		}
		return code, fmt.Sprintf("%s: %s", st.Code(), st.Message())
	}
	return workload.ProviderError, ""
}

// mapErr turns a client error into a *workload.Error; what says what was
// being done ("UpdateService web").
func mapErr(what string, err error) error {
	return provider.Wrap(Name, classify, err, what)
}

// classifyToken maps a failure to obtain an access token (GKE mode's
// cluster token). The token endpoint refusing the credentials (HTTP 400,
// 401, 403: invalid_grant, unauthorized_client...) and credentials that
// cannot make a request at all (a bad key, a missing subject-token file)
// are unauthenticated; HTTP 429 is rate_limited; the endpoint failing
// (5xx) or unreachable is unavailable.
func classifyToken(err error) (workload.Code, string) {
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
		return code, msg
	}
	var ne net.Error
	var oe *net.OpError
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return workload.Timeout, "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return workload.Unavailable, "cancelled"
	case errors.As(err, &oe), errors.As(err, &ne):
		return workload.Unavailable, "token endpoint unreachable: " + err.Error()
	}
	return workload.Unauthenticated, ""
}

// mapTokenErr turns a failure to obtain the GKE cluster's access token
// into a *workload.Error.
func mapTokenErr(err error) error {
	return provider.Wrap(Name, classifyToken, err, "get an access token for the GKE cluster")
}

// earlierChanges is what an error after an earlier change of the same
// call (a secret version added, a revision created) says was done: a
// refusal code would promise that nothing changed, so provider.AfterChange
// makes it ProviderError.
const earlierChanges = "earlier changes were applied"

// credentialsUnset is the refusal of a target whose environment names no
// credentials file.
const credentialsUnset = "GOOGLE_APPLICATION_CREDENTIALS is not set (a service-account or external-account credentials file)"

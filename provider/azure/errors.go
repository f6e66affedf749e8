package azure

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// codeFor maps an Azure error code (azcore.ResponseError.ErrorCode, from
// the ARM, Key Vault or App Configuration error body or the
// x-ms-error-code header) to a workload code. Codes not listed fall back
// to the HTTP status (statusCode).
var codeFor = map[string]workload.Code{
	// Not found
	"ResourceNotFound":       workload.NotFound,
	"ResourceGroupNotFound":  workload.NotFound,
	"ParentResourceNotFound": workload.NotFound,
	"SubscriptionNotFound":   workload.NotFound,
	"NotFound":               workload.NotFound,
	"SecretNotFound":         workload.NotFound,
	"ContainerGroupNotFound": workload.NotFound,
	// Permission and authentication
	"AuthorizationFailed":              workload.PermissionDenied,
	"LinkedAuthorizationFailed":        workload.PermissionDenied,
	"Forbidden":                        workload.PermissionDenied,
	"ForbiddenByPolicy":                workload.PermissionDenied,
	"RequestDisallowedByPolicy":        workload.PermissionDenied,
	"InvalidAuthenticationToken":       workload.Unauthenticated,
	"ExpiredAuthenticationToken":       workload.Unauthenticated,
	"AuthenticationFailed":             workload.Unauthenticated,
	"InvalidAuthenticationTokenTenant": workload.Unauthenticated,
	"Unauthorized":                     workload.Unauthenticated,
	// Conflicts
	"Conflict":                    workload.Conflict,
	"AnotherOperationInProgress":  workload.Conflict,
	"ContainerGroupTransitioning": workload.Conflict,
	"ResourceGroupBeingDeleted":   workload.Conflict,
	"PreconditionFailed":          workload.Conflict,
	// Throttling and quotas
	"TooManyRequests":               workload.RateLimited,
	"Throttled":                     workload.RateLimited,
	"RequestThrottled":              workload.RateLimited,
	"ResourceRequestsThrottled":     workload.RateLimited,
	"SubscriptionRequestsThrottled": workload.RateLimited,
	"ContainerGroupQuotaReached":    workload.RateLimited,
	// Bad requests
	"InvalidRequestContent":               workload.InvalidArgument,
	"InvalidRequestFormat":                workload.InvalidArgument,
	"InvalidParameter":                    workload.InvalidArgument,
	"BadRequest":                          workload.InvalidArgument,
	"InaccessibleImage":                   workload.InvalidArgument,
	"InvalidContainerGroupName":           workload.InvalidArgument,
	"InvalidResourceLocation":             workload.InvalidArgument,
	"LocationNotAvailableForResourceType": workload.InvalidArgument,
	"UnsupportedRequestContent":           workload.InvalidArgument,
	"ResourceRequestsNotAvailable":        workload.InvalidArgument,
	// Transient
	"InternalServerError": workload.Unavailable,
	"ServiceUnavailable":  workload.Unavailable,
	"GatewayTimeout":      workload.Timeout,
	"OperationTimedOut":   workload.Timeout,
}

// statusCode maps an HTTP status to a workload code when the error code
// is not in codeFor.
func statusCode(status int) workload.Code {
	switch {
	case status == http.StatusBadRequest, status == http.StatusUnprocessableEntity:
		return workload.InvalidArgument
	case status == http.StatusUnauthorized:
		return workload.Unauthenticated
	case status == http.StatusForbidden:
		return workload.PermissionDenied
	case status == http.StatusNotFound:
		return workload.NotFound
	case status == http.StatusConflict, status == http.StatusPreconditionFailed:
		return workload.Conflict
	case status == http.StatusTooManyRequests:
		return workload.RateLimited
	case status == http.StatusGatewayTimeout, status == http.StatusRequestTimeout:
		return workload.Timeout
	case status >= 500:
		return workload.Unavailable
	}
	return workload.ProviderError
}

// mapErr turns an SDK error into a *workload.Error (provider.Wrap with
// classify). what says what was being done ("create container group
// web-0"). The SDK's retry policy has already retried throttling
// (honouring Retry-After) and transient errors when an error reaches here.
func mapErr(what string, err error) error {
	return provider.Wrap(Name, classify, err, what)
}

// classify is the provider.Classifier of Azure SDK errors: azidentity's
// authentication failures, azcore.ResponseError (codeFor, else the HTTP
// status; the message is the error code and the service's message), and
// context, credential and network errors.
func classify(err error) (workload.Code, string) {
	var af *azidentity.AuthenticationFailedError
	if errors.As(err, &af) {
		return workload.Unauthenticated, "authentication failed: " + firstLine(af.Error())
	}
	var re *azcore.ResponseError
	if errors.As(err, &re) {
		code, ok := codeFor[re.ErrorCode]
		if !ok {
			code = statusCode(re.StatusCode)
		}
		msg := re.ErrorCode
		if msg == "" {
			msg = http.StatusText(re.StatusCode)
		}
		if m := responseMessage(re); m != "" {
			msg += ": " + m
		}
		if code == workload.RateLimited && re.RawResponse != nil {
			if ra := re.RawResponse.Header.Get("Retry-After"); ra != "" {
				msg += " (retry after " + ra + "s)"
			}
		}
		return code, msg
	}
	switch {
	case errors.Is(err, context.DeadlineExceeded):
		return workload.Timeout, "deadline exceeded"
	case errors.Is(err, context.Canceled):
		return workload.Unavailable, "cancelled"
	case strings.Contains(err.Error(), "credential") && strings.Contains(err.Error(), "unavailable"):
		return workload.Unauthenticated, firstLine(err.Error())
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return workload.Unavailable, err.Error()
	}
	return workload.ProviderError, firstLine(err.Error())
}

// as is a provider.Classifier giving every error code and msg, for
// errors whose meaning the caller knows.
func as(code workload.Code, msg string) provider.Classifier {
	return func(error) (workload.Code, string) { return code, msg }
}

// changesApplied is what AfterChange says had changed: an error after an
// earlier change of the same call (a group created, a setting written)
// must not promise that nothing changed.
const changesApplied = "earlier changes were applied"

// responseMessage extracts the service's message from the error body:
// ARM and Key Vault {"error":{"code","message"}}, App Configuration
// problem+json {"title","detail"}.
func responseMessage(re *azcore.ResponseError) string {
	if re.RawResponse == nil {
		return ""
	}
	body, err := runtime.Payload(re.RawResponse)
	if err != nil || len(body) == 0 {
		return ""
	}
	var b struct {
		Error *struct {
			Message string `json:"message"`
		} `json:"error"`
		Message string `json:"message"`
		Detail  string `json:"detail"`
		Title   string `json:"title"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	switch {
	case b.Error != nil && b.Error.Message != "":
		return b.Error.Message
	case b.Message != "":
		return b.Message
	case b.Detail != "":
		return b.Detail
	}
	return b.Title
}

func firstLine(s string) string {
	if i := strings.IndexByte(s, '\n'); i >= 0 {
		return strings.TrimSpace(s[:i])
	}
	return s
}

package azure

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/runtime"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// responseError builds the error the SDK returns for an ARM-style error
// response (body {"error":{"code","message"}}), the way the pipeline does.
func responseError(t *testing.T, status int, code string, header http.Header) error {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, "https://management.azure.com/subscriptions/s/resourceGroups/rg/providers/Microsoft.ContainerInstance/containerGroups/web-0", nil)
	body := fmt.Sprintf(`{"error":{"code":%q,"message":"message for %s"}}`, code, code)
	if header == nil {
		header = http.Header{}
	}
	resp := &http.Response{StatusCode: status, Status: http.StatusText(status), Header: header, Request: req,
		Body: io.NopCloser(strings.NewReader(body))}
	return runtime.NewResponseError(resp)
}

func TestMapErr(t *testing.T) {
	cases := []struct {
		name   string
		status int
		code   string
		header http.Header
		want   workload.Code
		msg    string
	}{
		{"ResourceNotFound", 404, "ResourceNotFound", nil, workload.NotFound, "message for ResourceNotFound"},
		{"ResourceGroupNotFound", 404, "ResourceGroupNotFound", nil, workload.NotFound, ""},
		{"SubscriptionNotFound", 404, "SubscriptionNotFound", nil, workload.NotFound, ""},
		{"SecretNotFound", 404, "SecretNotFound", nil, workload.NotFound, ""},
		{"AuthorizationFailed", 403, "AuthorizationFailed", nil, workload.PermissionDenied, ""},
		{"LinkedAuthorizationFailed", 403, "LinkedAuthorizationFailed", nil, workload.PermissionDenied, ""},
		{"RequestDisallowedByPolicy", 403, "RequestDisallowedByPolicy", nil, workload.PermissionDenied, ""},
		{"InvalidAuthenticationToken", 401, "InvalidAuthenticationToken", nil, workload.Unauthenticated, ""},
		{"ExpiredAuthenticationToken", 401, "ExpiredAuthenticationToken", nil, workload.Unauthenticated, ""},
		{"Conflict", 409, "Conflict", nil, workload.Conflict, ""},
		{"ContainerGroupTransitioning", 409, "ContainerGroupTransitioning", nil, workload.Conflict, ""},
		{"AnotherOperationInProgress", 409, "AnotherOperationInProgress", nil, workload.Conflict, ""},
		{"TooManyRequests with Retry-After", 429, "TooManyRequests", http.Header{"Retry-After": {"17"}}, workload.RateLimited, "retry after 17s"},
		{"ResourceRequestsThrottled", 429, "ResourceRequestsThrottled", nil, workload.RateLimited, ""},
		{"InvalidRequestContent", 400, "InvalidRequestContent", nil, workload.InvalidArgument, "message for InvalidRequestContent"},
		{"InaccessibleImage", 400, "InaccessibleImage", nil, workload.InvalidArgument, ""},
		{"InvalidParameter", 400, "InvalidParameter", nil, workload.InvalidArgument, ""},
		{"InternalServerError", 500, "InternalServerError", nil, workload.Unavailable, ""},
		{"ServiceUnavailable", 503, "ServiceUnavailable", nil, workload.Unavailable, ""},
		{"GatewayTimeout", 504, "GatewayTimeout", nil, workload.Timeout, ""},
		{"unknown code falls back on 404", 404, "SomethingNew", nil, workload.NotFound, ""},
		{"unknown code falls back on 403", 403, "SomethingNew", nil, workload.PermissionDenied, ""},
		{"unknown code falls back on 502", 502, "SomethingNew", nil, workload.Unavailable, ""},
		{"unknown code on 418", 418, "SomethingNew", nil, workload.ProviderError, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cause := responseError(t, c.status, c.code, c.header)
			got := mapErr("create container group web-0", cause)
			if workload.CodeOf(got) != c.want {
				t.Fatalf("mapErr = %v (code %s), want %s", got, workload.CodeOf(got), c.want)
			}
			we := workload.AsError(got)
			if we.Provider != Name {
				t.Errorf("provider = %q, want %q", we.Provider, Name)
			}
			if !errors.Is(got, cause) {
				t.Error("mapErr does not wrap its cause")
			}
			if !strings.Contains(we.Message, c.code) || !strings.Contains(we.Message, "create container group web-0") {
				t.Errorf("message %q lacks the operation or the Azure code", we.Message)
			}
			if c.msg != "" && !strings.Contains(we.Message, c.msg) {
				t.Errorf("message %q lacks %q", we.Message, c.msg)
			}
			if strings.Contains(we.Message, "\n") {
				t.Errorf("message %q is not one line", we.Message)
			}
		})
	}
}

func TestMapErrOthers(t *testing.T) {
	cases := []struct {
		name string
		err  error
		want workload.Code
	}{
		{"deadline", context.DeadlineExceeded, workload.Timeout},
		{"cancelled", fmt.Errorf("poll: %w", context.Canceled), workload.Unavailable},
		{"authentication", &azidentity.AuthenticationFailedError{}, workload.Unauthenticated},
		{"network", &net.OpError{Op: "dial", Err: errors.New("connection refused")}, workload.Unavailable},
		{"workload error kept", workload.Errorf(workload.AlreadyExists, "x"), workload.AlreadyExists},
		{"other", errors.New("odd"), workload.ProviderError},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mapErr("op", c.err)
			if workload.CodeOf(got) != c.want {
				t.Fatalf("mapErr(%v) = %v (code %s), want %s", c.err, got, workload.CodeOf(got), c.want)
			}
			if !errors.Is(got, c.err) {
				t.Errorf("mapErr(%v) does not wrap its cause", c.err)
			}
		})
	}
	if mapErr("op", nil) != nil {
		t.Error("mapErr(nil) != nil")
	}
}

func TestAfterChange(t *testing.T) {
	refusal := mapErr("set App Configuration key", responseError(t, 403, "AuthorizationFailed", nil))
	if !provider.NothingChanged(refusal) {
		t.Fatalf("a refusal %v should promise nothing changed", refusal)
	}
	got := provider.AfterChange(Name, refusal, changesApplied)
	if workload.CodeOf(got) != workload.ProviderError || provider.NothingChanged(got) {
		t.Fatalf("afterChange(%v) = %v, want provider_error", refusal, got)
	}
	if !errors.Is(got, refusal) || !strings.Contains(got.Error(), "AuthorizationFailed") {
		t.Errorf("afterChange lost the cause: %v", got)
	}
	conflict := mapErr("x", responseError(t, 409, "Conflict", nil))
	if provider.AfterChange(Name, conflict, changesApplied) != conflict {
		t.Error("afterChange changed a code that already promises nothing")
	}
}

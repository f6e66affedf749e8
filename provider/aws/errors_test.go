package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func TestMapErr(t *testing.T) {
	api := func(code string) error {
		return &smithy.OperationError{ServiceID: "ECS", OperationName: "UpdateService",
			Err: &smithy.GenericAPIError{Code: code, Message: "msg for " + code}}
	}
	cases := []struct {
		err  error
		want workload.Code
	}{
		{api("ClusterNotFoundException"), workload.NotFound},
		{api("ServiceNotFoundException"), workload.NotFound},
		{api("ServiceNotActiveException"), workload.NotFound},
		{api("AccessDeniedException"), workload.PermissionDenied},
		{api("ThrottlingException"), workload.RateLimited},
		{&retry.MaxAttemptsError{Attempt: 3, Err: api("ThrottlingException")}, workload.RateLimited},
		{api("InvalidParameterException"), workload.InvalidArgument},
		{api("ClientException"), workload.InvalidArgument},
		{api("ParameterNotFound"), workload.NotFound},
		{api("ParameterAlreadyExists"), workload.AlreadyExists},
		{api("ResourceNotFoundException"), workload.NotFound},
		{api("UnrecognizedClientException"), workload.Unauthenticated},
		{api("ExpiredTokenException"), workload.Unauthenticated},
		{api("ServerException"), workload.Unavailable},
		{api("SomethingNewException"), workload.ProviderError},
		{fmt.Errorf("get identity: %w", errNoCredentials), workload.Unauthenticated},
		{context.DeadlineExceeded, workload.Timeout},
		{&net.OpError{Op: "dial", Err: errors.New("connection refused")}, workload.Unavailable},
		{errors.New("odd"), workload.ProviderError},
	}
	for _, c := range cases {
		got := mapErr("op", c.err)
		if workload.CodeOf(got) != c.want {
			t.Errorf("mapErr(%v) = %v (code %s), want %s", c.err, got, workload.CodeOf(got), c.want)
		}
		var we *workload.Error
		if errors.As(got, &we) && we.Provider != Name {
			t.Errorf("mapErr(%v): provider %q", c.err, we.Provider)
		}
		if !errors.Is(got, c.err) {
			t.Errorf("mapErr(%v) does not wrap its cause", c.err)
		}
	}
	// The codes that promise nothing changed are the refusals.
	if !provider.NothingChanged(mapErr("op", api("AccessDeniedException"))) ||
		provider.NothingChanged(mapErr("op", api("ServerException"))) {
		t.Error("NothingChanged disagrees with the mapping")
	}
}

func TestAfterChange(t *testing.T) {
	refusal := mapErr("CreateService web", &smithy.GenericAPIError{Code: "InvalidParameterException", Message: "bad subnet"})
	got := afterChange(refusal)
	if workload.CodeOf(got) != workload.ProviderError || provider.NothingChanged(got) {
		t.Fatalf("afterChange(%v) = %v, want provider_error", refusal, got)
	}
	if !strings.Contains(got.Error(), "InvalidParameterException") || !errors.Is(got, refusal) {
		t.Errorf("afterChange lost the cause: %v", got)
	}
	if other := mapErr("x", context.DeadlineExceeded); afterChange(other) != other {
		t.Error("afterChange changed a code that already promises nothing")
	}
}

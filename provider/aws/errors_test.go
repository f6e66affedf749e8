package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"testing"

	sdkaws "github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/aws/retry"
	ecrtypes "github.com/aws/aws-sdk-go-v2/service/ecr/types"
	ecstypes "github.com/aws/aws-sdk-go-v2/service/ecs/types"
	ekstypes "github.com/aws/aws-sdk-go-v2/service/eks/types"
	smtypes "github.com/aws/aws-sdk-go-v2/service/secretsmanager/types"
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
		// ECR DescribeImages, Secrets Manager DescribeSecret (CheckRefs)
		{&smithy.OperationError{ServiceID: "ECR", OperationName: "DescribeImages",
			Err: &ecrtypes.ImageNotFoundException{Message: sdkaws.String("The image with imageId {...} does not exist")}}, workload.NotFound},
		{&smithy.OperationError{ServiceID: "ECR", OperationName: "DescribeImages",
			Err: &ecrtypes.RepositoryNotFoundException{Message: sdkaws.String("The repository with name 'x' does not exist")}}, workload.NotFound},
		{&smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "DescribeSecret",
			Err: &smtypes.ResourceNotFoundException{Message: sdkaws.String("Secrets Manager can't find the specified secret.")}}, workload.NotFound},
		{&smithy.OperationError{ServiceID: "Secrets Manager", OperationName: "DescribeSecret",
			Err: &smtypes.InternalServiceError{Message: sdkaws.String("oops")}}, workload.Unavailable},
		// EKS DescribeCluster (REST-JSON; the SDK returns typed errors)
		{&smithy.OperationError{ServiceID: "EKS", OperationName: "DescribeCluster",
			Err: &ekstypes.ResourceNotFoundException{Message: sdkaws.String("No cluster found for name: x.")}}, workload.NotFound},
		{&smithy.OperationError{ServiceID: "EKS", OperationName: "DescribeCluster",
			Err: &ekstypes.ClientException{Message: sdkaws.String("bad")}}, workload.InvalidArgument},
		{&smithy.OperationError{ServiceID: "EKS", OperationName: "DescribeCluster",
			Err: &ekstypes.ServerException{Message: sdkaws.String("oops")}}, workload.Unavailable},
		{&smithy.OperationError{ServiceID: "EKS", OperationName: "DescribeCluster",
			Err: &ekstypes.ServiceUnavailableException{Message: sdkaws.String("later")}}, workload.Unavailable},
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
	got := provider.AfterChange(Name, refusal, changesApplied)
	if workload.CodeOf(got) != workload.ProviderError || provider.NothingChanged(got) {
		t.Fatalf("afterChange(%v) = %v, want provider_error", refusal, got)
	}
	if !strings.Contains(got.Error(), "InvalidParameterException") || !errors.Is(got, refusal) {
		t.Errorf("afterChange lost the cause: %v", got)
	}
	if other := mapErr("x", context.DeadlineExceeded); provider.AfterChange(Name, other, changesApplied) != other {
		t.Error("afterChange changed a code that already promises nothing")
	}
}

// TestMapErrECSExec pins the ECS Exec errors, whose code sometimes depends
// on the message (ECS answers several conditions with
// InvalidParameterException), with the SDK's own error types.
func TestMapErrECSExec(t *testing.T) {
	op := func(err error) error {
		return &smithy.OperationError{ServiceID: "ECS", OperationName: "ExecuteCommand", Err: err}
	}
	cases := []struct {
		name    string
		err     error
		want    workload.Code
		mention string
	}{
		{"agent not connected", op(&ecstypes.TargetNotConnectedException{
			Message: sdkaws.String("The execute command failed due to an internal error. Try again later.")}),
			workload.Unavailable, "ssmmessages:OpenDataChannel"},
		{"task without exec", op(&ecstypes.InvalidParameterException{Message: sdkaws.String(
			"The execute command failed because execute command was not enabled when the task was run or the execute command agent isn’t running. Wait and try again or run a new task with execute command enabled and try again.")}),
			workload.Unsupported, "enableExecuteCommand"},
		{"service without task role", &smithy.OperationError{ServiceID: "ECS", OperationName: "UpdateService",
			Err: &ecstypes.InvalidParameterException{Message: sdkaws.String(
				"The service couldn't be updated because a valid taskRoleArn is not being used. Specify a valid task role in your task definition and try again.")}},
			workload.InvalidArgument, "taskRoleArn"},
		{"other invalid parameter", op(&ecstypes.InvalidParameterException{Message: sdkaws.String("task length should be one of [32,36]")}),
			workload.InvalidArgument, "task length"},
		{"IAM refuses ecs:ExecuteCommand", op(&ecstypes.AccessDeniedException{Message: sdkaws.String("not authorized to perform: ecs:ExecuteCommand")}),
			workload.PermissionDenied, "ecs:ExecuteCommand"},
		{"cluster", op(&ecstypes.ClusterNotFoundException{Message: sdkaws.String("Cluster not found.")}), workload.NotFound, "Cluster not found"},
		{"SSM TerminateSession of an unknown session", &smithy.OperationError{ServiceID: "SSM", OperationName: "TerminateSession",
			Err: &smithy.GenericAPIError{Code: "DoesNotExistException", Message: "Session x does not exist."}}, workload.NotFound, "does not exist"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := mapErr("ExecuteCommand in task t", c.err)
			if workload.CodeOf(got) != c.want || !strings.Contains(got.Error(), c.mention) || !errors.Is(got, c.err) {
				t.Errorf("mapErr = %v (code %s), want code %s mentioning %q and wrapping the cause", got, workload.CodeOf(got), c.want, c.mention)
			}
			// Every ExecuteCommand refusal means no command ran.
			if c.want != workload.Unavailable && !provider.NothingChanged(got) {
				t.Errorf("%s does not promise that nothing changed", c.want)
			}
		})
	}
}

package aws

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
	"github.com/aws/smithy-go"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

// codeFor maps an AWS error code to a workload code. Unknown codes are
// ProviderError.
var codeFor = map[string]workload.Code{
	// ECS
	"ClusterNotFoundException":                       workload.NotFound,
	"ServiceNotFoundException":                       workload.NotFound,
	"ServiceNotActiveException":                      workload.NotFound,
	"TargetNotFoundException":                        workload.NotFound,
	"InvalidParameterException":                      workload.InvalidArgument,
	"ClientException":                                workload.InvalidArgument,
	"PlatformUnknownException":                       workload.InvalidArgument,
	"PlatformTaskDefinitionIncompatibilityException": workload.InvalidArgument,
	"UnsupportedFeatureException":                    workload.Unsupported,
	"ServerException":                                workload.Unavailable,
	"LimitExceededException":                         workload.RateLimited,
	"TargetNotConnectedException":                    workload.Unavailable, // ECS Exec; see refine
	// SSM
	"ParameterNotFound":                    workload.NotFound,
	"ParameterAlreadyExists":               workload.AlreadyExists,
	"ParameterLimitExceeded":               workload.RateLimited,
	"ParameterMaxVersionLimitExceeded":     workload.RateLimited,
	"TooManyUpdates":                       workload.RateLimited,
	"HierarchyLevelLimitExceededException": workload.InvalidArgument,
	"HierarchyTypeMismatchException":       workload.InvalidArgument,
	"InvalidKeyId":                         workload.InvalidArgument,
	"ParameterPatternMismatchException":    workload.InvalidArgument,
	"UnsupportedParameterType":             workload.InvalidArgument,
	"InternalServerError":                  workload.Unavailable,
	"DoesNotExistException":                workload.NotFound, // TerminateSession
	// ECR (DescribeImages) and Secrets Manager (DescribeSecret): CheckRefs
	"ImageNotFoundException":      workload.NotFound,
	"RepositoryNotFoundException": workload.NotFound,
	"InvalidRequestException":     workload.InvalidArgument,
	"InternalServiceError":        workload.Unavailable,
	// CloudWatch / Logs
	"ResourceNotFoundException":            workload.NotFound,
	"InvalidParameterValueException":       workload.InvalidArgument,
	"InvalidParameterCombinationException": workload.InvalidArgument,
	"MissingRequiredParameterException":    workload.InvalidArgument,
	"ServiceUnavailableException":          workload.Unavailable,
	"InternalServiceFault":                 workload.Unavailable,
	// Common
	"ValidationException":                 workload.InvalidArgument,
	"SerializationException":              workload.Internal,
	"AccessDeniedException":               workload.PermissionDenied,
	"AccessDenied":                        workload.PermissionDenied,
	"UnauthorizedOperation":               workload.PermissionDenied,
	"UnrecognizedClientException":         workload.Unauthenticated,
	"InvalidClientTokenId":                workload.Unauthenticated,
	"InvalidSignatureException":           workload.Unauthenticated,
	"IncompleteSignature":                 workload.Unauthenticated,
	"MissingAuthenticationTokenException": workload.Unauthenticated,
	"ExpiredTokenException":               workload.Unauthenticated,
	"ExpiredToken":                        workload.Unauthenticated,
	"InvalidIdentityToken":                workload.Unauthenticated,
	"ThrottlingException":                 workload.RateLimited,
	"Throttling":                          workload.RateLimited,
	"ThrottledException":                  workload.RateLimited,
	"RequestLimitExceeded":                workload.RateLimited,
	"TooManyRequestsException":            workload.RateLimited,
}

// mapErr turns an SDK error into a *workload.Error naming the provider.
// what says what was being done ("UpdateService web"). The SDK has
// already retried throttling and transient errors with its backoff by the
// time an error reaches here.
func mapErr(what string, err error) error { return provider.Wrap(Name, classify, err, what) }

// classify is the provider's provider.Classifier.
func classify(err error) (workload.Code, string) {
	if errors.Is(err, errNoCredentials) {
		return workload.Unauthenticated, ""
	}
	if errors.Is(err, context.DeadlineExceeded) {
		return workload.Timeout, "deadline exceeded"
	}
	if errors.Is(err, context.Canceled) {
		return workload.Unavailable, "cancelled"
	}
	var me *retry.MaxAttemptsError
	attempts := ""
	if errors.As(err, &me) {
		attempts = fmt.Sprintf(" (after %d attempts)", me.Attempt)
	}
	var ae smithy.APIError
	if errors.As(err, &ae) {
		code, ok := codeFor[ae.ErrorCode()]
		if !ok {
			code = workload.ProviderError
		}
		msg := ae.ErrorCode()
		if m := ae.ErrorMessage(); m != "" {
			msg += ": " + m
		}
		code, hint := refine(ae.ErrorCode(), ae.ErrorMessage(), code)
		if hint != "" {
			msg += " (" + hint + ")"
		}
		return code, msg + attempts
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return workload.Unavailable, ""
	}
	return workload.ProviderError, ""
}

// refine adjusts the code of an AWS error whose meaning depends on its
// message, and adds what the operator can do about it.
func refine(awsCode, message string, code workload.Code) (workload.Code, string) {
	switch {
	case awsCode == "TargetNotConnectedException":
		return workload.Unavailable, "ECS Exec: the task's agent is not connected to Session Manager; it may still be starting, " +
			"or the task role lacks " + ssmMessagesPermissions + ", or the task has no route to ssmmessages " +
			"(VPC endpoint or NAT); the controller cannot check the last two"
	case awsCode == "InvalidParameterException" && strings.Contains(message, "execute command was not enabled"):
		return workload.Unsupported, "ECS Exec: set the target option enableExecuteCommand and start the service again; " +
			"if the task was launched with it, its agent is not running yet"
	case awsCode == "InvalidParameterException" && strings.Contains(message, "valid taskRoleArn"):
		return workload.InvalidArgument, "ECS Exec needs the target option taskRoleArn"
	}
	return code, ""
}

// changesApplied is what provider.AfterChange says was done when an
// error follows an earlier successful mutation (a parameter written, a
// task-definition revision registered): a refusal code would promise
// that nothing changed, so it becomes ProviderError.
const changesApplied = "earlier changes were applied"

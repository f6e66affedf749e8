// Package aws is the provider for Amazon ECS (mode "ecs"): each service is
// an ECS service on the target's cluster running one task definition
// family, with its config in SSM Parameter Store, its metrics from
// CloudWatch and its logs from CloudWatch Logs. In mode "eks" the target
// is an Amazon EKS cluster and every operation is the kubernetes
// provider's (EKSProvider). It registers itself as "aws" from init;
// import it for its side effect.
//
// The operator's guide (credentials, target options, translation, diff,
// reference check, config, metrics, logs, ECS Exec, EKS mode, tests and
// known unknowns) is docs/providers/aws.md.
//
// # Phases
//
// Status is DescribeServices, then ListTasks (desired status RUNNING) and
// DescribeTasks: one Instance per task. Ready counts RUNNING tasks not
// UNHEALTHY; Updated those of the primary deployment's task definition.
//
//	ECS                                                    Phase
//	service missing, DRAINING or INACTIVE                  NotFound (error)
//	desiredCount 0, no tasks                               Stopped
//	primary deployment rolloutState FAILED                 Failed
//	desiredCount 0, tasks still there                      Progressing
//	several deployments, or primary IN_PROGRESS            Progressing
//	COMPLETED, tasks = desired, all RUNNING and not        Running
//	  UNHEALTHY
//	COMPLETED, tasks PENDING or more tasks than desired    Progressing
//	COMPLETED, some tasks ready, fewer than desired        Degraded
//	COMPLETED, none ready                                  Pending
//
// # Errors
//
// AWS error codes (smithy APIError) map to workload codes; the SDK has
// already retried throttling and transient errors with its backoff
// (maxAttempts) before a code is mapped:
//
//	AWS code                                          workload code
//	ClusterNotFoundException, ServiceNotFoundException,
//	  ServiceNotActiveException, ParameterNotFound,
//	  ResourceNotFoundException, TargetNotFoundException,
//	  DoesNotExistException, ImageNotFoundException,
//	  RepositoryNotFoundException                     not_found
//	InvalidParameterException, ClientException,
//	  ValidationException, InvalidParameterValueException,
//	  InvalidRequestException,
//	  Platform*Exception, Hierarchy*, ParameterPattern…   invalid_argument
//	ParameterAlreadyExists                            already_exists
//	AccessDeniedException, AccessDenied,
//	  UnauthorizedOperation                           permission_denied
//	UnrecognizedClientException, InvalidClientTokenId,
//	  InvalidSignatureException, ExpiredToken(Exception),
//	  MissingAuthenticationTokenException,
//	  InvalidIdentityToken; no credentials            unauthenticated
//	ThrottlingException, Throttling, TooManyUpdates,
//	  RequestLimitExceeded, LimitExceededException,
//	  TooManyRequestsException, Parameter*LimitExceeded rate_limited
//	UnsupportedFeatureException; ExecuteCommand's
//	  InvalidParameterException "execute command was
//	  not enabled ..."                                unsupported
//	ServerException, InternalServerError, InternalServiceError,
//	  ServiceUnavailableException,
//	  TargetNotConnectedException; network errors     unavailable
//	context deadline                                  timeout
//	anything else                                     provider_error
//
// A refusal code (provider.NothingChanged) is returned only when nothing
// was changed: once Start or ApplyConfig has written a parameter or
// registered a task-definition revision, a later refusal by AWS (say
// CreateService's InvalidParameterException for a bad subnet) is
// reported as provider_error with the AWS code in the message.
package aws

// Package aws is the provider for Amazon ECS (mode "ecs"): each service is
// an ECS service on the target's cluster running one task definition
// family, with its config in SSM Parameter Store, its metrics from
// CloudWatch and its logs from CloudWatch Logs. It registers itself as
// "aws" from init; import it for its side effect.
//
// Mode "eks" (delegating to the kubernetes provider with an EKS token) is
// not implemented yet: a target with mode eks fails to open with
// Unsupported saying so.
//
// # Credentials and connection
//
// Everything comes from credentials.Resolver's Provider("aws") map, never
// from the process environment, shared config files, profiles or IMDS:
//
//   - region: the target's region option, else AWS_REGION, else
//     AWS_DEFAULT_REGION; none is InvalidArgument at open;
//   - AWS_ROLE_ARN + AWS_WEB_IDENTITY_TOKEN_FILE (EKS IRSA, CI OIDC): STS
//     AssumeRoleWithWebIdentity through stscreds, the token file re-read at
//     each refresh, session name AWS_ROLE_SESSION_NAME or "alphaswarm",
//     credentials cached until shortly before they expire; this wins over
//     static keys when both are set;
//   - AWS_ACCESS_KEY_ID + AWS_SECRET_ACCESS_KEY (+ AWS_SESSION_TOKEN):
//     static credentials;
//   - neither: the target opens, and every operation is Unauthenticated.
//
// The SDK config is assembled with aws.NewConfig rather than
// config.LoadDefaultConfig, because LoadDefaultConfig always reads
// os.Environ (AWS_CA_BUNDLE, AWS_ENDPOINT_URL_*, AWS_MAX_ATTEMPTS, ...)
// whatever options it is given. The factory never contacts AWS.
//
// Target options (see Options): mode (ecs), region, cluster ("default"),
// launchType (FARGATE, EC2 or EXTERNAL), subnets (required: tasks use
// awsvpc networking), securityGroups,
// assignPublicIp, executionRoleArn (needed on Fargate to pull from ECR,
// write awslogs and read secrets), logGroup (/alphaswarm/<target>),
// metricsPeriod (60s), pollInterval (5s), maxAttempts (the SDK's 3), and
// baseEndpoint, which points every client at one URL and is for tests
// against the in-process fake (package fakeaws) only.
//
// # Translation
//
// Service web of target prod is the ECS service "web" (the target owns the
// names on its cluster) with task definition family as-prod-web, tagged
// alphaswarm.service=web and alphaswarm.target=prod (service and task
// definition; tags propagate to tasks). Its one container, named web,
// gets: the image; Command as entryPoint and Args as command; Env plus
// ALPHASWARM_SERVICE/ALPHASWARM_TARGET as environment; Secrets as
// secrets[].valueFrom, where From must be an SSM parameter ARN or a
// Secrets Manager ARN (env: references are InvalidArgument: their value
// would have to be copied into AWS); ports as portMappings (awsvpc
// networking); the health check as an ECS container health check (exec as
// CMD, http as a curl/wget CMD-SHELL probe, tcp as nc; interval 10s,
// timeout 5s, 3 retries unless given); an awslogs log configuration
// (group logGroup, stream prefix the service name, so streams are
// <service>/<container>/<task id>; awslogs-create-group true); docker
// labels alphaswarm.service, alphaswarm.target and alphaswarm.spec-hash
// plus the spec's labels. CPU and memory become task-level cpu units
// (1000m = 1024) and MiB, rounded up to the nearest valid Fargate size on
// FARGATE (defaults 256 and 512). Compose specs are InvalidArgument;
// extensions.aws is ignored in this version.
//
// # Operations
//
// Start validates everything first (so InvalidArgument means nothing was
// sent), then: if the service exists and its task definition carries the
// same spec hash, only the desired count is updated; otherwise config (if
// the spec has any) is written to SSM, a task-definition revision is
// registered and the service created (with the deployment circuit
// breaker on) or updated to it. Start, Scale, Stop and Restart then poll
// DescribeServices every pollInterval until the primary deployment's
// rolloutState is COMPLETED with one deployment left and running =
// desired (Running), or FAILED (Failed, the rollout reason and the service
// event that explains it, such as CannotPullContainerError, in Message),
// or ctx ends (the status then, usually Progressing). Stop sets the desired
// count to 0 and keeps the service (an unknown service is Stopped, not an
// error). Scale is UpdateService desiredCount. Restart (Restarter) is
// UpdateService forceNewDeployment, which ECS rolls under the service's
// deployment configuration.
//
// Status is DescribeServices, then ListTasks (desired status RUNNING) and
// DescribeTasks: one Instance per task (task id, lastStatus, health from
// healthStatus, startedAt, stoppedReason). Ready counts RUNNING tasks not
// UNHEALTHY; Updated those of the primary deployment's task definition;
// Revision is the task definition's family:revision. Phases:
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
// # Config (ApplyConfig)
//
// Config key k of service web on target prod is the SSM parameter
// /alphaswarm/prod/web/k: a String, or a SecureString (under the account's
// default key) when the key starts with "secret.". The workload sees it as
// the environment variable named k ("secret." removed; other characters
// kept as they are, so prefer keys that are valid shell names). ApplyConfig
// writes every key (Overwrite), deletes the parameters under the path
// that are no longer in the map, registers a revision of the current task
// definition whose secrets reference the parameters by name (other
// secrets kept), forces a deployment, and waits for it like Start; a
// FAILED rollout is ProviderError. Values never enter the task definition.
// SSM cannot store empty values: an empty value is InvalidArgument. A
// later Start of a spec without config keeps the references; a spec with
// config replaces them.
//
// # Metrics
//
// StreamMetrics polls CloudWatch GetMetricData every metricsPeriod for
// AWS/ECS CPUUtilization and MemoryUtilization (Average) and
// ECS/ContainerInsights RunningTaskCount (only where Container Insights is
// on) of ClusterName/ServiceName, and yields one sample per poll with
// Resolution = the period. Instances is the service's runningCount. The
// utilisations are percentages of the task reservation; CPUPercent is
// util x cpu units/1024 x tasks, MemoryBytes util x task MiB x tasks, and
// the raw values are in Extra (cpuUtilization, memoryUtilization,
// runningTaskCount). Standard-resolution ECS metrics have a one-minute
// period; a shorter metricsPeriod repeats the latest datapoint. The
// CloudWatch client of this SDK version speaks Smithy RPC v2 CBOR.
//
// # Logs
//
// Logs (LogTailer) reads FilterLogEvents on logGroup with stream prefix
// "<service>/", tagging each line with the task id (the last component of
// the stream name) and stream "stdout" (awslogs merges stdout and stderr).
// The first read covers Since (or the group's beginning) and keeps the
// last Tail lines per task (all with Tail < 0); Follow then polls every
// pollInterval (2s by default). The cursor restarts each poll 10 seconds
// before the newest timestamp seen and skips event ids already yielded,
// so lines sharing a millisecond, or ingested up to 10s late, are neither
// dropped nor repeated; a line ingested later than that behind newer ones
// is missed. StartLiveTail is not used yet. A log group that does not
// exist yet reads as empty.
//
// # Exec
//
// Not implemented yet: the provider is not an Execer, so capabilities
// report exec unsupported and provider.Exec returns Unsupported. (ECS
// ExecuteCommand plus the Session Manager data channel is a later step.)
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
//	  ResourceNotFoundException, TargetNotFoundException   not_found
//	InvalidParameterException, ClientException,
//	  ValidationException, InvalidParameterValueException,
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
//	UnsupportedFeatureException                       unsupported
//	ServerException, InternalServerError,
//	  ServiceUnavailableException; network errors     unavailable
//	context deadline                                  timeout
//	anything else                                     provider_error
//
// A refusal code (provider.NothingChanged) is returned only when nothing
// was changed: once Start or ApplyConfig has written a parameter or
// registered a task-definition revision, a later refusal by AWS (say
// CreateService's InvalidParameterException for a bad subnet) is
// reported as provider_error with the AWS code in the message.
//
// # Tests
//
// The tests run the real SDK clients against fakeaws (an httptest server
// speaking ECS/SSM/Logs AWS JSON 1.1, CloudWatch RPC v2 CBOR and STS
// awsquery, requiring SigV4), including providertest.Run with Observe and
// ReadConfig reading the fake's state directly.
package aws

// Package aws is the provider for Amazon ECS (mode "ecs"): each service is
// an ECS service on the target's cluster running one task definition
// family, with its config in SSM Parameter Store, its metrics from
// CloudWatch and its logs from CloudWatch Logs. It registers itself as
// "aws" from init; import it for its side effect.
//
// In mode "eks" the target is an Amazon EKS cluster and every operation is
// the kubernetes provider's (see "EKS mode" below).
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
// write awslogs and read secrets), taskRoleArn (the task role, the
// workload's own AWS identity; ECS Exec needs one), enableExecuteCommand
// (false; see Exec), logGroup (/alphaswarm/<target>),
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
// is missed. A log group that does not exist yet reads as empty.
//
// Follow goes through CloudWatch Logs StartLiveTail sessions (option
// liveTail, default true) on the log group's ARN (DescribeLogGroups) with
// the stream prefix. When a session has started, FilterLogEvents reads
// cover what arrived since the last read: one at once, then one every
// pollInterval for the session's first 10 s (CloudWatch finds a line with
// FilterLogEvents only a while after ingesting it, so a line ingested just
// before the session started is in neither the session nor the first
// read). Lines a read and the session both deliver are recognised by
// stream, timestamp and text and yielded once. A throttled read is
// retried at the next one; five in a row end the follow with the error. A session CloudWatch ends (its 3-hour limit) is replaced by a new
// one the same way; a session that fails to start (throttled, a dropped
// connection) or whose stream breaks is replaced too, up to 5 times in a
// row. Following falls back to polling, for good, when
// StartLiveTail is refused (no logs:StartLiveTail permission, a VPC
// endpoint without the streaming-logs host) or when a session reports it is
// sampled (above 500 lines a second CloudWatch drops lines from live tail;
// the polls re-read from 10 s before the newest line, so nothing is lost).
// Sessions use an HTTP client of their own, without keep-alive or the
// 2-minute request timeout of the other calls.
//
// # Exec
//
// Exec (provider.Execer) is ECS Exec: ExecuteCommand, then the Session
// Manager data channel of the session ECS returns, spoken by package
// ssmsession (the session-manager-plugin's protocol; neither the plugin
// nor the AWS CLI is needed).
//
// Option enableExecuteCommand (default false) makes Start create or
// update services with enableExecuteCommand and register task definitions
// with linuxParameters.initProcessEnabled (ECS Exec's advice: an init
// process reaps what sessions leave behind). It needs taskRoleArn: ECS
// refuses exec for tasks without a task role, and the role must allow
// ssmmessages:CreateControlChannel, CreateDataChannel, OpenControlChannel
// and OpenDataChannel. Whether it does, and whether the tasks can reach
// ssmmessages (VPC endpoint or NAT), the controller cannot check: the
// symptom is ExecuteCommand's TargetNotConnectedException, reported as
// unavailable with that list. The option is the declared state: Start
// sets the service's flag to match it, registering a revision and rolling
// the service even when the spec is unchanged (ECS applies the flag only
// to tasks launched afterwards); Restart and ApplyConfig leave it as it
// is. It is off by default because that is ECS's default and a shell in
// production tasks is a privilege to grant on purpose, because it needs
// IAM set-up the controller cannot verify, and because turning it on rolls
// every service at its next Start, which an upgrade of the controller
// must not do. Targets whose on-call engineers rely on exec should turn it
// on ahead of time: turning it on during an incident replaces the very
// tasks they want to look into.
//
// Refusals, all before anything runs: a target without the option (or
// with it but no taskRoleArn, which also makes Start invalid_argument)
// declares exec unsupported with the reason, in its capabilities and from
// Exec; a service started without the flag is unsupported ("service web
// was started without enableExecuteCommand; ... start the service
// again"); so is a task, asked for by Instance, launched before the flag
// was set. Instance is a task id (or ARN) of the service; empty picks the
// first RUNNING task by ARN with exec on and its ExecuteCommandAgent
// RUNNING, and is unavailable when there is none (the reason says which).
// ExecuteCommand gets the task id (the API takes the id or the ARN),
// the service's container, interactive true (the only mode
// ECS has), and the command as one string: ECS's agent splits it with
// google/shlex and runs it without a shell, so each argument is
// single-quoted unless made of safe characters; use sh -c for shell
// syntax.
//
// The session is always a terminal: the agent runs the command on a
// pseudo-terminal. With TTY, output is passed on as it comes and Resize
// sizes the terminal (the latest size is sent when the handshake
// completes, then every change). Without TTY, stdout and stderr cannot be
// told apart (the terminal merges them: everything goes to Stdout), the
// terminal's "\r\n" is turned back into "\n" (the exact inverse of its
// translation), the terminal echoes Stdin into the output, and the end of
// Stdin is sent as Ctrl-D so that a command reading it sees end of file.
//
// The exit code cannot be known: ECS's agent (an InteractiveCommands
// session) sends none, and the AWS CLI exits 0 whatever the command did.
// ExecResult.ExitCode is then 0; a failing command shows only in its
// output (have it print its status: sh -c 'cmd; echo "exit $?"'). Only an
// agent that sends ExitCode payloads (NonInteractiveCommands sessions with
// separateOutputStream, which ECS does not start) gives a real code, which
// is then reported, with its StdErr payloads on Stderr.
//
// The session ends when the command does (channel_closed with an empty
// Output). A channel closed with an Output (terminated, timed out) is
// unavailable with that text. When ctx ends or the channel fails, the
// session is terminated through SSM TerminateSession (best effort) and
// Exec returns the error (the context's, when it ended). Sessions that
// require KMS encryption (the cluster's executeCommandConfiguration names
// a key) are unsupported: ssmsession has no KMS client and refuses the
// agent's request. Lost, repeated and reordered messages are handled by
// the protocol (acknowledgements, resends, sequence numbers); a
// reconnection (ResumeSession) is not attempted: a dropped WebSocket is
// unavailable.
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
//	  DoesNotExistException                           not_found
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
//	UnsupportedFeatureException; ExecuteCommand's
//	  InvalidParameterException "execute command was
//	  not enabled ..."                                unsupported
//	ServerException, InternalServerError,
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
//
// # EKS mode
//
// With options mode "eks" and cluster (the EKS cluster's name, required),
// Open returns an *EKSProvider, which reports itself as "aws" and has the
// capabilities of the kubernetes provider it delegates to (restart, logs,
// exec, list, watch, ping; stream_metrics where the cluster runs Metrics
// Server). Its options besides region, maxAttempts, metricsPeriod (here
// how often metrics.k8s.io is polled, 5s by default) and baseEndpoint are
// the kubernetes provider's namespace ("default"), deleteOnStop,
// rolloutTimeout, progressDeadline and configDir; the ECS-only options
// (launchType, subnets, securityGroups, executionRoleArn,
// assignPublicIp, taskRoleArn, enableExecuteCommand, logGroup,
// pollInterval, liveTail) are InvalidArgument in mode eks, and the
// EKS-only ones are in mode ecs. Credentials and region
// come from the resolver as in mode ecs.
//
// Open does not contact AWS. The first operation (Ping included) calls
// EKS DescribeCluster and builds the kubernetes provider over the
// cluster's endpoint (which must be https) and certificate authority; a
// later operation reuses it for the provider's lifetime (reopen the
// target after the cluster's endpoint or CA change). Concurrent first
// operations wait for one resolution, bounded by their own contexts. A
// resolution that fails is not remembered: the next operation tries
// again, so a controller started while AWS is unreachable recovers by
// itself. Resolution errors: ResourceNotFoundException is NotFound naming
// the cluster and region; a cluster CREATING, PENDING, DELETING or FAILED
// is Unavailable; an endpoint or CA that cannot be used is ProviderError;
// other AWS errors map as in the table below. Invalid service names and
// specs are refused before the cluster is resolved. Until then
// UnsupportedReason knows nothing and declares every operation
// supported. Statuses and the kubernetes provider's errors carry provider
// "aws". Close stops the kubernetes provider's informers; operations
// after it are Unavailable.
//
// Every request to the API server carries "Authorization: Bearer <token>",
// set per request by a round tripper (rest.Config.WrapTransport), with
// the token aws-iam-authenticator and `aws eks get-token` make:
// "k8s-aws-v1." followed by the base64url (unpadded) encoding of an STS
// GetCallerIdentity URL presigned with the target's credentials and
// region (https://sts.<region>.amazonaws.com/?Action=GetCallerIdentity&
// Version=2011-06-15&X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=…&
// X-Amz-Date=…&X-Amz-Expires=60&X-Amz-SignedHeaders=host;x-k8s-aws-id&
// X-Amz-Signature=…), with the header x-k8s-aws-id: <cluster> signed in,
// so that the token is good for that cluster only. Making it is local
// (no call to STS; web-identity credentials are fetched or renewed as
// in mode ecs). EKS accepts a token for 15 minutes from its X-Amz-Date;
// one is reused for 14 minutes, or until a minute before the
// credentials that signed it expire, whichever is sooner, and replaced
// at once after the API server answers 401 with it. What the cluster
// lets the identity do is EKS's business (access entries or the
// aws-auth ConfigMap): Forbidden is PermissionDenied, a refused token
// Unauthenticated, as in the kubernetes provider.
//
// # Tests
//
// The tests run the real SDK clients against fakeaws (an httptest server
// speaking ECS/SSM/Logs AWS JSON 1.1, CloudWatch RPC v2 CBOR and STS
// awsquery, requiring SigV4), including providertest.Run with Observe and
// ReadConfig reading the fake's state directly. ECS Exec runs against
// the fake's Session Manager agent (fakeaws/exec.go: the agent side of
// the data channel, a terminal's line discipline and a small command
// interpreter in place of processes), which can be told to drop, repeat
// and reorder messages. In mode eks the fake's
// DescribeCluster returns the endpoint and CA of a real API server
// (internal/k8stest), whose webhook token authenticator checks each EKS
// token as aws-iam-authenticator would (prefix, STS host, Action,
// Version, X-Amz-* parameters, age) and recomputes its signature with
// x-k8s-aws-id set to the cluster; the kubernetes provider's
// providertest scenarios then run through the aws provider
// (kubetest.Harness).
//
// # Known unknowns
//
// Nothing here has run against a real AWS account; the fake enforces what
// the API references document (each rule cites its source in fakeaws),
// and requests pass the SDK's own validators (fakeaws/contract.go). What
// those sources could not settle, and what to watch for:
//
//   - FilterLogEvents' request rate quota is low and account-wide (its
//     exact value was not confirmed). Many concurrent followers that fell
//     back to polling, or `logs --tail` over long histories, can be
//     throttled: watch for rate_limited from logs and raise pollInterval.
//   - Whether the ECS-managed SSM agent waits for a terminal size message
//     before it starts a non-TTY exec (the provider sends none without a
//     TTY). A non-TTY `exec` that prints nothing until the deadline points
//     at this.
//   - How the SDK surfaces StartLiveTail's SessionTimeoutException: the
//     modeled type or a generic API error with that code (smithy-go
//     1.28.9 gives the latter); both are taken as a session's normal end.
//     If following falls back to polling after about 15 hours, the
//     three-hour end was not recognised.
//   - The circuit breaker's timing: the fake fails a deployment after
//     max(3, min(200, desired/2)) failed tasks; real ECS adds pull retries
//     and launch throttling, so a bad image can outlast the start timeout
//     and Start reports Progressing, not Failed.
package aws

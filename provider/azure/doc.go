// Package azure is the provider for Microsoft Azure in Azure Container
// Instances (ACI) mode: each service is a set of ACI container groups in
// one resource group, its config in App Configuration (secret keys in Key
// Vault), its metrics from Azure Monitor, its output from the containers'
// logs and its exec through ACI's executeCommand WebSocket (package
// aciexec). It registers itself as "azure" from init; import it for its
// side effect. It uses the Azure SDK for Go (azcore pipelines,
// armcontainerinstance/v2, armmonitor, azappconfig, azsecrets).
//
// In AKS mode (options.mode "aks") it delegates every operation to the
// kubernetes provider over an AKS cluster (see AKS mode below).
//
// # Connection
//
// Credentials come only from the environment, through the
// credentials.Resolver (creds.Provider("azure")), never from os.Getenv:
// AZURE_TENANT_ID and AZURE_CLIENT_ID with AZURE_CLIENT_SECRET (a
// service principal's secret), else AZURE_CLIENT_CERTIFICATE_PATH (and
// AZURE_CLIENT_CERTIFICATE_PASSWORD), else AZURE_FEDERATED_TOKEN_FILE
// (workload identity), built explicitly as azidentity's
// ClientSecretCredential, ClientCertificateCredential or
// WorkloadIdentityCredential; AZURE_AUTHORITY_HOST selects another cloud's
// Entra ID. (azidentity.NewEnvironmentCredential is not used: it reads the
// process environment itself. azidentity still reads
// AZURE_REGIONAL_AUTHORITY_NAME from the process environment; nothing
// else.) The credentials cache their tokens and refresh them before they
// expire, and every request of a stream (metrics, logs) goes through the
// bearer-token policy, so a one-hour token never breaks a long stream.
// The subscription is options.subscriptionId, else AZURE_SUBSCRIPTION_ID.
// Missing credentials are unauthenticated. Open does not wait for Azure:
// in aks mode the cluster's credentials are fetched in the background.
//
// Target options (targets.<name>.options, see Options): mode ("aci"),
// subscriptionId, resourceGroup and location (required), subnet (a
// delegated subnet's resource id: private IPs instead of a public one),
// appConfigEndpoint, keyVaultURL, metricsInterval (1m; one of Azure
// Monitor's granularities for ACI 1m, 5m, 15m, 30m, 1h, 6h, 12h, anything
// else is invalid_argument), pollInterval (2s), maxRetries.
//
// # Services and container groups
//
// ACI has no replica count. Service web on target edge with n replicas is
// the n container groups web-0 … web-(n-1) in the resource group, each
// tagged
//
//	alphaswarm.service = web
//	alphaswarm.target  = edge
//	alphaswarm.index   = 0 … n-1
//	alphaswarm.spec    = digest of the spec the group was made from
//	alphaswarm.config  = digest of the config it carries
//	alphaswarm.configkeys = the env vars that came from config
//	alphaswarm.secret.<ENV> = the reference of a secret env var
//
// plus the spec's labels, and holding one Linux container "app" (restart
// policy Always): image, command (ACI has no separate args: the command
// line replaces the entrypoint, so args without command are
// invalid_argument), env, ports (exposed on the group's public IP, or a
// private IP in options.subnet; host must equal container), CPU and memory
// requests (default 1 core and 1.5 GB; memory rounded up to 0.1 GB), and
// liveness and readiness probes from the health check (httpGet or exec;
// tcp is invalid_argument). The status is rebuilt from the resource group
// alone, by those tags. Service names must leave room for "-<index>"
// within ACI's 63 characters. A group of the right name that belongs to
// another service or target (two targets sharing a resource group and a
// service name, or a group made by hand) is never overwritten: Start and
// Scale fail with already_exists. Labels become tags, so their names
// cannot contain < > % & \ ? / and there are at most 50 tags in all.
// Options of the other mode (cluster in aci mode, location in aks mode…)
// are invalid_argument.
//
// Secrets become secure environment variables (values never returned by
// ACI):
//
//	from: "env:NAME"                → the controller's environment variable NAME
//	from: "keyvault:name[/version]" → the target's Key Vault secret
//
// Because ACI never returns secure values, the reference is kept in the
// tag alphaswarm.secret.<ENV> and resolved again whenever a group is
// recreated.
//
// Start creates the missing groups (create-or-update, a long-running
// operation polled every pollInterval), replaces groups whose spec or
// config digest differs one at a time (each waited for until its
// container runs: a rolling update), starts stopped ones, deletes groups
// with an index >= replicas, and then waits until the service is Running
// or Failed. Starting an unchanged spec changes nothing. ACI refuses to
// update some properties of an existing group in place (CPU, memory,
// ports and IP address type, subnet, restart policy, OS type): when one of
// them changes, the group is deleted and created again instead, still one
// group at a time. Everything that can refuse Start (a group in the way
// that belongs to another service or target, a keyvault: reference that
// does not resolve) is checked before anything is written, config
// included, so such a refusal changes nothing. A group of the service
// without its "app" container (changed by hand) makes Start, Scale and
// ApplyConfig fail with provider_error. ACI refuses an image it cannot
// pull on the create request itself (400 InaccessibleImage): Start is
// invalid_argument, the group is not created, and during a rolling update
// the running groups are left as they are (with config written first,
// the error is provider_error: the config changed). Stop uses the
// container groups' stop operation: the containers end and compute
// billing stops, while the groups and their definitions are kept, so
// Start and Scale bring them back. Scale(n) creates groups from group 0's
// definition, starts stopped ones and deletes the ones above n; Scale(0)
// is Stop. Restart uses the container groups' restart operation, one
// group at a time, each waited for until a new run of its container (a
// new start time, not the run seen before the restart, which ACI may
// still report for a moment) is ready. Restart keeps the groups: an
// instance id is "<group>@<start time of its container>" (for example
// web-0@20261127T024500.123456789Z), so every run of a container has its
// own id.
//
// # Status
//
// Status lists the resource group's container groups with the service's
// tags and reads each one's instance view (Get). Per group:
//
//	instance view state / provisioning / container state      counts as
//	Stopped (stop operation)                                  not desired
//	provisioning Failed or instance view Failed               failed
//	provisioning Succeeded, Running, container Running        ready
//	container CrashLoopBackOff, or Waiting/Terminated
//	  with restart count > 0 (crash-looping)                  crashing
//	anything else (Creating, Pending, Waiting, Repairing...)  not ready
//
// desired = groups not stopped, ready = ready groups, updated = groups
// whose spec and config digests equal group 0's (rolling updates go in
// index order, so group 0 carries the newest). Then:
//
//	condition                                  phase
//	a failed group and ready < desired         Failed (message: container state, last Warning event)
//	a crashing group and none ready            Failed (as the kubernetes provider's CrashLoopBackOff)
//	a crashing group, some ready               Degraded
//	desired 0 (every group stopped)            Stopped
//	ready = updated = desired                  Running
//	updated < desired, some ready              Progressing
//	some ready                                 Degraded
//	none ready                                 Pending
//
// Instances lists the groups that are not stopped, each with its
// container's restart count and start time; not-ready ones carry a
// message (container state and detail, last Warning event). The revision
// is "<spec digest>.<config digest>" of group 0. No tagged group at all
// is not_found.
//
// # Config
//
// ApplyConfig replaces the service's config in the target's App
// Configuration store (options.appConfigEndpoint; without it apply_config
// is unsupported, and the capability says why): key
// "alphaswarm/<service>/<key>", label <target>. Keys starting with
// "secret." are stored as the Key Vault secret
// "alphaswarm-<target>-<service>-<key>" (options.keyVaultURL; a new
// version only when the value differs from the current version's, so that
// repeating Start or ApplyConfig keeps the reference and the config digest
// and recreates nothing) and the App Configuration key holds a Key Vault
// reference to that version (content type
// application/vnd.microsoft.appconfig.keyvaultref+json); settings whose
// value is unchanged are not written again. Keys no longer in the config
// are deleted, and for a secret key the referenced Key Vault version is
// disabled (not deleted: a soft-deleted name could not be set again until
// purged). Values read from Key Vault (secret keys and keyvault:
// references) are registered with the credentials resolver, so they are
// redacted like env: secrets. The workload sees each key as an environment
// variable (secret.X as secure variable X). ACI environment variables are
// immutable: the running container groups are recreated with the new
// values (create-or-update of the same group), one at a time, each waited
// for until it runs; stopped groups get the new values when they are next
// started; groups whose config digest already matches are left alone.
// Start with spec.config writes it the same way first; without a store,
// spec.config becomes plain environment variables, part of the spec (and
// secret keys are invalid_argument). Config values win over spec env
// vars of the same name. The config's env var names are kept in one tag,
// so they may take at most 256 characters in all.
//
// # Metrics, logs, exec
//
// StreamMetrics polls Azure Monitor (Microsoft.Insights/metrics of each
// running group) every metricsInterval, at that granularity (PT1M …
// PT12H), aggregation Average, over the last five intervals, and yields a
// sample whenever a newer point exists: CpuUsage (millicores; CPUPercent =
// millicores / 10, summed), MemoryUsage (bytes, summed),
// NetworkBytesReceivedPerSecond and NetworkBytesTransmittedPerSecond
// (rates times the interval: NetRxBytes, NetTxBytes; the rates in Extra).
// MemoryLimitBytes sums the groups' memory requests. Instances counts the
// groups with a point.
//
// Logs reads each group's container log with timestamps (the containers'
// list-logs operation; Tail applies to the first read). Follow polls
// every pollInterval and reads the newest 1000 lines of each log (ListLogs
// tail; without it ACI returns the whole log, up to 4 MB, every poll),
// reading the whole log only when more lines than that arrived since the
// last poll, and emits only the lines after a per-group cursor (the newest timestamp
// emitted and how many lines at exactly that timestamp were emitted), so
// that no line is repeated or dropped, lines sharing a timestamp
// included. Following with Tail 0 emits none of the history: the first
// read of each log only seeds its cursor. Groups that appear while
// following are read from their start.
// ACI merges stdout and stderr (stream "stdout") and keeps only the
// current run's log.
//
// Exec calls executeCommand on a ready group (req.Instance picks it by
// instance id or group name) and runs the session over the returned
// WebSocket URI and password (package aciexec). ACI takes one command
// string and runs it as a single executable path with no arguments
// (Azure/azure-cli#10039: "ls /" is looked up as an executable named
// "ls /", and the failure only shows as text on the socket), so a
// command of more than one word, or a word holding white space, is
// invalid_argument before anything is sent: exec a script in the image
// instead. ACI runs it on a pseudo-terminal whose size is sent in
// the request and cannot change during the session, merges stdout and
// stderr, and reports no exit status: ExitCode is always 0.
//
// # AKS mode
//
// With options.mode "aks", resourceGroup and cluster (and namespace,
// default "default"), the provider (AKSProvider) calls the managed
// cluster's ListClusterUserCredentials (format exec), or
// ListClusterAdminCredentials with options.admin, and builds a
// rest.Config from the returned kubeconfig. When that kubeconfig
// authenticates with Entra ID (a kubelogin exec plugin, or the legacy
// azure auth-provider), the plugin is not run: every request instead
// carries a token for the AKS server application (the kubeconfig's
// --server-id, else 6dae42f8-4368-4678-94ff-3960e28e3630), scope
// "<id>/.default", from the target's own credential, which caches and
// refreshes it. Admin credentials (client certificates) are used as they
// are. The credentials are fetched in the background from Open on, and
// again by the next operation after a failed attempt (kubernetes.Managed);
// operations then go to the kubernetes provider, whose package doc
// describes them, their phases and their errors, all reported under the
// name "azure". The provider offers exactly the kubernetes provider's
// optional interfaces. A cluster or resource group that does not exist is
// the operations' not_found; a cluster with local accounts disabled
// refuses admin credentials (invalid_argument).
//
// # Errors
//
// azcore.ResponseError codes (ARM, Key Vault, App Configuration) map to
// workload codes; codes not listed fall back on the HTTP status:
//
//	Azure error code                                    workload code
//	ResourceNotFound, ResourceGroupNotFound,
//	  SubscriptionNotFound, SecretNotFound (404)        not_found
//	AuthorizationFailed, LinkedAuthorizationFailed,
//	  RequestDisallowedByPolicy (403)                   permission_denied
//	InvalidAuthenticationToken, ExpiredAuthenticationToken,
//	  AuthenticationFailed (401); azidentity failures   unauthenticated
//	Conflict, AnotherOperationInProgress,
//	  ContainerGroupTransitioning (409, 412)            conflict
//	TooManyRequests, *Throttled, ContainerGroupQuotaReached (429)
//	                                                    rate_limited (message carries Retry-After)
//	InvalidRequestContent, InvalidParameter, BadRequest,
//	  InaccessibleImage, InvalidResourceLocation (400)  invalid_argument
//	InternalServerError, ServiceUnavailable (5xx)       unavailable
//	GatewayTimeout, OperationTimedOut (504, 408)        timeout
//	others                                              provider_error
//
// The SDK's retry policy has already retried throttling (honouring
// Retry-After) and transient failures by then. An error after an earlier
// change of the same call (a group created, a setting written) becomes
// provider_error, so that it never promises that nothing changed; check
// Status.
//
// # Known unknowns
//
// Nothing here has run against a real Azure subscription; the fake
// enforces what the REST specs and Learn pages document (each rule cites
// its source in fakeazure), its servers are the SDK's generated fakes and
// it refuses READ-ONLY properties read from the SDK's models
// (fakeazure/contract.go). What those sources could not settle, and what
// to watch for:
//
//   - The line format of ListLogs with timestamps=true: parseLogs assumes
//     "<RFC 3339> <text>". If it differs, every line gets a zero time,
//     Since drops everything and following may repeat lines.
//   - Azure Monitor's timespan is sent with nanosecond fractions
//     (RFC 3339 with 9 digits); the parser is reported to be picky
//     (azure-sdk-for-net#40047). A 400 from metrics points at this.
//   - Whether a create-or-update of a stopped group starts it (Scale
//     relies on it): a scaled-up service whose new groups stay Stopped
//     points at this.
//   - Whether ACI accepts group names with consecutive hyphens (service
//     names allow "a--b").
//   - Exec without arguments: Azure/azure-cli#10039 and docker/compose-cli
//     say ACI takes no arguments, while the generated PowerShell example of
//     Invoke-AzContainerInstanceCommand shows "echo hello" printing hello.
//     The provider refuses arguments; if a live group is shown to accept
//     them, the refusal can go.
//   - Key Vault's "25k bytes" secret limit is taken as 25,000 bytes (the
//     lower reading); App Configuration's 10,000 characters are counted as
//     Unicode code points over key, value and label.
//   - A Failed group "can't be updated" (container-instances-update) and
//     must be deployed as new; the fake re-launches it on a PUT. A Start
//     that keeps failing on a Failed group points at this: delete it.
//   - Log following polls ListLogs (the newest 1000 lines per group per
//     pollInterval, plus one ARM list and get per group); ACI's
//     Containers_Attach streams output (stdout and stderr told apart)
//     and is not used yet. Large services should raise pollInterval.
package azure

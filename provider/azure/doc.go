// Package azure is the provider for Microsoft Azure. In Azure Container
// Instances (ACI) mode, the default, each service is the container groups
// <name>-0 … <name>-(n-1) in one resource group, tagged with the service,
// target, index and digests of its spec and config; its config lives in App
// Configuration (secret keys in Key Vault), its metrics come from Azure
// Monitor, its output from the containers' logs and its exec through ACI's
// executeCommand WebSocket (package aciexec). In AKS mode (options.mode
// "aks") every operation is delegated to the kubernetes provider over an AKS
// cluster. It registers itself as "azure" from init; import it for its side
// effect.
//
// The operator guide (credentials, target options, how each operation maps
// to ACI, config, diff and reference checks, metrics, logs, exec, AKS mode
// and the known unknowns) is docs/providers/azure.md. Diff (provider.Differ)
// reports Start's own plan (plan, recreateReason) per container group:
// create, start, delete, update in place (ACI restarts the containers) or
// recreate (a property ACI cannot update in place, or a terminated group).
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
package azure

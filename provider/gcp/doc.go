// Package gcp is the provider for Google Cloud. In Cloud Run mode, the
// default, each service is a Cloud Run service (Admin API v2) in one
// project and region, its config in Secret Manager, its metrics from
// Cloud Monitoring and its output from Cloud Logging. In GKE mode
// (options.mode "gke") every operation is delegated to the kubernetes
// provider over a GKE cluster. It registers itself as "gcp" from init;
// import it for its side effect.
//
// The operator guide (credentials, target options, how each operation
// maps to Cloud Run, config secrets, diff and reference checks, metrics,
// logs, GKE mode and the known unknowns) is docs/providers/gcp.md. Diff
// (provider.Differ) builds the service as Start does (build, rolls,
// serviceChanges) and says whether a new revision rolls.
//
// # Status
//
// Status reads the service's terminal condition ("Ready"), reconciling
// flag, generation, latest created and latest ready revisions and traffic
// statuses:
//
//	terminal condition / state                            phase        ready
//	FAILED                                                Failed       0 (message: reason: message)
//	reconciling, RECONCILING or PENDING,                  Progressing  desired if the previous
//	  or observedGeneration < generation                                revision serves all traffic
//	SUCCEEDED, latest ready == latest created and
//	  serving 100% of traffic, desired > 0                Running      desired
//	same, desired 0                                       Stopped      0
//	SUCCEEDED, latest created not serving all traffic     Degraded     desired
//	no terminal condition                                 Unknown      0
//
// Cloud Run's Admin API lists no instances of a service and reports no
// live instance count. Ready is therefore inferred from the manual
// instance count of a Ready, serving revision, and Instances holds that
// many placeholders "<revision>/<n>", state "serving", each saying so in
// its message: they are not real instance ids (Cloud Monitoring's
// instance_count, in StreamMetrics, is the measured count).
//
// # Errors
//
// gRPC status codes (also those of failed long-running operations) map to
// workload codes:
//
//	gRPC code                          workload code
//	NOT_FOUND                          not_found
//	ALREADY_EXISTS                     already_exists
//	PERMISSION_DENIED                  permission_denied
//	UNAUTHENTICATED                    unauthenticated
//	RESOURCE_EXHAUSTED                 rate_limited
//	FAILED_PRECONDITION, ABORTED       conflict
//	UNAVAILABLE, CANCELLED             unavailable
//	DEADLINE_EXCEEDED                  timeout
//	INVALID_ARGUMENT, OUT_OF_RANGE     invalid_argument
//	UNIMPLEMENTED                      unsupported
//	INTERNAL, UNKNOWN, others          provider_error
//
// In GKE mode the same table maps GetCluster's errors (NOT_FOUND: no such
// cluster in that project and location; PERMISSION_DENIED: the account
// lacks container.clusters.get), and the kubernetes provider's table maps
// the API server's. Failing to get an access token is, for the token
// endpoint's HTTP 400, 401 and 403 (invalid_grant, unauthorized_client,
// ...) and for credentials that cannot produce a request (a bad key, a
// missing subject-token file), unauthenticated; HTTP 429 rate_limited;
// HTTP 5xx or an unreachable endpoint unavailable. No request reaches the
// API server without a token, so these promise that nothing changed.
//
// An error after an earlier change of the same call (a failed operation
// after CreateService/UpdateService was accepted, any error after a
// secret was created or a secret version added, by ApplyConfig or by
// Start with spec.Config) becomes provider_error, so that it never
// promises that nothing changed; check Status.
package gcp

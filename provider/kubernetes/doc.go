// Package kubernetes is the provider for one namespace of a Kubernetes
// cluster: each service is a Deployment (plus a Service when it has ports,
// and a ConfigMap for its config), managed through client-go. It registers
// itself as "kubernetes" from init (Open builds it from a target's
// options); import it for its side effect. The cloud providers (EKS, AKS,
// GKE) build on it through New, handing over a ready rest.Config.
//
// What an operator needs (connection, objects and labels, config,
// operations, diff and reference checks, permissions, logs, metrics and
// exec) is in docs/providers/kubernetes.md. The two tables a reader of the code needs
// are here.
//
// # Status
//
// Status, List, Watch and the operations' waits read shared informers.
// Native state to phase, first match:
//
//	Deployment and pods                                         phase
//	----------------------------------------------------------  -----------
//	metadata.deletionTimestamp set                              Progressing
//	spec.replicas 0, no pod left                                Stopped
//	spec.replicas 0, pods still terminating                     Progressing
//	status.observedGeneration < metadata.generation             Pending if
//	  (the controller has not acted on the latest spec)           none ready,
//	                                                              else
//	                                                              Progressing
//	Progressing=False ProgressDeadlineExceeded, or              Failed if
//	  ReplicaFailure=True (quota, admission), or a pod of the     none ready,
//	  current revision failing (CrashLoopBackOff,                 else
//	  ImagePullBackOff, InvalidImageName, ErrImageNeverPull,      Degraded
//	  CreateContainerConfigError, CreateContainerError,
//	  RunContainerError, hook errors, pod phase Failed), or
//	  spec.paused with the rollout unfinished
//	updated = ready = replicas = spec.replicas, and as many     Running
//	  ready pods in the cache
//	no replica ready (scheduling, pulling, creating)            Pending
//	updated < spec.replicas, or old pods left (replicas >       Progressing
//	  spec.replicas)
//	some not ready, but on their way (pods starting, pods       Progressing
//	  still to be created, the Deployment's counts lagging
//	  behind its pods)
//	some not ready otherwise (a pod that was ready is not;      Degraded
//	  restarts)
//
// # Errors
//
// API server errors map onto workload codes (errors.go, table-tested in
// errors_test.go):
//
//	API server / transport                              code
//	--------------------------------------------------  ----------------
//	404 NotFound                                        not_found
//	409 AlreadyExists                                   already_exists
//	409 Conflict; 410 Gone / Expired                    conflict
//	422 Invalid; 400 BadRequest; 413                    invalid_argument
//	401 Unauthorized                                    unauthenticated
//	403 Forbidden                                       permission_denied
//	429 TooManyRequests                                 rate_limited
//	504 Timeout; ServerTimeout; context deadline;       timeout
//	  network timeouts
//	503 ServiceUnavailable; connection refused, DNS,    unavailable
//	  reset, EOF, bad TLS certificate; cancelled
//	405 MethodNotSupported; 406; 415                    unsupported
//	500 InternalError and anything else                 provider_error
//
// An error after the operation's first successful write (the ConfigMap
// applied, then the Deployment refused) is provider_error whatever the API
// server said, so provider.NothingChanged stays true only when nothing
// changed.
package kubernetes

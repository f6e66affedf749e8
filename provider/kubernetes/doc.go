// Package kubernetes is the provider for one namespace of a Kubernetes
// cluster: each service is a Deployment (plus a Service when it has ports,
// and a ConfigMap for its config), managed through client-go. It registers
// itself as "kubernetes" from init; import it for its side effect. The
// cloud providers (EKS, AKS, GKE) build on it through New, handing over a
// ready rest.Config.
//
// # Connection
//
// Factory builds the client configuration from, in order: the target's
// kubeconfig option; the KUBECONFIG variable as the credentials.Resolver
// hands it out (a list of files, as kubectl reads it); the in-cluster
// service account (KUBERNETES_SERVICE_HOST and KUBERNETES_SERVICE_PORT
// from the resolver, the token and CA from the pod's service-account
// files). Nothing reads the process environment, and ~/.kube/config is
// not a default. The context option picks a kubeconfig context; the
// namespace option defaults to the context's namespace (the pod's own in a
// cluster), else "default". The client speaks protobuf to the API server
// and allows 50 requests a second (burst 100).
//
// Target options (targets.<name>.options, see Options): kubeconfig,
// context, namespace, deleteOnStop (false), rolloutTimeout (5m),
// progressDeadline (10m), configDir (/etc/alphaswarm/config),
// metricsInterval (5s), qps (50), burst (100). A spec may carry
// extensions.kubernetes (see Extension): nodeSelector,
// serviceAccountName, imagePullPolicy, imagePullSecrets, progressDeadline
// and serviceType.
//
// Neither Factory nor New waits for the API server: they start the
// informers in the background. An operation that finds them without a
// first list asks the API server directly (a list of one Deployment) and
// answers unavailable, unauthenticated or permission_denied at once if that
// fails; otherwise it waits up to 15 seconds for the list. Close stops the
// informers.
//
// # Objects and labels
//
// Service web of target prod in namespace apps is
//
//	deployment/web    labels alphaswarm.service=web alphaswarm.target=prod
//	                  app.kubernetes.io/managed-by=alphaswarm
//	                  app.kubernetes.io/name=web, plus the spec's labels;
//	                  selector alphaswarm.service=web,alphaswarm.target=prod;
//	                  one container named web
//	configmap/web-config   the config, owned by the Deployment
//	service/web       when the spec has ports (ClusterIP unless
//	                  extensions.kubernetes.serviceType), owned by the
//	                  Deployment
//
// The pods carry the Deployment's labels. Every write is a server-side
// apply with field manager "alphaswarm" and force (the controller is the
// authority for what it applies: a later Start takes back fields that
// someone changed with kubectl), preceded by a server-side dry run of every
// object (and of the Service's deletion when a spec drops its ports), so
// that admission, validation and RBAC refuse before anything changed. Restart, ApplyConfig's roll and Scale do not apply the whole
// object: they patch one annotation, or write the scale subresource, and
// leave every other field and its owner alone. Start refuses
// (already_exists) to take over a Deployment, ConfigMap or Service of that
// name that lacks the target's labels.
//
// The container gets the spec's image, command (the entrypoint) and args;
// its env in name order, then ALPHASWARM_SERVICE, ALPHASWARM_TARGET,
// ALPHASWARM_CONFIG_DIR and ALPHASWARM_INSTANCE (the pod's name), then the
// secrets. A secret reference is "secret-name/key" and becomes a
// secretKeyRef: the value never leaves the cluster and never appears in the
// Deployment. "env:NAME" references are refused (invalid_argument): the
// controller's environment does not reach the cluster, and copying a value
// into a Deployment would publish it to everyone who can read Deployments;
// create a Secret instead. Resources are limits (Kubernetes sets the
// requests equal). A health check becomes a readiness probe (http, tcp or
// exec; every 5s, 2s timeout, 3 failures unless given; startPeriod is the
// initial delay) — not a liveness probe, since a health check says when an
// instance is ready, not that it should be killed. Ports become container
// ports named by the spec (at most 15 characters) or "tcp-8080", and
// Service ports whose port is Host, or Container when Host is 0.
//
// # Config
//
// The config is the ConfigMap <service>-config, mounted read-only as files,
// one per key, at configDir (/etc/alphaswarm/config/<key>;
// ALPHASWARM_CONFIG_DIR names it) — the same place the docker provider
// puts them. Files rather than envFrom: config keys may hold '.' and '-',
// which are not variable names everywhere, values may be large or
// multi-line, and a workload can re-read a file. The pod template carries
// the annotation alphaswarm.config-checksum, the SHA-256 of the config, so
// a changed config rolls the pods: every process starts with the new files
// (the kubelet would also update mounted files in place, late and without
// a restart). ApplyConfig applies the ConfigMap, patches the checksum and
// waits for the rollout; the same config twice rolls nothing.
//
// # Operations
//
// Start applies the ConfigMap, the Deployment and the Service (deleting a
// Service of ours the spec no longer needs) and waits: until the cache has
// seen the write and the Deployment controller has observed its generation
// (observedGeneration), then until every replica is updated and ready with
// no old pod left (Running), or the rollout is stuck (Failed, or Degraded
// when some replicas serve: a pod of the new revision in ImagePullBackOff,
// CrashLoopBackOff, CreateContainerConfigError and the like, a
// ReplicaFailure condition, or the Progressing condition's
// ProgressDeadlineExceeded after progressDeadlineSeconds), with the pod's
// reason in the message — or until the caller's context or rolloutTimeout
// ends first (Progressing, saying what it waits for). Starting an
// unchanged spec changes nothing and answers at once.
//
// Stop scales the Deployment to 0 through the scale subresource and keeps
// it, its Service and its ConfigMap: scale-to-0, as the decision record
// says, so the service stays known (Stopped, desired 0) and Scale or Start
// brings it back with its config. With the deleteOnStop option Stop deletes
// the three instead (foreground, so the pods go first) and the service is
// unknown afterwards. Either way Stop returns when no pod is left; a
// second Stop, or a Stop of an unknown service, answers Stopped. Scale
// writes the scale subresource, as `kubectl scale` does, and waits like
// Start. Restart sets the pod-template annotation
// kubectl.kubernetes.io/restartedAt, as `kubectl rollout restart` does:
// the Deployment replaces every pod by its rolling-update strategy (25%
// surge, 25% unavailable), and Restart waits for the rollout, so every pod
// is new when it answers.
//
// Under provider.WithoutWait (the API's wait=false, the CLI's --no-wait)
// every operation returns after its writes with the status the cache holds
// then, typically Progressing; the Deployment controller rolls on. The
// runtime reports a waited operation that ends Failed or Degraded as
// rollout_failed, and one still Progressing at the deadline as timeout,
// both with this status attached.
//
// # Permissions
//
// The provider needs, in the target's namespace, exactly these verbs
// (found by removing one at a time; deploy/kubernetes/role.yaml is the Role
// to copy, and role_test.go runs the conformance suite with a token bound
// to exactly it):
//
//	resource                  verbs                                used by
//	------------------------  -----------------------------------  -------------------------------
//	apps deployments          get, list, watch, create, patch      every operation (list, watch:
//	                                                               the informers), start, restart,
//	                                                               apply_config
//	apps deployments/scale    update                               scale, stop
//	apps replicasets          list, watch                          every operation (informers)
//	pods                      list, watch                          every operation (informers)
//	configmaps                get, create, patch                   start, apply_config
//	services                  get, create, patch, delete           start (delete: a spec that
//	                                                               drops its ports)
//	pods/log                  get                                  logs
//	pods/exec                 get, create                          exec
//	metrics.k8s.io pods       get, list                            stream_metrics
//	apps deployments;         delete                               stop, with deleteOnStop only
//	configmaps
//
// When the target opens (and every five minutes after) the provider asks
// the API server with one SelfSubjectAccessReview per verb which of them
// its credentials lack, and checks with a server-side dry run that the
// namespace exists. A missing verb is named in the capability matrix
// (`alphaswarm targets`: the operations that need it are unsupported, with
// the verb as the reason) and in the log; an operation that needs it fails
// at once with permission_denied naming it (instead of a slow failure, or
// none: without watch the informers never sync). A missing list or watch,
// which every operation needs, and a namespace that does not exist also
// fail Ping, so /readyz says so.
//
// # Status
//
// Status, List, Watch and the waits of the operations read shared
// informers (Deployments, ReplicaSets, Pods of the namespace, filtered by
// the label alphaswarm.target=<target>): no request per call, and a
// `kubectl scale` or a deleted pod shows as soon as the watch delivers it.
// Replicas are the Deployment's own counts — desired spec.replicas, ready
// status.readyReplicas, updated status.updatedReplicas — the READY and
// UP-TO-DATE columns of `kubectl get deployment`. Instances are the pods,
// by name: ID the pod name, State the STATUS column of `kubectl get pods`
// (Running, Pending, ContainerCreating, CrashLoopBackOff, Terminating...),
// Healthy the Ready condition of a running pod, Restarts the containers'
// restart count. Revision is the Deployment's revision. The current
// revision's pods are those of the ReplicaSet with the Deployment's
// revision. Native state to phase, first match:
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
// The message names the condition's reason and the first pods' reasons
// (Unschedulable with the scheduler's message, ImagePullBackOff with the
// kubelet's). A pod whose image pull fails once (ErrImagePull) counts as
// on its way: the kubelet retries, and ImagePullBackOff follows within
// seconds if the image is really missing.
//
// The informers re-list and re-watch by themselves when the watch breaks;
// until their first list an operation reports Unavailable. Watch yields a
// status each time a service's Deployment, ReplicaSets or pods change
// (bursts coalesced); a service whose Deployment is gone is yielded
// Stopped.
//
// # Metrics, logs, exec
//
// StreamMetrics lists the metrics.k8s.io PodMetrics of the service's pods
// (the k8s.io/metrics clientset) every metricsInterval and yields a sample
// whenever Metrics Server has a newer window: CPU summed over pods in
// percent of a core, memory the summed working set, the memory limit
// summed from the pod specs, Resolution the window; NetRxBytes and
// NetTxBytes stay 0 because metrics.k8s.io has none. When the cluster does
// not serve metrics.k8s.io (no Metrics Server: 404, or 503 from its
// APIService) the stream ends with unavailable and says so; numbers are
// never made up. The provider also checks discovery for the API every 30
// seconds, and UnsupportedReason (provider.Explainer) declines
// stream_metrics with that reason while it is absent, so the capability
// matrix shows it.
//
// Logs reads the log subresource of every pod of the service, tagged with
// the pod name (Stream is always "stdout": Kubernetes merges a container's
// stdout and stderr). Tail counts per pod; Since goes to the API server
// (whole seconds). Without follow, the pods' lines are merged in time
// order; with follow, pods that appear later are followed from their
// first line, and a stream that ends while its pod lives (a restart) is
// resumed after its last line.
//
// Exec runs a command in one pod (the requested one, else the first ready
// one by name) through the exec subresource with
// remotecommand.NewFallbackExecutor: the WebSocket executor first, SPDY
// when the upgrade is refused, as kubectl does; stdin, stdout and stderr
// are attached as given, optionally on a TTY that Resize sizes, and the
// command's exit code is returned.
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

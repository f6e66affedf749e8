// Package docker is the provider for one Docker Engine (the decision
// record's docker_compose backend): each service runs as one container per
// replica, on a network of its own, managed through the Engine API. It
// registers itself as "docker" from init; import it for its side effect.
//
// # Connection
//
// The Engine client is github.com/moby/moby/client (the maintained
// successor of github.com/docker/docker/client). Its address and TLS
// material come from DOCKER_HOST, DOCKER_TLS_VERIFY, DOCKER_CERT_PATH and
// DOCKER_API_VERSION as the credentials.Resolver hands them out, never from
// the process environment. The API version is negotiated on the first
// request: down to 1.41 for Debian's Docker 20.10, up to what current
// Engines speak (the client's range is 1.40 to 1.56); DOCKER_API_VERSION
// pins it. Open does not contact the Engine; an Engine that does not
// answer makes every operation return Unavailable.
//
// Target options (targets.<name>.options, see Options): instance (the
// controller's instance id), stopTimeout (10s), namePrefix
// ("as-<target>-", "as-<instance>-<target>-" when scoped), networkPrefix
// (namePrefix), pull ("missing",
// "never", "always"), restartPolicy ("no"), configDir
// (/etc/alphaswarm/config), composeCommand (["docker-compose"]), parallel
// (4), minReady (500ms), init (true: replicas run under the Engine's init,
// so a SIGTERM that arrives before the workload installs its handler is
// not lost to PID 1 semantics). A spec may carry extensions.docker with pull,
// stopSignal and user.
//
// # Containers and labels
//
// Replica i of service web on target local is a container named
// as-local-web-<i>-<random>, on the bridge network as-local-web, reachable
// there as "web" and "web-<i>", labelled
//
//	alphaswarm.service=web  alphaswarm.target=local  alphaswarm.role=replica
//	alphaswarm.replica=<i>  alphaswarm.spec-hash=<hash of the spec>
//
// plus alphaswarm.instance=<id> when the target is scoped to a controller
// instance (TargetConfig.Instance or the instance option: serve always
// scopes), plus the spec's own labels. A scoped provider sees, lists,
// watches and changes only containers of its target with its instance
// label (an unscoped one only those without), so controllers sharing an
// Engine stay apart; containers of the target without the label (made
// before scoping) are counted in one warning at the first sync and left
// alone. Env is the spec's env, its secrets resolved
// through the resolver (env:ALPHASWARM_SECRET_NAME only; the values are
// registered for redaction), ALPHASWARM_SERVICE, ALPHASWARM_TARGET, ALPHASWARM_REPLICA and
// ALPHASWARM_CONFIG_DIR. Ports are published on an Engine-chosen host port
// unless Host is set, on the port's HostIP or the target policy's default
// bind address (127.0.0.1); control admits host ports and addresses per
// the policy. CPU and memory become NanoCpus and Memory. A health
// check becomes a Docker health check: exec as CMD; http and tcp as
// CMD-SHELL probes with wget/curl or nc, which the image must have (a FROM
// scratch image uses an exec check); interval 2s, timeout 5s and 3
// retries unless given (Docker's own 30s interval would hold every Start
// for half a minute).
//
// # Where the spec lives
//
// The spec as last applied (replica count and config included; secret
// references, never values) is stored in the labels of an anchor: a
// container of the service's image that is created but never started,
// with no network (as-local-web-anchor-<generation>, alphaswarm.role=anchor).
// Labels are immutable, so every change writes the next generation and
// removes the older anchors; readers take the highest. The anchor is what
// keeps a service known at zero replicas and what lets a controller
// restarted later scale it up again, roll it or restart it: nothing is
// kept in the controller's memory that the Engine does not also hold.
// Only the anchor carries the spec, so the Engine's events about replicas
// (which repeat every label) stay small. If someone removes the anchor by
// hand, Status still reports the replicas (with a message), and Start
// recreates it.
//
// # Operations
//
// Start validates the spec, resolves its secrets and makes sure the image
// is there (pulling it per the pull policy) before changing anything, so
// those failures guarantee nothing changed. It then writes the anchor,
// creates the network, and converges: missing replicas are created in
// parallel; running replicas of another spec are replaced one at a time,
// the new one started and ready before the old one is stopped (with fixed
// host ports, the old one first frees the port). Start waits until every
// replica is running (healthy, where a health check is given; running for
// minReady, where not and the spec is new) or ctx ends, and answers
// Running, Failed (a replica exited or failed its health check; a failed
// replacement is removed and the old replica keeps serving) or
// Progressing (ctx ended first). Starting an unchanged spec only heals
// missing or dead replicas.
//
// Under provider.WithoutWait (the API's wait=false, the CLI's --no-wait)
// new replicas are started and not waited for: Start and Scale answer with
// the status at that moment. A rolling replacement (a changed spec,
// Restart, ApplyConfig) still waits for each new replica before the next,
// because this provider is the one rolling: without the wait a replica
// that fails would not keep the old one serving. The runtime reports a
// waited operation that ends Failed as rollout_failed, and one still
// Progressing at the deadline as timeout, both with the status.
//
// Replicas that are replaced or scaled away drain in the background: the
// graceful stop (SIGTERM, SIGKILL after stopTimeout) and removal run
// after the operation has answered, in index order, highest first; the
// status lists them as "terminating" and counts them nowhere, and later
// operations ignore them. Close waits for them.
//
// Stop stops every replica gracefully and removes it, then the anchor and
// the network, before it answers; a second Stop finds nothing and answers
// Stopped too. Scale writes the new count and converges (highest index
// removed first); Scale 0 keeps the anchor, so the service stays known,
// Stopped with desired 0. Restart replaces every replica with a new
// container, one at a time: new instance ids and start times.
//
// ApplyConfig persists the config in the anchor and rolls the replicas.
// The config is delivered as files, one per key, in configDir
// (/etc/alphaswarm/config/<key>; ALPHASWARM_CONFIG_DIR names it), copied
// into each replica with the Engine's archive API after it is created and
// before it starts; the directory exists only when the config has keys.
// Files rather than env, because config keys may hold '.' and '-' that
// are not variable names, values may be large or multi-line (up to 1 MiB)
// and would show in every `docker inspect`, and a workload can re-read a
// file. Copying rather than bind-mounting, because the Engine may be
// remote (DOCKER_HOST=tcp://...) and see none of the controller's files.
// Replicas created later (Scale, healing) get the same files.
//
// # Status
//
// Status, List and Watch answer from a cache of every container labelled
// with the target. The cache subscribes to the Engine's container events
// for the target, then rebuilds itself from the labels (list, inspect);
// after that each event updates the container's entry at once (a
// `docker kill` shows within milliseconds) and queues an inspection that
// fills in the details; an inspection older than a later event does not
// overwrite it. When the stream breaks, the cache reconnects with backoff
// and rebuilds; meanwhile operations report Unavailable rather than stale
// state. Every mutation also refreshes its service before answering, so a
// caller reads its own writes. The cache survives nothing but needs
// nothing: a new controller rebuilds it from the Engine.
//
// A replica is ready when its container is running and, if it has a health
// check, healthy. Native state to phase:
//
//	Engine state of the service's replicas              phase
//	--------------------------------------------------  -----------
//	an operation of this provider is in flight           Progressing
//	desired 0, no replica running (exited ones may stay) Stopped
//	desired 0, replicas still running                    Progressing
//	ready >= desired, all of the current spec            Running
//	ready >= desired, some of an older spec              Degraded
//	0 < ready < desired (killed, exited, removed,        Degraded
//	  unhealthy or paused replicas)
//	none ready, some created, restarting or health       Pending
//	  "starting"
//	none ready and none on its way (all exited, dead,    Failed
//	  unhealthy, or removed behind our back)
//
// Container states: created -> pending; running -> ready (health none or
// healthy), pending (starting) or not ready (unhealthy); restarting ->
// pending; paused, exited, dead, removing -> not ready. Instance.State is
// the Engine's state, with the health in parentheses where there is one,
// or "terminating" while the provider drains the replica; Instance.ID is
// the 12-character container id.
//
// # Metrics, logs, exec
//
// StreamMetrics reads the Engine's stats stream of each running replica
// (CPU % computed as the docker CLI does, memory without the page cache,
// network bytes summed over interfaces) and yields one sample a second
// summing the replicas. The per-container streams go through a
// telemetry.Hub keyed by container id, so a container has one upstream
// stats stream however many callers watch its service; the stream follows
// replicas as they come and go. Logs demultiplexes each replica's output
// with stdcopy into stdout and stderr lines tagged with the instance id,
// with follow, tail (per replica) and since; without follow the replicas'
// lines are merged in time order. Exec runs a command in one replica with
// stdin, stdout and stderr attached, optionally on a TTY that Resize
// sizes, and returns its exit code.
//
// # Compose profiles
//
// A spec with compose.file runs a Compose project named
// <namePrefix><service>. Compose is off unless the target's policy names a
// directory (policy.compose.dir; PermissionDenied otherwise), and the file
// is a name relative to it, opened through os.Root: no absolute path, no
// "..", no symlink that leaves the directory (/proc/<pid>/root included).
// It is loaded with github.com/compose-spec/compose-go/v2 from the bytes
// read (interpolation sees the spec's env and secrets and the CLI's few
// variables, not the controller's environment; include and extends.file
// are refused before any other file is read) and checked
// (composecheck.go): the keys that let a container escape (privileged,
// cap_add, devices, host or container namespaces, security_opt, build,
// volume driver_opts, external networks, bind mounts outside
// policy.compose.bindPaths, the Docker socket) are InvalidArgument naming
// the service and key unless policy.compose.allow lists them; env_file,
// label_file and config/secret files must lie in the directory; images and
// published ports follow the policy (PermissionDenied). A file that does
// not load is InvalidArgument with a fixed description (not valid YAML at
// line N, not the Compose schema...): compose-go's messages quote the
// file, so they are never passed on, and its logrus warnings are silenced.
// Nothing runs until all of this passes. The project is then driven
// through the Compose CLI as a subprocess (composeCommand, by default
// Debian's docker-compose) on a private copy of exactly the checked bytes,
// with the directory as project directory, an empty --env-file and the
// environment compose-go interpolated with, and a generated override file
// that adds the provider's labels to every Compose service. Why the CLI and not
// the Engine API with Compose's labels: Compose's semantics (depends_on
// ordering, builds, volumes, networks, env_file, profiles, recreation
// rules) are large, and a re-implementation would drift from what users get
// from `docker compose up` on the same file; the CLI is the reference, and
// it is what the decision record chose. Why this still works with the rest
// of the provider: the containers carry both Compose's labels and ours, so
// status, logs, metrics and exec use the same Engine-API paths as plain
// services. Replicas is per Compose service: Scale n runs n containers of
// each (desired = n × services); Restart recreates the containers Compose
// service by Compose service (new ids); Stop runs `down` and then sweeps by
// label. ApplyConfig is Unsupported for Compose services: the file carries
// their configuration.
//
// # Errors
//
// Engine failures map onto workload codes (errors.go, table-tested):
// unreachable daemon -> unavailable; no such container/image/network ->
// not_found; name already in use -> already_exists; other conflicts ->
// conflict; bad parameter -> invalid_argument; 401 -> unauthenticated;
// 403 -> permission_denied; 429 -> rate_limited; 501 -> unsupported; 503
// -> unavailable; deadline -> timeout; anything else -> provider_error.
package docker

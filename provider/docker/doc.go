// Package docker is the provider for one Docker Engine (the decision
// record's docker_compose backend): each service runs as one container per
// replica, on a network of its own, managed through the Engine API
// (github.com/moby/moby/client), or as a Compose project driven through
// the Compose CLI. It registers itself as "docker" from init; import it
// for its side effect. Open builds a provider without contacting the
// Engine.
//
// How it works for an operator — the connection and target options, the
// containers and labels it creates, where the spec lives (the anchor
// container), how each operation converges and rolls, the config files,
// what a diff shows and what CheckRefs looks up (diff.go, refs.go), the
// status cache, metrics, logs, exec and Compose profiles — is in
// docs/providers/docker.md. This comment keeps the two tables the code is
// tested against.
//
// # Phases
//
// A replica is ready when its container is running and, if it has a health
// check, healthy. Native state to phase (status.go, TestPhaseTable):
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
// # Errors
//
// Engine failures map onto workload codes (errors.go, TestErrorMapping):
//
//	Engine or transport error                        code
//	-----------------------------------------------  -----------------
//	unreachable daemon, Engine 503                   unavailable
//	context deadline, net timeout, 504               timeout
//	no such container / image / network (404)        not_found
//	name already in use (409)                        already_exists
//	other conflicts (409)                            conflict
//	bad parameter (400)                              invalid_argument
//	401                                              unauthenticated
//	403                                              permission_denied
//	429                                              rate_limited
//	501                                              unsupported
//	anything else                                    provider_error
//
// An error met after the operation's first change to the Engine is
// provider_error whatever the Engine said (provider.AfterChange): only the
// errors of the checks before it (validation, secrets, the image)
// guarantee that nothing changed.
package docker

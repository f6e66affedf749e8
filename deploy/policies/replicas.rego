# Max replicas per target ("*" for every other target), for start, scale and
# rollback (which restores a recorded spec).
package alphaswarm

max_replicas := {"prod": 20, "*": 50}

replica_limit := max_replicas[input.target]

replica_limit := max_replicas["*"] if not max_replicas[input.target]

deny contains msg if {
	input.action in {"start", "scale", "rollback"}
	input.request.replicas > replica_limit
	msg := sprintf("at most %d replicas on target %s, asked for %d", [replica_limit, input.target, input.request.replicas])
}

package workload

import (
	"fmt"
	"strings"
)

// Action names an operation on a service.
type Action string

// The actions. Start, Stop, Scale, Restart, ApplyConfig, Rollback and Exec change
// the backend and are written to the ledger; Halt changes the control
// plane and is written too. Status, Metrics and Logs are reads.
const (
	ActionStart       Action = "start"
	ActionStop        Action = "stop"
	ActionScale       Action = "scale"
	ActionRestart     Action = "restart"
	ActionApplyConfig Action = "apply_config"
	// ActionRollback restores a recorded spec revision (control/rollback.go).
	ActionRollback Action = "rollback"
	ActionExec     Action = "exec"
	ActionHalt     Action = "halt"
	ActionStatus   Action = "status"
	ActionMetrics  Action = "stream_metrics"
	ActionLogs     Action = "logs"
)

// Actions lists every action.
var Actions = []Action{
	ActionStart, ActionStop, ActionScale, ActionRestart, ActionApplyConfig, ActionRollback,
	ActionExec, ActionHalt, ActionStatus, ActionMetrics, ActionLogs,
}

// Mutating reports whether a is audited in the ledger.
func (a Action) Mutating() bool {
	switch a {
	case ActionStart, ActionStop, ActionScale, ActionRestart, ActionApplyConfig, ActionRollback, ActionExec, ActionHalt:
		return true
	}
	return false
}

// provisioningWords are the shapes of requests that belong to Terraform.
var provisioningWords = []string{
	"namespace", "cluster", "iam", "role", "policy", "network", "vpc", "subnet",
	"ingress", "tenant", "rbac", "bucket", "database", "dns", "certificate",
	"provision", "terraform", "node", "nodepool", "volume",
}

// ParseAction parses an action name. A name that looks like provisioning
// (create_namespace, delete_cluster, attach_iam_policy...) is refused with an
// InvalidArgument error naming the boundary: Terraform owns provisioning.
func ParseAction(s string) (Action, error) {
	a := Action(strings.ToLower(strings.TrimSpace(s)))
	for _, k := range Actions {
		if a == k {
			return a, nil
		}
	}
	if IsProvisioning(s) {
		return "", ProvisioningError(s)
	}
	return "", Invalid(FieldError{"action", fmt.Sprintf("unknown action %q (want one of %s)", s, actionList())})
}

// IsProvisioning reports whether an operation name is provisioning-shaped.
func IsProvisioning(s string) bool {
	low := strings.ToLower(s)
	for _, w := range provisioningWords {
		for _, part := range strings.FieldsFunc(low, func(r rune) bool { return r == '_' || r == '-' || r == ' ' || r == '.' || r == '/' }) {
			if part == w || part == w+"s" {
				return true
			}
		}
	}
	return false
}

// ProvisioningError is the refusal for a request that crosses into
// provisioning.
func ProvisioningError(what string) *Error {
	return Invalid(FieldError{"action", fmt.Sprintf(
		"%q is provisioning, which Terraform owns (clusters, namespaces, IAM, networks, RBAC): "+
			"alphaswarm runs workload operations only (%s)", what, actionList())})
}

func actionList() string {
	names := make([]string, len(Actions))
	for i, a := range Actions {
		names[i] = string(a)
	}
	return strings.Join(names, ", ")
}

# Exec on production targets only by admins.
package alphaswarm

prod_targets := {"prod"}

deny contains msg if {
	input.action == "exec"
	input.target in prod_targets
	input.principal.role != "admin"
	msg := sprintf("exec on target %s is for admins only (you are %s)", [input.target, role_name])
}

role_name := input.principal.role if input.principal.role != ""

role_name := "no role" if input.principal.role == ""

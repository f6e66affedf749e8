package auth

import (
	"strings"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// Role is a caller's permission level. Each role includes everything the
// roles below it may do: admin ⊇ operator ⊇ viewer.
type Role string

// The roles, lowest first.
const (
	// RoleViewer may read state and open metrics/log streams.
	RoleViewer Role = "viewer"
	// RoleOperator may also deploy, stop, scale, restart, apply config and
	// roll back to a recorded revision.
	RoleOperator Role = "operator"
	// RoleAdmin may also exec into services, halt, and manage tokens.
	RoleAdmin Role = "admin"
)

// Roles lists every role, lowest first.
var Roles = []Role{RoleViewer, RoleOperator, RoleAdmin}

// rank orders the roles; 0 means "not a role".
func (r Role) rank() int {
	switch r {
	case RoleViewer:
		return 1
	case RoleOperator:
		return 2
	case RoleAdmin:
		return 3
	}
	return 0
}

// Valid reports whether r is one of the defined roles.
func (r Role) Valid() bool { return r.rank() > 0 }

// Allows reports whether a caller holding r may do what need requires. An
// invalid r allows nothing; an invalid need is allowed to no one.
func (r Role) Allows(need Role) bool {
	return r.Valid() && need.Valid() && r.rank() >= need.rank()
}

// ParseRole parses a role name, ignoring case and surrounding space. An
// unknown name is an InvalidArgument error on field "role".
func ParseRole(s string) (Role, error) {
	r := Role(strings.ToLower(strings.TrimSpace(s)))
	if !r.Valid() {
		return "", workload.Invalid(workload.FieldError{Path: "role", Message: "must be one of viewer, operator, admin"})
	}
	return r, nil
}

// highest returns the highest of the known roles among names, and false if
// none is known. Unknown names are ignored.
func highest(names []string) (Role, bool) {
	var best Role
	for _, n := range names {
		r, err := ParseRole(n)
		if err == nil && r.rank() > best.rank() {
			best = r
		}
	}
	return best, best != ""
}

// RoleOn returns p's role on target: the higher of its role on every
// target and the role a grant gives it on this one. An empty target (a
// route that names none) gets the role on every target.
func RoleOn(p control.Principal, target string) Role {
	r := Role(p.Role)
	if !r.Valid() {
		r = ""
	}
	if t := Role(p.TargetRoles[target]); target != "" && t.rank() > r.rank() {
		r = t
	}
	return r
}

// Denied is the PermissionDenied error for p, which lacks need on target.
func Denied(p control.Principal, need Role, target string) error {
	has := RoleOn(p, target)
	switch {
	case has == "" && len(p.TargetRoles) > 0 && target == "":
		return workload.Errorf(workload.PermissionDenied, "%s has roles on some targets only; this needs role %q on every target", p.User, need)
	case has == "":
		return workload.Errorf(workload.PermissionDenied, "%s has no role (viewer, operator or admin) here; this needs %q", p.User, need)
	}
	return workload.Errorf(workload.PermissionDenied, "role %q may not do this; it needs %q", has, need)
}

package httpapi

import (
	"bytes"
	"fmt"
	"net/http"
	"strconv"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/workload"
	"github.com/alphaswarm/controller/workload/specfile"
)

// diff previews a deploy (POST .../services/{service}/diff, viewer). The
// body is a spec exactly as deploy takes it (JSON or YAML as Content-Type
// says, the name required), whose name must be the path's service (field
// name); or, with ?revision=N and no body, the spec of the service's
// revision N (what a rollback to it would deploy; 0 is the revision before
// the current one, as for rollback's "to"). A read: nothing is
// recorded, refusals included. A spec with config values needs the
// operator role (see below).
//
// The answer's admission says whether the deploy (or the rollback) would
// be let through now: the runtime runs the operation's own checks as a
// dry run (control.DiffOptions.Admit) for a caller whose role on the
// target may perform it, and reports them unchecked for anyone else, so
// that a viewer learns nothing of the policies it could not learn by
// trying (its own attempt would be refused for its role, before any
// policy).
func (s *Server) diff(w http.ResponseWriter, r *http.Request, p control.Principal) {
	target, service := r.PathValue("target"), r.PathValue("service")
	o := control.DiffOptions{Admit: auth.RoleOn(p, target).Allows(deployRole)}
	if !o.Admit {
		o.Unchecked = fmt.Sprintf("not checked: the halt switch and policies judge a deploy or rollback only for a role that may perform it "+
			"(%s on target %q; yours: %s)", deployRole, target, roleName(auth.RoleOn(p, target)))
	}
	b, err := readBody(r)
	if err != nil {
		writeError(w, err)
		return
	}
	if q := r.URL.Query(); q.Has("revision") {
		rev, err := strconv.Atoi(q.Get("revision"))
		var errs []workload.FieldError
		if err != nil || rev < 0 {
			errs = append(errs, workload.FieldError{Path: "revision", Message: "must be a revision number (1 or more), or 0 for the revision before the current one"})
		}
		if len(bytes.TrimSpace(b)) > 0 {
			errs = append(errs, workload.FieldError{Path: "body", Message: "must be empty with ?revision=N (the revision is the spec)"})
		}
		if len(errs) > 0 {
			writeError(w, workload.Invalid(errs...))
			return
		}
		d, err := s.rt.DiffRevision(r.Context(), p, target, service, rev, o)
		if err != nil {
			writeError(w, err)
			return
		}
		writeJSON(w, http.StatusOK, d)
		return
	}
	spec, err := specfile.Decode(b, specfile.FormatOf(r.Header.Get("Content-Type")))
	if err != nil {
		writeError(w, err)
		return
	}
	if spec.Name != "" && spec.Name != service {
		writeError(w, workload.Invalid(workload.FieldError{Path: "name",
			Message: fmt.Sprintf("spec name %q does not match service %q", spec.Name, service)}))
		return
	}
	// A diff says whether each config value differs from the live one:
	// with values of their choosing, a viewer could test guesses of a
	// value it may not read (a password in config) one diff at a time.
	// Config values are the deployer's to send, so such a diff needs the
	// role that may deploy them. A revision's diff (above) compares values
	// nobody chose, and stays a viewer's read.
	if len(spec.Config) > 0 && !auth.RoleOn(p, target).Allows(auth.RoleOperator) {
		e := workload.Errorf(workload.PermissionDenied, "a diff of a spec with config values needs the operator role on target %q "+
			"(it would tell whether each value equals the live one); drop config from the spec to preview the rest as a viewer", target)
		e.Fields = []workload.FieldError{{Path: "config", Message: "needs the operator role"}}
		writeError(w, e)
		return
	}
	d, err := s.rt.Diff(r.Context(), p, target, spec, o)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

// deployRole is the role a deploy and a rollback need (POST
// .../services and .../rollback in the route table): the role for which a
// diff runs their admission checks.
const deployRole = auth.RoleOperator

func roleName(r auth.Role) string {
	if r == "" {
		return "none"
	}
	return string(r)
}

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
func (s *Server) diff(w http.ResponseWriter, r *http.Request, p control.Principal) {
	target, service := r.PathValue("target"), r.PathValue("service")
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
		d, err := s.rt.DiffRevision(r.Context(), p, target, service, rev)
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
	d, err := s.rt.Diff(r.Context(), p, target, spec)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

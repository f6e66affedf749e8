package httpapi

import (
	"fmt"
	"net/http"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
	"github.com/alphaswarm/controller/workload/specfile"
)

// diff previews a deploy (POST .../services/{service}/diff, viewer): the
// body is a spec exactly as deploy takes it (JSON or YAML as Content-Type
// says, the name required). The spec's name must be the path's service
// (field name). A read: nothing is recorded, refusals included.
func (s *Server) diff(w http.ResponseWriter, r *http.Request, p control.Principal) {
	target, service := r.PathValue("target"), r.PathValue("service")
	b, err := readBody(r)
	if err != nil {
		writeError(w, err)
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
	d, err := s.rt.Diff(r.Context(), p, target, spec)
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, http.StatusOK, d)
}

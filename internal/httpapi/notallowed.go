package httpapi

import (
	"net/http"
	"strings"

	"github.com/alphaswarm/controller/workload"
)

// methodsProbed are the methods a path is tried with to tell a wrong
// method (405) from an unknown path (404).
var methodsProbed = []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete}

// methodNotAllowed answers, with the error envelope, a request whose path
// a route serves under another method: 405 with the Allow header (RFC 9110
// section 15.5.6), where net/http's mux would answer 405 in plain text or
// the /v1/ catch-all would answer 404. It reports whether it answered.
func (s *Server) methodNotAllowed(w http.ResponseWriter, r *http.Request) bool {
	if _, pat := s.mux.Handler(r); pat != "" && pat != "/v1/" {
		return false // a route (or an extra handler) serves it
	}
	var allow []string
	for _, m := range methodsProbed {
		if m == r.Method {
			continue
		}
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pat := s.mux.Handler(probe); pat != "" && pat != "/v1/" {
			allow = append(allow, m)
		}
	}
	if len(allow) == 0 {
		return false
	}
	closeUnreadBody(w, r)
	w.Header().Set("Allow", strings.Join(allow, ", "))
	writeErrorStatus(w, http.StatusMethodNotAllowed, workload.Errorf(workload.InvalidArgument,
		"method %s is not allowed on %s (allowed: %s; see /v1/openapi.json)", r.Method, r.URL.Path, strings.Join(allow, ", ")))
	return true
}

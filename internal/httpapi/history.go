package httpapi

import (
	"bytes"
	"net/http"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// history serves GET .../history (viewer): the service's spec revisions,
// newest first (control.Runtime.History; never an env or config value).
func (s *Server) history(w http.ResponseWriter, r *http.Request, _ control.Principal) {
	revs, err := s.rt.History(r.Context(), r.PathValue("target"), r.PathValue("service"))
	if err != nil {
		writeError(w, err)
		return
	}
	writeJSON(w, 200, api.HistoryResponse{Revisions: revs})
}

// rollback serves POST .../rollback (operator): body {"to": N}; an empty
// body, or to 0, restores the revision before the current one. It runs
// through control.Runtime.Do like every mutating request.
func (s *Server) rollback(w http.ResponseWriter, r *http.Request, p control.Principal) {
	err := requireJSON(r)
	var b []byte
	if err == nil {
		b, err = readBody(r)
	}
	var body api.RollbackRequest
	if err == nil && len(bytes.TrimSpace(b)) > 0 {
		body, err = decodeStrict[api.RollbackRequest](b)
	}
	if err != nil {
		s.rejectBody(w, r, p, workload.ActionRollback, err)
		return
	}
	s.do(w, r, control.Request{Principal: p, Action: workload.ActionRollback, Target: r.PathValue("target"),
		Service: r.PathValue("service"), ToRevision: body.To}, 200)
}

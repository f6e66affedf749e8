package httpapi

import (
	_ "embed"
	"net/http"

	"github.com/alphaswarm/controller/control"
)

// openAPIDoc is the hand-written OpenAPI 3 document. A test fails when a
// registered route is missing from it or it documents a route that does
// not exist.
//
//go:embed openapi.json
var openAPIDoc []byte

func (s *Server) openapi(w http.ResponseWriter, _ *http.Request, _ control.Principal) {
	w.Header().Set("Content-Type", "application/json")
	w.Write(openAPIDoc)
}

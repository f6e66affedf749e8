package httpapi

import (
	"mime"
	"net/http"

	"github.com/alphaswarm/controller/workload"
)

// requireJSON refuses a body declared as anything but JSON on the routes
// whose document allows only application/json (scale, config, exec): the
// server must not be looser than the OpenAPI document. A request with no
// Content-Type is read as JSON.
func requireJSON(r *http.Request) error {
	ct := r.Header.Get("Content-Type")
	if ct == "" {
		return nil
	}
	mt, _, err := mime.ParseMediaType(ct)
	if err == nil && (mt == "application/json" || (len(mt) > 5 && mt[len(mt)-5:] == "+json")) {
		return nil
	}
	return workload.Invalid(workload.FieldError{Path: "header.Content-Type", Message: "must be application/json"})
}

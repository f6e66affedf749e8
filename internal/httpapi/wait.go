package httpapi

import (
	"net/http"
	"strconv"
	"time"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/workload"
)

// waitOptions reads the query parameters of a mutating request that say
// whether and how long to wait for the service: wait=false returns as soon
// as the backend accepted the change; timeout=90s (a Go duration) replaces
// the action's deadline. The runtime checks the ranges and the actions they
// apply to.
func waitOptions(r *http.Request, req *control.Request) error {
	q := r.URL.Query()
	var errs []workload.FieldError
	if v := q.Get("wait"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, workload.FieldError{Path: "wait", Message: "must be true or false"})
		}
		req.NoWait = err == nil && !b
	}
	if v := q.Get("timeout"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 {
			errs = append(errs, workload.FieldError{Path: "timeout", Message: "must be a duration like 90s or 5m"})
		}
		req.Timeout = d
	}
	if len(errs) > 0 {
		return workload.Invalid(errs...)
	}
	return nil
}

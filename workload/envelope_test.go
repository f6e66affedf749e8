package workload_test

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/workload"
)

func TestWriteError(t *testing.T) {
	secret := errors.New("backend said: password=hunter2")
	withCause := workload.Errorf(workload.NotFound, "service %q not found", "web")
	withCause.Err = secret
	cases := []struct {
		name      string
		err       error
		status    int
		code      workload.Code
		challenge bool
	}{
		{"not found", withCause, http.StatusNotFound, workload.NotFound, false},
		{"unauthenticated", workload.Errorf(workload.Unauthenticated, "no bearer token"), http.StatusUnauthorized, workload.Unauthenticated, true},
		{"plain error", secret, http.StatusInternalServerError, workload.Internal, false},
		{"invalid", workload.Invalid(workload.FieldError{Path: "replicas", Message: "must be >= 0"}), http.StatusBadRequest, workload.InvalidArgument, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			rec.Header().Set("Cache-Control", "no-store") // set before: kept
			workload.WriteError(rec, tc.err)
			if rec.Code != tc.status || rec.Header().Get("Content-Type") != "application/json" || rec.Header().Get("Cache-Control") != "no-store" {
				t.Fatalf("status %d, headers %v", rec.Code, rec.Header())
			}
			if got := rec.Header().Get("WWW-Authenticate") != ""; got != tc.challenge {
				t.Fatalf("WWW-Authenticate %q", rec.Header().Get("WWW-Authenticate"))
			}
			body := rec.Body.String()
			err := workload.DecodeEnvelope(rec.Body.Bytes(), nil)
			if workload.CodeOf(err) != tc.code || !strings.HasSuffix(body, "}\n") {
				t.Fatalf("body %q decodes to %v", body, err)
			}
			if tc.code != workload.Internal && strings.Contains(body, "hunter2") {
				t.Fatalf("the cause was serialised: %s", body)
			}
		})
	}
}

package httpapi_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"
)

// TestOpenAPIConformance validates real requests and the server's real
// answers against the served OpenAPI document with kin-openapi's
// openapi3filter, the validator the third-party review used (review F3,
// F8, F9): a route whose answers drift from the document fails here.
// Streams (SSE, WebSocket) are checked up to their status and headers by
// the tests beside them, not here.
func TestOpenAPIConformance(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 2)
	ctx := context.Background()
	raw := f.call(t, "", "GET", "/v1/openapi.json", "").raw
	doc, err := openapi3.NewLoader().LoadFromData([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if err := doc.Validate(ctx); err != nil {
		t.Fatalf("the served document is not valid OpenAPI: %v", err)
	}
	// The served document's server is relative ("/"): resolved, as a
	// client does, against the address the document was fetched from.
	for _, sv := range doc.Servers {
		if !strings.HasPrefix(sv.URL, "/") {
			t.Fatalf("servers has an absolute URL %q", sv.URL)
		}
		sv.URL = strings.TrimSuffix(f.srv.URL+sv.URL, "/")
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	auth := openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc, IncludeResponseStatus: true}
	for _, c := range []struct {
		role, method, path, ctype, body string
		status                          int
	}{
		{"", "GET", "/healthz", "", "", 200},
		{"viewer", "GET", "/v1/whoami", "", "", 200},
		{"viewer", "GET", "/v1/targets", "", "", 200},
		{"viewer", "GET", "/v1/services", "", "", 200},
		{"viewer", "GET", "/v1/targets/local/services", "", "", 200},
		{"viewer", "GET", "/v1/targets/local/services/web", "", "", 200},
		{"viewer", "GET", "/v1/targets/local/services/ghost", "", "", 404},
		{"operator", "POST", "/v1/targets/local/services/web/scale", "application/json", `{"replicas":3}`, 200},
		{"operator", "POST", "/v1/targets/local/services/web/restart", "", "", 200},
		{"operator", "PUT", "/v1/targets/local/services/web/config", "application/json", `{"config":{"a":"b"}}`, 200},
		{"admin", "POST", "/v1/targets/local/services/web/exec", "application/json", `{"command":["echo","hi"]}`, 200},
		{"viewer", "GET", "/v1/runs?limit=5&order=desc&outcome=ok&kind=result", "", "", 200},
		{"viewer", "GET", "/v1/runs?limit=0", "", "", 400},
		{"viewer", "POST", "/v1/targets/local/services/web/scale", "application/json", `{"replicas":1}`, 403},
		{"", "GET", "/v1/targets", "", "", 401},
		{"operator", "POST", "/v1/targets/local/services/web/stop", "", "", 200},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, f.srv.URL+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.role != "" {
				req.Header.Set("Authorization", "Bearer "+tokens[c.role])
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("the document has no operation for the request: %v", err)
			}
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route, Options: &auth}
			if reqErr := openapi3filter.ValidateRequest(ctx, in); (reqErr == nil) != (c.status < 400 || c.status == 401 || c.status == 403 || c.status == 404) {
				t.Errorf("request validation %v, but the server's status is meant to be %d", reqErr, c.status)
			}
			req.Body = io.NopCloser(strings.NewReader(c.body))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			b, _ := io.ReadAll(resp.Body)
			if resp.StatusCode != c.status {
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
				Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)), Options: &auth}
			if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
				t.Fatalf("the answer does not match the document: %v\n%s", err, b)
			}
		})
	}
}

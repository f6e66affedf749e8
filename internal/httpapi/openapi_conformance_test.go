package httpapi_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers/legacy"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
)

// conformanceCase is one real request and what the server must answer.
type conformanceCase struct {
	role, method, path, ctype, body string
	hdr                             []string // extra header name, value pairs
	status                          int
	// events, for a stream, maps each SSE event name that must arrive to
	// the component schema its data must match; the stream is read until
	// each has arrived at least once (or, for a finite one, to its end).
	events map[string]string
}

// TestOpenAPIConformance validates real requests and the server's real
// answers on every route against the served OpenAPI document with
// kin-openapi's openapi3filter, the validator the third-party review used
// (review F3, F8, F9, F11): each request the server refuses with 400 must
// be refused by the document too, every answer must match its documented
// status and schema, and the data of every SSE event must match the schema
// the document names for it. A route the table does not exercise fails
// the test, so a new route cannot skip the document.
func TestOpenAPIConformance(t *testing.T) {
	store, err := auth.OpenTokenStore(filepath.Join(t.TempDir(), "tokens.json"))
	if err != nil {
		t.Fatal(err)
	}
	// "preview" previews (providertest.Differ) under a static policy, for
	// the diff's 200 answers and their admission verdicts.
	preview := control.Target{Name: "preview", Provider: providertest.NewDiffer("preview"), Policy: provider.Policy{MaxReplicas: 3}}
	f := newFixtureOn(t, []control.Target{preview}, credentials.FromMap(nil), slog.New(slog.DiscardHandler), func(o *httpapi.Options) { o.Tokens = store })
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
		sv.URL = strings.TrimSuffix(f.url+sv.URL, "/")
	}
	router, err := legacy.NewRouter(doc)
	if err != nil {
		t.Fatal(err)
	}
	const svc = "/v1/targets/local/services/web"
	js := "application/json"
	tokenID := ""
	covered := map[string]bool{}
	cases := []conformanceCase{
		{"", "GET", "/healthz", "", "", nil, 200, nil},
		{"", "GET", "/readyz", "", "", nil, 200, nil},
		{"", "GET", "/metrics", "", "", nil, 200, nil},
		{"", "GET", "/v1/openapi.json", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/whoami", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/targets", "", "", nil, 200, nil},
		{"", "GET", "/v1/targets", "", "", nil, 401, nil},
		{"viewer", "GET", "/v1/services", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/services?target=local", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/targets/local/services", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/targets/nowhere/services", "", "", nil, 404, nil},
		{"viewer", "GET", svc, "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/targets/local/services/ghost", "", "", nil, 404, nil},
		{"viewer", "GET", "/v1/targets/local/services/Bad_Name", "", "", nil, 400, nil},
		// Diff: a read (viewer); the in-memory provider cannot preview.
		{"viewer", "POST", svc + "/diff", js, `{"name":"web","image":"x/y:2","replicas":2}`, nil, 501, nil},
		{"viewer", "POST", svc + "/diff", "application/yaml", "name: web\nimage: x/y:2\n", nil, 501, nil},
		{"viewer", "POST", svc + "/diff", js, `{"name":"web","image":"x","replicas":-2}`, nil, 400, nil},
		{"viewer", "POST", svc + "/diff", js, `{"name":"web","image":"x","bogus":1}`, nil, 400, nil},
		{"viewer", "POST", "/v1/targets/nowhere/services/web/diff", js, `{"name":"web","image":"x/y:2"}`, nil, 404, nil},
		{"", "POST", svc + "/diff", js, `{"name":"web","image":"x/y:2"}`, nil, 401, nil},
		{"viewer", "POST", svc + "/diff?revision=1", "", "", nil, 501, nil},
		{"viewer", "POST", svc + "/diff?revision=99", "", "", nil, 404, nil},
		{"viewer", "POST", svc + "/diff?revision=-1", "", "", nil, 400, nil},
		// A previewing target: the diff with its admission verdict
		// (unchecked for a viewer; allowed, or refused by the target's
		// policy, for an operator).
		{"viewer", "POST", "/v1/targets/preview/services/web/diff", js, `{"name":"web","image":"x/y:2","replicas":5}`, nil, 200, nil},
		{"operator", "POST", "/v1/targets/preview/services/web/diff", js, `{"name":"web","image":"x/y:2","replicas":2}`, nil, 200, nil},
		{"operator", "POST", "/v1/targets/preview/services/web/diff", "application/yaml", "name: web\nimage: x/y:2\nreplicas: 5\n", nil, 200, nil},
		// Deploy: JSON and YAML; refusals the document states.
		{"operator", "POST", "/v1/targets/local/services", js, `{"name":"api","image":"x/y:1","replicas":1,"ports":[{"container":80}],"healthCheck":{"tcp":{"port":80},"interval":"5s"}}`, nil, 200, nil},
		{"operator", "POST", "/v1/targets/local/services", "application/yaml", "name: api\nimage: x/y:1\nreplicas: 2\n", nil, 200, nil},
		{"operator", "POST", "/v1/targets/local/services", js, `{"name":"tpx","image":"x","bogus":true}`, nil, 400, nil},
		{"operator", "POST", "/v1/targets/local/services", js, `{"name":"TP_Bad","image":"x"}`, nil, 400, nil},
		{"operator", "POST", "/v1/targets/local/services", js, `{"name":"tpx","image":"x","replicas":-2}`, nil, 400, nil},
		{"operator", "POST", "/v1/targets/local/services", js, `{"name":"tpx","image":"x","ports":[{"container":0}]}`, nil, 400, nil},
		// Scale, restart, config.
		{"operator", "POST", svc + "/scale", js, `{"replicas":3}`, nil, 200, nil},
		{"operator", "POST", svc + "/scale?wait=false&timeout=30s", js, `{"replicas":2}`, nil, 200, nil},
		{"operator", "POST", svc + "/scale", js, `{"replicas":2,"extra":1}`, nil, 400, nil},
		{"operator", "POST", svc + "/scale", js, `{"replicas":-1}`, nil, 400, nil},
		{"operator", "POST", svc + "/scale", "text/plain", `{"replicas":2}`, nil, 400, nil},
		{"operator", "POST", svc + "/scale?timeout=soon", js, `{"replicas":2}`, nil, 400, nil},
		{"viewer", "POST", svc + "/scale", js, `{"replicas":1}`, nil, 403, nil},
		{"operator", "POST", "/v1/targets/local/services/ghost/scale", js, `{"replicas":1}`, nil, 404, nil},
		{"operator", "POST", svc + "/restart", "", "", nil, 200, nil},
		{"operator", "PUT", svc + "/config", js, `{"config":{"a":"b"}}`, nil, 200, nil},
		{"operator", "PUT", svc + "/config", js, `{"config":{"a":"b"},"more":{}}`, nil, 400, nil},
		{"operator", "PUT", svc + "/config", js, `{"config":{"a":1}}`, nil, 400, nil},
		{"operator", "POST", svc + "/scale", js, `{"replicas":2}`, []string{"Idempotency-Key", "conf-1"}, 200, nil},
		{"operator", "POST", svc + "/scale", js, `{"replicas":3}`, []string{"Idempotency-Key", "conf-1"}, 409, nil},
		// History and rollback (revision 1 is the deploy above).
		{"viewer", "GET", svc + "/history", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/targets/local/services/ghost/history", "", "", nil, 200, nil}, // history outlives a service: none is an empty list
		{"viewer", "GET", "/v1/targets/nowhere/services/web/history", "", "", nil, 404, nil},
		{"viewer", "GET", "/v1/targets/local/services/Bad_Name/history", "", "", nil, 400, nil},
		{"operator", "POST", svc + "/rollback", js, `{"to":1}`, nil, 200, nil},
		{"operator", "POST", svc + "/rollback", "", "", nil, 200, nil},
		{"operator", "POST", svc + "/rollback", js, `{"to":-1}`, nil, 400, nil},
		{"operator", "POST", svc + "/rollback", js, `{"to":"one"}`, nil, 400, nil},
		{"operator", "POST", svc + "/rollback", js, `{"to":1,"force":true}`, nil, 400, nil},
		{"viewer", "POST", svc + "/rollback", js, `{"to":1}`, nil, 403, nil},
		{"viewer", "POST", svc + "/diff?revision=0", "", "", nil, 501, nil}, // the revision before the current one, as rollback's to: 0
		// Exec, once and interactive (the handshake's refusals; the 101
		// itself is checked below).
		{"admin", "POST", svc + "/exec", js, `{"command":["echo","hi"]}`, nil, 200, nil},
		{"admin", "POST", svc + "/exec", js, `{"command":[]}`, nil, 400, nil},
		{"admin", "POST", svc + "/exec", js, `{"command":["echo"],"tty":true}`, nil, 400, nil},
		{"admin", "GET", svc + "/exec/ws?command=echo", "", "", nil, 426, nil},
		{"admin", "GET", svc + "/exec/ws?command=echo&cols=0", "", "", nil, 400, nil},
		{"operator", "GET", svc + "/exec/ws?command=echo", "", "", nil, 403, nil},
		// Streams: every event's data against its schema.
		{"viewer", "GET", svc + "/metrics", "", "", nil, 200, map[string]string{"sample": "MetricSample"}},
		{"viewer", "GET", "/v1/targets/local/services/ghost/metrics", "", "", nil, 404, nil},
		{"viewer", "GET", svc + "/logs?tail=-1", "", "", nil, 200, map[string]string{"line": "LogLine", "end": "StreamEnd"}},
		{"viewer", "GET", svc + "/logs?tail=1&follow=false&since=10m", "", "", nil, 200, map[string]string{"line": "LogLine", "end": "StreamEnd"}},
		{"viewer", "GET", svc + "/logs", "", "", []string{"Last-Event-ID", "end"}, 204, nil},
		{"viewer", "GET", svc + "/logs?since=bad", "", "", nil, 400, nil},
		{"viewer", "GET", svc + "/logs?tail=-5", "", "", nil, 400, nil},
		{"viewer", "GET", "/v1/services/events", "", "", nil, 200, map[string]string{"status": "DeploymentStatus"}},
		// The ledger.
		{"viewer", "GET", "/v1/runs?limit=5&order=desc&outcome=ok&kind=result&action=scale", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/runs?since=2026-01-01T00:00:00Z&service=web&target=local", "", "", nil, 200, nil},
		{"viewer", "GET", "/v1/runs?limit=0", "", "", nil, 400, nil},
		{"viewer", "GET", "/v1/runs?order=sideways", "", "", nil, 400, nil},
		{"viewer", "GET", "/v1/runs?since=yesterday", "", "", nil, 400, nil},
		{"viewer", "GET", "/v1/runs?action=bogus", "", "", nil, 400, nil},
		{"viewer", "GET", "/v1/ledger/verify", "", "", nil, 200, nil},
		// Halt.
		{"viewer", "GET", "/v1/halt", "", "", nil, 200, nil},
		{"admin", "PUT", "/v1/halt", js, `{"on":true,"target":"local"}`, nil, 200, nil},
		{"operator", "POST", svc + "/restart", "", "", nil, 423, nil},
		{"admin", "PUT", "/v1/halt", js, `{"on":false,"target":"local"}`, nil, 200, nil},
		{"admin", "PUT", "/v1/halt", js, `{"target":"local"}`, nil, 400, nil},
		{"admin", "PUT", "/v1/halt", js, `{"on":true,"target":"Not A Target"}`, nil, 400, nil},
		{"operator", "PUT", "/v1/halt", js, `{"on":true}`, nil, 403, nil},
		// Tokens.
		{"admin", "POST", "/v1/tokens", js, `{"user":"vera","role":"viewer","ttl":"24h"}`, nil, 201, nil},
		{"admin", "GET", "/v1/tokens", "", "", nil, 200, nil},
		{"admin", "POST", "/v1/tokens", js, `{"user":"","role":"viewer"}`, nil, 400, nil},
		{"admin", "POST", "/v1/tokens", js, `{"user":"x","role":"viewer","ttl":"forever"}`, nil, 400, nil},
		{"admin", "POST", "/v1/tokens", js, `{"user":"x","role":"god"}`, nil, 400, nil},
		{"admin", "DELETE", "/v1/tokens/{tokenID}", "", "", nil, 200, nil},
		{"admin", "DELETE", "/v1/tokens/tok_none", "", "", nil, 404, nil},
		{"viewer", "GET", "/v1/tokens", "", "", nil, 403, nil},
		// Stop last.
		{"operator", "POST", svc + "/stop", "", "", nil, 200, nil},
	}
	for _, c := range cases {
		c.path = strings.ReplaceAll(c.path, "{tokenID}", tokenID)
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, f.url+c.path, strings.NewReader(c.body))
			if c.ctype != "" {
				req.Header.Set("Content-Type", c.ctype)
			}
			if c.role != "" {
				req.Header.Set("Authorization", "Bearer "+tokens[c.role])
			}
			for i := 0; i+1 < len(c.hdr); i += 2 {
				req.Header.Set(c.hdr[i], c.hdr[i+1])
			}
			route, params, err := router.FindRoute(req)
			if err != nil {
				t.Fatalf("the document has no operation for the request: %v", err)
			}
			covered[c.method+" "+route.Path] = true
			in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
				Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
			reqErr := openapi3filter.ValidateRequest(ctx, in)
			switch {
			case c.status == http.StatusBadRequest && reqErr == nil:
				t.Errorf("the server refuses this request (400) but the document accepts it")
			case c.status != http.StatusBadRequest && reqErr != nil:
				t.Errorf("the document refuses a request the server takes (status %d): %v", c.status, reqErr)
			}
			req.Body = io.NopCloser(strings.NewReader(c.body))
			rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
			defer cancel()
			resp, err := http.DefaultClient.Do(req.WithContext(rctx))
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			if resp.StatusCode != c.status {
				b, _ := io.ReadAll(resp.Body)
				t.Fatalf("status %d, want %d: %s", resp.StatusCode, c.status, b)
			}
			stream := strings.HasPrefix(resp.Header.Get("Content-Type"), "text/event-stream")
			var b []byte
			if stream {
				checkEvents(t, doc, resp.Body, c.events, cancel)
			} else {
				b, _ = io.ReadAll(resp.Body)
			}
			out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode,
				Header: resp.Header, Body: io.NopCloser(bytes.NewReader(b)),
				Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: stream}}
			if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
				t.Fatalf("the answer does not match the document: %v\n%.2000s", err, b)
			}
			if c.method == "POST" && c.path == "/v1/tokens" && resp.StatusCode == 201 {
				var env struct{ Data api.TokenResponse }
				if err := json.Unmarshal(b, &env); err != nil {
					t.Fatal(err)
				}
				tokenID = env.Data.Info.ID
			}
		})
	}
	t.Run("GET exec/ws handshake", func(t *testing.T) {
		req, _ := http.NewRequest("GET", f.url+svc+"/exec/ws?command=echo&command=hi&tty=false", nil)
		for k, v := range map[string]string{"Connection": "Upgrade", "Upgrade": "websocket", "Sec-WebSocket-Version": "13",
			"Sec-WebSocket-Key": "dGhlIHNhbXBsZSBub25jZQ==", "Authorization": "Bearer " + tokens["admin"]} {
			req.Header.Set(k, v)
		}
		route, params, err := router.FindRoute(req)
		if err != nil {
			t.Fatal(err)
		}
		covered["GET "+route.Path] = true
		in := &openapi3filter.RequestValidationInput{Request: req, PathParams: params, Route: route,
			Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc}}
		if err := openapi3filter.ValidateRequest(ctx, in); err != nil {
			t.Fatalf("the document refuses a WebSocket handshake: %v", err)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusSwitchingProtocols {
			t.Fatalf("handshake answered %d", resp.StatusCode)
		}
		out := &openapi3filter.ResponseValidationInput{RequestValidationInput: in, Status: resp.StatusCode, Header: resp.Header,
			Body: io.NopCloser(bytes.NewReader(nil)), Options: &openapi3filter.Options{IncludeResponseStatus: true, ExcludeResponseBody: true}}
		if err := openapi3filter.ValidateResponse(ctx, out); err != nil {
			t.Fatalf("the 101 does not match the document: %v", err)
		}
	})
	t.Run("SSE error event", func(t *testing.T) {
		// A metrics stream whose upstream ends with an error (here the
		// runtime's hub closing, as at shutdown: unavailable) ends with an
		// 'error' event whose data is the error envelope. Last: the
		// runtime is closed.
		rctx, cancel := context.WithTimeout(ctx, 20*time.Second)
		defer cancel()
		req, _ := http.NewRequestWithContext(rctx, "GET", f.url+"/v1/targets/local/services/api/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("metrics: %d", resp.StatusCode)
		}
		sc := bufio.NewScanner(resp.Body)
		closed, name := false, ""
		for sc.Scan() {
			line := sc.Text()
			if strings.HasPrefix(line, "event: ") {
				name = strings.TrimPrefix(line, "event: ")
			}
			if !strings.HasPrefix(line, "data: ") {
				continue
			}
			if name == "sample" && !closed {
				closed = true
				f.rt.Close()
			}
			if name == "error" {
				var v any
				if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
					t.Fatal(err)
				}
				if err := doc.Components.Schemas["EnvelopeError"].Value.VisitJSON(v); err != nil {
					t.Fatalf("the error event does not match EnvelopeError: %v\n%s", err, line)
				}
				return
			}
		}
		t.Fatalf("the stream ended without an error event")
	})
	for _, r := range f.api.Routes() {
		if !covered[r] {
			t.Errorf("route %s is not exercised by the conformance test", r)
		}
	}
}

// checkEvents reads an SSE body, validating each event's data against the
// component schema named in want, until every event in want has been seen
// (then it cancels the request) or the stream ends.
func checkEvents(t *testing.T, doc *openapi3.T, body io.Reader, want map[string]string, cancel func()) {
	t.Helper()
	seen := map[string]int{}
	sc := bufio.NewScanner(body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	name := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			name = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: "):
			schema, ok := want[name]
			if !ok {
				t.Fatalf("unexpected event %q: %s", name, line)
			}
			ref := doc.Components.Schemas[schema]
			if ref == nil {
				t.Fatalf("the document has no schema %s for event %q", schema, name)
			}
			var v any
			if err := json.Unmarshal([]byte(strings.TrimPrefix(line, "data: ")), &v); err != nil {
				t.Fatalf("event %q: data is not JSON: %v", name, err)
			}
			if err := ref.Value.VisitJSON(v); err != nil {
				t.Fatalf("event %q does not match schema %s: %v\n%s", name, schema, err, line)
			}
			seen[name]++
			if len(seen) == len(want) {
				cancel()
				return
			}
		}
	}
	for ev := range want {
		if seen[ev] == 0 {
			t.Fatalf("the stream ended without a %q event (saw %v)", ev, seen)
		}
	}
}

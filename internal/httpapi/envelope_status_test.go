package httpapi_test

import (
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/workload"
)

// TestEveryErrorIsAnEnvelope: a wrong method gets 405 with Allow and the
// envelope, also where the /v1/ catch-all used to answer 404; an unknown
// path is a 404 envelope (review third-party-clients F8).
func TestEveryErrorIsAnEnvelope(t *testing.T) {
	f := newFixture(t)
	for _, c := range []struct {
		method, path string
		status       int
		allow        string
	}{
		{"POST", "/healthz", 405, "GET"},
		{"DELETE", "/v1/targets", 405, "GET"},
		{"PUT", "/v1/targets/local/services/web/scale", 405, "POST"},
		{"GET", "/v1/nope", 404, ""},
	} {
		t.Run(c.method+" "+c.path, func(t *testing.T) {
			req, _ := http.NewRequest(c.method, f.url+c.path, nil)
			req.Header.Set("Authorization", "Bearer "+tokens["admin"])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			r := f.call(t, "admin", c.method, c.path, "")
			if r.status != c.status || r.env.Error == nil || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
				t.Fatalf("got %d %q %s; want %d with the error envelope", r.status, resp.Header.Get("Content-Type"), r.raw, c.status)
			}
			if c.allow != "" && !strings.Contains(resp.Header.Get("Allow"), c.allow) {
				t.Fatalf("Allow %q does not list %s", resp.Header.Get("Allow"), c.allow)
			}
		})
	}
}

// TestIdempotencyConflictIsNotRetryable (review F10): the same key with a
// different request can never succeed, so the 409 says retryable false.
func TestIdempotencyConflictIsNotRetryable(t *testing.T) {
	f := newFixture(t)
	body := "name: web\nimage: x/y:1\nreplicas: 1\n"
	r := f.call(t, "operator", "POST", "/v1/targets/local/services", body, "Content-Type", "application/yaml", "Idempotency-Key", "k-1")
	if r.status != 200 {
		t.Fatalf("deploy: %d %s", r.status, r.raw)
	}
	r = f.call(t, "operator", "POST", "/v1/targets/local/services", strings.Replace(body, "replicas: 1", "replicas: 2", 1),
		"Content-Type", "application/yaml", "Idempotency-Key", "k-1")
	if r.status != 409 || r.env.Error == nil || r.env.Error.Code != workload.Conflict {
		t.Fatalf("reused key: %d %s", r.status, r.raw)
	}
	if r.env.Error.Retryable || !strings.Contains(r.raw, `"retryable":false`) {
		t.Fatalf("a key conflict says it is retryable: %s", r.raw)
	}
}

// TestRunsEnumsValidated: an unknown kind or outcome is a 400 naming the
// parameter, not an empty page.
func TestRunsEnumsValidated(t *testing.T) {
	f := newFixture(t)
	for _, q := range []string{"kind=bogus", "outcome=bogus", "action=bogus"} {
		r := f.call(t, "viewer", "GET", "/v1/runs?"+q, "")
		param := strings.SplitN(q, "=", 2)[0]
		if r.status != 400 || r.env.Error == nil || r.env.Error.Code != workload.InvalidArgument || !strings.Contains(r.raw, param) {
			t.Fatalf("GET /v1/runs?%s: %d %s", q, r.status, r.raw)
		}
	}
	if r := f.call(t, "viewer", "GET", "/v1/runs?outcome=ok&kind=result&action=token_create", ""); r.status != 200 {
		t.Fatalf("valid filters: %d %s", r.status, r.raw)
	}
}

// TestOpenAPIServersIsRelative (review F3): the document works against the
// address it was fetched from, whatever --listen is.
func TestOpenAPIServersIsRelative(t *testing.T) {
	f := newFixture(t)
	r := f.call(t, "", "GET", "/v1/openapi.json", "")
	var doc struct {
		Servers []struct {
			URL string `json:"url"`
		} `json:"servers"`
	}
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatal(err)
	}
	for _, s := range doc.Servers {
		if !strings.HasPrefix(s.URL, "/") {
			t.Fatalf("servers has an absolute URL %q; clients would call it instead of the server they fetched the document from", s.URL)
		}
	}
}

// TestStreamsHaveTheirOwnMetric (review F12): a stream's lifetime goes
// into alphaswarm_stream_duration_seconds, not the request latency
// histogram; the request is still counted.
func TestStreamsHaveTheirOwnMetric(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	if r := f.call(t, "viewer", "GET", "/v1/targets/local/services/web/logs?tail=-1", ""); r.status != 200 {
		t.Fatalf("logs: %d %s", r.status, r.raw)
	}
	// The handler's deferred close may run a moment after the client read
	// the end of the stream; wait until the stream's duration and the
	// request's count are both recorded. (One scrape is not a snapshot
	// across metrics: it may read the open-streams gauge after the stream
	// closed and the duration histogram before, so the gauge is no signal.)
	const route = `route="GET /v1/targets/{target}/services/{service}/logs"`
	var m string
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		m = f.call(t, "", "GET", "/metrics", "").raw
		if strings.Contains(m, `alphaswarm_stream_duration_seconds_count{kind="logs"} 1`) && strings.Contains(m, "alphaswarm_http_requests_total{"+route) {
			break
		}
	}
	if !strings.Contains(m, `alphaswarm_stream_duration_seconds_count{kind="logs"} 1`) {
		t.Fatalf("no stream duration for the logs stream:\n%s", grepLines(m, "stream"))
	}
	m = f.call(t, "", "GET", "/metrics", "").raw
	if !strings.Contains(m, `alphaswarm_open_streams{kind="logs"} 0`) {
		t.Fatalf("the logs stream is still counted open after it ended:\n%s", grepLines(m, "stream"))
	}
	if strings.Contains(m, "alphaswarm_http_request_duration_seconds_count{"+route) {
		t.Fatalf("the logs stream is in the request latency histogram:\n%s", grepLines(m, "logs"))
	}
	if !strings.Contains(m, "alphaswarm_http_requests_total{"+route) {
		t.Fatalf("the logs request is not counted:\n%s", grepLines(m, "logs"))
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestJSONRoutesRefuseOtherContentTypes (review F9): scale, config and
// exec accept only what the document says, application/json.
func TestJSONRoutesRefuseOtherContentTypes(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	for _, c := range []struct{ role, method, path, body string }{
		{"operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":2}`},
		{"operator", "PUT", "/v1/targets/local/services/web/config", `{"config":{"a":"b"}}`},
		{"admin", "POST", "/v1/targets/local/services/web/exec", `{"command":["echo"]}`},
	} {
		r := f.call(t, c.role, c.method, c.path, c.body, "Content-Type", "text/plain")
		if r.status != 400 || r.env.Error == nil || !strings.Contains(r.raw, "Content-Type") {
			t.Fatalf("%s %s as text/plain: %d %s", c.method, c.path, r.status, r.raw)
		}
		if r := f.call(t, c.role, c.method, c.path, c.body, "Content-Type", "application/json; charset=utf-8"); r.status != 200 {
			t.Fatalf("%s %s as JSON: %d %s", c.method, c.path, r.status, r.raw)
		}
	}
}

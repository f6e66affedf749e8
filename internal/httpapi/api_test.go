package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/api"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/auth"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/internal/pgtest"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
	"github.com/coder/websocket"
	"go.uber.org/goleak"
)

// TestMain stops the PostgreSQL cluster a test started (pgtest) before
// checking that no goroutine outlived the tests.
func TestMain(m *testing.M) {
	code := m.Run()
	pgtest.Shutdown()
	if code == 0 {
		if err := goleak.Find(); err != nil {
			fmt.Fprintln(os.Stderr, "goleak:", err)
			code = 1
		}
	}
	os.Exit(code)
}

// staticAuth maps bearer tokens to principals (the real store is tested in
// internal/auth; here the router and roles are under test).
type staticAuth map[string]control.Principal

func (a staticAuth) Authenticate(r *http.Request) (control.Principal, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "no bearer token")
	}
	p, ok := a[tok]
	if !ok {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "unknown token")
	}
	return p, nil
}

var tokens = map[string]string{"viewer": "tok-viewer", "operator": "tok-operator", "admin": "tok-admin"}

type fixture struct {
	url string
	api *httpapi.Server
	mem *providertest.Memory
	led ledger.Ledger
	rt  *control.Runtime
}

func newFixture(t *testing.T) *fixture {
	t.Helper()
	return newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler))
}

// newFixtureWith is testkit's stack (assembled as serve assembles it) with
// the router's inputs under test fixed: static bearer tokens per role
// (the real token store is tested in internal/auth), no token store
// unless opts sets one, no dashboard routes and a 64 KiB body limit.
func newFixtureWith(t *testing.T, creds *credentials.Resolver, log *slog.Logger, opts ...func(*httpapi.Options)) *fixture {
	t.Helper()
	return newFixtureOn(t, nil, creds, log, opts...)
}

// newFixtureOn is newFixtureWith with more targets beside "local".
func newFixtureOn(t *testing.T, extra []control.Target, creds *credentials.Resolver, log *slog.Logger, opts ...func(*httpapi.Options)) *fixture {
	t.Helper()
	auth := staticAuth{}
	for role, tok := range tokens {
		auth[tok] = control.Principal{User: role + "-user", Role: role}
	}
	var targets []control.Target
	var mem *providertest.Memory
	if len(extra) > 0 {
		mem = providertest.NewMemory("local")
		mem.MetricsInterval = 20 * time.Millisecond
		targets = append([]control.Target{{Name: "local", Provider: mem}}, extra...)
	}
	st := testkit.NewStack(t, testkit.Options{Targets: targets, Memory: mem, Credentials: creds, Logger: log, MetricsInterval: 20 * time.Millisecond,
		API: func(o *httpapi.Options) {
			o.Auth, o.AuthStatus, o.Tokens, o.Extra = auth, nil, nil, nil
			o.MaxBodyBytes, o.ReadTimeout, o.MaxStreamsPerPrincipal = 64<<10, 0, 0
			for _, fn := range opts {
				fn(o)
			}
		}})
	return &fixture{url: st.URL, api: st.API, mem: st.Memory, led: st.Ledger, rt: st.Runtime}
}

type reply struct {
	status int
	env    struct {
		Status string          `json:"status"`
		Data   json.RawMessage `json:"data"`
		Error  *workload.Error `json:"error"`
	}
	raw string
}

func (f *fixture) call(t *testing.T, role, method, path, body string, hdr ...string) reply {
	t.Helper()
	req, err := http.NewRequest(method, f.url+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if role != "" {
		req.Header.Set("Authorization", "Bearer "+tokens[role])
	}
	for i := 0; i+1 < len(hdr); i += 2 {
		req.Header.Set(hdr[i], hdr[i+1])
	}
	if strings.HasSuffix(path, "/events?probe=1") {
		// An endless stream: its status line is enough.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		defer cancel()
		req = req.WithContext(ctx)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var b []byte
	if resp.Header.Get("Content-Type") != "text/event-stream" {
		b, _ = io.ReadAll(resp.Body)
	}
	var r reply
	r.status, r.raw = resp.StatusCode, string(b)
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") && !strings.HasSuffix(path, "openapi.json") {
		if err := json.Unmarshal(b, &r.env); err != nil {
			t.Fatalf("%s %s: body is not an envelope: %s", method, path, b)
		}
	}
	return r
}

func (f *fixture) deploy(t *testing.T, name string, replicas int) {
	t.Helper()
	r := f.call(t, "operator", "POST", "/v1/targets/local/services", fmt.Sprintf("name: %s\nimage: x/y:1\nreplicas: %d\n", name, replicas), "Content-Type", "application/yaml")
	if r.status != 200 {
		t.Fatalf("deploy: %d %s", r.status, r.raw)
	}
}

// One request per route, for the authorization matrix.
var routeRequests = map[string]struct{ method, path, body string }{
	"GET /healthz":                                         {"GET", "/healthz", ""},
	"GET /readyz":                                          {"GET", "/readyz", ""},
	"GET /metrics":                                         {"GET", "/metrics", ""},
	"GET /v1/openapi.json":                                 {"GET", "/v1/openapi.json", ""},
	"GET /v1/whoami":                                       {"GET", "/v1/whoami", ""},
	"GET /v1/targets":                                      {"GET", "/v1/targets", ""},
	"GET /v1/services":                                     {"GET", "/v1/services", ""},
	"GET /v1/services/events":                              {"GET", "/v1/services/events?probe=1", ""},
	"GET /v1/targets/{target}/services":                    {"GET", "/v1/targets/local/services", ""},
	"POST /v1/targets/{target}/services":                   {"POST", "/v1/targets/local/services", `{"name":"web","image":"x"}`},
	"GET /v1/targets/{target}/services/{service}":          {"GET", "/v1/targets/local/services/web", ""},
	"POST /v1/targets/{target}/services/{service}/diff":    {"POST", "/v1/targets/local/services/web/diff", `{"name":"web","image":"x"}`},
	"POST /v1/targets/{target}/services/{service}/stop":    {"POST", "/v1/targets/local/services/web/stop", ""},
	"POST /v1/targets/{target}/services/{service}/scale":   {"POST", "/v1/targets/local/services/web/scale", `{"replicas":2}`},
	"POST /v1/targets/{target}/services/{service}/restart": {"POST", "/v1/targets/local/services/web/restart", ""},
	"PUT /v1/targets/{target}/services/{service}/config":   {"PUT", "/v1/targets/local/services/web/config", `{"config":{"a":"b"}}`},
	"GET /v1/targets/{target}/services/{service}/metrics":  {"GET", "/v1/targets/local/services/ghost/metrics", ""},
	"GET /v1/targets/{target}/services/{service}/logs":     {"GET", "/v1/targets/local/services/ghost/logs", ""},
	"POST /v1/targets/{target}/services/{service}/exec":    {"POST", "/v1/targets/local/services/web/exec", `{"command":["echo","hi"]}`},
	"GET /v1/targets/{target}/services/{service}/exec/ws":  {"GET", "/v1/targets/local/services/web/exec/ws?command=echo", ""},
	"GET /v1/runs":                                         {"GET", "/v1/runs", ""},
	"GET /v1/ledger/verify":                                {"GET", "/v1/ledger/verify", ""},
	"GET /v1/halt":                                         {"GET", "/v1/halt", ""},
	"PUT /v1/halt":                                         {"PUT", "/v1/halt", `{"on":false}`},
	"GET /v1/tokens":                                       {"GET", "/v1/tokens", ""},
	"POST /v1/tokens":                                      {"POST", "/v1/tokens", `{"user":"x","role":"viewer"}`},
	"DELETE /v1/tokens/{id}":                               {"DELETE", "/v1/tokens/none", ""},
}

func TestAuthorizationMatrix(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	doc := openAPI(t, f)
	for _, route := range f.api.Routes() {
		req, ok := routeRequests[route]
		if !ok {
			t.Fatalf("route %s has no request in the matrix", route)
		}
		method, pattern, _ := strings.Cut(route, " ")
		role := doc.role(method, pattern)
		for _, caller := range []string{"", "viewer", "operator", "admin"} {
			t.Run(route+"/"+nonEmpty(caller, "anonymous"), func(t *testing.T) {
				r := f.call(t, caller, req.method, req.path, req.body)
				switch {
				case role == "":
					if r.status == 401 || r.status == 403 {
						t.Fatalf("public route answered %d", r.status)
					}
				case caller == "":
					if r.status != 401 || r.env.Error == nil || r.env.Error.Code != workload.Unauthenticated {
						t.Fatalf("anonymous: %d %s, want 401 unauthenticated", r.status, r.raw)
					}
				case auth.Role(caller).Allows(auth.Role(role)):
					if r.status == 401 || r.status == 403 {
						t.Fatalf("%s on a %s route: %d %s", caller, role, r.status, r.raw)
					}
				default:
					if r.status != 403 || r.env.Error.Code != workload.PermissionDenied {
						t.Fatalf("%s on a %s route: %d %s, want 403", caller, role, r.status, r.raw)
					}
				}
			})
		}
	}
	// Denied mutating attempts are in the ledger, with the caller's user.
	page, err := f.led.Query(context.Background(), ledger.Filter{Outcome: ledger.OutcomeDenied, Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	if len(page.Records) == 0 {
		t.Fatal("no denied attempts recorded")
	}
	for _, r := range page.Records {
		if r.UserID != "viewer-user" && r.UserID != "operator-user" {
			t.Errorf("denied record user %q", r.UserID)
		}
	}
}

func nonEmpty(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

type openAPIDoc struct {
	Paths map[string]map[string]json.RawMessage `json:"paths"`
}

// role returns the x-alphaswarm-role of an operation ("" = public).
func (d openAPIDoc) role(method, path string) string {
	var op struct {
		Role string `json:"x-alphaswarm-role"`
	}
	json.Unmarshal(d.Paths[path][strings.ToLower(method)], &op)
	return op.Role
}

func openAPI(t *testing.T, f *fixture) openAPIDoc {
	r := f.call(t, "", "GET", "/v1/openapi.json", "")
	var doc openAPIDoc
	if err := json.Unmarshal([]byte(r.raw), &doc); err != nil {
		t.Fatal(err)
	}
	return doc
}

func TestOpenAPIMatchesRoutes(t *testing.T) {
	f := newFixture(t)
	doc := openAPI(t, f)
	documented := map[string]bool{}
	for path, ops := range doc.Paths {
		for method := range ops {
			if method == "parameters" {
				continue
			}
			documented[strings.ToUpper(method)+" "+path] = true
		}
	}
	registered := map[string]bool{}
	for _, r := range f.api.Routes() {
		registered[r] = true
		if !documented[r] {
			t.Errorf("route %s is not documented in openapi.json", r)
		}
	}
	for r := range documented {
		if !registered[r] {
			t.Errorf("openapi.json documents %s, which is not a route", r)
		}
	}
	// Roles in the document are the ones enforced (checked in the matrix).
}

func TestLifecycleThroughAPI(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 2)
	r := f.call(t, "viewer", "GET", "/v1/targets/local/services/web", "")
	var st workload.DeploymentStatus
	json.Unmarshal(r.env.Data, &st)
	if r.status != 200 || st.Phase != workload.Running || st.Replicas.Ready != 2 || st.ID != "local/web" {
		t.Fatalf("status: %d %+v", r.status, st)
	}
	r = f.call(t, "operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":3}`)
	var res control.Result
	json.Unmarshal(r.env.Data, &res)
	if r.status != 200 || res.Status.Replicas.Desired != 3 || res.RunID == "" {
		t.Fatalf("scale: %d %s", r.status, r.raw)
	}
	for _, step := range []struct{ method, path, body string }{
		{"POST", "/v1/targets/local/services/web/restart", ""},
		{"PUT", "/v1/targets/local/services/web/config", `{"config":{"greeting":"hi"}}`},
		{"POST", "/v1/targets/local/services/web/stop", ""},
	} {
		if r := f.call(t, "operator", step.method, step.path, step.body); r.status != 200 {
			t.Fatalf("%s: %d %s", step.path, r.status, r.raw)
		}
	}
	if f.mem.Config("web")["greeting"] != "hi" {
		t.Fatal("config not applied")
	}
	r = f.call(t, "viewer", "GET", "/v1/runs?service=web&kind=result&user=operator-user", "")
	var page ledger.Page
	json.Unmarshal(r.env.Data, &page)
	if len(page.Records) != 5 {
		t.Fatalf("runs: %d records %s", len(page.Records), r.raw)
	}
	r = f.call(t, "viewer", "GET", "/v1/ledger/verify", "")
	var v ledger.VerifyResult
	json.Unmarshal(r.env.Data, &v)
	if !v.OK || v.Count < 10 {
		t.Fatalf("verify: %s", r.raw)
	}
}

func TestErrorsAreEnvelopes(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	cases := []struct {
		name, method, path, body string
		status                   int
		code                     workload.Code
		field                    string
	}{
		{"unknown service", "GET", "/v1/targets/local/services/ghost", "", 404, workload.NotFound, ""},
		{"unknown target", "POST", "/v1/targets/mars/services/web/stop", "", 404, workload.NotFound, ""},
		{"bad spec", "POST", "/v1/targets/local/services", `{"name":"web","image":"x","replicas":-1,"ports":[{"container":0}]}`, 400, workload.InvalidArgument, "ports[0].container"},
		{"unknown spec field", "POST", "/v1/targets/local/services", `{"name":"web","image":"x","replica":2}`, 400, workload.InvalidArgument, "replica"},
		{"scale without replicas", "POST", "/v1/targets/local/services/web/scale", `{}`, 400, workload.InvalidArgument, "replicas"},
		{"scale wrong type", "POST", "/v1/targets/local/services/web/scale", `{"replicas":"3"}`, 400, workload.InvalidArgument, "replicas"},
		{"scale unknown field", "POST", "/v1/targets/local/services/web/scale", `{"replicas":3,"force":true}`, 400, workload.InvalidArgument, "force"},
		{"config not object", "PUT", "/v1/targets/local/services/web/config", `[1]`, 400, workload.InvalidArgument, "body"},
		{"bad service name", "POST", "/v1/targets/local/services/Web_1/restart", "", 400, workload.InvalidArgument, "service"},
		{"bad runs limit", "GET", "/v1/runs?limit=0", "", 400, workload.InvalidArgument, "limit"},
		{"bad cursor", "GET", "/v1/runs?cursor=zzz", "", 400, workload.InvalidArgument, ""},
		{"no route", "GET", "/v1/nothing", "", 404, workload.NotFound, ""},
		{"body too large", "POST", "/v1/targets/local/services", `{"name":"web","image":"` + strings.Repeat("x", 70<<10) + `"}`, 400, workload.InvalidArgument, "body"},
		{"bad logs tail", "GET", "/v1/targets/local/services/web/logs?tail=x", "", 400, workload.InvalidArgument, "tail"},
		{"scale case variant", "POST", "/v1/targets/local/services/web/scale", `{"replicas":1,"Replicas":7}`, 400, workload.InvalidArgument, "Replicas"},
		{"scale duplicate", "POST", "/v1/targets/local/services/web/scale", `{"replicas":1,"replicas":7}`, 400, workload.InvalidArgument, "replicas"},
		{"halt case variant", "PUT", "/v1/halt", `{"ON":true}`, 400, workload.InvalidArgument, "ON"},
		{"config duplicate", "PUT", "/v1/targets/local/services/web/config", `{"config":{"a":"1","a":"2"}}`, 400, workload.InvalidArgument, "config.a"},
		{"spec case variant", "POST", "/v1/targets/local/services", `{"name":"web","image":"x","replicas":1,"Replicas":7}`, 400, workload.InvalidArgument, "Replicas"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			r := f.call(t, "admin", tc.method, tc.path, tc.body)
			if r.status != tc.status || r.env.Status != "error" || r.env.Error == nil || r.env.Error.Code != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			if tc.field != "" && !slices.ContainsFunc(r.env.Error.Fields, func(fe workload.FieldError) bool { return fe.Path == tc.field }) {
				t.Fatalf("fields %+v lack %q", r.env.Error.Fields, tc.field)
			}
		})
	}
}

func TestIdempotencyHeader(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	a := f.call(t, "operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":2}`, "Idempotency-Key", "abc")
	b := f.call(t, "operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":2}`, "Idempotency-Key", "abc")
	c := f.call(t, "operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":5}`, "Idempotency-Key", "abc")
	var ra, rb control.Result
	json.Unmarshal(a.env.Data, &ra)
	json.Unmarshal(b.env.Data, &rb)
	if ra.RunID == "" || ra.RunID != rb.RunID || !rb.Replayed {
		t.Fatalf("replay: %s / %s", a.raw, b.raw)
	}
	if c.status != 409 || c.env.Error.Code != workload.Conflict {
		t.Fatalf("different body, same key: %d %s", c.status, c.raw)
	}
}

func TestHaltThroughAPI(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	if r := f.call(t, "admin", "PUT", "/v1/halt", `{"on":true,"target":"local"}`); r.status != 200 {
		t.Fatalf("halt on: %s", r.raw)
	}
	r := f.call(t, "operator", "POST", "/v1/targets/local/services/web/restart", "")
	if r.status != 423 || r.env.Error.Code != workload.Halted {
		t.Fatalf("restart while halted: %d %s", r.status, r.raw)
	}
	r = f.call(t, "viewer", "GET", "/v1/halt", "")
	if !strings.Contains(string(r.env.Data), `"targets":["local"]`) {
		t.Fatalf("halt state: %s", r.raw)
	}
	f.call(t, "admin", "PUT", "/v1/halt", `{"on":false,"target":"local"}`)
	if r := f.call(t, "operator", "POST", "/v1/targets/local/services/web/restart", ""); r.status != 200 {
		t.Fatalf("after halt off: %s", r.raw)
	}
}

func TestExecOnce(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	r := f.call(t, "admin", "POST", "/v1/targets/local/services/web/exec", `{"command":["echo","hello","world"]}`)
	var out api.ExecResponse
	json.Unmarshal(r.env.Data, &out)
	if r.status != 200 || out.ExitCode != 0 || out.Stdout != "hello world\n" || out.RunID == "" {
		t.Fatalf("exec: %d %s", r.status, r.raw)
	}
	r = f.call(t, "admin", "POST", "/v1/targets/local/services/web/exec", `{"command":["exit","7"]}`)
	json.Unmarshal(r.env.Data, &out)
	if out.ExitCode != 7 {
		t.Fatalf("exit code: %s", r.raw)
	}
}

func TestExecWebSocket(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(f.url, "http") + "/v1/targets/local/services/web/exec/ws?command=echo&command=over&command=ws&tty=true&cols=80&rows=24"
	c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tokens["admin"]}}})
	if err != nil {
		t.Fatal(err)
	}
	defer c.CloseNow()
	var stdout strings.Builder
	for {
		typ, b, err := c.Read(ctx)
		if err != nil {
			t.Fatalf("read: %v (stdout so far %q)", err, stdout.String())
		}
		if typ == websocket.MessageBinary {
			if b[0] == api.StreamStdout {
				stdout.Write(b[1:])
			}
			continue
		}
		var end api.ExecEnd
		if err := json.Unmarshal(b, &end); err != nil || end.Exit == nil || end.Exit.Code != 0 || end.Exit.RunID == "" {
			t.Fatalf("end message %s (%v)", b, err)
		}
		break
	}
	if stdout.String() != "over ws\n" {
		t.Fatalf("stdout %q", stdout.String())
	}
	// Without a role that allows exec, the upgrade is refused with 403.
	_, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tokens["operator"]}}})
	if err == nil || resp == nil || resp.StatusCode != 403 {
		t.Fatalf("operator exec/ws: %v %v", err, resp)
	}
}

func readEvents(t *testing.T, body io.Reader, want int, event string) []string {
	t.Helper()
	sc := bufio.NewScanner(body)
	var data []string
	cur := ""
	for sc.Scan() {
		line := sc.Text()
		switch {
		case strings.HasPrefix(line, "event: "):
			cur = strings.TrimPrefix(line, "event: ")
		case strings.HasPrefix(line, "data: ") && cur == event:
			data = append(data, strings.TrimPrefix(line, "data: "))
			if len(data) == want {
				return data
			}
		}
	}
	t.Fatalf("stream ended after %d %s events", len(data), event)
	return nil
}

func TestMetricsSSEFanOut(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const subscribers = 20
	errs := make(chan error, subscribers)
	for range subscribers {
		go func() {
			req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/v1/targets/local/services/web/metrics", nil)
			req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				errs <- err
				return
			}
			defer resp.Body.Close()
			if resp.Header.Get("Content-Type") != "text/event-stream" {
				errs <- fmt.Errorf("content type %q", resp.Header.Get("Content-Type"))
				return
			}
			evs := readEvents(t, resp.Body, 3, "sample")
			var s workload.MetricSample
			if err := json.Unmarshal([]byte(evs[2]), &s); err != nil || s.Service != "local/web" {
				errs <- fmt.Errorf("sample %s: %v", evs[2], err)
				return
			}
			errs <- nil
		}()
	}
	for range subscribers {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	if n := f.mem.MetricStreams.Load(); n > 3 {
		t.Fatalf("%d upstream streams for %d subscribers", n, subscribers)
	}
	cancel()
	// The unknown service is a plain error envelope, not a stream.
	r := f.call(t, "viewer", "GET", "/v1/targets/local/services/ghost/metrics", "")
	if r.status != 404 {
		t.Fatalf("metrics of unknown service: %d %s", r.status, r.raw)
	}
}

func TestLogsSSE(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 2)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/v1/targets/local/services/web/logs?follow=true&tail=-1", nil)
	req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go func() {
		time.Sleep(100 * time.Millisecond)
		f.mem.Emit("web", "late line")
	}()
	evs := readEvents(t, resp.Body, 4, "line")
	if !strings.Contains(evs[3], "late line") {
		t.Fatalf("events %v", evs)
	}
}

func TestDrainEndsStreams(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	req, _ := http.NewRequest("GET", f.url+"/v1/targets/local/services/web/metrics", nil)
	req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	readEvents(t, resp.Body, 1, "sample")
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := f.api.Drain(ctx); err != nil {
		t.Fatal(err)
	}
	readEvents(t, resp.Body, 1, "end")
}

func TestPrometheusMetrics(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	r := f.call(t, "", "GET", "/metrics", "")
	for _, want := range []string{`alphaswarm_operations_total{action="start",outcome="ok",provider="memory"} 1`,
		"alphaswarm_ledger_append_duration_seconds_count", "alphaswarm_operation_duration_seconds_bucket"} {
		if !strings.Contains(r.raw, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// TestPlantedSecretOverHTTP plants a secret in the environment, references
// it from a spec, pastes it into config and exec, makes the backend echo it
// in an error, and checks that no response body, server log line or ledger
// row holds it.
func TestPlantedSecretOverHTTP(t *testing.T) {
	const secret = "pl4nted-http-secret-0a1b2c"
	creds := credentials.FromMap(map[string]string{"ALPHASWARM_SECRET_DB": secret})
	var logs lockedBuffer
	log := slog.New(credentials.NewHandler(slog.NewJSONHandler(&logs, &slog.HandlerOptions{Level: slog.LevelDebug}), creds))
	f := newFixtureWith(t, creds, log)
	f.mem.Enter = func(_ context.Context, op provider.Operation, _ string) error {
		v, err := creds.Secret("env:ALPHASWARM_SECRET_DB")
		if err != nil {
			return err
		}
		if op == provider.OpRestart {
			return workload.Errorf(workload.ProviderError, "backend refused credential %s", v)
		}
		return nil
	}
	var bodies []string
	for _, req := range []struct{ role, method, path, body string }{
		{"operator", "POST", "/v1/targets/local/services", `{"name":"web","image":"x","secrets":[{"env":"DB","from":"env:ALPHASWARM_SECRET_DB"}],"env":{"PASTED":"` + secret + `"}}`},
		{"operator", "PUT", "/v1/targets/local/services/web/config", `{"config":{"password":"` + secret + `"}}`},
		{"operator", "POST", "/v1/targets/local/services/web/restart", ""},
		{"admin", "POST", "/v1/targets/local/services/web/exec", `{"command":["echo","` + secret + `"]}`},
		{"operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":"` + secret + `"}`},
		{"viewer", "GET", "/v1/runs?limit=1000", ""},
		{"viewer", "GET", "/v1/targets/local/services/web", ""},
	} {
		r := f.call(t, req.role, req.method, req.path, req.body)
		bodies = append(bodies, r.raw)
	}
	for i, b := range bodies {
		if strings.Contains(b, secret) {
			t.Errorf("response %d holds the secret: %s", i, b)
		}
	}
	page, err := f.led.Query(context.Background(), ledger.Filter{Limit: 1000})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range page.Records {
		if strings.Contains(fmt.Sprintf("%+v", r), secret) {
			t.Errorf("ledger row %d holds the secret", r.Seq)
		}
	}
	if strings.Contains(logs.String(), secret) {
		t.Errorf("server logs hold the secret:\n%s", logs.String())
	}
	if !strings.Contains(logs.String(), credentials.Redacted) {
		t.Error("nothing was redacted from the logs: the test did not reach the redactor")
	}
}

func TestServicesEvents(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	f.deploy(t, "api", 1)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/v1/services/events", nil)
	req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	first := readEvents(t, resp.Body, 2, "status")
	if !strings.Contains(strings.Join(first, ""), `"name":"web"`) || !strings.Contains(strings.Join(first, ""), `"name":"api"`) {
		t.Fatalf("initial statuses %v", first)
	}
	f.call(t, "operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":3}`)
	next := readEvents(t, resp.Body, 1, "status")
	if !strings.Contains(next[0], `"desired":3`) {
		t.Fatalf("change event %s", next[0])
	}
}

package dashboard_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/dashboard"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
)

var pages = []struct{ path, title, script string }{
	{"/", "Services", "services.js"},
	{"/targets", "Targets", "targets.js"},
	{"/services/local/svc-000", "svc-000 · local", "service.js"},
	{"/ledger", "Ledger", "ledger.js"},
	{"/signin", "Sign in", "signin.js"},
	{"/signin/callback", "Sign in", "signin.js"},
}

var (
	reScript     = regexp.MustCompile(`<script\b[^>]*>`)
	reInlineOn   = regexp.MustCompile(`(?i)\son[a-z]+\s*=`)
	reStyleAttr  = regexp.MustCompile(`(?i)\sstyle\s*=`)
	reAssetRef   = regexp.MustCompile(`/ui/assets/([a-z]+\.(?:js|css))`)
	reJSImport   = regexp.MustCompile(`from '\./([a-z]+\.js)'`)
	reRow        = regexp.MustCompile(`<tr data-id="([^"]+)">`)
	reRunRow     = regexp.MustCompile(`<tr data-run="([^"]+)" data-user="([^"]*)" data-action="([^"]*)" data-outcome="([^"]*)">`)
	reActionForm = regexp.MustCompile(`data-action="([a-z_]+)"`)
)

// checkSecure asserts the headers every dashboard response carries.
func checkSecure(t *testing.T, r response) {
	t.Helper()
	if got := r.header.Get("Content-Security-Policy"); got != dashboard.ContentSecurityPolicy {
		t.Errorf("Content-Security-Policy = %q", got)
	}
	for _, want := range []string{"default-src 'self'", "connect-src 'self'", "img-src 'self' data:", "script-src 'self'"} {
		if !strings.Contains(dashboard.ContentSecurityPolicy, want) {
			t.Errorf("CSP lacks %q", want)
		}
	}
	if strings.Contains(dashboard.ContentSecurityPolicy, "unsafe") {
		t.Errorf("CSP allows something unsafe: %s", dashboard.ContentSecurityPolicy)
	}
	if r.header.Get("X-Content-Type-Options") != "nosniff" || r.header.Get("X-Frame-Options") != "DENY" {
		t.Errorf("missing nosniff / frame headers: %v", r.header)
	}
}

// checkNoInline asserts markup has no inline script, handler or style.
func checkNoInline(t *testing.T, what, html string) {
	t.Helper()
	for _, tag := range reScript.FindAllString(html, -1) {
		if !strings.Contains(tag, `src="/ui/assets/`) || !strings.Contains(tag, `type="module"`) {
			t.Errorf("%s: script tag %s is not an external module", what, tag)
		}
	}
	if strings.Contains(html, "<script>") || strings.Contains(html, "javascript:") {
		t.Errorf("%s: inline script", what)
	}
	if m := reInlineOn.FindString(html); m != "" {
		t.Errorf("%s: inline event handler %q", what, m)
	}
	if m := reStyleAttr.FindString(html); m != "" {
		t.Errorf("%s: style attribute %q (the CSP forbids it)", what, m)
	}
	for _, ext := range []string{"http://", "https://"} {
		for _, attr := range []string{`src="` + ext, `href="` + ext} {
			if strings.Contains(html, attr) {
				t.Errorf("%s: external reference %s…", what, attr)
			}
		}
	}
}

// TestPagesAndFragments renders every page shell and every fragment with
// an empty system, one service and 200 services.
func TestPagesAndFragments(t *testing.T) {
	for _, n := range []int{0, 1, 200} {
		t.Run(fmt.Sprintf("services=%d", n), func(t *testing.T) {
			e := newEnv(t, envOptions{})
			svcs := names(n)
			e.deploy(t, svcs...)
			if n > 0 {
				if r := e.call("operator", "POST", "/v1/targets/local/services/svc-000/scale", `{"replicas":3}`); r.err != nil {
					t.Fatal(r.err)
				}
			}

			for _, p := range pages {
				r := e.get(t, "", p.path)
				if r.status != 200 || !strings.HasPrefix(r.header.Get("Content-Type"), "text/html") {
					t.Fatalf("GET %s: %d %s", p.path, r.status, r.header.Get("Content-Type"))
				}
				checkSecure(t, r)
				checkNoInline(t, p.path, r.body)
				if !strings.Contains(r.body, "<title>"+p.title+" · alphaswarm</title>") {
					t.Errorf("GET %s: title missing:\n%s", p.path, r.body)
				}
				if !strings.Contains(r.body, `/ui/assets/`+p.script) {
					t.Errorf("GET %s: does not load %s", p.path, p.script)
				}
				if r.header.Get("Cache-Control") != "no-store" {
					t.Errorf("GET %s: Cache-Control %q", p.path, r.header.Get("Cache-Control"))
				}
			}

			// Services: one row per service, in a table the stream updates.
			r := e.get(t, "viewer", "/ui/frag/services")
			if r.status != 200 {
				t.Fatalf("services fragment: %d %s", r.status, r.body)
			}
			checkSecure(t, r)
			checkNoInline(t, "services fragment", r.body)
			rows := reRow.FindAllStringSubmatch(r.body, -1)
			if len(rows) != n {
				t.Fatalf("services fragment has %d rows, want %d", len(rows), n)
			}
			for i, m := range rows {
				if want := "local/" + svcs[i]; m[1] != want {
					t.Fatalf("row %d is %s, want %s", i, m[1], want)
				}
			}
			if n == 0 && !strings.Contains(r.body, `id="no-services">No services yet`) {
				t.Errorf("empty system: no empty-state message:\n%s", r.body)
			}
			if n > 0 {
				if !strings.Contains(r.body, `<span class="badge phase-running" data-f="phase">Running</span>`) {
					t.Errorf("no Running badge")
				}
				if !strings.Contains(r.body, `data-f="ready">3/3</td>`) {
					t.Errorf("svc-000 should be 3/3 ready")
				}
				if !strings.Contains(r.body, "scale by dash-operator") {
					t.Errorf("last change of svc-000 should be the scale by dash-operator")
				}
			}

			// Targets: the provider, reachability and nine capabilities.
			r = e.get(t, "viewer", "/ui/frag/targets")
			if r.status != 200 {
				t.Fatalf("targets fragment: %d %s", r.status, r.body)
			}
			checkNoInline(t, "targets fragment", r.body)
			for _, want := range []string{`<tr data-target="local">`, "<td data-label=\"Provider\">memory</td>", "reachable", fmt.Sprintf("<td data-label=\"Services\">%d</td>", n)} {
				if !strings.Contains(r.body, want) {
					t.Errorf("targets fragment lacks %q:\n%s", want, r.body)
				}
			}
			for _, op := range provider.Operations {
				if !strings.Contains(r.body, fmt.Sprintf(`<td class="yes" data-op="%s" data-label="%s">`, op, op)) {
					t.Errorf("capability %s not shown as supported", op)
				}
			}

			// Ledger: one run per deployment (+ the scale), intent and result
			// side by side, and the chain verified.
			r = e.get(t, "viewer", "/ui/frag/ledger")
			if r.status != 200 {
				t.Fatalf("ledger fragment: %d %s", r.status, r.body)
			}
			checkNoInline(t, "ledger fragment", r.body)
			runs := reRunRow.FindAllStringSubmatch(r.body, -1)
			wantRuns := n
			if n > 0 {
				wantRuns++
			}
			switch {
			case wantRuns > 50:
				// One page is 100 records: at least 50 runs, more when
				// parallel runs interleave (their other halves are fetched).
				if len(runs) < 50 || len(runs) > 100 {
					t.Fatalf("ledger fragment shows %d runs, want 50 to 100", len(runs))
				}
			case len(runs) != wantRuns:
				t.Fatalf("ledger fragment shows %d runs, want %d", len(runs), wantRuns)
			}
			if strings.Contains(r.body, "no result yet") || strings.Contains(r.body, `<td class="intent"><span class="muted">–`) {
				t.Errorf("a run is shown without its intent or result")
			}
			records := 2 * (n + min(n, 1))
			if !strings.Contains(r.body, fmt.Sprintf(`data-ok="true" data-count="%d"`, records)) {
				t.Errorf("verification should be ok over %d records:\n%.500s", records, r.body)
			}
			if n > 50 && !strings.Contains(r.body, `id="older"`) {
				t.Errorf("no link to older runs")
			}
			if n == 0 && !strings.Contains(r.body, "The ledger is empty.") {
				t.Errorf("empty ledger message missing")
			}
			if n > 0 {
				if runs[0][2] != "dash-operator" || runs[0][3] != "scale" || runs[0][4] != "ok" {
					t.Errorf("newest run = %v, want the scale by dash-operator, ok", runs[0][1:])
				}
				if !strings.Contains(r.body, "replicas: 3") || !strings.Contains(r.body, "status: Running · 3/3 ready") {
					t.Errorf("the scale's intent and result details are not side by side:\n%.3000s", r.body)
				}
			}

			if n == 0 {
				r = e.get(t, "viewer", "/ui/frag/service/local/svc-000")
				if r.status != 404 || !strings.Contains(r.body, `"code":"not_found"`) {
					t.Fatalf("unknown service fragment: %d %s", r.status, r.body)
				}
				return
			}
			// One service: status, instances, actions by role, runs.
			r = e.get(t, "viewer", "/ui/frag/service/local/svc-000")
			if r.status != 200 {
				t.Fatalf("service fragment: %d %s", r.status, r.body)
			}
			checkNoInline(t, "service fragment", r.body)
			if got := strings.Count(r.body, "<tr data-instance="); got != 3 {
				t.Errorf("service fragment shows %d instances, want 3", got)
			}
			r = e.get(t, "viewer", "/ui/frag/service/local/svc-000/runs")
			if got := len(reRunRow.FindAllString(r.body, -1)); r.status != 200 || got != 2 {
				t.Errorf("service runs: %d, %d runs, want 2 (deploy, scale)", r.status, got)
			}
			for role, want := range map[string][]string{
				"viewer":   nil,
				"operator": {"scale", "restart", "stop", "apply_config"},
				"admin":    {"scale", "restart", "stop", "apply_config"},
			} {
				r = e.get(t, role, "/ui/frag/service/local/svc-000/actions")
				if r.status != 200 {
					t.Fatalf("actions as %s: %d %s", role, r.status, r.body)
				}
				checkNoInline(t, "actions fragment", r.body)
				var got []string
				for _, m := range reActionForm.FindAllStringSubmatch(r.body, -1) {
					got = append(got, m[1])
				}
				if strings.Join(got, ",") != strings.Join(want, ",") {
					t.Errorf("actions for %s = %v, want %v", role, got, want)
				}
				if role == "viewer" && !strings.Contains(r.body, `id="no-actions"`) {
					t.Errorf("viewer should be told why there are no actions")
				}
				if role != "viewer" && !strings.Contains(r.body, `name="replicas" min="0" max="1000" value="3"`) {
					t.Errorf("scale input should start at the desired 3:\n%s", r.body)
				}
			}
		})
	}
}

func TestFragmentsNeedTheToken(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deploy(t, "web")
	for _, p := range []string{"/ui/frag/services", "/ui/frag/targets", "/ui/frag/ledger", "/ui/frag/service/local/web",
		"/ui/frag/service/local/web/actions", "/ui/frag/service/local/web/runs"} {
		r := e.get(t, "", p)
		if r.status != http.StatusUnauthorized || !strings.Contains(r.body, `"code":"unauthenticated"`) {
			t.Errorf("%s without a token: %d %s", p, r.status, r.body)
		}
		checkSecure(t, r)
		r = e.do(t, "", "GET", p, "", "Authorization", "Bearer asw_not-a-real-token")
		if r.status != http.StatusUnauthorized {
			t.Errorf("%s with a bad token: %d %s", p, r.status, r.body)
		}
	}
}

func TestLedgerFilters(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deploy(t, "web", "api")
	for _, c := range []struct{ role, method, path, body string }{
		{"operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":2}`},
		{"admin", "POST", "/v1/targets/local/services/api/restart", ``},
		{"viewer", "POST", "/v1/targets/local/services/web/scale", `{"replicas":9}`},    // denied
		{"operator", "POST", "/v1/targets/local/services/web/scale", `{"replicas":-1}`}, // invalid
	} {
		e.call(c.role, c.method, c.path, c.body)
	}
	cases := []struct {
		query string
		want  []string // run rows as user/action/outcome, newest first
	}{
		{"", []string{"dash-operator/scale/invalid", "dash-viewer/scale/denied", "dash-admin/restart/ok", "dash-operator/scale/ok", "*/start/ok", "*/start/ok"}},
		{"service=web&action=scale", []string{"dash-operator/scale/invalid", "dash-viewer/scale/denied", "dash-operator/scale/ok"}},
		{"user=dash-admin", []string{"dash-admin/restart/ok"}},
		{"outcome=denied", []string{"dash-viewer/scale/denied"}},
		{"outcome=ok&action=scale", []string{"dash-operator/scale/ok"}},
		{"since=2000-01-01T00:00:00Z&until=2001-01-01T00:00:00Z", nil},
		{"service=api", []string{"dash-admin/restart/ok", "*/start/ok"}},
	}
	for _, c := range cases {
		r := e.get(t, "viewer", "/ui/frag/ledger?"+c.query)
		if r.status != 200 {
			t.Fatalf("ledger?%s: %d %s", c.query, r.status, r.body)
		}
		var got []string
		for _, m := range reRunRow.FindAllStringSubmatch(r.body, -1) {
			user := m[2]
			if m[3] == "start" {
				user = "*" // deployments run in parallel: order between them is free
			}
			got = append(got, user+"/"+m[3]+"/"+m[4])
		}
		if strings.Join(got, " ") != strings.Join(c.want, " ") {
			t.Errorf("ledger?%s:\n got %v\nwant %v", c.query, got, c.want)
		}
		if strings.Contains(c.query, "outcome=ok") && !strings.Contains(r.body, "replicas: 2") {
			t.Errorf("ledger?%s: a result-only filter must still show the intent beside it", c.query)
		}
	}
	r := e.get(t, "viewer", "/ui/frag/ledger?since=yesterday")
	if r.status != 400 || !strings.Contains(r.body, "since") {
		t.Errorf("bad since: %d %s", r.status, r.body)
	}
}

func TestAssets(t *testing.T) {
	e := newEnv(t, envOptions{})
	seen := map[string]bool{}
	queue := []string{}
	for _, p := range pages {
		for _, m := range reAssetRef.FindAllStringSubmatch(e.get(t, "", p.path).body, -1) {
			queue = append(queue, m[1])
		}
	}
	for len(queue) > 0 {
		name := queue[0]
		queue = queue[1:]
		if seen[name] {
			continue
		}
		seen[name] = true
		r := e.get(t, "", "/ui/assets/"+name)
		if r.status != 200 {
			t.Fatalf("asset %s: %d", name, r.status)
		}
		checkSecure(t, r)
		want := map[bool]string{true: "text/javascript; charset=utf-8", false: "text/css; charset=utf-8"}[strings.HasSuffix(name, ".js")]
		if r.header.Get("Content-Type") != want {
			t.Errorf("asset %s: Content-Type %q", name, r.header.Get("Content-Type"))
		}
		for _, bad := range []string{"http://", "https://", "eval(", "new Function", "innerHTML +=", "document.write"} {
			if strings.Contains(r.body, bad) && !(bad == "http://" && strings.Contains(r.body, "http://www.w3.org/2000/svg")) {
				t.Errorf("asset %s contains %q", name, bad)
			}
		}
		if strings.Contains(r.body, "access_token") {
			t.Errorf("asset %s puts a token in a URL", name)
		}
		for _, m := range reJSImport.FindAllStringSubmatch(r.body, -1) {
			queue = append(queue, m[1])
		}
		etag := r.header.Get("ETag")
		if etag == "" {
			t.Errorf("asset %s has no ETag", name)
		} else if r2 := e.do(t, "", "GET", "/ui/assets/"+name, "", "If-None-Match", etag); r2.status != 304 {
			t.Errorf("asset %s revalidation: %d", name, r2.status)
		}
	}
	for _, want := range []string{"app.css", "app.js", "chart.js", "services.js", "service.js", "targets.js", "ledger.js", "signin.js"} {
		if !seen[want] {
			t.Errorf("asset %s is never referenced", want)
		}
	}
	if r := e.get(t, "", "/ui/assets/nope.js"); r.status != 404 {
		t.Errorf("unknown asset: %d", r.status)
	}
	// The API is untouched by the dashboard's routes.
	if r := e.get(t, "viewer", "/v1/whoami"); r.status != 200 || !strings.Contains(r.body, "dash-viewer") {
		t.Errorf("/v1/whoami through the shared mux: %d %s", r.status, r.body)
	}
	var env struct{ Error struct{ Code string } }
	if r := e.get(t, "viewer", "/v1/nope"); json.Unmarshal([]byte(r.body), &env) != nil || env.Error.Code != "not_found" {
		t.Errorf("/v1/nope: %s", r.body)
	}
}

// TestExplicitAPI mounts the dashboard with Options.API set instead of
// finding the API through the request's server.
func TestExplicitAPI(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deploy(t, "web")
	d := dashboard.New(dashboard.Options{API: e.api.Handler()})
	h := d.Routes()["GET /ui/frag/services"]
	req, _ := http.NewRequest("GET", "/ui/frag/services", nil)
	req.Header.Set("Authorization", "Bearer "+e.tokens["viewer"])
	rec := &recorder{h: http.Header{}}
	h.ServeHTTP(rec, req)
	if rec.code != 200 || !strings.Contains(rec.b.String(), `<tr data-id="local/web">`) {
		t.Fatalf("%d %s", rec.code, rec.b.String())
	}
}

type recorder struct {
	h    http.Header
	code int
	b    strings.Builder
}

func (r *recorder) Header() http.Header { return r.h }
func (r *recorder) WriteHeader(c int)   { r.code = c }
func (r *recorder) Write(p []byte) (int, error) {
	if r.code == 0 {
		r.code = 200
	}
	return r.b.Write(p)
}

// limited is a provider with only the required operations: no restart,
// exec, logs or listing.
type limited struct{ provider.Provider }

func (limited) ProviderName() string { return "limited" }

// TestCapabilityReasons: unsupported operations show their reason in the
// matrix and as disabled actions; a target that cannot list is a note.
func TestCapabilityReasons(t *testing.T) {
	edge := providertest.NewMemory("edge")
	e := newEnv(t, envOptions{extra: []control.Target{{Name: "edge", Provider: limited{edge}}}})
	if r := e.call("operator", "POST", "/v1/targets/edge/services", `{"name":"web","image":"x/y:1"}`); r.err != nil {
		t.Fatal(r.err)
	}
	r := e.get(t, "viewer", "/ui/frag/targets")
	for _, op := range []string{"restart", "exec", "logs"} {
		want := fmt.Sprintf(`<td class="no" data-op="%s" data-label="%s"><span aria-label="not supported">✗</span> <span class="reason">the limited provider does not implement %s</span></td>`, op, op, op)
		if !strings.Contains(r.body, want) {
			t.Errorf("matrix lacks the reason for %s:\n%s", op, r.body)
		}
	}
	if !strings.Contains(r.body, `<span class="muted" title="`) {
		t.Errorf("a target that cannot list should say so")
	}
	r = e.get(t, "viewer", "/ui/frag/services")
	if r.status != 200 || !strings.Contains(r.body, "target edge cannot list its services") || strings.Contains(r.body, `class="error"`) {
		t.Errorf("services with an unlistable target: %d %s", r.status, r.body)
	}
	r = e.get(t, "operator", "/ui/frag/service/edge/web/actions")
	if !strings.Contains(r.body, `<button type="submit" disabled>Restart</button>`) ||
		!strings.Contains(r.body, "the limited provider does not implement restart") {
		t.Errorf("restart should be offered disabled with its reason:\n%s", r.body)
	}
}

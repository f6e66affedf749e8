package httpapi_test

import (
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"testing"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// TestDiffRoute: POST .../diff is a read for every role from viewer up (a
// principal without a role is refused; a spec carrying config values needs
// the operator role, see diff), takes the spec as deploy does and
// refuses a bad one with the field paths, names the target and the service
// it previews, and records nothing, refusals included; with ?revision=N
// (no body) it previews the service's recorded revision N. The in-memory
// provider has no Differ: a good spec or revision is answered unsupported
// with its reason (a previewing provider's answers are tested in internal/cli's
// end-to-end test against the Engine).
func TestDiffRoute(t *testing.T) {
	a := staticAuth{"tok-none": control.Principal{User: "nobody"}}
	for role, tok := range tokens {
		a[tok] = control.Principal{User: role + "-user", Role: role}
	}
	f := newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler), func(o *httpapi.Options) { o.Auth = a })
	f.deploy(t, "web", 1)
	before := countRecords(t, f.led)
	const path = "/v1/targets/local/services/web/diff"
	js, yml := []string{"Content-Type", "application/json"}, []string{"Content-Type", "application/yaml"}
	cases := []struct {
		name, tok, path, body string
		hdr                   []string
		status                int
		code                  workload.Code
		fields                []string
		text                  string
	}{
		{"viewer", "tok-viewer", path, `{"name":"web","image":"x/y:2","replicas":2}`, js, 501, workload.Unsupported, nil, "does not implement diff"},
		{"operator", "tok-operator", path, `{"name":"web","image":"x/y:2"}`, js, 501, workload.Unsupported, nil, ""},
		{"yaml body", "tok-viewer", path, "name: web\nimage: x/y:2\n", yml, 501, workload.Unsupported, nil, ""},
		{"no role", "tok-none", path, `{"name":"web","image":"x/y:2"}`, js, 403, workload.PermissionDenied, nil, ""},
		{"viewer with config", "tok-viewer", path, `{"name":"web","image":"x/y:2","config":{"db_url":"guess"}}`, js, 403, workload.PermissionDenied, []string{"config"}, "needs the operator role"},
		{"operator with config", "tok-operator", path, `{"name":"web","image":"x/y:2","config":{"db_url":"guess"}}`, js, 501, workload.Unsupported, nil, ""},
		{"anonymous", "", path, `{"name":"web","image":"x/y:2"}`, js, 401, workload.Unauthenticated, nil, ""},
		{"bad spec", "tok-viewer", path, `{"name":"web","image":"x","replicas":-1,"ports":[{"container":0}]}`, js, 400, workload.InvalidArgument, []string{"replicas", "ports[0].container"}, ""},
		{"unknown field", "tok-viewer", path, `{"name":"web","image":"x","imagee":"y"}`, js, 400, workload.InvalidArgument, []string{"imagee"}, ""},
		{"other service", "tok-viewer", path, `{"name":"api","image":"x/y:2"}`, js, 400, workload.InvalidArgument, []string{"name"}, `spec name "api" does not match service "web"`},
		{"no name", "tok-viewer", path, `{"image":"x/y:2"}`, js, 400, workload.InvalidArgument, []string{"name"}, ""},
		{"empty body", "tok-viewer", path, "", nil, 400, workload.InvalidArgument, nil, ""},
		{"unknown target", "tok-viewer", "/v1/targets/mars/services/web/diff", `{"name":"web","image":"x/y:2"}`, js, 404, workload.NotFound, nil, `target "mars" is not configured`},
		{"bad service", "tok-viewer", "/v1/targets/local/services/Web_1/diff", `{"name":"Web_1","image":"x/y:2"}`, js, 400, workload.InvalidArgument, []string{"name"}, ""},
		// ?revision=N: the recorded revision's spec against the live service.
		{"revision", "tok-viewer", path + "?revision=1", "", nil, 501, workload.Unsupported, nil, "does not implement diff"},
		{"no such revision", "tok-viewer", path + "?revision=9", "", nil, 404, workload.NotFound, nil, ""},
		{"revision of an unknown service", "tok-viewer", "/v1/targets/local/services/ghost/diff?revision=1", "", nil, 404, workload.NotFound, nil, ""},
		{"revision of an unknown target", "tok-viewer", "/v1/targets/mars/services/web/diff?revision=1", "", nil, 404, workload.NotFound, nil, ""},
		// 0 is the revision before the current one (rollback's "to: 0"):
		// web has only revision 1.
		{"revision 0, one revision", "tok-viewer", path + "?revision=0", "", nil, 400, workload.InvalidArgument, []string{"revision"}, "has only revision 1"},
		{"revision -1", "tok-viewer", path + "?revision=-1", "", nil, 400, workload.InvalidArgument, []string{"revision"}, "or 0 for the revision before the current one"},
		{"revision not a number", "tok-viewer", path + "?revision=last", "", nil, 400, workload.InvalidArgument, []string{"revision"}, ""},
		{"revision and a body", "tok-viewer", path + "?revision=1", `{"name":"web","image":"x/y:2"}`, js, 400, workload.InvalidArgument, []string{"body"}, ""},
		{"revision, no role", "tok-none", path + "?revision=1", "", nil, 403, workload.PermissionDenied, nil, ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			hdr := tc.hdr
			if tc.tok != "" {
				hdr = append(slices.Clone(hdr), "Authorization", "Bearer "+tc.tok)
			}
			r := f.call(t, "", "POST", tc.path, tc.body, hdr...)
			if r.status != tc.status || r.env.Error == nil || r.env.Error.Code != tc.code {
				t.Fatalf("%d %s, want %d %s", r.status, r.raw, tc.status, tc.code)
			}
			var paths []string
			for _, fe := range r.env.Error.Fields {
				paths = append(paths, fe.Path)
			}
			for _, want := range tc.fields {
				if !slices.Contains(paths, want) {
					t.Errorf("fields %v lack %q", paths, want)
				}
			}
			if !strings.Contains(r.env.Error.Message, tc.text) {
				t.Errorf("message %q lacks %q", r.env.Error.Message, tc.text)
			}
		})
	}
	if after := countRecords(t, f.led); after != before {
		t.Errorf("diffs wrote %d ledger rows; a diff is a read and writes none", after-before)
	}
}

func countRecords(t *testing.T, led ledger.Ledger) int {
	t.Helper()
	page, err := led.Query(context.Background(), ledger.Filter{Limit: ledger.MaxLimit})
	if err != nil {
		t.Fatal(err)
	}
	return len(page.Records)
}

// TestDiffRouteAdmission: the answer's admission says whether the
// previewed deploy (or, with ?revision=N, rollback) would be let through:
// for a caller whose role on the target may deploy (the operator role, or
// a grant on that target) the runtime's dry run of the operation's checks
// (here the target's static policy) — refused with the code, message and
// fields the deploy would get, or allowed; for a viewer, unchecked,
// naming the role it would need and nothing of the policy. No diff
// writes a ledger row; each refused verdict is a log line of the runtime
// and a count of alphaswarm_diff_admission_refused_total by target and
// code, neither with the spec's values.
func TestDiffRouteAdmission(t *testing.T) {
	a := staticAuth{"tok-grant": control.Principal{User: "vic", Role: "viewer", TargetRoles: map[string]string{"preview": "operator"}}}
	for role, tok := range tokens {
		a[tok] = control.Principal{User: role + "-user", Role: role}
	}
	d := providertest.NewDiffer("preview")
	var logs lockedBuffer
	f := newFixtureOn(t, []control.Target{{Name: "preview", Provider: d, Policy: provider.Policy{MaxReplicas: 3}}},
		credentials.FromMap(nil), slog.New(slog.NewJSONHandler(&logs, nil)), func(o *httpapi.Options) { o.Auth = a })
	const path = "/v1/targets/preview/services/web"
	for _, body := range []string{`{"name":"web","image":"x/y:1","replicas":1}`, `{"name":"web","image":"x/y:2","replicas":2}`} {
		if r := f.call(t, "operator", "POST", "/v1/targets/preview/services", body, "Content-Type", "application/json"); r.status != 200 && r.status != 201 {
			t.Fatalf("deploy: %d %s", r.status, r.raw)
		}
	}
	before := countRecords(t, f.led)
	over := `{"name":"web","image":"x/y:3","replicas":5}`
	for _, tc := range []struct {
		name, tok, query, body string
		action                 workload.Action
		verdict                workload.AdmissionVerdict
		code                   workload.Code
		fields                 []string
		text                   []string // in the message
		absent                 string   // not in the message
	}{
		{"operator, admitted", "tok-operator", "", `{"name":"web","image":"x/y:3","replicas":2}`, workload.ActionStart, workload.AdmissionAllowed, "", nil, nil, ""},
		{"operator, outside the policy", "tok-operator", "", over, workload.ActionStart, workload.AdmissionRefused, workload.PermissionDenied,
			[]string{"replicas"}, []string{"5 is more than target preview admits (3)", "rule maxReplicas"}, ""},
		{"a grant on the target", "tok-grant", "", over, workload.ActionStart, workload.AdmissionRefused, workload.PermissionDenied, []string{"replicas"}, nil, ""},
		{"viewer", "tok-viewer", "", over, workload.ActionStart, workload.AdmissionUnchecked, "", nil,
			[]string{"not checked", `operator on target "preview"`, "yours: viewer"}, "maxReplicas"},
		{"operator, revision 1", "tok-operator", "?revision=1", "", workload.ActionRollback, workload.AdmissionAllowed, "", nil, nil, ""},
		{"operator, revision 0", "tok-operator", "?revision=0", "", workload.ActionRollback, workload.AdmissionAllowed, "", nil, nil, ""},
		{"operator, the current revision", "tok-operator", "?revision=2", "", workload.ActionRollback, workload.AdmissionRefused, workload.InvalidArgument,
			[]string{"to"}, []string{"is the current revision"}, ""},
		{"viewer, revision", "tok-viewer", "?revision=2", "", workload.ActionRollback, workload.AdmissionUnchecked, "", nil, []string{"not checked"}, "current"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			hdr := []string{"Authorization", "Bearer " + tc.tok}
			if tc.body != "" {
				hdr = append(hdr, "Content-Type", "application/json")
			}
			r := f.call(t, "", "POST", path+"/diff"+tc.query, tc.body, hdr...)
			if r.status != 200 {
				t.Fatalf("%d %s", r.status, r.raw)
			}
			var got workload.Diff
			if err := json.Unmarshal(r.env.Data, &got); err != nil {
				t.Fatal(err)
			}
			ad := got.Admission
			if ad == nil || ad.Action != tc.action || ad.Verdict != tc.verdict || ad.Code != tc.code {
				t.Fatalf("admission %+v, want %s %s %s\n%s", ad, tc.action, tc.verdict, tc.code, r.raw)
			}
			var paths []string
			for _, fe := range ad.Fields {
				paths = append(paths, fe.Path)
			}
			if !slices.Equal(paths, tc.fields) {
				t.Errorf("fields %v, want %v", paths, tc.fields)
			}
			for _, w := range tc.text {
				if !strings.Contains(ad.Message, w) {
					t.Errorf("message %q lacks %q", ad.Message, w)
				}
			}
			if tc.absent != "" && strings.Contains(r.raw, tc.absent) {
				t.Errorf("the answer shows %q:\n%s", tc.absent, r.raw)
			}
		})
	}
	if after := countRecords(t, f.led); after != before {
		t.Errorf("diffs wrote %d ledger rows", after-before)
	}
	// Three refused verdicts: the two starts over the policy (one by the
	// operator, one by the grant) and the rollback to the current revision.
	m := f.call(t, "", "GET", "/metrics", "").raw
	for _, want := range []string{`alphaswarm_diff_admission_refused_total{code="permission_denied",target="preview"} 2`,
		`alphaswarm_diff_admission_refused_total{code="invalid_argument",target="preview"} 1`} {
		if !strings.Contains(m, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	var refused []map[string]any
	for _, line := range strings.Split(logs.String(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil && rec["msg"] == "diff: admission would refuse" {
			refused = append(refused, rec)
		}
	}
	if len(refused) != 3 {
		t.Fatalf("%d refusal log lines, want 3:\n%s", len(refused), logs.String())
	}
	if r := refused[0]; r["user"] != "operator-user" || r["target"] != "preview" || r["service"] != "web" || r["action"] != "start" ||
		r["code"] != "permission_denied" || !strings.Contains(fmt.Sprint(r["message"]), "rule maxReplicas") || fmt.Sprint(r["fields"]) != "[replicas]" {
		t.Errorf("refusal log line %v", r)
	}
	if r := refused[1]; r["user"] != "vic" {
		t.Errorf("the grant's refusal logged as %v", r)
	}
	if r := refused[2]; r["action"] != "rollback" || r["code"] != "invalid_argument" {
		t.Errorf("the rollback's refusal logged as %v", r)
	}
	for _, line := range refused {
		if strings.Contains(fmt.Sprint(line), "x/y:3") {
			t.Errorf("a refusal log line carries the spec's image: %v", line)
		}
	}
}

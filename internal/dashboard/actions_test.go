package dashboard_test

import (
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

// targetGrants are callers whose roles differ per target (what an OIDC
// grant on one target gives): the actions card must follow the role the
// API checks on the service's target, not the role on every target.
var targetGrants = map[string]control.Principal{
	// operator of staging only, no role elsewhere: operates staging, and
	// is refused on every other target
	"staging-operator": {User: "ci-staging", Auth: "oidc:https://ci.example", TargetRoles: map[string]string{"staging": "operator"}},
	// viewer everywhere, operator of staging
	"viewer-staging-operator": {User: "vic", Role: "viewer", TargetRoles: map[string]string{"staging": "operator"}},
	// operator everywhere, a viewer grant on staging does not lower it
	"operator-staging-viewer": {User: "opal", Role: "operator", TargetRoles: map[string]string{"staging": "viewer"}},
}

// TestActionsPerTargetRole: the actions card offers scale, restart, stop
// and config to a caller that is an operator of the service's target,
// whether the role is its role on every target or a grant on this one,
// and none (saying the role on that target) to a caller that only views
// it; a caller without a role on the target gets the API's refusal. The
// controls it offers work: the
// API accepts the scale they send.
func TestActionsPerTargetRole(t *testing.T) {
	staging := providertest.NewMemory("staging")
	e := newEnv(t, envOptions{extra: []control.Target{{Name: "staging", Provider: staging}}, principals: targetGrants})
	e.deploy(t, "web")
	if r := e.call("operator", "POST", "/v1/targets/staging/services", `{"name":"web","image":"example/web:1","replicas":1}`); r.err != nil {
		t.Fatal(r.err)
	}
	all := []string{"scale", "restart", "stop", "apply_config"}
	for _, tc := range []struct {
		caller, target string
		status         int
		actions        []string
		noActions      string // in the card when it offers none
	}{
		{"staging-operator", "staging", 200, all, ""},
		{"staging-operator", "local", 403, nil, ""},
		{"viewer-staging-operator", "staging", 200, all, ""},
		{"viewer-staging-operator", "local", 200, nil, "Your role on local (viewer)"},
		{"operator-staging-viewer", "staging", 200, all, ""},
		{"operator-staging-viewer", "local", 200, all, ""},
		{"viewer", "staging", 200, nil, "Your role on staging (viewer)"},
		{"operator", "staging", 200, all, ""},
	} {
		t.Run(tc.caller+" on "+tc.target, func(t *testing.T) {
			r := e.get(t, tc.caller, "/ui/frag/service/"+tc.target+"/web/actions")
			if r.status != tc.status {
				t.Fatalf("actions: %d %s, want %d", r.status, r.body, tc.status)
			}
			if tc.status != 200 {
				if !strings.Contains(r.body, `"code":"permission_denied"`) {
					t.Errorf("refusal %s, want permission_denied", r.body)
				}
				return
			}
			checkNoInline(t, "actions fragment", r.body)
			var got []string
			for _, m := range reActionForm.FindAllStringSubmatch(r.body, -1) {
				got = append(got, m[1])
			}
			if strings.Join(got, ",") != strings.Join(tc.actions, ",") {
				t.Errorf("actions = %v, want %v", got, tc.actions)
			}
			if tc.noActions != "" && (!strings.Contains(r.body, `id="no-actions"`) || !strings.Contains(r.body, tc.noActions)) {
				t.Errorf("the card does not say %q:\n%s", tc.noActions, r.body)
			}
		})
	}
	// What the staging operator's controls send, the API accepts.
	if r := e.call("viewer-staging-operator", "POST", "/v1/targets/staging/services/web/scale", `{"replicas":2}`); r.err != nil {
		t.Errorf("the staging operator's scale: %v", r.err)
	}
	if n := len(staging.Running("web")); n != 2 {
		t.Errorf("staging runs %d instances of web, want 2", n)
	}
}

// TestBrowserActionsPerTargetRole: in headless Chromium, a viewer whom a
// grant makes an operator of target staging sees the action controls on
// staging's service page and scales from there (the confirmed run is
// accepted and the provider runs the new count), and sees no controls on
// local's, where it only views.
func TestBrowserActionsPerTargetRole(t *testing.T) {
	staging := providertest.NewMemory("staging")
	e := newEnv(t, envOptions{extra: []control.Target{{Name: "staging", Provider: staging}}, principals: targetGrants})
	e.deploy(t, "web")
	if r := e.call("operator", "POST", "/v1/targets/staging/services", `{"name":"web","image":"example/web:1","replicas":1}`); r.err != nil {
		t.Fatal(r.err)
	}
	b := newBrowser(t, 1280, 800)
	b.signIn(e, "viewer-staging-operator")

	b.nav(e.url + "/services/staging/web")
	b.wait("staging's actions", `document.querySelectorAll('#instances tbody tr').length === 1 && !!document.querySelector('form[data-action="scale"]') && !document.querySelector('#no-actions')`, 10*time.Second)
	if n := evalAs[int](b, `document.querySelectorAll('form[data-action]').length`); n != 4 {
		t.Errorf("the staging operator sees %d action forms, want 4 (scale, restart, stop, config)", n)
	}
	b.do(
		chromedp.SetValue(chromedp.CSS(`form[data-action="scale"] input[name="replicas"]`), ""),
		chromedp.SendKeys(chromedp.CSS(`form[data-action="scale"] input[name="replicas"]`), "2\r"),
	)
	b.wait("the confirmation", `document.querySelector('#confirm').open && document.activeElement.id === 'confirm-ok'`, 5*time.Second)
	b.do(chromedp.KeyEvent("\r"))
	b.wait("the scale's outcome", `document.querySelector('#confirm-result').dataset.outcome === 'ok'`, 10*time.Second)
	b.shot("target-operator-scaled")
	b.do(chromedp.KeyEvent("\x1b"))
	b.wait("2 instances", `!document.querySelector('#confirm').open && document.querySelectorAll('#instances tbody tr').length === 2`, 10*time.Second)
	if n := len(staging.Running("web")); n != 2 {
		t.Errorf("staging runs %d instances, want 2", n)
	}

	b.nav(e.url + "/services/local/web")
	b.wait("local's page, no actions", `!!document.querySelector('#no-actions') && document.querySelectorAll('#instances tbody tr').length === 1`, 10*time.Second)
	if n := evalAs[int](b, `document.querySelectorAll('form[data-action], #action-controls').length`); n != 0 {
		t.Errorf("on local, where it views, the caller sees %d action controls", n)
	}
	if text := evalAs[string](b, `document.querySelector('#no-actions').textContent`); !strings.Contains(text, "Your role on local (viewer)") {
		t.Errorf("the card says %q", text)
	}
	b.shot("target-operator-views-local")
}

// TestBrowserDiffAdmission: in headless Chromium, the diff of a revision
// against the live service shows whether the rollback to it would be let
// through: to an operator, refused with the code and reason for a
// revision whose image is gone from the backend (the rollback's
// CheckRefs), allowed for one whose image resolves; to a viewer, not
// checked, with no word of the reason.
func TestBrowserDiffAdmission(t *testing.T) {
	d := providertest.NewDiffer("preview")
	e := newEnv(t, envOptions{extra: []control.Target{{Name: "preview", Provider: d}}})
	for _, image := range []string{"example/web:1", "example/web:2", "example/web:3"} {
		if r := e.call("operator", "POST", "/v1/targets/preview/services", `{"name":"web","image":"`+image+`","replicas":1}`); r.err != nil {
			t.Fatal(r.err)
		}
	}
	// Revision 1's image is gone from the backend (the rollback's CheckRefs).
	d.Refs = func(s workload.DeploymentSpec) error {
		if s.Image == "example/web:1" {
			return &workload.Error{Code: workload.NotFound, Message: "image example/web:1 is gone", Fields: []workload.FieldError{{Path: "image", Message: "not found"}}}
		}
		return nil
	}
	b := newBrowser(t, 1280, 900)
	diffOf := func(rev string) map[string]string {
		t.Helper()
		b.do(chromedp.Click(chromedp.CSS(`#history button[data-diff="` + rev + `"]`)))
		b.wait("the diff of revision "+rev, `(() => { const d = document.querySelector('#diff-result'); return d && d.dataset.revision === '`+rev+`' && !!document.querySelector('#diff-admission'); })()`, 15*time.Second)
		return evalAs[map[string]string](b, `(() => { const a = document.querySelector('#diff-admission');
			return {verdict: a.dataset.verdict, code: a.dataset.code || '', text: a.textContent}; })()`)
	}
	b.signIn(e, "operator")
	b.nav(e.url + "/services/preview/web")
	b.wait("the history", `document.querySelectorAll('#history-table tbody tr').length === 3`, 15*time.Second)
	if got := diffOf("1"); got["verdict"] != "refused" || got["code"] != "not_found" ||
		!strings.Contains(got["text"], "would be refused now") || !strings.Contains(got["text"], "image example/web:1 is gone") {
		t.Errorf("the operator's diff of revision 1: %v", got)
	}
	b.shot("diff-admission-refused")
	if got := diffOf("2"); got["verdict"] != "allowed" || !strings.Contains(got["text"], "would pass") {
		t.Errorf("the operator's diff of revision 2: %v", got)
	}

	viewer := newBrowser(t, 1280, 900)
	b = viewer
	b.signIn(e, "viewer")
	b.nav(e.url + "/services/preview/web")
	b.wait("the viewer's history", `document.querySelectorAll('#history-table tbody tr').length === 3`, 15*time.Second)
	if got := diffOf("1"); got["verdict"] != "unchecked" || strings.Contains(got["text"], "gone") || !strings.Contains(got["text"], "not checked") {
		t.Errorf("the viewer's diff of revision 1: %v", got)
	}
	b.shot("diff-admission-viewer")
}

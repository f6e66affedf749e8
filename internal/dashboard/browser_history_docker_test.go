package dashboard_test

import (
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/provider"
	_ "github.com/alphaswarm/controller/provider/docker" // registers "docker"
	"github.com/alphaswarm/controller/provider/docker/dockertest"
)

// TestBrowserHistoryDocker is issue 20.4 in headless Chromium against the
// real Docker Engine: a service deployed twice (a changed env value, a
// changed config value, a secret reference) shows both revisions on its
// page; "diff against live" on the first one shows what rolling back would
// change in the Engine's own fields (the env value, the config only as
// (set) → (changed), the replicas replaced); the rollback button asks for
// confirmation, shows the ledger run, and the history then has a third,
// current revision (a rollback) whose diff against live is none. A viewer
// sees the history and the diffs but no rollback button, and a rollback
// forged with the viewer's token is refused. No config value and no
// secret value is ever in the page.
func TestBrowserHistoryDocker(t *testing.T) {
	chromium(t)
	var rnd [3]byte
	rand.Read(rnd[:])
	suffix := hex.EncodeToString(rnd[:])
	target := "dhist" + suffix
	secretEnv := "ALPHASWARM_SECRET_DASH_HISTORY_" + strings.ToUpper(suffix)
	secretValue := "s3cret-value-" + suffix
	cfg1, cfg2 := "cfg-value-one-"+suffix, "cfg-value-two-"+suffix
	t.Setenv(secretEnv, secretValue)
	creds := credentials.FromEnv()
	pol := provider.Policy{Secrets: []provider.SecretGrant{{Secret: secretEnv, Services: []string{"web"}}}}
	dt := dockertest.NewTarget(testkit.Context(t, 5*time.Minute), t, target, dockertest.TargetOptions{Policy: pol, Credentials: creds})
	image := dt.Image
	e := newEnv(t, envOptions{extra: []control.Target{{Name: target, Provider: dt.Provider, Policy: pol}}, creds: creds})
	for _, v := range []struct{ level, cfg string }{{"info", cfg1}, {"debug", cfg2}} {
		body := fmt.Sprintf(`{"name":"web","image":%q,"replicas":1,"env":{"LOG_LEVEL":%q},"config":{"greeting":%q},"secrets":[{"env":"API_KEY","from":"env:%s"}]}`,
			image, v.level, v.cfg, secretEnv)
		if r := e.call("operator", "POST", "/v1/targets/"+target+"/services", body); r.err != nil {
			t.Fatalf("deploy: %v", r.err)
		}
	}
	b := newBrowser(t, 1280, 900)
	noValues := func(when string) {
		t.Helper()
		html := evalAs[string](b, `document.documentElement.outerHTML`)
		for _, v := range []string{cfg1, cfg2, secretValue} {
			if strings.Contains(html, v) {
				t.Errorf("%s: the page shows the value %q", when, v)
			}
		}
	}
	b.signIn(e, "operator")
	b.nav(e.url + "/services/" + target + "/web")
	b.wait("the history", `document.querySelectorAll('#history-table tbody tr').length === 2 && !!document.querySelector('tr[data-revision="2"][data-current="true"]')`, 15*time.Second)
	if n := evalAs[int](b, `document.querySelectorAll('#history button[data-rollback]').length`); n != 1 {
		t.Errorf("%d rollback buttons, want 1 (revision 1)", n)
	}

	// Diff revision 1 against the live service (revision 2).
	b.do(chromedp.Click(chromedp.CSS(`#history button[data-diff="1"]`)))
	b.wait("the diff of revision 1", `(() => { const d = document.querySelector('#diff-result'); return d && d.dataset.revision === '1'; })()`, 30*time.Second)
	diff := evalAs[map[string]string](b, `(() => { const d = document.querySelector('#diff-result');
		const row = (p) => { const r = d.querySelector('tr[data-path="' + p + '"]'); return r ? [...r.querySelectorAll('td')].map((c) => c.textContent.trim()).join('|') + (r.dataset.replaces ? '|replaces' : '') : ''; };
		const cfg = [...d.querySelectorAll('tr[data-path]')].filter((r) => r.dataset.path.includes('greeting')).map((r) => [...r.querySelectorAll('td')].map((c) => c.textContent.trim()).join('|')).join(';');
		return {action: d.dataset.action, env: row('Config.Env[LOG_LEVEL]'), secret: row('Config.Env[API_KEY]'), cfg, text: d.textContent}; })()`)
	if diff["action"] != "replace" {
		t.Errorf("diff action %q, want replace:\n%s", diff["action"], diff["text"])
	}
	if !strings.HasPrefix(diff["env"], "debug|info|") || !strings.HasSuffix(diff["env"], "|replaces") {
		t.Errorf("the env change reads %q, want debug → info, replacing", diff["env"])
	}
	if !strings.HasPrefix(diff["cfg"], "(set)|(changed)") {
		t.Errorf("the config change reads %q, want (set) → (changed)", diff["cfg"])
	}
	if diff["secret"] != "" {
		t.Errorf("the unchanged secret reference shows as a change: %q", diff["secret"])
	}
	noValues("the diff")
	b.shot("history-01-diff")

	// Roll back to revision 1, confirmed.
	b.do(chromedp.Click(chromedp.CSS(`#history button[data-rollback="1"]`)))
	b.wait("the rollback confirmation", `document.querySelector('#confirm').open`, 5*time.Second)
	if text := evalAs[string](b, `document.querySelector('#confirm-text').textContent`); !strings.HasPrefix(text, "Roll "+target+"/web back to revision 1 (image "+image+", 1 replica)?") {
		t.Errorf("the confirmation says %q", text)
	}
	b.shot("history-02-confirm")
	b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.wait("the rollback's outcome", `document.querySelector('#confirm-result').dataset.outcome === 'ok'`, 90*time.Second)
	runID := evalAs[string](b, `document.querySelector('#confirm-result').dataset.runId`)
	if !strings.HasPrefix(runID, "run_") {
		t.Errorf("the rollback shows no run id: %q", runID)
	}
	b.shot("history-03-rolled-back")
	b.do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.wait("revision 3, a rollback, current", `(() => { const r = document.querySelector('tr[data-revision="3"][data-current="true"]'); return r && r.textContent.includes('rollback') && document.querySelector('#diff').childElementCount === 0; })()`, 15*time.Second)

	// The live service now runs revision 1's spec: nothing to change.
	b.do(chromedp.Click(chromedp.CSS(`#history button[data-diff="1"]`)))
	b.wait("no change against revision 1", `(() => { const d = document.querySelector('#diff-result'); return d && d.dataset.revision === '1' && d.dataset.action === 'none' && !!document.querySelector('#diff-none'); })()`, 30*time.Second)
	noValues("after the rollback")
	b.shot("history-04-diff-none")

	// A viewer: history and diffs, no rollback; a forged rollback is refused.
	b.allow = append(b.allow, "status of 403")
	b.do(chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('alphaswarm.token', ` + jsString(e.tokens["viewer"]) + `)`))
	b.nav(e.url + "/services/" + target + "/web")
	b.wait("the viewer's history", `document.querySelectorAll('#history-table tbody tr').length === 3 && document.querySelector('#who').textContent.includes('viewer')`, 15*time.Second)
	if n := evalAs[int](b, `document.querySelectorAll('#history button[data-rollback]').length`); n != 0 {
		t.Errorf("a viewer sees %d rollback buttons", n)
	}
	if n := evalAs[int](b, `document.querySelectorAll('#history button[data-diff]').length`); n != 3 {
		t.Errorf("a viewer sees %d diff buttons, want 3", n)
	}
	b.do(chromedp.Click(chromedp.CSS(`#history button[data-diff="2"]`)))
	b.wait("the viewer's diff of revision 2", `(() => { const d = document.querySelector('#diff-result'); return d && d.dataset.revision === '2' && d.dataset.action === 'replace'; })()`, 30*time.Second)
	noValues("the viewer's diff")
	forged := evalAs[map[string]any](b, fmt.Sprintf(`import('/ui/assets/app.js').then(m =>
		m.api('POST', '/v1/targets/%s/services/web/rollback', {to: 2}).then(
			() => ({accepted: true}),
			e => ({code: e.code, status: e.status})))`, target))
	if forged["code"] != "permission_denied" || forged["status"] != float64(403) {
		t.Errorf("a rollback forged with the viewer's token: %v", forged)
	}
	b.shot("history-05-viewer")
}

func jsString(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

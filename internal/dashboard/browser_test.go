package dashboard_test

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/alphaswarm/controller/internal/config"
	"github.com/alphaswarm/controller/ledger"
)

// chromium finds the browser. Without one the browser tests skip loudly on
// a laptop and fail in CI, where .ci/run installs Debian's chromium.
func chromium(t testing.TB) string {
	t.Helper()
	candidates := []string{os.Getenv("ALPHASWARM_CHROMIUM"), "/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"}
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "headless-shell"} {
		if p, err := exec.LookPath(name); err == nil {
			candidates = append(candidates, p)
		}
	}
	for _, p := range candidates {
		if p == "" {
			continue
		}
		if fi, err := os.Stat(p); err == nil && !fi.IsDir() {
			return p
		}
	}
	msg := "no Chromium found (install Debian's chromium package: apt-get install -y chromium, or set ALPHASWARM_CHROMIUM)"
	if os.Getenv("CI") != "" {
		t.Fatal(msg)
	}
	t.Skip("SKIPPING BROWSER TEST: " + msg)
	return ""
}

// artifacts is where screenshots go: $ALPHASWARM_ARTIFACTS/<test>, kept,
// or a temporary directory removed after the test.
func artifacts(t testing.TB) string {
	t.Helper()
	if d := os.Getenv("ALPHASWARM_ARTIFACTS"); d != "" {
		dir := filepath.Join(d, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			t.Fatal(err)
		}
		return dir
	}
	return t.TempDir()
}

// browser is one headless Chromium with one tab, ended by t.Cleanup. It
// records console errors, uncaught exceptions and CSP violations; the test
// fails on any it did not expect.
//
// A page load that loses its document, a script or a stylesheet to a
// network change (Chromium's net::ERR_NETWORK_CHANGED, when host networks
// come and go under other tests on a shared machine) is tried again, at
// most loadTries times in all: by nav, and by wait when its condition is
// not yet true (a navigation a click started). Nothing else is retried,
// and the console errors of a load tried again are expected.
type browser struct {
	t     testing.TB
	ctx   context.Context
	dir   string
	allow []string // substrings of console errors a test expects
	// retryOn is the network error after which a load is tried again;
	// only the test of the retry sets another.
	retryOn string

	mu      sync.Mutex
	msgs    []consoleMsg
	loading map[network.RequestID]string // URL of each page resource loading
	failed  []failedLoad                 // page resources that failed, since last looked at
	excused map[string]int               // URL -> failures of it a retry made good
}

// loadTries is how many times a page load lost to a network change is
// tried in all.
const loadTries = 3

type consoleMsg struct{ text, url string }

type failedLoad struct{ url, err string }

// pageResource reports whether a resource of type rt is part of loading a
// page (not a fetch, XHR or event stream of the page's own script).
func pageResource(rt network.ResourceType) bool {
	return rt == network.ResourceTypeDocument || rt == network.ResourceTypeScript || rt == network.ResourceTypeStylesheet
}

func newBrowser(t testing.TB, width, height int) *browser {
	t.Helper()
	exe := chromium(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(exe),
		chromedp.NoSandbox, // tests run as root in CI
		chromedp.Flag("disable-dev-shm-usage", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.WindowSize(width, height),
		chromedp.UserDataDir(t.TempDir()),
	)
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancelCtx := chromedp.NewContext(allocCtx)
	b := &browser{t: t, ctx: ctx, dir: artifacts(t), retryOn: "net::ERR_NETWORK_CHANGED",
		loading: map[network.RequestID]string{}, excused: map[string]int{}}
	// Listen sees the events in order, before the command they precede
	// returns: a failed script is known when Navigate has waited for load.
	if err := chromedp.Listen(ctx, b.watchLoads); err != nil { // starts the browser and the tab
		cancelCtx()
		cancelAlloc()
		t.Fatalf("starting Chromium: %v", err)
	}
	console := chromedp.Console(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for m, err := range console {
			if err != nil {
				return
			}
			if m.Type == chromedp.ConsoleError || m.IsException() || strings.Contains(m.Text, "Content Security Policy") {
				b.mu.Lock()
				b.msgs = append(b.msgs, consoleMsg{fmt.Sprintf("%s (%s:%d)", m, m.URL, m.Line), m.URL})
				b.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() {
		cancelCtx()
		cancelAlloc() // kills the browser and waits for it
		<-done
		for _, m := range b.unexpected() {
			t.Errorf("browser console: %s", m)
		}
	})
	return b
}

// watchLoads records the page resources that fail to load. It runs in the
// loop that reads the tab's messages, so it only takes the lock.
func (b *browser) watchLoads(ev any) {
	b.mu.Lock()
	defer b.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		if pageResource(ev.Type) {
			b.loading[ev.RequestID] = ev.Request.URL
		}
	case *network.EventLoadingFinished:
		delete(b.loading, ev.RequestID)
	case *network.EventLoadingFailed:
		if u, ok := b.loading[ev.RequestID]; ok {
			delete(b.loading, ev.RequestID)
			b.failed = append(b.failed, failedLoad{u, ev.ErrorText})
		}
	}
}

// takeLost returns the URLs of the page resources lost to b.retryOn since
// it was last called, and forgets every failure seen so far.
func (b *browser) takeLost() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var lost []string
	for _, f := range b.failed {
		if f.err == b.retryOn {
			lost = append(lost, f.url)
		}
	}
	b.failed = nil
	return lost
}

// excuse expects the console error of each lost load, which is tried again.
func (b *browser) excuse(lost []string) {
	b.mu.Lock()
	defer b.mu.Unlock()
	for _, u := range lost {
		b.excused[u]++
	}
}

// unexpected returns the console errors the test did not expect: neither
// allowed nor of a load that was tried again.
func (b *browser) unexpected() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	excused := maps.Clone(b.excused)
	var out []string
outer:
	for _, m := range b.msgs {
		for _, a := range b.allow {
			if strings.Contains(m.text, a) {
				continue outer
			}
		}
		if strings.Contains(m.text, b.retryOn) && excused[m.url] > 0 {
			excused[m.url]--
			continue
		}
		out = append(out, m.text)
	}
	return out
}

func (b *browser) do(actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.t.Fatalf("browser: %v\n%s", err, b.console())
	}
}

// nav navigates to u and waits for the page to load. A load that lost its
// document, a script or a stylesheet to a network change is tried again
// (loadTries in all); any other failure ends the test.
func (b *browser) nav(u string) {
	b.t.Helper()
	for try := 1; ; try++ {
		ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
		err := chromedp.Do(ctx, chromedp.Navigate(u))
		cancel()
		lost := b.takeLost()
		if err == nil && len(lost) == 0 {
			return
		}
		if err != nil && !strings.Contains(err.Error(), b.retryOn) {
			b.t.Fatalf("navigate to %s: %v\n%s", u, err, b.console())
		}
		if try == loadTries {
			b.t.Fatalf("navigate to %s: %d loads lost to %s (last: %v, lost %v)\n%s", u, try, b.retryOn, err, lost, b.console())
		}
		b.excuse(lost)
		b.t.Logf("navigate to %s: lost to %s (%v, lost %v); loading it again", u, b.retryOn, err, lost)
		time.Sleep(200 * time.Millisecond)
	}
}

func (b *browser) console() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	lines := make([]string, len(b.msgs))
	for i, m := range b.msgs {
		lines[i] = m.text
	}
	return strings.Join(lines, "\n")
}

// wait evaluates a JavaScript predicate every 100ms until it is true;
// navigations in between are expected (evaluation errors are retried).
// While it is not true, a page load (a navigation a click started) that
// lost a resource to a network change is reloaded, and the wait starts
// again (loadTries loads in all); the predicate itself is never retried
// past its timeout.
func (b *browser) wait(what, predicate string, timeout time.Duration) {
	b.t.Helper()
	deadline := time.Now().Add(timeout)
	expr := "(() => { try { return !!(" + predicate + "); } catch (e) { return false; } })()"
	var last error
	for loads := 1; time.Now().Before(deadline); {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](expr))
		cancel()
		if err == nil && ok {
			return
		}
		last = err
		if lost := b.takeLost(); len(lost) > 0 && loads < loadTries {
			loads++
			b.excuse(lost)
			b.t.Logf("waiting for %s: the page lost %v to %s; loading it again", what, lost, b.retryOn)
			ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
			if err := chromedp.Do(ctx, chromedp.Reload()); err != nil {
				b.t.Logf("waiting for %s: reload: %v", what, err)
			}
			cancel()
			deadline = time.Now().Add(timeout)
			continue
		}
		time.Sleep(100 * time.Millisecond)
	}
	ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
	defer cancel()
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`location.href + "\n" + (document.querySelector('main') || document.body).innerText.slice(0, 3000)`))
	b.t.Fatalf("waiting for %s: timed out after %v (last error: %v)\npage:\n%s\nconsole:\n%s", what, timeout, last, text, b.console())
}

func evalAs[T any](b *browser, expr string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](expr, chromedp.EvalAwaitPromise))
	if err != nil {
		b.t.Fatalf("evaluate %s: %v", expr, err)
	}
	return v
}

// shot saves a PNG of the whole page.
func (b *browser) shot(name string) {
	b.t.Helper()
	png, err := chromedp.Run(b.ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Fatalf("screenshot %s: %v", name, err)
	}
	if len(png) < 8 || string(png[1:4]) != "PNG" {
		b.t.Fatalf("screenshot %s is not a PNG", name)
	}
	p := filepath.Join(b.dir, name+".png")
	if err := os.WriteFile(p, png, 0o644); err != nil {
		b.t.Fatal(err)
	}
	b.t.Logf("screenshot: %s", p)
}

// signIn pastes a token on the sign-in page, as a person would.
func (b *browser) signIn(e *env, role string) {
	b.t.Helper()
	b.nav(e.url + "/")
	b.wait("the redirect to sign-in", `location.pathname === '/signin' && !!document.querySelector('#token')`, 10*time.Second)
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), e.tokens[role]+"\r"))
	b.wait("the services page after sign-in", `location.pathname === '/' && !!document.querySelector('#services-table') && document.querySelector('#who').textContent.includes('`+e.users[role]+`')`, 10*time.Second)
}

// noHorizontalScroll asserts the page fits its viewport's width.
func (b *browser) noHorizontalScroll(page string) {
	b.t.Helper()
	if w := evalAs[[]int](b, `[document.documentElement.scrollWidth, window.innerWidth]`); w[0] > w[1]+1 {
		b.t.Errorf("%s: page is %dpx wide in a %dpx viewport", page, w[0], w[1])
	}
}

// workloadHooks are what the scenario needs from the workload behind the
// target: make its CPU rise, make it print a line, count its instances.
type workloadHooks struct {
	target, image string
	// burn makes the CPU rise until ctx ends.
	burn func(ctx context.Context)
	// cpuRose is a JavaScript predicate on the chart's latest value, given
	// the first value seen.
	cpuRose func(first float64) string
	emit    func(text string)
	running func() int
}

// TestBrowserScenario is the on-call walk through in headless Chromium
// against the in-memory provider, whose CPU is a counter that rises by one
// every sample (TestBrowserScenarioDocker runs it on the Docker Engine).
func TestBrowserScenario(t *testing.T) {
	e := newEnv(t, envOptions{metricsInterval: 500 * time.Millisecond})
	runScenario(t, e, workloadHooks{
		target: "local", image: "example/web:1",
		burn:    func(context.Context) {},
		cpuRose: func(first float64) string { return fmt.Sprintf(">= %v + 2", first) },
		emit:    func(text string) { e.mem.Emit("web", text) },
		running: func() int { return len(e.mem.Running("web")) },
	})
}

// runScenario: sign in with a token, see a service deployed through the
// API turn Running, scale it to 3 from the page (by keyboard) and see 3
// instances, watch the CPU chart rise and a log line arrive, and find the
// scale in the ledger with the right user; screenshots of every page, at
// 1280×800 and at phone width.
func runScenario(t *testing.T, e *env, w workloadHooks) {
	b := newBrowser(t, 1280, 800)
	svcID := w.target + "/web"
	// Sign in.
	b.nav(e.url + "/")
	b.wait("the sign-in page", `location.pathname === '/signin' && !!document.querySelector('#token')`, 10*time.Second)
	b.shot("01-signin")
	b.do(chromedp.SendKeys(chromedp.CSS("#token"), e.tokens["operator"]+"\r"))
	b.wait("the services page", `location.pathname === '/' && !document.querySelector('#no-services').hidden`, 10*time.Second)
	b.wait("the live stream", `document.querySelector('#live').dataset.state === 'live'`, 10*time.Second)
	if who := evalAs[string](b, `document.querySelector('#who').textContent`); who != "dash-operator · operator" {
		t.Errorf("header shows %q", who)
	}
	if tok := evalAs[string](b, `sessionStorage.getItem('alphaswarm.token')`); tok != e.tokens["operator"] {
		t.Errorf("the token is not kept in sessionStorage")
	}
	if strings.Contains(evalAs[string](b, `location.href`), "asw_") {
		t.Errorf("the token is in the URL")
	}

	// Deploy through the API: the row appears and turns Running live.
	if r := e.call("operator", "POST", "/v1/targets/"+w.target+"/services", fmt.Sprintf(`{"name":"web","image":%q,"replicas":1}`, w.image)); r.err != nil {
		t.Fatal(r.err)
	}
	b.wait("web Running on the services page", `(() => { const r = document.querySelector('tr[data-id="`+svcID+`"] [data-f="phase"]'); return r && r.textContent === 'Running'; })()`, 15*time.Second)
	b.shot("02-services")

	// The service page: one instance; scale to 3 by keyboard.
	b.do(chromedp.Click(chromedp.CSS(`tr[data-id="` + svcID + `"] a`)))
	b.wait("the service page", `location.pathname === '/services/`+svcID+`' && document.querySelectorAll('#instances tbody tr').length === 1 && !!document.querySelector('form[data-action="scale"]')`, 10*time.Second)
	b.do(
		chromedp.SetValue(chromedp.CSS(`form[data-action="scale"] input[name="replicas"]`), ""),
		chromedp.SendKeys(chromedp.CSS(`form[data-action="scale"] input[name="replicas"]`), "3\r"),
	)
	b.wait("the confirmation", `document.querySelector('#confirm').open && document.activeElement.id === 'confirm-ok'`, 5*time.Second)
	if text := evalAs[string](b, `document.querySelector('#confirm-text').textContent`); text != "Scale "+svcID+" to 3 replicas?" {
		t.Errorf("confirmation says %q", text)
	}
	b.do(chromedp.KeyEvent("\r"))
	b.wait("the scale's outcome", `document.querySelector('#confirm-result').dataset.outcome === 'ok'`, 10*time.Second)
	runID := evalAs[string](b, `document.querySelector('#confirm-result').dataset.runId`)
	if !strings.HasPrefix(runID, "run_") || !strings.Contains(evalAs[string](b, `document.querySelector('#confirm-result').textContent`), runID) {
		t.Fatalf("the confirmation does not show the run id: %q", runID)
	}
	b.shot("03-scale-confirmation")
	b.do(chromedp.KeyEvent("\x1b")) // Escape closes the dialog
	b.wait("the dialog to close", `!document.querySelector('#confirm').open`, 5*time.Second)
	b.wait("3 instances", `document.querySelectorAll('#instances tbody tr').length === 3`, 10*time.Second)
	if got := w.running(); got != 3 {
		t.Errorf("the provider runs %d instances, want 3", got)
	}

	// The CPU chart rises.
	b.wait("CPU samples", `Number(document.querySelector('#chart-cpu').dataset.points) >= 2`, 15*time.Second)
	first := evalAs[float64](b, `Number(document.querySelector('#chart-cpu').dataset.last)`)
	burnCtx, stopBurn := context.WithCancel(context.Background())
	burnDone := make(chan struct{})
	go func() { defer close(burnDone); w.burn(burnCtx) }()
	b.wait("the CPU chart to rise", `Number(document.querySelector('#chart-cpu').dataset.last) `+w.cpuRose(first), 30*time.Second)
	b.shot("04a-cpu-rising")
	stopBurn()
	<-burnDone
	if d := evalAs[string](b, `document.querySelector('#chart-cpu path.line').getAttribute('d')`); strings.Count(d, "L") < 2 {
		t.Errorf("the CPU line has too few points: %q", d)
	}
	if label := evalAs[string](b, `document.querySelector('#chart-cpu svg').getAttribute('aria-label')`); !strings.HasPrefix(label, "CPU: ") {
		t.Errorf("chart label %q", label)
	}

	// A log line appears in the panel; the filter hides what does not match.
	w.emit("hello from the browser test")
	b.wait("the log line", `[...document.querySelectorAll('#logs li')].some(li => li.textContent.includes('hello from the browser test'))`, 10*time.Second)
	b.do(chromedp.SendKeys(chromedp.CSS("#logs-filter"), "browser test"))
	b.wait("the log filter", `[...document.querySelectorAll('#logs li')].filter(li => !li.hidden).every(li => li.textContent.includes('browser test'))`, 5*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#logs-pause")))
	w.emit("held while paused")
	b.wait("held lines", `document.querySelector('#logs-held').textContent.includes('new line')`, 10*time.Second)
	if evalAs[bool](b, `[...document.querySelectorAll('#logs li')].some(li => li.textContent.includes('held while paused'))`) {
		t.Errorf("a paused log panel showed a new line")
	}
	b.do(chromedp.Click(chromedp.CSS("#logs-pause")),
		chromedp.Evaluate[chromedp.Void](`(() => { const f = document.querySelector('#logs-filter'); f.value = ''; f.dispatchEvent(new Event('input')); })()`))
	b.wait("held lines after resume", `[...document.querySelectorAll('#logs li')].some(li => li.textContent.includes('held while paused'))`, 5*time.Second)
	b.shot("04-service")

	// A change made elsewhere (the CLI, another tab) reaches the page over
	// the services stream.
	if r := e.call("operator", "POST", "/v1/targets/"+w.target+"/services/web/scale", `{"replicas":2}`); r.err != nil {
		t.Fatal(r.err)
	}
	b.wait("2 instances after a scale through the API", `document.querySelectorAll('#instances tbody tr').length === 2`, 15*time.Second)

	// The ledger: the scale run, by dash-operator, intent and result.
	b.do(chromedp.Click(chromedp.CSS(`a[href="/ledger"]`)))
	b.wait("the ledger", `!!document.querySelector('#runs-table') && document.querySelector('#verify').dataset.ok === 'true'`, 10*time.Second)
	b.do(
		chromedp.SetValue(chromedp.CSS(`#ledger-filter [name="service"]`), "web"),
		chromedp.SetValue(chromedp.CSS(`#ledger-filter [name="action"]`), "scale"),
		chromedp.Click(chromedp.CSS(`#ledger-filter button[type="submit"]`)),
	)
	b.wait("the filtered ledger", `location.search.includes('action=scale') && document.querySelectorAll('#runs-table tbody tr').length === 2`, 10*time.Second)
	row := evalAs[map[string]string](b, fmt.Sprintf(`(() => { const r = document.querySelector('tr[data-run=%q]'); return r ? {user: r.dataset.user, action: r.dataset.action, outcome: r.dataset.outcome, intent: r.querySelector('.intent').textContent, result: r.querySelector('.result').textContent} : {}; })()`, runID))
	if row["user"] != "dash-operator" || row["action"] != "scale" || row["outcome"] != "ok" {
		t.Errorf("ledger row for %s: %v", runID, row)
	}
	if !strings.Contains(row["intent"], "replicas: 3") || !strings.Contains(row["result"], "Running · 3/3 ready") {
		t.Errorf("intent and result are not side by side: %v", row)
	}
	if badge := evalAs[string](b, `document.querySelector('#verify').textContent`); !strings.HasPrefix(badge, "chain verified") {
		t.Errorf("verification badge %q", badge)
	}
	b.shot("05-ledger")

	// Targets: the capability matrix.
	b.do(chromedp.Click(chromedp.CSS(`a[href="/targets"]`)))
	b.wait("the targets page", `!!document.querySelector('#capabilities tr[data-target="`+w.target+`"]')`, 10*time.Second)
	b.shot("06-targets")

	// Phone width: the pages fit, and still read.
	b.do(chromedp.EmulateViewport(390, 844, chromedp.EmulateScale(2), chromedp.EmulateMobile))
	for _, p := range []struct{ path, ready, name string }{
		{"/", `!!document.querySelector('tr[data-id="` + svcID + `"]')`, "07-phone-services"},
		{"/services/" + svcID, `document.querySelectorAll('#instances tbody tr').length === 2 && Number(document.querySelector('#chart-cpu').dataset.points) > 0`, "08-phone-service"},
		{"/ledger", `!!document.querySelector('#runs-table')`, "09-phone-ledger"},
		{"/targets", `!!document.querySelector('#capabilities')`, "10-phone-targets"},
	} {
		b.nav(e.url + p.path)
		b.wait(p.path+" at phone width", p.ready, 10*time.Second)
		b.noHorizontalScroll(p.path)
		b.shot(p.name)
	}
}

// TestBrowserViewer: a viewer sees no action controls, and a mutating
// request forged from the page with the viewer's token is refused.
func TestBrowserViewer(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deploy(t, "web")
	b := newBrowser(t, 1280, 800)
	// The forged request's 403 is logged by the browser.
	b.allow = append(b.allow, "status of 403")
	b.signIn(e, "viewer")
	if !evalAs[bool](b, `document.querySelector('#halt-toggle').hidden`) {
		t.Errorf("a viewer sees the halt switch")
	}
	b.nav(e.url + "/services/local/web")
	b.wait("the viewer's service page", `!!document.querySelector('#no-actions') && document.querySelectorAll('#instances tbody tr').length === 1`, 10*time.Second)
	if n := evalAs[int](b, `document.querySelectorAll('form[data-action], #action-controls, button.danger:not([hidden])').length`); n != 0 {
		t.Errorf("a viewer sees %d action controls", n)
	}
	b.shot("viewer-service")

	forged := evalAs[map[string]any](b, `import('/ui/assets/app.js').then(m =>
		m.api('POST', '/v1/targets/local/services/web/scale', {replicas: 5}).then(
			() => ({accepted: true}),
			e => ({code: e.code, status: e.status, message: e.message})))`)
	if forged["code"] != "permission_denied" || forged["status"] != float64(403) {
		t.Fatalf("forged scale as viewer: %v", forged)
	}
	if got := len(e.mem.Running("web")); got != 1 {
		t.Errorf("the forged request changed the service: %d instances", got)
	}
	r := e.call("viewer", "GET", "/v1/runs?user=dash-viewer&outcome=denied", "")
	var page ledger.Page
	if r.err != nil || json.Unmarshal(r.data, &page) != nil || len(page.Records) != 1 || page.Records[0].Action != "scale" {
		t.Errorf("the refusal is not in the ledger: %v %s", r.err, r.data)
	}
	// The page signs out on a token the API no longer accepts.
	b.do(chromedp.Evaluate[chromedp.Void](`sessionStorage.setItem('alphaswarm.token', 'asw_revoked')`))
	b.nav(e.url + "/targets")
	b.allow = append(b.allow, "status of 401")
	b.wait("sign-out on 401", `location.pathname === '/signin' && !document.querySelector('#signin-error').hidden`, 10*time.Second)
}

// TestBrowserHalt: an admin halts every target from the banner switch; the
// banner shows on every page, an operator's scale is refused with outcome
// halted (run id shown), and the admin lifts it.
func TestBrowserHalt(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deploy(t, "web")
	b := newBrowser(t, 1280, 800)
	b.allow = append(b.allow, "status of 503", "status of 409", "status of 423")
	b.signIn(e, "admin")
	b.wait("the halt switch", `!document.querySelector('#halt-toggle').hidden && document.querySelector('#halt-toggle').textContent === 'Halt all'`, 10*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#halt-toggle")))
	b.wait("the halt confirmation", `document.querySelector('#confirm').open`, 5*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.wait("the halt's outcome", `document.querySelector('#confirm-result').dataset.outcome === 'ok'`, 10*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	for _, p := range []string{"/", "/targets", "/ledger", "/services/local/web"} {
		b.nav(e.url + p)
		b.wait("the halt banner on "+p, `!document.querySelector('#halt-banner').hidden && document.querySelector('#halt-text').textContent.includes('every target')`, 10*time.Second)
	}
	// An action while halted: refused, and the dialog shows the ledger's run.
	b.wait("the scale form", `!!document.querySelector('form[data-action="scale"]')`, 10*time.Second)
	b.do(chromedp.Click(chromedp.CSS(`form[data-action="scale"] button`)))
	b.wait("the scale confirmation", `document.querySelector('#confirm').open`, 5*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.wait("the refusal", `document.querySelector('#confirm-result').dataset.outcome === 'halted'`, 10*time.Second)
	if id := evalAs[string](b, `document.querySelector('#confirm-result').dataset.runId`); !strings.HasPrefix(id, "run_") {
		t.Errorf("a refused action shows no run id: %q", id)
	}
	b.shot("halted-refusal")
	b.do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.wait("the lift switch", `document.querySelector('#halt-toggle').textContent === 'Lift halt'`, 5*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#halt-toggle")))
	b.wait("the lift confirmation", `document.querySelector('#confirm').open`, 5*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#confirm-ok")))
	b.wait("the lift's outcome", `document.querySelector('#confirm-result').dataset.outcome === 'ok'`, 10*time.Second)
	b.do(chromedp.Click(chromedp.CSS("#confirm-cancel")))
	b.wait("the banner to go", `document.querySelector('#halt-banner').hidden`, 10*time.Second)
}

// fakeIssuer is an OIDC issuer for the PKCE flow: it checks the client id,
// the redirect URI and the S256 challenge, and issues tok.
type fakeIssuer struct {
	*httptest.Server
	clientID, tok string
	mu            sync.Mutex
	codes         map[string][2]string // code -> challenge, redirect_uri
	exchanged     int
}

func newFakeIssuer(t testing.TB, clientID, tok string) *fakeIssuer {
	f := &fakeIssuer{clientID: clientID, tok: tok, codes: map[string][2]string{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		json.NewEncoder(w).Encode(map[string]string{"issuer": f.URL, "authorization_endpoint": f.URL + "/authorize", "token_endpoint": f.URL + "/token"})
	})
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if q.Get("client_id") != f.clientID || q.Get("response_type") != "code" || q.Get("code_challenge_method") != "S256" ||
			q.Get("code_challenge") == "" || q.Get("audience") != "https://alphaswarm.test" || !strings.HasSuffix(q.Get("redirect_uri"), "/signin/callback") {
			http.Error(w, "bad authorize request: "+r.URL.RawQuery, 400)
			return
		}
		code := fmt.Sprintf("code-%d", time.Now().UnixNano())
		f.mu.Lock()
		f.codes[code] = [2]string{q.Get("code_challenge"), q.Get("redirect_uri")}
		f.mu.Unlock()
		http.Redirect(w, r, q.Get("redirect_uri")+"?"+url.Values{"code": {code}, "state": {q.Get("state")}}.Encode(), http.StatusFound)
	})
	mux.HandleFunc("POST /token", func(w http.ResponseWriter, r *http.Request) {
		r.ParseForm()
		f.mu.Lock()
		c, ok := f.codes[r.PostForm.Get("code")]
		delete(f.codes, r.PostForm.Get("code"))
		f.mu.Unlock()
		sum := sha256.Sum256([]byte(r.PostForm.Get("code_verifier")))
		w.Header().Set("Content-Type", "application/json")
		if !ok || r.PostForm.Get("grant_type") != "authorization_code" || r.PostForm.Get("client_id") != f.clientID ||
			r.PostForm.Get("redirect_uri") != c[1] || base64.RawURLEncoding.EncodeToString(sum[:]) != c[0] {
			w.WriteHeader(400)
			json.NewEncoder(w).Encode(map[string]string{"error": "invalid_grant", "error_description": "code, client, redirect or verifier mismatch"})
			return
		}
		f.mu.Lock()
		f.exchanged++
		tok := f.tok
		f.mu.Unlock()
		json.NewEncoder(w).Encode(map[string]any{"access_token": tok, "token_type": "Bearer", "expires_in": 3600})
	})
	f.Server = httptest.NewServer(mux)
	t.Cleanup(f.Close)
	return f
}

// TestBrowserOIDC signs in with the authorization-code flow and PKCE
// against a fake issuer that hands out an API token.
func TestBrowserOIDC(t *testing.T) {
	// The issuer's URL must be known before the env; its token after.
	issuer := newFakeIssuer(t, "dash-client", "")
	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{}}
	t.Cleanup(hc.CloseIdleConnections)
	e := newEnv(t, envOptions{oidc: &config.OIDC{Issuer: issuer.URL, Audience: "https://alphaswarm.test", ClientID: "dash-client"}, httpClient: hc})
	issuer.mu.Lock()
	issuer.tok = e.tokens["admin"]
	issuer.mu.Unlock()
	b := newBrowser(t, 1280, 800)
	b.nav(e.url + "/ledger")
	b.wait("the OIDC button", `location.pathname === '/signin' && !!document.querySelector('#oidc')`, 10*time.Second)
	b.shot("oidc-signin")
	b.do(chromedp.Click(chromedp.CSS("#oidc")))
	b.wait("the ledger after OIDC sign-in", `location.pathname === '/ledger' && document.querySelector('#who').textContent === 'dash-admin · admin'`, 15*time.Second)
	issuer.mu.Lock()
	if issuer.exchanged != 1 {
		t.Errorf("codes exchanged: %d", issuer.exchanged)
	}
	issuer.mu.Unlock()
	if v := evalAs[string](b, `sessionStorage.getItem('alphaswarm.pkce') || ''`); v != "" {
		t.Errorf("the PKCE verifier outlived the sign-in")
	}
}

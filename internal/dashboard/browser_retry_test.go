package dashboard_test

import (
	"context"
	"fmt"
	"runtime"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/fetch"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/alphaswarm/controller/internal/testkit"
)

// TestBrowserLoadRetry is the harness's retry of page loads lost to a
// network change, with a stand-in for the change: Chromium cannot fail a
// request with net::ERR_NETWORK_CHANGED on demand, so the tab fails chosen
// requests (Fetch.failRequest) with net::ERR_ADDRESS_UNREACHABLE and the
// harness is told that is the error to retry. A document lost by nav and
// by a click, and a script lost by a click, are loaded again and the pages
// work, with no console error left; a script lost on every try ends nav
// after loadTries loads; a script lost to another error is not retried,
// by nav or by wait, and its console error stays.
func TestBrowserLoadRetry(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.deploy(t, "web")
	b := newBrowser(t, 1024, 768)
	b.signIn(e, "viewer")
	b.retryOn = "net::ERR_ADDRESS_UNREACHABLE"
	lost, refused := network.ErrorReasonAddressUnreachable, network.ErrorReasonConnectionRefused
	// The targets document fails the first time nav asks and the first
	// time a click does.
	targetsDoc := &failRule{path: "/targets", rt: network.ResourceTypeDocument, fail: []int32{1, 3}, reason: lost}
	ledgerJS := &failRule{path: "/ui/assets/ledger.js", rt: network.ResourceTypeScript, fail: []int32{1}, reason: lost}
	serviceJS := &failRule{path: "/ui/assets/service.js", rt: network.ResourceTypeScript, fail: []int32{1, 2, 3}, reason: lost}
	chartJS := &failRule{path: "/ui/assets/chart.js", rt: network.ResourceTypeScript, fail: []int32{1}, reason: refused}
	b.failRequests(targetsDoc, ledgerJS, serviceJS, chartJS)
	signedIn := func(path string) string {
		return `location.pathname === '` + path + `' && document.querySelector('#who').textContent.includes('` + e.users["viewer"] + `')`
	}
	noneUnexpected := func(when string) {
		t.Helper()
		if u := b.unexpected(); len(u) > 0 {
			t.Errorf("%s: console errors left: %q", when, u)
		}
	}

	b.nav(e.url + "/targets")
	b.wait("the targets page after its document was lost", signedIn("/targets"), 10*time.Second)
	if n := targetsDoc.seen.Load(); n != 2 {
		t.Errorf("nav: the targets document was requested %d times, want 2", n)
	}
	noneUnexpected("after nav")

	b.do(chromedp.Click(chromedp.CSS(`a[href="/ledger"]`)))
	b.wait("the ledger page after its script was lost", signedIn("/ledger"), 10*time.Second)
	if n := ledgerJS.seen.Load(); n != 2 {
		t.Errorf("click: ledger.js was requested %d times, want 2", n)
	}
	b.do(chromedp.Click(chromedp.CSS(`a[href="/targets"]`)))
	b.wait("the targets page after its document was lost again", signedIn("/targets"), 10*time.Second)
	if n := targetsDoc.seen.Load(); n != 4 {
		t.Errorf("click: the targets document was requested %d times in all, want 4", n)
	}
	noneUnexpected("after the clicks")

	// Lost on every try: nav gives up after loadTries loads.
	msg := b.fatalOf(func() { b.nav(e.url + "/services/local/web") })
	if !strings.Contains(msg, fmt.Sprintf("%d loads lost to net::ERR_ADDRESS_UNREACHABLE", loadTries)) {
		t.Errorf("nav of a page that loses its script every time ended with %q", msg)
	}
	if n := serviceJS.seen.Load(); n != loadTries {
		t.Errorf("service.js was requested %d times, want %d", n, loadTries)
	}

	// Another error: no retry by nav, none by wait; the wait times out.
	msg = b.fatalOf(func() {
		b.nav(e.url + "/services/local/web")
		b.wait("the service page without chart.js", signedIn("/services/local/web"), 2*time.Second)
	})
	if !strings.HasPrefix(msg, "waiting for the service page without chart.js: timed out") {
		t.Errorf("a page that lost a script to another error: %q", msg)
	}
	if n := chartJS.seen.Load(); n != 1 {
		t.Errorf("chart.js, lost to another error, was requested %d times, want 1", n)
	}
	// What stays on the console: the last load of service.js, and chart.js.
	testkit.WaitFor(t, 5*time.Second, "the console errors of the loads not tried again", func() bool {
		u := b.unexpected()
		return len(u) == 2 && strings.Contains(u[0], "net::ERR_ADDRESS_UNREACHABLE") && strings.Contains(u[0], "service.js") &&
			strings.Contains(u[1], "net::ERR_CONNECTION_REFUSED") && strings.Contains(u[1], "chart.js")
	})
	b.allow = append(b.allow, "service.js", "chart.js")
}

// failRule fails the requests of type rt whose URL contains path with
// reason, those whose number (from 1) is in fail; seen counts them all.
type failRule struct {
	path   string
	rt     network.ResourceType
	fail   []int32
	reason network.ErrorReason
	seen   atomic.Int32
}

// failRequests makes the tab fail requests by rules (Fetch interception);
// the requests no rule fails go on unchanged.
func (b *browser) failRequests(rules ...*failRule) {
	t := b.t // fatalOf replaces b.t while the goroutine runs
	t.Helper()
	ctx, cancel := context.WithCancel(b.ctx)
	paused := chromedp.Events(ctx, fetch.RequestPaused) // subscribed before any request is paused
	patterns := make([]*fetch.RequestPattern, len(rules))
	for i, r := range rules {
		patterns[i] = &fetch.RequestPattern{URLPattern: "*" + r.path + "*", ResourceType: r.rt}
	}
	if _, err := chromedp.Call(ctx, fetch.Enable, fetch.EnableParams{Patterns: patterns}); err != nil {
		cancel()
		t.Fatalf("enabling request interception: %v", err)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for ev, err := range paused {
			if err != nil {
				return
			}
			var rule *failRule
			for _, r := range rules {
				if ev.ResourceType == r.rt && strings.Contains(ev.Request.URL, r.path) {
					rule = r
					break
				}
			}
			if rule != nil && slices.Contains(rule.fail, rule.seen.Add(1)) {
				_, err = chromedp.Call(ctx, fetch.FailRequest, fetch.FailRequestParams{RequestID: ev.RequestID, ErrorReason: rule.reason})
			} else {
				_, err = chromedp.Call(ctx, fetch.ContinueRequest, fetch.ContinueRequestParams{RequestID: ev.RequestID})
			}
			if err != nil && ctx.Err() == nil {
				t.Errorf("answering the paused request %s: %v", ev.Request.URL, err)
			}
		}
	}()
	t.Cleanup(func() {
		cancel()
		<-done
	})
}

// fatalOf runs f with the browser's test replaced by one whose Fatalf ends
// f, and returns what f's Fatalf said ("" if it did not call it).
func (b *browser) fatalOf(f func()) string {
	rec := &fatalRecorder{TB: b.t}
	b.t = rec
	defer func() { b.t = rec.TB }()
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
	return rec.msg
}

type fatalRecorder struct {
	testing.TB
	msg string
}

func (r *fatalRecorder) Helper() {}

func (r *fatalRecorder) Fatalf(format string, args ...any) {
	r.msg = fmt.Sprintf(format, args...)
	runtime.Goexit()
}

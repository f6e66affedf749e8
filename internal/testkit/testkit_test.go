package testkit_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

func TestContext(t *testing.T) {
	var ctx context.Context
	t.Run("inner", func(t *testing.T) {
		ctx = testkit.Context(t, time.Hour)
		if dl, ok := ctx.Deadline(); !ok || time.Until(dl) < 59*time.Minute {
			t.Fatalf("deadline %v, %v", dl, ok)
		}
		if ctx.Err() != nil {
			t.Fatal(ctx.Err())
		}
	})
	if !errors.Is(ctx.Err(), context.Canceled) {
		t.Fatalf("the context outlived its test: %v", ctx.Err())
	}
	short := testkit.Context(t, time.Millisecond)
	<-short.Done()
	if !errors.Is(short.Err(), context.DeadlineExceeded) {
		t.Fatalf("short: %v", short.Err())
	}
}

// recorder is a testing.TB whose Fatalf records instead of ending the
// test (WaitFor is called from the test's goroutine, so this is safe).
type recorder struct {
	testing.TB
	failed string
}

func (r *recorder) Fatalf(format string, args ...any) { r.failed = fmt.Sprintf(format, args...) }
func (r *recorder) Helper()                           {}

func TestWaitFor(t *testing.T) {
	n := 0
	testkit.WaitFor(t, 5*time.Second, "three calls", func() bool { n++; return n == 3 })
	if n != 3 {
		t.Fatalf("cond called %d times", n)
	}
	r := &recorder{TB: t}
	began := time.Now()
	testkit.WaitFor(r, 50*time.Millisecond, "never", func() bool { return time.Since(began) > time.Hour })
	if !strings.Contains(r.failed, "waiting for never") || !strings.Contains(r.failed, "50ms") {
		t.Fatalf("failure %q", r.failed)
	}
}

func TestNewStack(t *testing.T) {
	s := testkit.NewStack(t, testkit.Options{UserPrefix: "kit"})
	call := func(role, method, path, body string) (int, string) {
		t.Helper()
		req, err := http.NewRequestWithContext(testkit.Context(t, 30*time.Second), method, s.URL+path, strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Authorization", "Bearer "+s.Tokens[role])
		req.Header.Set("Content-Type", "application/json")
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := call("viewer", "GET", "/v1/whoami", ""); code != 200 || !strings.Contains(body, `"kit-viewer"`) {
		t.Fatalf("whoami: %d %s", code, body)
	}
	if code, _ := call("viewer", "POST", "/v1/targets/local/services", `{"name":"web","image":"x:1"}`); code != http.StatusForbidden {
		t.Fatalf("a viewer started a service: %d", code)
	}
	if code, body := call("operator", "POST", "/v1/targets/local/services", `{"name":"web","image":"x:1","replicas":2}`); code != 200 {
		t.Fatalf("start: %d %s", code, body)
	}
	// The in-memory provider did it, the ledger recorded it, the metrics
	// observed it, and the dashboard is mounted.
	if got := len(s.Memory.Running("web")); got != 2 {
		t.Fatalf("%d replicas running", got)
	}
	page, err := s.Ledger.Query(testkit.Context(t, 10*time.Second), ledger.Filter{Service: "web", Kind: ledger.KindResult})
	if err != nil || len(page.Records) != 1 {
		t.Fatalf("ledger: %+v, %v", page, err)
	}
	if code, body := call("viewer", "GET", "/metrics", ""); code != 200 || !strings.Contains(body, `action="start"`) {
		t.Fatalf("metrics: %d %.300s", code, body)
	}
	if code, body := call("viewer", "GET", "/", ""); code != 200 || !strings.Contains(body, "<html") {
		t.Fatalf("dashboard: %d %.300s", code, body)
	}
	if s.Config.MaxBodyBytes != 1<<20 || s.Config.MaxStreamsPerUser != 32 {
		t.Fatalf("not serve's defaults: %+v", s.Config)
	}
}

func TestBuffer(t *testing.T) {
	var b testkit.Buffer
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() { fmt.Fprintf(&b, "line %d\n", i) })
	}
	wg.Wait()
	if got := strings.Count(b.String(), "\n"); got != 8 {
		t.Fatalf("%d lines: %q", got, b.String())
	}
}

package client_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/client"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/ledger/sqlite"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
)

type adminAuth struct{}

func (adminAuth) Authenticate(r *http.Request) (control.Principal, error) {
	if r.Header.Get("Authorization") != "Bearer tok" {
		return control.Principal{}, workload.Errorf(workload.Unauthenticated, "no token")
	}
	return control.Principal{User: "admin", Role: "admin"}, nil
}

// replica is one controller process: a runtime and the HTTP API over the
// shared ledger and backend, serving on addr.
type replica struct {
	srv *http.Server
	rt  *control.Runtime
	api *httpapi.Server
}

func startReplica(t *testing.T, addr string, led *sqlite.Ledger, mem *providertest.Memory) (*replica, string) {
	t.Helper()
	var ln net.Listener
	var err error
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if ln, err = net.Listen("tcp", addr); err == nil || time.Now().After(deadline) {
			break
		}
	}
	if err != nil {
		t.Fatal(err)
	}
	log := slog.New(slog.DiscardHandler)
	rt, err := control.New(context.Background(), control.Options{Ledger: led, Logger: log, Credentials: nil,
		Targets: []control.Target{{Name: "local", Provider: mem}}})
	if err != nil {
		t.Fatal(err)
	}
	api := httpapi.New(httpapi.Options{Runtime: rt, Auth: adminAuth{}, Logger: log})
	r := &replica{srv: &http.Server{Handler: api.Handler()}, rt: rt, api: api}
	go r.srv.Serve(ln)
	return r, ln.Addr().String()
}

// kill ends the replica abruptly: listener and connections closed, as
// when the process dies.
func (r *replica) kill() {
	r.srv.Close()
	r.rt.Close()
}

// TestFollowersResumeOnAnotherReplica (issue 19): logs -f, metrics and the
// services stream, followed with WithReconnect, go on when the server they
// were connected to dies and another starts on the same address (what a
// load balancer in front of replicas does), and no log line or status is
// delivered twice.
func TestFollowersResumeOnAnotherReplica(t *testing.T) {
	led, err := sqlite.Open(context.Background(), filepath.Join(t.TempDir(), "l.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { led.Close() })
	mem := providertest.NewMemory("local")
	mem.MetricsInterval = 20 * time.Millisecond
	a, addr := startReplica(t, "127.0.0.1:0", led, mem)
	var current = a
	t.Cleanup(func() { current.kill() })
	c, err := client.New("http://"+addr, "tok")
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if _, err := c.Deploy(ctx, "local", []byte("name: web\nimage: x/y:1\nreplicas: 1\n"), "application/yaml"); err != nil {
		t.Fatal(err)
	}
	var lost int
	follow := client.WithReconnect(ctx, 20*time.Second, func(error) { mu.Lock(); lost++; mu.Unlock() })

	var lines, statuses []string
	samples := 0
	var wg sync.WaitGroup
	errs := make(chan error, 3)
	wg.Add(3)
	go func() {
		defer wg.Done()
		for l, err := range c.Logs(follow, "local", "web", provider.LogOptions{Follow: true, Tail: -1}) {
			if err != nil {
				errs <- fmt.Errorf("logs: %w", err)
				return
			}
			mu.Lock()
			lines = append(lines, l.Instance+"|"+l.Text)
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for _, err := range c.Metrics(follow, "local", "web") {
			if err != nil {
				errs <- fmt.Errorf("metrics: %w", err)
				return
			}
			mu.Lock()
			samples++
			mu.Unlock()
		}
	}()
	go func() {
		defer wg.Done()
		for st, err := range c.ServiceEvents(follow) {
			if err != nil {
				errs <- fmt.Errorf("services: %w", err)
				return
			}
			mu.Lock()
			statuses = append(statuses, fmt.Sprintf("%s %s %d/%d", st.ID, st.Phase, st.Replicas.Ready, st.Replicas.Desired))
			mu.Unlock()
		}
	}()
	waitUntil := func(what string, cond func() bool) {
		t.Helper()
		for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(20 * time.Millisecond) {
			select {
			case err := <-errs:
				t.Fatalf("a follower ended while waiting for %s: %v", what, err)
			default:
			}
			mu.Lock()
			ok := cond()
			mu.Unlock()
			if ok {
				return
			}
			if time.Now().After(deadline) {
				mu.Lock()
				defer mu.Unlock()
				t.Fatalf("timed out waiting for %s: lines %q, statuses %q, %d samples", what, lines, statuses, samples)
			}
		}
	}
	mem.Emit("web", "line-1")
	mem.Emit("web", "line-2")
	waitUntil("the first lines, a sample and a status", func() bool {
		return slices.ContainsFunc(lines, hasText("line-2")) && samples > 0 && len(statuses) > 0
	})
	mu.Lock()
	statusesBefore, samplesBefore := len(statuses), samples
	mu.Unlock()

	current.kill() // mid-stream
	mem.Emit("web", "line-3")
	time.Sleep(300 * time.Millisecond) // the followers find the server gone
	b, _ := startReplica(t, addr, led, mem)
	current = b
	mem.Emit("web", "line-4")
	waitUntil("the lines after the restart", func() bool { return slices.ContainsFunc(lines, hasText("line-4")) })
	waitUntil("samples from the new replica", func() bool { return samples > samplesBefore+2 })
	mu.Lock()
	if lost < 3 {
		t.Errorf("%d lost connections were reported, want one per follower (3)", lost)
	}
	if len(statuses) != statusesBefore {
		t.Errorf("the new replica's snapshot of an unchanged service was delivered again: %q", statuses)
	}
	mu.Unlock()
	if _, err := c.Scale(ctx, "local", "web", 2); err != nil {
		t.Fatal(err)
	}
	waitUntil("the change after the restart", func() bool {
		return slices.ContainsFunc(statuses, func(s string) bool { return strings.HasSuffix(s, "/2") })
	})
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		if !errors.Is(err, context.Canceled) {
			t.Errorf("a follower failed: %v", err)
		}
	}
	// Every line once; the first instance's in order (the second started
	// with the scale and printed only its own start line).
	first, _, _ := strings.Cut(lines[0], "|")
	var got []string
	seen := map[string]bool{}
	for _, l := range lines {
		if seen[l] {
			t.Errorf("line delivered twice: %q (all: %q)", l, lines)
		}
		seen[l] = true
		if in, text, _ := strings.Cut(l, "|"); in == first {
			got = append(got, text)
		}
	}
	if want := []string{"workload started", "line-1", "line-2", "line-3", "line-4"}; !slices.Equal(got, want) {
		t.Fatalf("log lines across the restart: %q, want %q", got, want)
	}
}

func hasText(text string) func(string) bool {
	return func(l string) bool { return strings.HasSuffix(l, "|"+text) }
}

package httpapi_test

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/credentials"
	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/workload"
	"github.com/coder/websocket"
)

// TestSlowBodiesAreCutOff: clients that send headers and then trickle a
// body (unauthenticated, or authenticated on a route that reads it) are
// answered or disconnected within a bound of the read timeout, instead of
// being held for as long as they trickle.
func TestSlowBodiesAreCutOff(t *testing.T) {
	const readTimeout = 300 * time.Millisecond
	f := newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler),
		func(o *httpapi.Options) { o.ReadTimeout = readTimeout })
	f.deploy(t, "web", 1)
	addr := strings.TrimPrefix(f.url, "http://")
	cases := []struct{ name, path, auth string }{
		{"unauthenticated", "/v1/targets/local/services/web/scale", ""},
		{"no route", "/v1/nothing", ""},
		{"authenticated", "/v1/targets/local/services/web/scale", "Authorization: Bearer " + tokens["operator"] + "\r\n"},
	}
	const clients = 30
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var wg sync.WaitGroup
			errs := make(chan error, clients)
			start := time.Now()
			for range clients {
				wg.Add(1)
				go func() {
					defer wg.Done()
					errs <- trickle(addr, tc.path, tc.auth)
				}()
			}
			wg.Wait()
			close(errs)
			for err := range errs {
				if err != nil {
					t.Fatal(err)
				}
			}
			// The trickle would go on for 100 s; each connection ended
			// within a few read timeouts (the bound, not a benchmark).
			if d := time.Since(start); d > 20*readTimeout {
				t.Fatalf("%d trickling clients took %v to be answered or closed (read timeout %v)", clients, d, readTimeout)
			}
		})
	}
}

// trickle sends a POST whose 100000-byte body arrives one byte every
// 100 ms and returns nil once the server answers or closes, or an error
// if it has done neither after 10 s.
func trickle(addr, path, auth string) error {
	c, err := net.Dial("tcp", addr)
	if err != nil {
		return err
	}
	defer c.Close()
	fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: x\r\n%sContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{", path, auth)
	done := make(chan struct{})
	defer close(done)
	go func() {
		t := time.NewTicker(100 * time.Millisecond)
		defer t.Stop()
		for {
			select {
			case <-done:
				return
			case <-t.C:
				if _, err := c.Write([]byte(" ")); err != nil {
					return
				}
			}
		}
	}()
	c.SetReadDeadline(time.Now().Add(10 * time.Second))
	_, err = bufio.NewReader(c).ReadString('\n') // a status line, or EOF when closed
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return fmt.Errorf("%s: neither answered nor closed after 10 s", path)
	}
	return nil
}

// TestStreamsOutliveReadTimeout: an SSE stream keeps delivering long after
// the read timeout that bounds request bodies.
func TestStreamsOutliveReadTimeout(t *testing.T) {
	f := newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler),
		func(o *httpapi.Options) { o.ReadTimeout = 100 * time.Millisecond })
	f.deploy(t, "web", 1)
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
		time.Sleep(500 * time.Millisecond)
		f.mem.Emit("web", "after the read timeout")
	}()
	evs := readEvents(t, resp.Body, 2, "line")
	if !strings.Contains(evs[1], "after the read timeout") {
		t.Fatalf("events %v", evs)
	}
}

// TestStreamsCappedPerPrincipal: a user gets rate_limited past the cap;
// another user is unaffected; closing a stream frees its slot.
func TestStreamsCappedPerPrincipal(t *testing.T) {
	f := newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler),
		func(o *httpapi.Options) { o.MaxStreamsPerPrincipal = 2 })
	f.deploy(t, "web", 1)
	open := func(role string) (*http.Response, context.CancelFunc) {
		ctx, cancel := context.WithCancel(context.Background())
		req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/v1/targets/local/services/web/metrics", nil)
		req.Header.Set("Authorization", "Bearer "+tokens[role])
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cancel(); resp.Body.Close() })
		return resp, cancel
	}
	var cancels []context.CancelFunc
	for range 2 {
		resp, cancel := open("viewer")
		if resp.StatusCode != 200 {
			t.Fatalf("stream within the cap: %d", resp.StatusCode)
		}
		readEvents(t, resp.Body, 1, "sample")
		cancels = append(cancels, cancel)
	}
	r := f.call(t, "viewer", "GET", "/v1/targets/local/services/web/logs?follow=true", "")
	if r.status != 429 || r.env.Error == nil || r.env.Error.Code != workload.RateLimited {
		t.Fatalf("third stream: %d %s, want 429 rate_limited", r.status, r.raw)
	}
	if resp, _ := open("operator"); resp.StatusCode != 200 {
		t.Fatalf("another user's stream: %d", resp.StatusCode)
	}
	cancels[0]()
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp, _ := open("viewer")
		if resp.StatusCode == 200 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's slot was never freed: %d", resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestExecWebSocketOutlivesReadTimeout: an interactive exec that runs
// longer than the read timeout is not cut off by it.
func TestExecWebSocketOutlivesReadTimeout(t *testing.T) {
	f := newFixtureWith(t, credentials.FromMap(nil), slog.New(slog.DiscardHandler),
		func(o *httpapi.Options) { o.ReadTimeout = 100 * time.Millisecond })
	f.deploy(t, "web", 1)
	f.mem.Delay = 500 * time.Millisecond // every operation, exec included, takes this long
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(f.url, "http") + "/v1/targets/local/services/web/exec/ws?command=echo&command=late"
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
		if typ == websocket.MessageText {
			var end api.ExecEnd
			if err := json.Unmarshal(b, &end); err != nil || end.Exit == nil || end.Exit.Code != 0 {
				t.Fatalf("end message %s", b)
			}
			break
		}
		if b[0] == api.StreamStdout {
			stdout.Write(b[1:])
		}
	}
	if stdout.String() != "late\n" {
		t.Fatalf("stdout %q", stdout.String())
	}
}

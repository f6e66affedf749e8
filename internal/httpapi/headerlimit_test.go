package httpapi_test

import (
	"encoding/json"
	"io"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/httpapi"
	"github.com/alphaswarm/controller/workload"
)

// TestOversizedHeaderEnvelope: a request whose header is over
// MaxHeaderBytes is answered 431 with the JSON envelope, not net/http's
// plain text (issue 21: "the 431 ... answers the JSON envelope"); a
// request under the limit reaches the handler.
func TestOversizedHeaderEnvelope(t *testing.T) {
	for _, wrapped := range []bool{false, true} {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		srv := &http.Server{MaxHeaderBytes: 4 << 10, ReadHeaderTimeout: 5 * time.Second,
			Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })}
		serveLn := ln
		if wrapped {
			serveLn = httpapi.EnvelopeListener(ln)
		}
		go srv.Serve(serveLn)
		t.Cleanup(func() { srv.Close() })
		url := "http://" + ln.Addr().String()

		for _, tc := range []struct {
			name string
			hdr  string
			path string
		}{
			{"header", strings.Repeat("x", 100<<10), "/"},
			{"query", "", "/?access_token=" + strings.Repeat("x", 100<<10)},
		} {
			req, _ := http.NewRequest("GET", url+tc.path, nil)
			if tc.hdr != "" {
				req.Header.Set("Authorization", "Bearer "+tc.hdr)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatalf("%s: %v", tc.name, err)
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
				t.Fatalf("%s: status %d", tc.name, resp.StatusCode)
			}
			var env struct {
				Status string          `json:"status"`
				Error  *workload.Error `json:"error"`
			}
			err = json.Unmarshal(body, &env)
			isEnv := err == nil && env.Status == "error" && env.Error != nil && env.Error.Code == workload.InvalidArgument &&
				len(env.Error.Fields) == 1 && env.Error.Fields[0].Path == "headers" && resp.Header.Get("Content-Type") == "application/json"
			if wrapped && !isEnv {
				t.Fatalf("%s: 431 answer is not the envelope: %s %q", tc.name, resp.Header.Get("Content-Type"), body)
			}
			if !wrapped && isEnv {
				t.Fatalf("%s: net/http itself answered the envelope; the wrapper is not what is tested", tc.name)
			}
		}
		resp, err := http.Get(url + "/small")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 || string(b) != "ok" {
			t.Fatalf("small request: %d %q", resp.StatusCode, b)
		}
	}
	// net/http lingers 500 ms after a 431 (closeWriteAndWait) before it
	// closes the connection; let it finish (goleak).
	time.Sleep(600 * time.Millisecond)
}

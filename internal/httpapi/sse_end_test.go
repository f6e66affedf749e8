package httpapi_test

import (
	"io"
	"net/http"
	"strings"
	"testing"
)

// TestFinishedStreamStopsClients (review third-party-clients F6): events
// carry ids, a finished stream's last event has the id "end", and a
// client reconnecting with Last-Event-ID: end gets 204, which makes
// EventSource-style clients stop instead of replaying the tail.
func TestFinishedStreamStopsClients(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 2)
	path := f.url + "/v1/targets/local/services/web/logs?tail=-1"
	get := func(lastID string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", path, nil)
		req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
		if lastID != "" {
			req.Header.Set("Last-Event-ID", lastID)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	resp, body := get("")
	if resp.StatusCode != 200 || !strings.Contains(body, "id: 1\nevent: line\n") {
		t.Fatalf("first connection: %d\n%s", resp.StatusCode, body)
	}
	if !strings.Contains(body, "id: end\nevent: end\n") {
		t.Fatalf("the finished stream's last event does not have id end:\n%s", body)
	}
	resp, body = get("end")
	if resp.StatusCode != http.StatusNoContent || body != "" {
		t.Fatalf("reconnect after the end: %d %q, want 204 and no body", resp.StatusCode, body)
	}
	// A reconnect from the middle of a stream starts it afresh.
	if resp, _ := get("1"); resp.StatusCode != 200 {
		t.Fatalf("reconnect with a numeric id: %d", resp.StatusCode)
	}
}

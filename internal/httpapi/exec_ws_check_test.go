package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/workload"
	"github.com/coder/websocket"
)

// TestExecWSRefusesBeforeUpgrade: what can be refused without running the
// command is refused with an HTTP status and the error envelope before
// the 101, never in-band after it (review third-party-clients F7, F8).
func TestExecWSRefusesBeforeUpgrade(t *testing.T) {
	f := newFixture(t)
	f.deploy(t, "web", 1)
	base := "/v1/targets/local/services/"
	handshake := []string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "13",
		"Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="}
	for _, c := range []struct {
		name, path string
		hdr        []string
		status     int
		code       workload.Code
		field      string
	}{
		{"unknown service", base + "ghost/exec/ws?command=echo", handshake, 404, workload.NotFound, ""},
		{"no command", base + "web/exec/ws", handshake, 400, workload.InvalidArgument, "command"},
		{"empty command", base + "web/exec/ws?command=", handshake, 400, workload.InvalidArgument, "command"},
		{"bad service name", base + "Bad_Name/exec/ws?command=echo", handshake, 400, workload.InvalidArgument, "service"},
		{"unknown target", "/v1/targets/nope/services/web/exec/ws?command=echo", handshake, 404, workload.NotFound, ""},
		{"not a websocket request", base + "web/exec/ws?command=echo", nil, 426, workload.InvalidArgument, ""},
		{"wrong websocket version", base + "web/exec/ws?command=echo",
			[]string{"Connection", "Upgrade", "Upgrade", "websocket", "Sec-WebSocket-Version", "8", "Sec-WebSocket-Key", "x"}, 400, workload.InvalidArgument, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			r := f.call(t, "admin", "GET", c.path, "", c.hdr...)
			if r.status != c.status || r.env.Error == nil || r.env.Error.Code != c.code {
				t.Fatalf("got %d %s, want %d with an envelope of code %s", r.status, r.raw, c.status, c.code)
			}
			if c.field != "" && !strings.Contains(r.raw, c.field) {
				t.Fatalf("error does not name the field %q: %s", c.field, r.raw)
			}
		})
	}

	// The same through a WebSocket client: the dial fails with the status;
	// there is no connection to read an in-band error from.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	url := "ws" + strings.TrimPrefix(f.url, "http") + base + "ghost/exec/ws?command=echo"
	c, resp, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tokens["admin"]}}})
	if err == nil {
		c.CloseNow()
		t.Fatal("exec/ws on an unknown service was upgraded")
	}
	if resp == nil || resp.StatusCode != 404 {
		t.Fatalf("dial: %v %v, want a 404 answer", err, resp)
	}

	// A refusal is audited as a rejected exec; nothing ran.
	page, err := f.led.Query(ctx, ledger.Filter{Service: "ghost", Action: string(workload.ActionExec)})
	if err != nil {
		t.Fatal(err)
	}
	var rejected, intents int
	for _, rec := range page.Records {
		switch rec.Kind {
		case ledger.KindRejected:
			rejected++
		case ledger.KindIntent:
			intents++
		}
	}
	if rejected == 0 || intents != 0 {
		t.Fatalf("ledger for exec on ghost: %d rejected, %d intents; want rejected records and no intent", rejected, intents)
	}
}

package httpapi_test

import (
	"context"
	"log/slog"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/credentials"
	"github.com/coder/websocket"
)

// TestStreamsRedactedForViewers: a secret the workload prints reaches a
// viewer's log stream and an admin's interactive exec as [REDACTED], in a
// server that never resolved the secret itself (as after a restart).
func TestStreamsRedactedForViewers(t *testing.T) {
	const secret = "hunter2-supersecret-value"
	f := newFixtureWith(t, credentials.FromMap(map[string]string{"ALPHASWARM_SECRET_DB": secret}), slog.New(slog.DiscardHandler))
	f.deploy(t, "web", 1)
	f.mem.Emit("web", "pw="+secret)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	req, _ := http.NewRequestWithContext(ctx, "GET", f.url+"/v1/targets/local/services/web/logs?tail=-1", nil)
	req.Header.Set("Authorization", "Bearer "+tokens["viewer"])
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	evs := readEvents(t, resp.Body, 2, "line")
	if strings.Contains(strings.Join(evs, "\n"), secret) || !strings.Contains(evs[1], "pw="+credentials.Redacted) {
		t.Fatalf("log events %v", evs)
	}

	url := "ws" + strings.TrimPrefix(f.url, "http") + "/v1/targets/local/services/web/exec/ws?command=echo&command=pw=" + secret + "&tty=true"
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
			break
		}
		if b[0] == api.StreamStdout {
			stdout.Write(b[1:])
		}
	}
	if stdout.String() != "pw="+credentials.Redacted+"\n" {
		t.Fatalf("interactive exec output %q", stdout.String())
	}
}

package e2e

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider/providertest"
	"github.com/alphaswarm/controller/workload"
	"github.com/coder/websocket"
)

// TestExecWebSocketEndsOnDocker drives /exec/ws against the real Docker
// Engine (review third-party-clients F5, F1): in TTY mode {"eof":true} and
// a typed Ctrl-D end a program reading stdin; a client that goes away
// leaves no process behind and the result row says it was ended.
func TestExecWebSocketEndsOnDocker(t *testing.T) {
	s := newStack(t)
	name := providertest.Name("wsx")
	s.cleanup(t, name)
	ctx := testkit.Context(t, 3*time.Minute)
	sp := spec(name, 1)
	if _, err := s.rt.Do(ctx, control.Request{Principal: control.Principal{User: "e2e", Role: "admin"}, Action: workload.ActionStart,
		Target: target, Service: name, Spec: &sp}); err != nil {
		t.Fatal(err)
	}
	ids := dockerPS(t, name)
	if len(ids) != 1 {
		t.Fatalf("replicas %v", ids)
	}
	dial := func(t *testing.T, args ...string) *websocket.Conn {
		q := url.Values{"tty": {"true"}, "cols": {"80"}, "rows": {"24"}}
		for _, a := range args {
			q.Add("command", a)
		}
		u := "ws" + strings.TrimPrefix(s.url, "http") + "/v1/targets/" + target + "/services/" + name + "/exec/ws?" + q.Encode()
		c, _, err := websocket.Dial(ctx, u, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + s.tokens["admin"]}}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.CloseNow() })
		return c
	}
	// waitOutput reads until stdout contains want.
	waitOutput := func(t *testing.T, c *websocket.Conn, want string) {
		var out strings.Builder
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		defer rcancel()
		for !strings.Contains(out.String(), want) {
			typ, b, err := c.Read(rctx)
			if err != nil {
				t.Fatalf("waiting for %q: %v (output %q)", want, err, out.String())
			}
			if typ == websocket.MessageBinary && len(b) > 0 {
				out.Write(b[1:])
			}
			if typ == websocket.MessageText {
				t.Fatalf("session ended early: %s (output %q)", b, out.String())
			}
		}
	}
	// waitExit reads until the exit message, which must come within 15s.
	waitExit := func(t *testing.T, c *websocket.Conn) api.ExecEnd {
		rctx, rcancel := context.WithTimeout(ctx, 15*time.Second)
		defer rcancel()
		for {
			typ, b, err := c.Read(rctx)
			if err != nil {
				t.Fatalf("no exit message: %v (the program reading stdin did not end)", err)
			}
			if typ == websocket.MessageText {
				var end api.ExecEnd
				if err := json.Unmarshal(b, &end); err != nil {
					t.Fatalf("end message %s: %v", b, err)
				}
				return end
			}
		}
	}

	for _, c := range []struct {
		name string
		eof  func(ctx context.Context, c *websocket.Conn) error
	}{
		{"eof control message", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageText, []byte(`{"eof":true}`))
		}},
		{"typed ctrl-d", func(ctx context.Context, c *websocket.Conn) error {
			return c.Write(ctx, websocket.MessageBinary, []byte{0x04})
		}},
	} {
		t.Run("tty "+c.name, func(t *testing.T) {
			conn := dial(t, "/workload", "stdin", "tag-eof")
			if err := conn.Write(ctx, websocket.MessageBinary, []byte("hello\n")); err != nil {
				t.Fatal(err)
			}
			waitOutput(t, conn, "hello\r\nhello\r\n") // the echo and the program's copy: it is reading
			if err := c.eof(ctx, conn); err != nil {
				t.Fatal(err)
			}
			end := waitExit(t, conn)
			if end.Exit == nil || end.Exit.Code != 0 {
				t.Fatalf("end %+v", end)
			}
		})
	}

	t.Run("client goes away", func(t *testing.T) {
		conn := dial(t, "/workload", "stdin", "tag-gone")
		if err := conn.Write(ctx, websocket.MessageBinary, []byte("x\n")); err != nil {
			t.Fatal(err)
		}
		waitOutput(t, conn, "x\r\nx\r\n")
		conn.CloseNow() // a dropped connection: no close handshake
		testkit.WaitFor(t, 20*time.Second, "the exec'd process to be gone from the container", func() bool {
			out, err := exec.Command("docker", "top", ids[0], "-o", "pid,args").Output()
			return err == nil && !strings.Contains(string(out), "tag-gone")
		})
		var detail string
		testkit.WaitFor(t, 20*time.Second, "the exec's result row", func() bool {
			page, err := s.led.Query(ctx, ledger.Filter{Service: name, Action: string(workload.ActionExec), Kind: ledger.KindResult})
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range page.Records {
				if strings.Contains(r.Detail, "orphan") {
					detail = r.Detail
					return true
				}
			}
			return false
		})
		if !strings.Contains(detail, `"ended":true`) {
			t.Fatalf("result row does not say the process was ended: %s", detail)
		}
	})
}

package httpapi_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/alphaswarm/controller/internal/testkit"
	"github.com/alphaswarm/controller/ledger"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
	"github.com/coder/websocket"
)

// TestExecClientCloseIsNotAFailure: a client that ends an exec before its
// command does — closing the WebSocket normally, or closing the connection
// of a non-interactive exec — is recorded as ended by the client (outcome
// interrupted, no error code, the cause in the message), not as
// error/unavailable (review F1's last line).
func TestExecClientCloseIsNotAFailure(t *testing.T) {
	for _, tc := range []struct {
		name, wantMessage string
		run               func(t *testing.T, f *fixture, entered <-chan struct{})
	}{
		{"websocket close 1000", "the client closed the WebSocket (status 1000)", func(t *testing.T, f *fixture, entered <-chan struct{}) {
			ctx := testkit.Context(t, 10*time.Second)
			url := "ws" + strings.TrimPrefix(f.url, "http") + "/v1/targets/local/services/web/exec/ws?command=sh"
			c, _, err := websocket.Dial(ctx, url, &websocket.DialOptions{HTTPHeader: http.Header{"Authorization": {"Bearer " + tokens["admin"]}}})
			if err != nil {
				t.Fatal(err)
			}
			defer c.CloseNow()
			<-entered
			// Close sends the close frame and waits (briefly) for the server's.
			_ = c.Close(websocket.StatusNormalClosure, "bye")
		}},
		{"http connection closed", "the client closed the connection", func(t *testing.T, f *fixture, entered <-chan struct{}) {
			ctx, cancel := context.WithCancel(context.Background())
			req, err := http.NewRequestWithContext(ctx, "POST", f.url+"/v1/targets/local/services/web/exec", strings.NewReader(`{"command":["sh"]}`))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+tokens["admin"])
			req.Header.Set("Content-Type", "application/json")
			done := make(chan struct{})
			go func() {
				defer close(done)
				if resp, err := http.DefaultClient.Do(req); err == nil {
					resp.Body.Close()
				}
			}()
			<-entered
			cancel()
			<-done
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f := newFixture(t)
			f.deploy(t, "web", 1)
			entered := make(chan struct{})
			f.mem.Enter = func(ctx context.Context, op provider.Operation, _ string) error {
				if op != provider.OpExec {
					return nil
				}
				close(entered)
				<-ctx.Done()
				return ctx.Err()
			}
			tc.run(t, f, entered)
			var rec ledger.Record
			testkit.WaitFor(t, 10*time.Second, "the exec's result row", func() bool {
				page, err := f.led.Query(context.Background(), ledger.Filter{Action: string(workload.ActionExec), Kind: ledger.KindResult})
				if err != nil {
					t.Fatal(err)
				}
				if len(page.Records) == 1 {
					rec = page.Records[0]
				}
				return len(page.Records) == 1
			})
			if rec.Outcome != ledger.OutcomeInterrupted || rec.ErrorCode != "" || !strings.Contains(rec.Message, tc.wantMessage) {
				t.Fatalf("result row: outcome %q code %q message %q; want interrupted, no code, message containing %q",
					rec.Outcome, rec.ErrorCode, rec.Message, tc.wantMessage)
			}
		})
	}
}

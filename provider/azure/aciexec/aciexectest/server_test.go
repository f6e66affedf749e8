package aciexectest_test

import (
	"context"
	"io"
	"net/http"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/provider/azure/aciexec/aciexectest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

type frame struct {
	typ  websocket.MessageType
	data string
}

// session dials uri with a raw client, sends first as the first message and
// returns every message received and the close status that ended them.
func session(t *testing.T, srv *aciexectest.Server, uri string, firstType websocket.MessageType, first string) ([]frame, websocket.StatusCode) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, uri, &websocket.DialOptions{HTTPClient: srv.HTTPClient()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, firstType, []byte(first)); err != nil {
		t.Fatalf("write first message: %v", err)
	}
	var got []frame
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return got, websocket.CloseStatus(err)
		}
		got = append(got, frame{typ, string(b)})
	}
}

func TestProtocol(t *testing.T) {
	hello := func(_ string, _ io.Reader, stdout io.Writer) { _, _ = io.WriteString(stdout, "hello") }
	tests := []struct {
		name       string
		opts       aciexectest.SessionOptions
		binaryPass bool
		wrongPass  bool
		want       []frame
		wantStatus websocket.StatusCode
	}{
		{
			name:       "accepted: empty greeting, text output, normal close",
			want:       []frame{{websocket.MessageText, ""}, {websocket.MessageText, "hello"}},
			wantStatus: websocket.StatusNormalClosure,
		},
		{
			name:       "binary output split into small messages",
			opts:       aciexectest.SessionOptions{BinaryOutput: true, MaxOutputMessage: 2},
			want:       []frame{{websocket.MessageBinary, ""}, {websocket.MessageBinary, "he"}, {websocket.MessageBinary, "ll"}, {websocket.MessageBinary, "o"}},
			wantStatus: websocket.StatusNormalClosure,
		},
		{
			name:       "wrong password",
			wrongPass:  true,
			wantStatus: websocket.StatusPolicyViolation,
		},
		{
			name:       "password in a binary message",
			binaryPass: true,
			wantStatus: websocket.StatusPolicyViolation,
		},
		{
			name:       "abrupt close",
			opts:       aciexectest.SessionOptions{CloseAbruptly: true},
			want:       []frame{{websocket.MessageText, ""}, {websocket.MessageText, "hello"}},
			wantStatus: -1,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := aciexectest.NewServer(t, hello)
			uri, password := srv.SessionWith("/bin/hostname", tt.opts)
			typ := websocket.MessageText
			if tt.binaryPass {
				typ = websocket.MessageBinary
			}
			if tt.wrongPass {
				password += "x"
			}
			got, status := session(t, srv, uri, typ, password)
			if status != tt.wantStatus {
				t.Errorf("close status = %v, want %v", status, tt.wantStatus)
			}
			if len(got) != len(tt.want) {
				t.Fatalf("messages = %+v, want %+v", got, tt.want)
			}
			for i := range got {
				if got[i] != tt.want[i] {
					t.Errorf("message %d = %+v, want %+v", i, got[i], tt.want[i])
				}
			}
		})
	}
}

func TestUnknownSessionIs404(t *testing.T) {
	srv := aciexectest.NewServer(t, func(string, io.Reader, io.Writer) {})
	uri, _ := srv.Session("/bin/true")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	_, resp, err := websocket.Dial(ctx, uri+"x", &websocket.DialOptions{HTTPClient: srv.HTTPClient()})
	if err == nil {
		t.Fatal("dial succeeded")
	}
	if resp == nil || resp.StatusCode != http.StatusNotFound {
		t.Fatalf("response = %v, want 404", resp)
	}
}

// TestCloseEndsRunningSessions checks that Close drops live connections and
// returns once their run funcs have.
func TestCloseEndsRunningSessions(t *testing.T) {
	started := make(chan struct{})
	var returned atomic.Bool
	srv := aciexectest.NewServer(t, func(_ string, stdin io.Reader, stdout io.Writer) {
		close(started)
		_, _ = io.Copy(stdout, stdin)
		returned.Store(true)
	})
	uri, password := srv.Session("/bin/cat")
	ctx, cancel := context.WithTimeout(t.Context(), 10*time.Second)
	defer cancel()
	conn, _, err := websocket.Dial(ctx, uri, &websocket.DialOptions{HTTPClient: srv.HTTPClient()})
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer conn.CloseNow()
	if err := conn.Write(ctx, websocket.MessageText, []byte(password)); err != nil {
		t.Fatalf("write password: %v", err)
	}
	<-started
	srv.Close()
	if !returned.Load() {
		t.Error("Close returned before the run func did")
	}
}

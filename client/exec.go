package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"sync"

	"github.com/alphaswarm/controller/api"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
	"github.com/coder/websocket"
)

// ExecStream is an interactive command.
type ExecStream struct {
	Command  []string
	Instance string
	TTY      bool
	Size     provider.TermSize // initial size; zero for none
	Stdin    io.Reader         // may be nil
	Stdout   io.Writer
	Stderr   io.Writer
	Resize   <-chan provider.TermSize // may be nil
}

// ExecInteractive runs a command over the WebSocket exec route, copying
// stdin, output and terminal resizes until the command exits. It returns
// the command's exit code and the ledger run id.
func (c *Client) ExecInteractive(ctx context.Context, target, service string, e ExecStream) (api.ExecExit, error) {
	u := *c.base
	switch u.Scheme {
	case "https":
		u.Scheme = "wss"
	default:
		u.Scheme = "ws"
	}
	u.Path += svc(target, service) + "/exec/ws"
	q := url.Values{"command": e.Command}
	if e.Instance != "" {
		q.Set("instance", e.Instance)
	}
	if e.TTY {
		q.Set("tty", "true")
	}
	if e.Size.Cols > 0 && e.Size.Rows > 0 {
		q.Set("cols", strconv.Itoa(int(e.Size.Cols)))
		q.Set("rows", strconv.Itoa(int(e.Size.Rows)))
	}
	u.RawQuery = q.Encode()
	hdr := http.Header{}
	if c.token != "" {
		hdr.Set("Authorization", "Bearer "+c.token)
	}
	conn, resp, err := websocket.Dial(ctx, u.String(), &websocket.DialOptions{HTTPHeader: hdr, HTTPClient: c.hc})
	if err != nil {
		if resp != nil && resp.Body != nil {
			b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
			resp.Body.Close()
			if derr := workload.DecodeEnvelope(b, nil); derr != nil {
				return api.ExecExit{}, derr
			}
		}
		return api.ExecExit{}, workload.Errorf(workload.Unavailable, "exec: cannot open the stream: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(4 << 20)
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	var wmu sync.Mutex
	send := func(typ websocket.MessageType, b []byte) error {
		wmu.Lock()
		defer wmu.Unlock()
		return conn.Write(ctx, typ, b)
	}
	if e.Stdin != nil {
		go func() {
			buf := make([]byte, 32<<10)
			for {
				n, err := e.Stdin.Read(buf)
				if n > 0 {
					if send(websocket.MessageBinary, buf[:n]) != nil {
						return
					}
				}
				if err != nil {
					b, _ := json.Marshal(api.ExecControl{EOF: true})
					send(websocket.MessageText, b)
					return
				}
			}
		}()
	}
	if e.Resize != nil {
		go func() {
			for {
				select {
				case <-ctx.Done():
					return
				case sz := <-e.Resize:
					b, _ := json.Marshal(api.ExecControl{Resize: &sz})
					if send(websocket.MessageText, b) != nil {
						return
					}
				}
			}
		}()
	}
	for {
		typ, b, err := conn.Read(ctx)
		if err != nil {
			return api.ExecExit{}, workload.Errorf(workload.Unavailable, "exec stream ended without an exit status: %w", err)
		}
		if typ == websocket.MessageBinary {
			if len(b) == 0 {
				continue
			}
			w := e.Stdout
			if b[0] == api.StreamStderr && e.Stderr != nil {
				w = e.Stderr
			}
			if w != nil {
				w.Write(b[1:])
			}
			continue
		}
		var end api.ExecEnd
		if err := json.Unmarshal(b, &end); err != nil {
			return api.ExecExit{}, errors.New("exec: malformed end message")
		}
		conn.Close(websocket.StatusNormalClosure, "")
		if end.Error != nil {
			return api.ExecExit{}, end.Error
		}
		if end.Exit == nil {
			return api.ExecExit{}, errors.New("exec: end message without an exit status")
		}
		return *end.Exit, nil
	}
}

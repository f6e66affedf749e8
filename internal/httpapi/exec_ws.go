package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"sync"

	"github.com/alphaswarm/controller/api"

	"github.com/alphaswarm/controller/control"
	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
	"github.com/coder/websocket"
)

// The WebSocket framing is documented in package api.

// ttyEOF is the terminal's default EOF character (VEOF, Ctrl-D; POSIX
// termios, "Special Characters"): what {"eof":true} sends in TTY mode.
const ttyEOF = 0x04

type wsWriter struct {
	ctx    context.Context
	c      *websocket.Conn
	stream byte
	mu     *sync.Mutex
}

func (w wsWriter) Write(p []byte) (int, error) {
	msg := make([]byte, 1+len(p))
	msg[0] = w.stream
	copy(msg[1:], p)
	w.mu.Lock()
	defer w.mu.Unlock()
	if err := w.c.Write(w.ctx, websocket.MessageBinary, msg); err != nil {
		return 0, err
	}
	return len(p), nil
}

func (s *Server) execWS(w http.ResponseWriter, r *http.Request, p control.Principal) {
	q := r.URL.Query()
	req := provider.ExecRequest{Instance: q.Get("instance"), Command: q["command"]}
	var errs []workload.FieldError
	if v := q.Get("tty"); v != "" {
		b, err := strconv.ParseBool(v)
		if err != nil {
			errs = append(errs, workload.FieldError{Path: "tty", Message: "must be true or false"})
		}
		req.TTY = b
	}
	var size provider.TermSize
	for _, d := range []struct {
		name string
		dst  *uint16
	}{{"cols", &size.Cols}, {"rows", &size.Rows}} {
		if v := q.Get(d.name); v != "" {
			n, err := strconv.ParseUint(v, 10, 16)
			if err != nil || n == 0 {
				errs = append(errs, workload.FieldError{Path: d.name, Message: "must be a positive number"})
			}
			*d.dst = uint16(n)
		}
	}
	if len(errs) > 0 {
		s.rejectBody(w, r, p, workload.ActionExec, workload.Invalid(errs...))
		return
	}
	// Everything that can be answered before the upgrade is (exec_check.go).
	if status, err := checkUpgrade(r); err != nil {
		if status == http.StatusUpgradeRequired {
			w.Header().Set("Upgrade", "websocket") // RFC 9110 section 15.5.22
		} else {
			w.Header().Set("Sec-WebSocket-Version", "13") // RFC 6455 section 4.4
		}
		writeErrorStatus(w, status, err)
		return
	}
	if err := s.rt.CheckExec(r.Context(), control.Request{Principal: p, Target: r.PathValue("target"),
		Service: r.PathValue("service"), Exec: &req}); err != nil {
		writeError(w, err)
		return
	}
	done, err := s.openStream(w, p)
	if err != nil {
		writeError(w, err)
		return
	}
	defer done()
	c, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept wrote the HTTP error
	}
	defer c.CloseNow()
	c.SetReadLimit(1 << 20)
	sctx, cancel := s.streamCtx(r)
	defer cancel()
	// ctx ends with the stream, or when the client goes: then its cause
	// says so, and the run is recorded as ended by the client (not as a
	// failure; control.ErrClientGone).
	ctx, clientGone := context.WithCancelCause(sctx)
	defer clientGone(nil)
	defer s.metrics.streamOpened("exec")()

	stdinR, stdinW := io.Pipe()
	resize := make(chan provider.TermSize, 4)
	if size.Cols > 0 && size.Rows > 0 {
		resize <- size
	}
	var mu sync.Mutex
	req.Stdin = stdinR
	req.Stdout = wsWriter{ctx, c, api.StreamStdout, &mu}
	req.Stderr = wsWriter{ctx, c, api.StreamStderr, &mu}
	req.Resize = resize

	// Reader: client messages → stdin and resize, until the client closes.
	go func() {
		defer stdinW.Close()
		for {
			typ, b, err := c.Read(ctx)
			if err != nil {
				stdinW.CloseWithError(err)
				clientGone(clientEnded(err))
				return
			}
			if typ == websocket.MessageBinary {
				if _, err := stdinW.Write(b); err != nil {
					return
				}
				continue
			}
			ctl, err := decodeStrict[api.ExecControl](b)
			if err != nil {
				continue // a control message we do not understand is ignored
			}
			if ctl.Resize != nil {
				select {
				case resize <- *ctl.Resize:
				default: // the provider is behind; the next resize wins
				}
			}
			if ctl.EOF {
				if req.TTY {
					// Closing a TTY's input ends nothing: the program reads
					// the terminal, and a terminal says end-of-file with its
					// EOF character (VEOF, Ctrl-D), as a user typing would.
					if _, err := stdinW.Write([]byte{ttyEOF}); err != nil {
						return
					}
					continue
				}
				stdinW.Close()
			}
		}
	}()

	res, err := s.rt.Do(ctx, control.Request{Principal: p, Action: workload.ActionExec, Target: r.PathValue("target"),
		Service: r.PathValue("service"), Exec: &req})
	var end api.ExecEnd
	if err != nil {
		end.Error = workload.AsError(err)
	} else {
		end.Exit = &api.ExecExit{RunID: res.RunID}
		if res.Exec != nil {
			end.Exit.Code = res.Exec.ExitCode
		}
	}
	b, _ := json.Marshal(end)
	mu.Lock()
	werr := c.Write(sctx, websocket.MessageText, b)
	mu.Unlock()
	if werr != nil && !errors.Is(werr, context.Canceled) {
		return
	}
	c.Close(websocket.StatusNormalClosure, "")
}

// clientEnded is the cause an exec run records when the WebSocket's read
// side ends: a close frame from the client, or a lost connection.
func clientEnded(err error) error {
	if code := websocket.CloseStatus(err); code != -1 {
		return fmt.Errorf("%w: the client closed the WebSocket (status %d)", control.ErrClientGone, code)
	}
	return fmt.Errorf("%w: the connection to the client was lost (%v)", control.ErrClientGone, err)
}

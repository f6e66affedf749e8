// Package aciexec is the client side of Azure Container Instances' exec
// channel: the WebSocket that Containers_ExecuteCommand
// (POST .../containerGroups/{group}/containers/{container}/exec) hands back
// as webSocketUri together with a one-time password.
//
// # Protocol
//
// ACI publishes no specification of the socket; what follows is what its
// clients do, read from their source:
//
//   - Terminal size and the command are not sent over the socket. They go in
//     the ExecuteCommand request body: {"command": "...", "terminalSize":
//     {"rows": R, "cols": C}}, and there is no resize message. The command
//     evidently runs on a pseudo-terminal of that size (the CLI puts its own
//     terminal in raw mode and forwards keystrokes, Ctrl-C included, as
//     bytes), so expect terminal output: echoed input, CR LF line ends,
//     stdout and stderr merged.
//   - The client opens the socket and sends the password as the first
//     message, a text frame.
//   - Stdin goes as binary messages holding raw bytes (the Azure CLI sends
//     what it buffered every 10 ms; older CLI releases and compose-cli sent
//     text frames of one character; virtual-kubelet sends binary chunks of at
//     most 512 bytes).
//   - Output arrives as messages whose payload is written verbatim; clients
//     accept text and binary frames alike. The service is reported to send an
//     empty message right after the connection opens (azure-cli PR #16000),
//     which must not be mistaken for the end of the session.
//   - There is no half-close and no in-band end of input: the CLI and
//     virtual-kubelet simply stop sending when their stdin ends.
//   - The session ends when the service closes the socket, which it does when
//     the command exits; since late 2020 with a close frame of status 1000
//     (docker/compose-cli issue #793; before that it dropped the TCP
//     connection). No exit status is conveyed.
//
// What the service does with a wrong or reused password is not documented
// and none of those clients handles it; this package maps a close with
// status 1008 (policy violation) before any output to [ErrPasswordRefused],
// which is what package aciexectest does. Treat that mapping as unconfirmed
// against the live service.
//
// compose-cli also found that ACI rejects commands with arguments ("ACI exec
// command does not accept arguments to the command. Only the binary should
// be specified"); that is the caller's concern, not this package's.
//
// Verified against (read, not copied):
//   - Azure/azure-cli src/azure-cli/azure/cli/command_modules/container/custom.py:
//     container_exec, _start_exec_pipe_linux, _start_exec_pipe_windows,
//     _on_ws_msg, _flush_stdin (commit 5a665f47) and the older _start_exec_pipe
//     and _cycle_exec_pipe (commit 0597b1ee).
//   - virtual-kubelet/azure-aci pkg/provider/aci.go: RunInContainer
//     (commit 382bbaad, February 2026).
//   - docker-archive/compose-cli aci/aci.go: exec; aci/containers.go:
//     verifyExecCommand (commit c156ce6d); issue #793.
//   - Microsoft Learn REST reference "Containers - Execute Command"
//     (api-version 2025-09-01) for the request and response bodies.
//
// # Choices made here
//
//   - Stdin EOF: by default nothing is sent, as the CLI does, and Run goes on
//     copying output until the service closes the socket; a command that
//     reads stdin to its end (cat) therefore runs until ctx ends. Because the
//     command sits on a terminal, [Options].OnStdinEOF can send the byte the
//     terminal treats as end of input ([]byte{4}, Ctrl-D; a partial line
//     needs it twice).
//   - Stdin is sent in binary messages of at most 4 KiB; incoming messages
//     over [Options].MaxMessageBytes (1 MiB by default) end the session with
//     an error.
//   - A close with status 1000, or a close frame without status, is a normal
//     end and Run returns nil. A dropped connection without a close frame is
//     an error wrapping [io.ErrUnexpectedEOF].
//   - When ctx ends first, [Options].OnCancel can be sent before the socket
//     is closed: ACI has no operation that ends an exec process, but the
//     command sits on a terminal, and Ctrl-C ([]byte{3}, which the Azure CLI
//     sends when its user presses Ctrl-C) makes it SIGINT the command; the
//     service closes the session when the command exits, which
//     [Stats].EndedAfterCancel reports. Whether closing the socket alone
//     ends the command is not documented.
//   - The password is never logged and never part of an error.
package aciexec

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coder/websocket"
)

// ErrPasswordRefused reports that the exec session closed the socket with
// status 1008 (policy violation) before sending any output: the password
// was wrong or had already been used. The session cannot be retried with the
// same password; call ExecuteCommand again for a new one.
var ErrPasswordRefused = errors.New("aciexec: the exec session refused the password")

// DefaultMaxMessageBytes is the largest output message Run accepts when
// Options.MaxMessageBytes is zero.
const DefaultMaxMessageBytes = 1 << 20

// stdinChunk is the most stdin bytes sent in one message.
const stdinChunk = 4 << 10

// Options tunes RunWith. The zero value is what Run uses.
type Options struct {
	// HTTPClient dials the socket; nil means http.DefaultClient. Its
	// Transport must return writable bodies for 101 responses, as
	// *http.Transport does. Tests pass aciexectest's (*Server).HTTPClient.
	HTTPClient *http.Client

	// MaxMessageBytes bounds one incoming message; zero means
	// DefaultMaxMessageBytes. A larger message ends the session with an
	// error.
	MaxMessageBytes int64

	// OnStdinEOF is sent once, as its own message, when stdin reports
	// io.EOF. Nil sends nothing (the Azure CLI's behaviour).
	OnStdinEOF []byte

	// OnCancel is sent once, as its own message, when ctx ends before the
	// session does; RunWith then keeps reading (and discarding) output for
	// up to CancelGrace, and reports in Stats.EndedAfterCancel whether the
	// service closed the session meanwhile, which it does when the command
	// exits. []byte{3} is Ctrl-C: the terminal the command runs on sends
	// it SIGINT. Nil closes the socket at once, as before.
	OnCancel []byte
	// CancelGrace bounds the wait after OnCancel; zero means 2 seconds.
	CancelGrace time.Duration
}

// Stats counts what a session carried.
type Stats struct {
	// StdinBytes is how many bytes read from stdin were sent, not counting
	// Options.OnStdinEOF.
	StdinBytes int64
	// StdoutBytes is how many bytes were written to stdout.
	StdoutBytes int64
	// EndedAfterCancel is true when ctx ended first, Options.OnCancel was
	// sent, and the service then closed the session normally within
	// Options.CancelGrace: the command exited.
	EndedAfterCancel bool
}

// Run connects to the WebSocket URI that ACI's Containers_ExecuteCommand
// returned, authenticates with its password, copies stdin to the command and
// the command's output to stdout until the socket closes or ctx ends.
//
// It is RunWith with zero Options; see RunWith for the contract.
func Run(ctx context.Context, webSocketURI, password string, stdin io.Reader, stdout io.Writer) error {
	_, err := RunWith(ctx, webSocketURI, password, stdin, stdout, Options{})
	return err
}

// RunWith is Run with options, and reports what the session carried.
//
// stdin may be nil for a command that reads no input. stdout may be nil to
// discard output. Output is written to stdout in the order received, only
// from the calling goroutine, and never after RunWith returns.
//
// RunWith returns nil when the service closes the session normally (the
// command exited; its exit status is not available), ErrPasswordRefused when
// it refuses the password, and ctx.Err() soon after ctx ends, closing the
// socket (with Options.OnCancel, after sending it and waiting up to
// Options.CancelGrace for the service to end the session). Other failures are returned wrapped; a close with another status
// wraps a websocket.CloseError.
//
// ctx cannot interrupt a Write to stdout in progress; RunWith returns once
// it completes.
//
// Stdin is read by a goroutine of its own. A Read on stdin cannot be
// interrupted, so RunWith does not wait for one in progress: that goroutine
// ends, discarding what it read, when the Read returns. Callers that pass a
// stdin whose Read may block forever (a pipe, a terminal) should close it
// once RunWith has returned. A stdin Read error other than io.EOF ends the
// session and is returned.
func RunWith(ctx context.Context, webSocketURI, password string, stdin io.Reader, stdout io.Writer, opts Options) (Stats, error) {
	var st Stats
	if err := ctx.Err(); err != nil {
		return st, err
	}
	if stdout == nil {
		stdout = io.Discard
	}
	limit := opts.MaxMessageBytes
	if limit <= 0 {
		limit = DefaultMaxMessageBytes
	}

	conn, _, err := websocket.Dial(ctx, webSocketURI, &websocket.DialOptions{HTTPClient: opts.HTTPClient})
	if err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		return st, fmt.Errorf("aciexec: dial exec session: %w", err)
	}
	defer conn.CloseNow()
	conn.SetReadLimit(limit)

	// Reads and writes use rctx, not ctx: a websocket.Conn closes itself
	// when the context of a Read ends, and after ctx ends the session may
	// still need OnCancel sent and the service's close read.
	rctx, rcancel := context.WithCancel(context.Background())
	defer rcancel()
	var cancelled atomic.Bool
	grace := opts.CancelGrace
	if grace <= 0 {
		grace = 2 * time.Second
	}
	stop := context.AfterFunc(ctx, func() {
		cancelled.Store(true)
		if len(opts.OnCancel) == 0 {
			rcancel()
			return
		}
		wctx, wcancel := context.WithTimeout(rctx, grace)
		_ = conn.Write(wctx, websocket.MessageBinary, opts.OnCancel)
		wcancel()
		time.AfterFunc(grace, rcancel)
	})
	defer stop()

	if err := conn.Write(rctx, websocket.MessageText, []byte(password)); err != nil {
		if ctx.Err() != nil {
			return st, ctx.Err()
		}
		return st, fmt.Errorf("aciexec: send password: %w", err)
	}

	var (
		sent     atomic.Int64
		stdinMu  sync.Mutex
		stdinErr error
	)
	if stdin != nil {
		go func() {
			err := pumpStdin(rctx, ctx, conn, stdin, opts.OnStdinEOF, &sent)
			if err != nil {
				stdinMu.Lock()
				stdinErr = err
				stdinMu.Unlock()
				rcancel()
			}
		}()
	}

	received, err := copyOutput(rctx, conn, &untilCancel{w: stdout, cancelled: &cancelled})
	st = Stats{StdinBytes: sent.Load(), StdoutBytes: received}
	if ctx.Err() != nil || cancelled.Load() {
		st.EndedAfterCancel = len(opts.OnCancel) > 0 && err == nil && rctx.Err() == nil
		return st, ctx.Err()
	}
	if err != nil {
		stdinMu.Lock()
		serr := stdinErr
		stdinMu.Unlock()
		if serr != nil {
			return st, serr
		}
	}
	return st, err
}

// untilCancel writes to w until the session was cancelled, then discards:
// the caller has gone.
type untilCancel struct {
	w         io.Writer
	cancelled *atomic.Bool
}

func (u *untilCancel) Write(p []byte) (int, error) {
	if u.cancelled.Load() {
		return len(p), nil
	}
	return u.w.Write(p)
}

// copyOutput writes every incoming message to stdout until the socket
// closes, and classifies how it closed.
func copyOutput(ctx context.Context, conn *websocket.Conn, stdout io.Writer) (int64, error) {
	var n int64
	buf := make([]byte, 32<<10)
	for {
		_, r, err := conn.Reader(ctx)
		if err != nil {
			return n, endOfSession(err, n)
		}
		m, err := copyMessage(stdout, r, buf, n)
		n += m
		if err != nil {
			return n, err
		}
	}
}

// copyMessage copies one message, telling a failed write to stdout apart
// from a failed read of the socket. before is the output written so far.
func copyMessage(stdout io.Writer, r io.Reader, buf []byte, before int64) (int64, error) {
	var n int64
	for {
		m, rerr := r.Read(buf)
		if m > 0 {
			w, werr := stdout.Write(buf[:m])
			n += int64(w)
			if werr == nil && w < m {
				werr = io.ErrShortWrite
			}
			if werr != nil {
				return n, fmt.Errorf("aciexec: write output: %w", werr)
			}
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, endOfSession(rerr, before+n)
		}
	}
}

// endOfSession turns the error that ended reading into Run's result.
func endOfSession(err error, written int64) error {
	switch websocket.CloseStatus(err) {
	case websocket.StatusNormalClosure, websocket.StatusNoStatusRcvd:
		return nil
	case websocket.StatusPolicyViolation:
		if written == 0 {
			return ErrPasswordRefused
		}
	case -1:
		if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
			return fmt.Errorf("aciexec: exec session dropped the connection without a close frame: %w", io.ErrUnexpectedEOF)
		}
		return fmt.Errorf("aciexec: read output: %w", err)
	}
	return fmt.Errorf("aciexec: exec session closed: %w", err)
}

// pumpStdin sends stdin in binary messages until it ends or stop ends. It returns only a
// stdin Read error; a failed send means the session is over, and the reader
// of the socket reports why.
func pumpStdin(ctx, stop context.Context, conn *websocket.Conn, stdin io.Reader, onEOF []byte, sent *atomic.Int64) error {
	buf := make([]byte, stdinChunk)
	for {
		n, err := stdin.Read(buf)
		if ctx.Err() != nil || stop.Err() != nil {
			return nil
		}
		if n > 0 {
			if conn.Write(ctx, websocket.MessageBinary, buf[:n]) != nil {
				return nil
			}
			sent.Add(int64(n))
		}
		switch {
		case err == io.EOF:
			if len(onEOF) > 0 {
				_ = conn.Write(ctx, websocket.MessageBinary, onEOF)
			}
			return nil
		case err != nil:
			return fmt.Errorf("aciexec: read stdin: %w", err)
		}
	}
}

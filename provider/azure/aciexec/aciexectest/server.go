// Package aciexectest serves Azure Container Instances' exec WebSocket in
// process, so that code using package aciexec can be tested without Azure.
//
// A Server stands in for the endpoint behind the webSocketUri that
// Containers_ExecuteCommand returns. Register a session with Session (the
// ExecuteCommand call), dial the returned URI with the returned password
// using (*Server).HTTPClient, and the Server speaks the protocol described
// in package aciexec:
//
//   - The first message must be a text message holding the session's
//     password. A session accepts exactly one attempt: a wrong password, a
//     non-text first message, and any later use of the same session get a
//     close with status 1008 (policy violation) and no output. An unknown
//     session path gets HTTP 404 before the upgrade.
//   - Once the password is accepted the Server sends one empty message (as
//     the service is reported to do) and calls run(command, stdin, stdout). stdin yields the payloads of the client's messages, text or
//     binary, in order; stdout's writes go out as messages of at most
//     SessionOptions.MaxOutputMessage bytes, text unless
//     SessionOptions.BinaryOutput.
//   - When run returns, the Server closes with status 1000, or drops the
//     connection with SessionOptions.CloseAbruptly. No exit status is sent.
//
// There is no terminal: unlike ACI, the Server neither echoes input nor
// translates line ends, Ctrl-D only ends stdin with
// SessionOptions.CtrlDEndsStdin and Ctrl-C only interrupts with
// SessionOptions.CtrlCInterrupts.
//
// run is called on its own goroutine per session and may be called
// concurrently for different sessions. It must return once a Read from
// stdin fails or a Write to stdout fails, which happens when the client goes
// away; the Server's cleanup waits for it (reporting a test error after 10
// seconds).
package aciexectest

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coder/websocket"
)

const (
	// passwordTimeout bounds the wait for the first message.
	passwordTimeout = 10 * time.Second
	// maxPasswordMessage bounds the first message.
	maxPasswordMessage = 4 << 10
	// maxStdinMessage bounds every later incoming message.
	maxStdinMessage = 1 << 20
	// defaultOutputMessage is SessionOptions.MaxOutputMessage's default.
	defaultOutputMessage = 16 << 10
	// cleanupWait is how long Close waits for run funcs to return.
	cleanupWait = 10 * time.Second
)

// ErrInterrupted is what run's stdin returns after the client sent Ctrl-C
// (0x03) in a session with SessionOptions.CtrlCInterrupts.
var ErrInterrupted = errors.New("aciexectest: interrupted (SIGINT from the terminal's Ctrl-C)")

// errCommandExited is what a client message arriving after run returned
// meets.
var errCommandExited = errors.New("aciexectest: the command has exited")

// SessionOptions varies how the Server plays one session. The zero value is
// the service's normal behaviour.
type SessionOptions struct {
	// BinaryOutput sends output in binary messages instead of text ones.
	BinaryOutput bool

	// MaxOutputMessage is the most bytes of output in one message; a larger
	// Write to stdout is split. Zero means 16 KiB.
	MaxOutputMessage int

	// CtrlDEndsStdin makes the first 0x04 byte from the client end run's
	// stdin (io.EOF), as a terminal in canonical mode reports end of input;
	// that byte and everything after it is discarded.
	CtrlDEndsStdin bool
	// CtrlCInterrupts makes the first 0x03 byte from the client end run's
	// stdin with ErrInterrupted: ACI runs the command on a terminal, whose
	// interrupt character sends SIGINT to it (the Azure CLI forwards Ctrl-C
	// as that byte), and a command that does not handle SIGINT ends. A run
	// that models a command ignoring SIGINT keeps going after the error.
	CtrlCInterrupts bool

	// CloseAbruptly drops the connection without a close frame when run
	// returns, as the service did before late 2020.
	CloseAbruptly bool
}

// Server is an in-process ACI exec endpoint. Its methods are safe for
// concurrent use. It is closed by the cleanup NewServer registers, or
// earlier by Close.
type Server struct {
	t   testing.TB
	run func(command string, stdin io.Reader, stdout io.Writer)
	srv *httptest.Server

	mu       sync.Mutex
	sessions map[string]*session
	conns    map[*websocket.Conn]struct{}
	closed   bool
	handlers sync.WaitGroup
}

type session struct {
	command  string
	password string
	opts     SessionOptions
	used     bool
}

// NewServer starts a Server over TLS that runs sessions with run, and
// registers its Close with t.Cleanup.
func NewServer(t testing.TB, run func(command string, stdin io.Reader, stdout io.Writer)) *Server {
	t.Helper()
	if run == nil {
		t.Fatal("aciexectest: NewServer needs a run func")
	}
	s := &Server{
		t:        t,
		run:      run,
		sessions: make(map[string]*session),
		conns:    make(map[*websocket.Conn]struct{}),
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /exec/{id}", s.serveExec)
	s.srv = httptest.NewTLSServer(mux)
	t.Cleanup(s.Close)
	return s
}

// Session registers a session for command with a one-time password, as
// Containers_ExecuteCommand does, and returns what that call returns.
func (s *Server) Session(command string) (webSocketURI, password string) {
	return s.SessionWith(command, SessionOptions{})
}

// SessionWith is Session with options for this session.
func (s *Server) SessionWith(command string, opts SessionOptions) (webSocketURI, password string) {
	id := rand.Text()
	password = rand.Text()
	s.mu.Lock()
	s.sessions[id] = &session{command: command, password: password, opts: opts}
	s.mu.Unlock()
	return "wss://" + strings.TrimPrefix(s.srv.URL, "https://") + "/exec/" + id, password
}

// HTTPClient returns a client that trusts the Server's certificate, for
// aciexec.Options.HTTPClient.
func (s *Server) HTTPClient() *http.Client {
	return s.srv.Client()
}

// Close stops the Server: it refuses new connections, drops open ones and
// waits for their run funcs to return. It is idempotent.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	conns := make([]*websocket.Conn, 0, len(s.conns))
	for c := range s.conns {
		conns = append(conns, c)
	}
	s.mu.Unlock()

	s.srv.Close()
	for _, c := range conns {
		_ = c.CloseNow()
	}
	done := make(chan struct{})
	go func() {
		s.handlers.Wait()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(cleanupWait):
		s.t.Errorf("aciexectest: a run func had not returned %v after its connection closed", cleanupWait)
	}
}

func (s *Server) serveExec(w http.ResponseWriter, r *http.Request) {
	s.mu.Lock()
	sess := s.sessions[r.PathValue("id")]
	if s.closed || sess == nil {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	s.handlers.Add(1)
	s.mu.Unlock()
	defer s.handlers.Done()

	conn, err := websocket.Accept(w, r, nil)
	if err != nil {
		return // Accept has answered the request.
	}
	if !s.track(conn) {
		return
	}
	defer s.untrack(conn)

	if !s.authenticate(conn, sess) {
		_ = conn.Close(websocket.StatusPolicyViolation, "exec password refused")
		return
	}
	opts := sess.opts // never changes after SessionWith
	out := &outputWriter{conn: conn, typ: websocket.MessageText, max: opts.MaxOutputMessage}
	if opts.BinaryOutput {
		out.typ = websocket.MessageBinary
	}
	if out.max <= 0 {
		out.max = defaultOutputMessage
	}
	if err := conn.Write(context.Background(), out.typ, nil); err != nil {
		return
	}

	conn.SetReadLimit(maxStdinMessage)
	stdin, stdinW := io.Pipe()
	pumped := make(chan struct{})
	go func() {
		defer close(pumped)
		pumpStdin(conn, stdinW, opts)
	}()

	s.run(sess.command, stdin, out)

	_ = stdin.CloseWithError(errCommandExited)
	if opts.CloseAbruptly {
		_ = conn.CloseNow()
	} else {
		_ = conn.Close(websocket.StatusNormalClosure, "")
	}
	<-pumped
}

// authenticate reads the first message and consumes the session's one
// attempt. It never logs the password.
func (s *Server) authenticate(conn *websocket.Conn, sess *session) bool {
	conn.SetReadLimit(maxPasswordMessage)
	ctx, cancel := context.WithTimeout(context.Background(), passwordTimeout)
	typ, msg, err := conn.Read(ctx)
	cancel()
	if err != nil {
		return false
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	first := !sess.used
	sess.used = true
	match := subtle.ConstantTimeCompare(msg, []byte(sess.password)) == 1
	return first && typ == websocket.MessageText && match
}

// track records conn so that Close can drop it; it reports false, having
// dropped conn, if the Server is already closed.
func (s *Server) track(conn *websocket.Conn) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		_ = conn.CloseNow()
		return false
	}
	s.conns[conn] = struct{}{}
	return true
}

func (s *Server) untrack(conn *websocket.Conn) {
	s.mu.Lock()
	delete(s.conns, conn)
	s.mu.Unlock()
	_ = conn.CloseNow()
}

// pumpStdin feeds the client's messages to run's stdin until the connection
// ends, and keeps reading (so that control frames are answered) after stdin
// has ended.
func pumpStdin(conn *websocket.Conn, stdin *io.PipeWriter, opts SessionOptions) {
	ended := false
	for {
		_, msg, err := conn.Read(context.Background())
		if err != nil {
			_ = stdin.CloseWithError(fmt.Errorf("aciexectest: exec connection ended: %w", err))
			return
		}
		if ended {
			continue
		}
		interrupted := false
		if opts.CtrlCInterrupts {
			if i := bytes.IndexByte(msg, 0x03); i >= 0 {
				msg, ended, interrupted = msg[:i], true, true
			}
		}
		if opts.CtrlDEndsStdin {
			if i := bytes.IndexByte(msg, 0x04); i >= 0 {
				msg, ended, interrupted = msg[:i], true, false
			}
		}
		if len(msg) > 0 {
			if _, err := stdin.Write(msg); err != nil {
				ended = true
			}
		}
		switch {
		case interrupted:
			_ = stdin.CloseWithError(ErrInterrupted)
		case ended:
			_ = stdin.Close()
		}
	}
}

// outputWriter sends run's output as messages of at most max bytes.
type outputWriter struct {
	conn *websocket.Conn
	typ  websocket.MessageType
	max  int
}

func (w *outputWriter) Write(p []byte) (int, error) {
	n := 0
	for len(p) > 0 {
		c := min(len(p), w.max)
		if err := w.conn.Write(context.Background(), w.typ, p[:c]); err != nil {
			return n, err
		}
		n += c
		p = p[c:]
	}
	return n, nil
}

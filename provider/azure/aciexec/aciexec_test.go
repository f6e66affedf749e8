package aciexec_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/coder/websocket"
	"go.uber.org/goleak"

	"github.com/alphaswarm/controller/provider/azure/aciexec"
	"github.com/alphaswarm/controller/provider/azure/aciexec/aciexectest"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

// testTimeout bounds every Run so that a bug hangs no test for long.
const testTimeout = 20 * time.Second

// greet is a one-shot command: it ignores stdin.
func greet(command string, _ io.Reader, stdout io.Writer) {
	fmt.Fprintf(stdout, "hello from %s\n", command)
}

// cat copies stdin to stdout until stdin ends.
func cat(_ string, stdin io.Reader, stdout io.Writer) {
	_, _ = io.Copy(stdout, stdin)
}

// pattern returns n deterministic bytes without 0x04 (Ctrl-D), so that they
// can pass through a session with CtrlDEndsStdin.
func pattern(n int) []byte {
	r := rand.New(rand.NewPCG(1, 2))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.UintN(256))
		if b[i] == 0x04 {
			b[i] = 0x05
		}
	}
	return b
}

// unevenWrites returns a run func that writes data in chunks of varying
// sizes, so that messages and writes line up nowhere.
func unevenWrites(data []byte) func(string, io.Reader, io.Writer) {
	return func(_ string, _ io.Reader, stdout io.Writer) {
		for i, rest := 0, data; len(rest) > 0; i++ {
			n := min(len(rest), 1+(i*7919)%65536)
			if _, err := stdout.Write(rest[:n]); err != nil {
				return
			}
			rest = rest[n:]
		}
	}
}

func TestRun(t *testing.T) {
	big := pattern(1 << 20)
	tests := []struct {
		name      string
		command   string
		run       func(string, io.Reader, io.Writer)
		session   aciexectest.SessionOptions
		opts      aciexec.Options
		stdin     io.Reader
		want      []byte
		wantStdin int64
		wantErr   error // matched with errors.Is; nil means success
	}{
		{
			name:    "one-shot output, text messages",
			command: "/bin/hostname",
			run:     greet,
			want:    []byte("hello from /bin/hostname\n"),
		},
		{
			name:    "one-shot output, binary messages",
			command: "/bin/hostname",
			run:     greet,
			session: aciexectest.SessionOptions{BinaryOutput: true},
			want:    []byte("hello from /bin/hostname\n"),
		},
		{
			name:    "no output",
			command: "/bin/true",
			run:     func(string, io.Reader, io.Writer) {},
			want:    nil,
		},
		{
			name:      "interactive echo ended by Ctrl-D",
			command:   "/bin/cat",
			run:       cat,
			session:   aciexectest.SessionOptions{CtrlDEndsStdin: true},
			opts:      aciexec.Options{OnStdinEOF: []byte{0x04}},
			stdin:     strings.NewReader("line one\nline two\n"),
			want:      []byte("line one\nline two\n"),
			wantStdin: int64(len("line one\nline two\n")),
		},
		{
			name:      "1 MiB echoed in order",
			command:   "/bin/cat",
			run:       cat,
			session:   aciexectest.SessionOptions{CtrlDEndsStdin: true, BinaryOutput: true},
			opts:      aciexec.Options{OnStdinEOF: []byte{0x04}},
			stdin:     bytes.NewReader(big),
			want:      big,
			wantStdin: int64(len(big)),
		},
		{
			name:    "1 MiB output intact, text messages",
			command: "/usr/bin/yes",
			run:     unevenWrites(big),
			session: aciexectest.SessionOptions{MaxOutputMessage: 7919},
			want:    big,
		},
		{
			name:    "1 MiB output intact, binary messages",
			command: "/usr/bin/yes",
			run:     unevenWrites(big),
			session: aciexectest.SessionOptions{BinaryOutput: true, MaxOutputMessage: 64 << 10},
			want:    big,
		},
		{
			name:    "output message over the limit",
			command: "/usr/bin/yes",
			run:     unevenWrites(big[:4096]),
			session: aciexectest.SessionOptions{MaxOutputMessage: 4096},
			opts:    aciexec.Options{MaxMessageBytes: 1024},
			wantErr: websocket.ErrMessageTooBig,
		},
		{
			name:    "connection dropped without close frame",
			command: "/bin/hostname",
			run:     greet,
			session: aciexectest.SessionOptions{CloseAbruptly: true},
			want:    []byte("hello from /bin/hostname\n"),
			wantErr: io.ErrUnexpectedEOF,
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var gotCommand atomic.Value
			srv := aciexectest.NewServer(t, func(command string, stdin io.Reader, stdout io.Writer) {
				gotCommand.Store(command)
				tt.run(command, stdin, stdout)
			})
			uri, password := srv.SessionWith(tt.command, tt.session)
			opts := tt.opts
			opts.HTTPClient = srv.HTTPClient()

			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			var out bytes.Buffer
			st, err := aciexec.RunWith(ctx, uri, password, tt.stdin, &out, opts)

			switch {
			case tt.wantErr == nil && err != nil:
				t.Fatalf("RunWith: %v", err)
			case tt.wantErr != nil && !errors.Is(err, tt.wantErr):
				t.Fatalf("RunWith error = %v, want one matching %v", err, tt.wantErr)
			}
			if err != nil && strings.Contains(err.Error(), password) {
				t.Errorf("error %q contains the password", err)
			}
			if got := gotCommand.Load(); got != tt.command {
				t.Errorf("server ran %v, want %q", got, tt.command)
			}
			if tt.wantErr == nil || tt.want != nil {
				if !bytes.Equal(out.Bytes(), tt.want) {
					t.Errorf("output: got %d bytes, want %d (first difference at %d)",
						out.Len(), len(tt.want), firstDiff(out.Bytes(), tt.want))
				}
			}
			if st.StdoutBytes != int64(out.Len()) {
				t.Errorf("Stats.StdoutBytes = %d, wrote %d", st.StdoutBytes, out.Len())
			}
			if st.StdinBytes != tt.wantStdin {
				t.Errorf("Stats.StdinBytes = %d, want %d", st.StdinBytes, tt.wantStdin)
			}
		})
	}
}

func firstDiff(a, b []byte) int {
	for i := range min(len(a), len(b)) {
		if a[i] != b[i] {
			return i
		}
	}
	return min(len(a), len(b))
}

// TestRunDefaultClient checks that Run dials with http.DefaultClient, which
// does not trust the test server's certificate, so the dial fails.
func TestRunDefaultClient(t *testing.T) {
	srv := aciexectest.NewServer(t, greet)
	uri, password := srv.Session("/bin/hostname")
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	err := aciexec.Run(ctx, uri, password, nil, io.Discard)
	if err == nil || errors.Is(err, aciexec.ErrPasswordRefused) {
		t.Fatalf("Run with an untrusted certificate: err = %v, want a dial error", err)
	}
	if !strings.HasPrefix(err.Error(), "aciexec: dial exec session: ") {
		t.Errorf("error %q lacks the dial prefix", err)
	}
}

func TestRefused(t *testing.T) {
	const wrong = "not-the-password"
	type attempt struct {
		password string // "" means the session's own
		refused  bool
	}
	tests := []struct {
		name     string
		attempts []attempt
		wantRuns int64
	}{
		{
			name:     "wrong password",
			attempts: []attempt{{password: wrong, refused: true}},
		},
		{
			name:     "password reused",
			attempts: []attempt{{}, {refused: true}},
			wantRuns: 1,
		},
		{
			name:     "one attempt per session",
			attempts: []attempt{{password: wrong, refused: true}, {refused: true}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var runs atomic.Int64
			srv := aciexectest.NewServer(t, func(command string, stdin io.Reader, stdout io.Writer) {
				runs.Add(1)
				greet(command, stdin, stdout)
			})
			uri, password := srv.Session("/bin/hostname")
			opts := aciexec.Options{HTTPClient: srv.HTTPClient()}
			for i, a := range tt.attempts {
				if a.password == "" {
					a.password = password
				}
				ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
				var out bytes.Buffer
				_, err := aciexec.RunWith(ctx, uri, a.password, nil, &out, opts)
				cancel()
				if !a.refused {
					if err != nil {
						t.Fatalf("attempt %d: %v", i, err)
					}
					continue
				}
				if !errors.Is(err, aciexec.ErrPasswordRefused) {
					t.Fatalf("attempt %d: err = %v, want ErrPasswordRefused", i, err)
				}
				if msg := err.Error(); strings.Contains(msg, password) || strings.Contains(msg, wrong) {
					t.Errorf("attempt %d: error %q contains a password", i, msg)
				}
				if out.Len() != 0 {
					t.Errorf("attempt %d: refused session wrote %q", i, out.String())
				}
			}
			if got := runs.Load(); got != tt.wantRuns {
				t.Errorf("run called %d times, want %d", got, tt.wantRuns)
			}
		})
	}
}

func TestUnknownSession(t *testing.T) {
	srv := aciexectest.NewServer(t, greet)
	uri, password := srv.Session("/bin/hostname")
	uri = uri[:strings.LastIndex(uri, "/")+1] + "NOSUCHSESSION"
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	_, err := aciexec.RunWith(ctx, uri, password, nil, io.Discard, aciexec.Options{HTTPClient: srv.HTTPClient()})
	if err == nil || errors.Is(err, aciexec.ErrPasswordRefused) {
		t.Fatalf("err = %v, want a dial error", err)
	}
	if !strings.Contains(err.Error(), "404") {
		t.Errorf("error %q does not mention the 404", err)
	}
}

// signalWriter collects output and closes seen once it contains want.
type signalWriter struct {
	mu   sync.Mutex
	buf  bytes.Buffer
	want string
	seen chan struct{}
	once sync.Once
}

func (w *signalWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.buf.Write(p)
	if strings.Contains(w.buf.String(), w.want) {
		w.once.Do(func() { close(w.seen) })
	}
	return len(p), nil
}

func TestCancelMidSession(t *testing.T) {
	ignore := goleak.IgnoreCurrent()

	srv := aciexectest.NewServer(t, func(_ string, stdin io.Reader, stdout io.Writer) {
		if _, err := io.WriteString(stdout, "$ "); err != nil {
			return
		}
		_, _ = io.Copy(stdout, stdin) // until the client goes away
	})
	uri, password := srv.Session("/bin/sh")

	// A pipe nobody writes to: the stdin goroutine stays blocked in Read.
	stdin, stdinW := io.Pipe()
	out := &signalWriter{want: "$ ", seen: make(chan struct{})}

	ctx, cancel := context.WithCancel(t.Context())
	defer cancel()
	done := make(chan error, 1)
	go func() {
		_, err := aciexec.RunWith(ctx, uri, password, stdin, out, aciexec.Options{HTTPClient: srv.HTTPClient()})
		done <- err
	}()

	select {
	case <-out.seen:
	case err := <-done:
		t.Fatalf("RunWith returned before the prompt: %v", err)
	case <-time.After(testTimeout):
		t.Fatal("no prompt")
	}
	cancel()
	start := time.Now()
	select {
	case err := <-done:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("err = %v, want context.Canceled", err)
		}
		if d := time.Since(start); d > time.Second {
			t.Errorf("RunWith took %v to return after cancel", d)
		}
	case <-time.After(testTimeout):
		t.Fatal("RunWith did not return after cancel")
	}

	// Release the Read that RunWith documents it cannot interrupt, stop the
	// server (its run func must see the connection gone), then nothing
	// started by this test may remain.
	_ = stdinW.Close()
	srv.Close()
	goleak.VerifyNone(t, ignore)
}

func TestCanceledBeforeDial(t *testing.T) {
	srv := aciexectest.NewServer(t, greet)
	uri, password := srv.Session("/bin/hostname")
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	_, err := aciexec.RunWith(ctx, uri, password, nil, io.Discard, aciexec.Options{HTTPClient: srv.HTTPClient()})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want context.Canceled", err)
	}
}

type failingReader struct{ err error }

func (r failingReader) Read([]byte) (int, error) { return 0, r.err }

type failingWriter struct{ err error }

func (w failingWriter) Write([]byte) (int, error) { return 0, w.err }

func TestLocalFailures(t *testing.T) {
	errBoom := errors.New("boom")
	tests := []struct {
		name   string
		stdin  io.Reader
		stdout io.Writer
		prefix string
	}{
		{name: "stdin read error", stdin: failingReader{errBoom}, stdout: io.Discard, prefix: "aciexec: read stdin: "},
		{name: "stdout write error", stdout: failingWriter{errBoom}, prefix: "aciexec: write output: "},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			srv := aciexectest.NewServer(t, func(_ string, stdin io.Reader, stdout io.Writer) {
				if _, err := io.WriteString(stdout, "$ "); err != nil {
					return
				}
				_, _ = io.Copy(stdout, stdin)
			})
			uri, password := srv.Session("/bin/sh")
			ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
			defer cancel()
			_, err := aciexec.RunWith(ctx, uri, password, tt.stdin, tt.stdout, aciexec.Options{HTTPClient: srv.HTTPClient()})
			if !errors.Is(err, errBoom) {
				t.Fatalf("err = %v, want one wrapping %v", err, errBoom)
			}
			if !strings.HasPrefix(err.Error(), tt.prefix) {
				t.Errorf("error %q lacks prefix %q", err, tt.prefix)
			}
		})
	}
}

// TestCancelSendsCtrlC (issue 16, ACI): when the caller goes first,
// Options.OnCancel (Ctrl-C) goes over the socket; a command that dies of
// SIGINT ends the session, which Stats.EndedAfterCancel reports, and one
// that ignores it is left after CancelGrace, reported as not ended.
func TestCancelSendsCtrlC(t *testing.T) {
	for _, c := range []struct {
		name      string
		ignores   bool
		wantEnded bool
	}{
		{"command ends on SIGINT", false, true},
		{"command ignores SIGINT", true, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			ignore := goleak.IgnoreCurrent()
			var interrupted atomic.Bool
			srv := aciexectest.NewServer(t, func(_ string, stdin io.Reader, stdout io.Writer) {
				if _, err := io.WriteString(stdout, "$ "); err != nil {
					return
				}
				_, err := io.Copy(io.Discard, stdin)
				interrupted.Store(errors.Is(err, aciexectest.ErrInterrupted))
				if !c.ignores {
					return
				}
				for { // ignores SIGINT: runs until its output has nowhere to go
					if _, err := io.WriteString(stdout, "."); err != nil {
						return
					}
					time.Sleep(10 * time.Millisecond)
				}
			})
			uri, password := srv.SessionWith("/bin/sh", aciexectest.SessionOptions{CtrlCInterrupts: true})
			stdin, stdinW := io.Pipe()
			out := &signalWriter{want: "$ ", seen: make(chan struct{})}
			ctx, cancel := context.WithCancel(t.Context())
			defer cancel()
			type result struct {
				st  aciexec.Stats
				err error
			}
			done := make(chan result, 1)
			const grace = 300 * time.Millisecond
			go func() {
				st, err := aciexec.RunWith(ctx, uri, password, stdin, out, aciexec.Options{HTTPClient: srv.HTTPClient(),
					OnCancel: []byte{3}, CancelGrace: grace})
				done <- result{st, err}
			}()
			select {
			case <-out.seen:
			case r := <-done:
				t.Fatalf("RunWith returned before the prompt: %v", r.err)
			case <-time.After(testTimeout):
				t.Fatal("no prompt")
			}
			cancel()
			start := time.Now()
			select {
			case r := <-done:
				if !errors.Is(r.err, context.Canceled) {
					t.Errorf("err = %v, want context.Canceled", r.err)
				}
				if r.st.EndedAfterCancel != c.wantEnded {
					t.Errorf("EndedAfterCancel = %v, want %v", r.st.EndedAfterCancel, c.wantEnded)
				}
				if d := time.Since(start); d > grace+time.Second {
					t.Errorf("RunWith took %v after cancel (grace %v)", d, grace)
				}
			case <-time.After(testTimeout):
				t.Fatal("RunWith did not return after cancel")
			}
			_ = stdinW.Close()
			srv.Close()
			if !interrupted.Load() {
				t.Error("the command never saw Ctrl-C")
			}
			goleak.VerifyNone(t, ignore)
		})
	}
}

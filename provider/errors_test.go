package provider_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"github.com/alphaswarm/controller/provider"
	"github.com/alphaswarm/controller/workload"
)

func TestErrorfAndNotFound(t *testing.T) {
	cause := io.ErrUnexpectedEOF
	cases := []struct {
		name     string
		err      *workload.Error
		code     workload.Code
		message  string
		cause    error
		provider string
	}{
		{"errorf", provider.Errorf("aws", workload.Conflict, "service %q is draining", "web"), workload.Conflict, `service "web" is draining`, nil, "aws"},
		{"errorf wraps %w", provider.Errorf("gcp", workload.Unavailable, "read: %w", cause), workload.Unavailable, "read: unexpected EOF", cause, "gcp"},
		{"not found", provider.NotFound("azure", "service %q has no container groups", "web"), workload.NotFound, `service "web" has no container groups`, nil, "azure"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e := tc.err
			if e.Code != tc.code || e.Message != tc.message || e.Provider != tc.provider || e.Retryable != tc.code.Retryable() {
				t.Fatalf("got %+v, want code %s, message %q, provider %q", e, tc.code, tc.message, tc.provider)
			}
			if tc.cause != nil && !errors.Is(e, tc.cause) {
				t.Fatalf("cause %v lost: %+v", tc.cause, e)
			}
			if tc.cause == nil && e.Err != nil {
				t.Fatalf("unexpected cause %v", e.Err)
			}
		})
	}
}

func TestWrap(t *testing.T) {
	backend := errors.New("connection reset by peer")
	classify := func(err error) (workload.Code, string) {
		if errors.Is(err, backend) {
			return workload.Unavailable, "engine unreachable: " + err.Error()
		}
		return workload.ProviderError, ""
	}
	bare := workload.Errorf(workload.NotFound, "no such container")
	named := provider.Errorf("kubernetes", workload.Conflict, "busy")
	cases := []struct {
		name     string
		err      error
		what     string
		code     workload.Code
		message  string
		provider string
		same     bool // the very error passed in comes back
	}{
		{"classified with what", backend, "create replica 2 of web", workload.Unavailable, "create replica 2 of web: engine unreachable: connection reset by peer", "docker", false},
		{"classifier keeps the message", io.ErrClosedPipe, "pull nginx", workload.ProviderError, "pull nginx: io: read/write on closed pipe", "docker", false},
		{"no what", io.ErrClosedPipe, "", workload.ProviderError, "io: read/write on closed pipe", "docker", false},
		{"workload error gains the name", fmt.Errorf("inspect: %w", bare), "ignored", workload.NotFound, "no such container", "docker", false},
		{"named workload error passes", named, "ignored", workload.Conflict, "busy", "kubernetes", true},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			err := provider.Wrap("docker", classify, tc.err, tc.what)
			e := workload.AsError(err)
			if e.Code != tc.code || e.Message != tc.message || e.Provider != tc.provider {
				t.Fatalf("Wrap = %+v, want code %s, message %q, provider %q", e, tc.code, tc.message, tc.provider)
			}
			if tc.same && err != tc.err {
				t.Fatalf("a named *workload.Error was rewrapped: %#v", err)
			}
			var we *workload.Error
			if !errors.As(tc.err, &we) && !errors.Is(err, tc.err) {
				t.Fatalf("the backend error is not the cause: %#v", err)
			}
		})
	}
	if provider.Wrap("docker", classify, nil, "x") != nil {
		t.Fatal("nil became an error")
	}
	if bare.Provider != "" {
		t.Fatal("Wrap modified the *workload.Error it was given")
	}
}

// timeoutErr is a net.Error that timed out.
type timeoutErr struct{}

func (timeoutErr) Error() string   { return "i/o timeout" }
func (timeoutErr) Timeout() bool   { return true }
func (timeoutErr) Temporary() bool { return true }

func TestIsNetTimeout(t *testing.T) {
	// A real one: a read past its deadline on a real connection.
	a, b := net.Pipe()
	t.Cleanup(func() { a.Close(); b.Close() })
	_ = a.SetReadDeadline(time.Now().Add(-time.Second))
	_, readErr := a.Read(make([]byte, 1))
	cases := []struct {
		name string
		err  error
		want bool
	}{
		{"nil", nil, false},
		{"net.Error timing out", &net.OpError{Op: "dial", Net: "tcp", Err: timeoutErr{}}, true},
		{"deadline exceeded", fmt.Errorf("read: %w", os.ErrDeadlineExceeded), true},
		{"pipe read past its deadline", readErr, true},
		{"refused", &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errors.New("connection refused"))}, false},
		// context.DeadlineExceeded is a net.Error that timed out.
		{"context deadline", context.DeadlineExceeded, true},
		{"plain", io.EOF, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if got := provider.IsNetTimeout(tc.err); got != tc.want {
				t.Fatalf("IsNetTimeout(%v) = %v, want %v", tc.err, got, tc.want)
			}
		})
	}
}

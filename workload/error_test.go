package workload

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"testing"
)

func TestEnvelopeWireFormat(t *testing.T) {
	cases := []struct {
		name string
		env  Envelope
		want string
	}{
		{"ok", OK(map[string]int{"n": 1}), `{"status":"ok","data":{"n":1},"error":null}`},
		{"ok nil data", OK(nil), `{"status":"ok","data":null,"error":null}`},
		{"error", Fail(Errorf(NotFound, "service %q does not exist", "web").WithProvider("docker")),
			`{"status":"error","data":null,"error":{"code":"not_found","message":"service \"web\" does not exist","provider":"docker","retryable":false}}`},
		{"plain error", Fail(errors.New("boom")), `{"status":"error","data":null,"error":{"code":"internal","message":"boom","retryable":false}}`},
		{"timeout", Fail(fmt.Errorf("call: %w", context.DeadlineExceeded)), `{"status":"error","data":null,"error":{"code":"timeout","message":"call: context deadline exceeded","retryable":true}}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			b, err := json.Marshal(tc.env)
			if err != nil {
				t.Fatal(err)
			}
			if string(b) != tc.want {
				t.Fatalf("got  %s\nwant %s", b, tc.want)
			}
		})
	}
	if _, err := json.Marshal(Envelope{Status: "error"}); err == nil {
		t.Fatal("error envelope without error marshalled")
	}
}

func TestDecodeEnvelope(t *testing.T) {
	var n struct{ N int }
	if err := DecodeEnvelope([]byte(`{"status":"ok","data":{"N":4},"error":null}`), &n); err != nil || n.N != 4 {
		t.Fatalf("ok: %v %v", n, err)
	}
	err := DecodeEnvelope([]byte(`{"status":"error","data":null,"error":{"code":"halted","message":"stop"}}`), nil)
	if CodeOf(err) != Halted {
		t.Fatalf("error envelope: %v", err)
	}
	if err := DecodeEnvelope([]byte(`{"status":"maybe"}`), nil); err == nil {
		t.Fatal("bad status accepted")
	}
}

func TestCodes(t *testing.T) {
	seen := map[int]bool{}
	for _, c := range Codes {
		if !c.Valid() {
			t.Errorf("%s not valid", c)
		}
		s := c.HTTPStatus()
		if s < 400 {
			t.Errorf("%s -> %d", c, s)
		}
		seen[s] = true
	}
	if Code("nope").Valid() {
		t.Error("unknown code valid")
	}
	want := map[Code]int{InvalidArgument: 400, Unauthenticated: 401, PermissionDenied: 403, NotFound: 404,
		Conflict: 409, RateLimited: 429, Unavailable: 503, Timeout: 504, Unsupported: 501, Internal: 500, RolloutFailed: 422}
	for c, s := range want {
		if c.HTTPStatus() != s {
			t.Errorf("%s -> %d, want %d", c, c.HTTPStatus(), s)
		}
	}
	_ = http.StatusOK
	if RolloutFailed.Retryable() {
		t.Error("rollout_failed retryable: the same request fails the same way")
	}
}

// An error envelope carries the status the operation ended in, so a client
// sees what failed.
func TestErrorCarriesStatus(t *testing.T) {
	e := &Error{Code: RolloutFailed, Message: "start of web: the rollout ended Failed",
		Status: &DeploymentStatus{ID: "t/web", Phase: Failed, Message: "ImagePullBackOff"}}
	b, err := json.Marshal(Fail(e))
	if err != nil {
		t.Fatal(err)
	}
	got := DecodeEnvelope(b, nil)
	ge := AsError(got)
	if ge.Code != RolloutFailed || ge.Status == nil || ge.Status.Phase != Failed || ge.Status.Message != "ImagePullBackOff" {
		t.Fatalf("decoded %+v from %s", ge, b)
	}
}

func TestErrorMatching(t *testing.T) {
	cause := errors.New("socket closed")
	e := Errorf(Unavailable, "daemon: %w", cause)
	wrapped := fmt.Errorf("start web: %w", e)
	if !errors.Is(wrapped, cause) {
		t.Error("cause lost")
	}
	if !errors.Is(wrapped, &Error{Code: Unavailable}) {
		t.Error("code match failed")
	}
	if CodeOf(wrapped) != Unavailable || !AsError(wrapped).Retryable {
		t.Error("AsError through wrapping")
	}
	if !errors.Is(Errorf(Unsupported, "no exec"), errors.ErrUnsupported) {
		t.Error("unsupported does not match errors.ErrUnsupported")
	}
	if CodeOf(fmt.Errorf("x: %w", errors.ErrUnsupported)) != Unsupported {
		t.Error("errors.ErrUnsupported not classified")
	}
	if CodeOf(nil) != "" || AsError(nil) != nil {
		t.Error("nil")
	}
}

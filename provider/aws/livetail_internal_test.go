package aws

import (
	"errors"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/smithy-go"
)

type closeCounter struct {
	io.Reader
	closed int
}

func (c *closeCounter) Close() error { c.closed++; return nil }

type recordingDoer struct{ got *http.Request }

func (d *recordingDoer) Do(r *http.Request) (*http.Response, error) {
	d.got = r
	return &http.Response{StatusCode: 200, Body: http.NoBody}, nil
}

// TestDetachedBody: the transport gets a copy of the body (same bytes and
// length, re-readable) and never the SDK's stream, which stays open for
// the SDK to close.
func TestDetachedBody(t *testing.T) {
	orig := &closeCounter{Reader: strings.NewReader(`{"logGroupIdentifiers":["g"]}`)}
	req, _ := http.NewRequest(http.MethodPost, "http://logs.test/", orig)
	req.ContentLength = -1
	rec := &recordingDoer{}
	if _, err := (detachedBody{rec}).Do(req); err != nil {
		t.Fatal(err)
	}
	if rec.got.Body == io.ReadCloser(orig) {
		t.Fatal("the transport got the SDK's body")
	}
	b, _ := io.ReadAll(rec.got.Body)
	if string(b) != `{"logGroupIdentifiers":["g"]}` || rec.got.ContentLength != int64(len(b)) {
		t.Errorf("body %q, length %d", b, rec.got.ContentLength)
	}
	again, _ := rec.got.GetBody()
	if b2, _ := io.ReadAll(again); string(b2) != string(b) {
		t.Errorf("GetBody gave %q", b2)
	}
	if orig.closed != 0 {
		t.Errorf("the SDK's body was closed %d times by detachedBody", orig.closed)
	}
}

// TestLiveFailure: a refused live tail is given up for good, a missing
// log group is polled for, anything else is retried.
func TestLiveFailure(t *testing.T) {
	for _, tc := range []struct {
		err  error
		want liveResult
	}{
		{&smithy.GenericAPIError{Code: "AccessDeniedException", Message: "not authorized to perform logs:StartLiveTail"}, liveUnavailable},
		{&smithy.GenericAPIError{Code: "ResourceNotFoundException", Message: "The specified log group does not exist."}, liveNoGroup},
		{&smithy.GenericAPIError{Code: "InvalidParameterException", Message: "bad"}, liveUnavailable},
		{&smithy.GenericAPIError{Code: "ThrottlingException", Message: "Rate exceeded"}, liveBroken},
		{&smithy.GenericAPIError{Code: "ServiceUnavailableException", Message: "try again"}, liveBroken},
		{errors.New("read tcp: connection reset by peer"), liveBroken},
	} {
		if got := liveFailure(tc.err); got != tc.want {
			t.Errorf("liveFailure(%v) = %d, want %d", tc.err, got, tc.want)
		}
	}
}
